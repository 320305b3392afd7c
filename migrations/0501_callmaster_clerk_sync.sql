-- Clerk sync bookkeeping: the Clerk-side updated_at of the last applied user event, so an
-- out-of-order (older) delivery cannot overwrite newer data.

ALTER TABLE callmaster.users ADD COLUMN clerk_updated_at timestamptz;

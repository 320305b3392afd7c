ALTER TABLE callmaster.users DROP COLUMN IF EXISTS clerk_updated_at;

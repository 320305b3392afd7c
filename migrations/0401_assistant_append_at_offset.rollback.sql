-- Nothing to restore: the old four-argument assistant.append_reply is not used by any code; sql/ defines
-- the current function on every migrate.
SELECT 1;

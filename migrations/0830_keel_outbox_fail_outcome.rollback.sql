-- The sql/ of the version rolled back to recreates its own keel.fail_outbox on its next migrate.
DROP FUNCTION IF EXISTS keel.fail_outbox(uuid, uuid, text, integer, integer, interval, interval);

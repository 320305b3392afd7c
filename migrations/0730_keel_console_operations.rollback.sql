DROP POLICY IF EXISTS outbox_console_read ON keel.outbox;
DROP POLICY IF EXISTS outbox_console_retry ON keel.outbox;
DROP FUNCTION IF EXISTS keel.console_retry_outbox(uuid);
DROP FUNCTION IF EXISTS keel.operations_overview(integer);
REVOKE SELECT, UPDATE ON keel.outbox FROM keel_api;
ALTER TABLE keel.outbox NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
DROP INDEX IF EXISTS keel.outbox_clinic_id_undelivered_idx;
ALTER TABLE keel.outbox DROP COLUMN clinic_id;

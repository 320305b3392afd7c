DROP FUNCTION IF EXISTS keel.claim_outbox(integer, interval, text);
DROP FUNCTION IF EXISTS keel.start_outbox_delivery(uuid, uuid, interval);
DROP FUNCTION IF EXISTS keel.complete_outbox(uuid, uuid, integer);
DROP FUNCTION IF EXISTS keel.complete_outbox_unsent(uuid[], uuid);
DROP FUNCTION IF EXISTS keel.fail_outbox(uuid, uuid, text, integer, integer, interval, interval);
ALTER TABLE keel.outbox DROP COLUMN claim_token;

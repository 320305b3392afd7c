-- depends: 0201_outbox_dispatch
-- Issue 13, finding 7: each claim of an outbox event gets a token; the dispatcher's later calls
-- (start, complete, fail) act only while the token is still the event's, so a dispatcher whose lease was
-- taken over writes nothing. The functions change signature: drop the old ones (sql/keel/200_outbox.sql
-- creates the new ones on every migrate).

ALTER TABLE keel.outbox ADD COLUMN claim_token uuid;

DROP FUNCTION IF EXISTS keel.claim_outbox(integer, interval, text);
DROP FUNCTION IF EXISTS keel.complete_outbox(uuid, integer);
DROP FUNCTION IF EXISTS keel.complete_outbox_unsent(uuid[]);
DROP FUNCTION IF EXISTS keel.fail_outbox(uuid, text, integer, integer, interval, interval);

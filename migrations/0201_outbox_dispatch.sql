-- Outbox delivery bookkeeping for the dispatcher (api/outbox.py; functions in sql/keel/200_outbox.sql).
--
-- An event is pending while delivered_at and failed_at are NULL; a dispatcher claims it by moving
-- available_at forward by a lease (FOR UPDATE SKIP LOCKED), delivers it outside any transaction, then
-- marks it delivered, or schedules the retry (exponential backoff) and records the error, or after the
-- last attempt marks it failed. Failures stay readable: attempts, last_error, last_status, failed_at.

ALTER TABLE keel.outbox
    ADD COLUMN last_attempt_at timestamptz,
    ADD COLUMN last_status     integer,
    ADD COLUMN failed_at       timestamptz,
    ADD COLUMN claimed_by      text,
    ADD CONSTRAINT outbox_topic_check CHECK (topic ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    ADD CONSTRAINT outbox_attempts_check CHECK (attempts >= 0);

-- Due events only: delivered and given-up events leave the claim index.
DROP INDEX keel.outbox_due_idx;
CREATE INDEX outbox_due_idx ON keel.outbox (available_at) WHERE delivered_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_failed_at_idx ON keel.outbox (failed_at) WHERE failed_at IS NOT NULL;

-- Events carry every clinic's data: the API role reaches them only through the SECURITY DEFINER
-- functions of sql/keel/200_outbox.sql (the triggers that write them and the dispatcher's calls).
REVOKE ALL ON keel.outbox FROM keel_api;

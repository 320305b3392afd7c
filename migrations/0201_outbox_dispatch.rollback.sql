-- Restores keel.outbox as 0001 created it and drops the dispatcher's functions.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'keel'::regnamespace
          AND p.proname = ANY (ARRAY[
              'outbox_notify', 'enqueue_event', 'claim_outbox', 'complete_outbox', 'fail_outbox',
              'prune_outbox', 'retry_outbox', 'outbox_stats', 'outbox_next_due'
          ])
    LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', fn);
    END LOOP;
END
$$;

GRANT SELECT, INSERT, UPDATE, DELETE ON keel.outbox TO keel_api;
DROP INDEX keel.outbox_failed_at_idx;
DROP INDEX keel.outbox_due_idx;
CREATE INDEX outbox_due_idx ON keel.outbox (available_at) WHERE delivered_at IS NULL;
ALTER TABLE keel.outbox
    DROP CONSTRAINT outbox_attempts_check,
    DROP CONSTRAINT outbox_topic_check,
    DROP COLUMN claimed_by,
    DROP COLUMN failed_at,
    DROP COLUMN last_status,
    DROP COLUMN last_attempt_at;

-- Retention of replay-protection records: long enough for any client or sender retry, then pruned.

CREATE OR REPLACE FUNCTION keel.prune_replay_records(
    idempotency_retention interval DEFAULT interval '24 hours',
    webhook_retention interval DEFAULT interval '30 days'
)
    RETURNS TABLE (idempotency_keys bigint, webhook_events bigint)
    LANGUAGE sql
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    WITH keys AS (
        DELETE FROM keel.idempotency_keys
        WHERE created_at < now() - idempotency_retention
        RETURNING 1
    ), events AS (
        DELETE FROM keel.webhook_events
        WHERE received_at < now() - webhook_retention
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM keys), (SELECT count(*) FROM events)
$$;
COMMENT ON FUNCTION keel.prune_replay_records(interval, interval) IS
    'Deletes Idempotency-Key records older than idempotency_retention (default 24 hours: a retry after '
    'that creates anew) and processed webhook ids older than webhook_retention (default 30 days: Svix '
    'stops retrying long before). Returns the rows deleted from each. Run by the maintenance worker.';
-- Every tenant's records: the maintenance worker (keel_worker) and DBAs only.
REVOKE ALL ON FUNCTION keel.prune_replay_records(interval, interval) FROM PUBLIC, keel_api;
GRANT EXECUTE ON FUNCTION keel.prune_replay_records(interval, interval) TO keel_worker;

-- The notification outbox: events written by triggers in the changing transaction, a NOTIFY that
-- wakes dispatchers (ids only), and the calls a dispatcher (api/outbox.py) or a DBA makes.
--
-- keel_api has no privilege on keel.outbox: every function here is SECURITY DEFINER.

-- The wake-up is a doorbell, rung only when no dispatcher is awake. A NOTIFY takes a cluster-wide lock
-- from pre-commit to the end of the commit record's WAL flush, so notifying transactions commit one at a
-- time, never as a group: under load it capped bookings far below what the database can commit. A
-- dispatcher that is busy polls on its own and says so with a session advisory lock
-- (keel.outbox_awake); writers probe that lock and skip the NOTIFY while it is held. Every writer also
-- holds a shared "ringing" lock to its commit, so a dispatcher going back to sleep (keel.outbox_asleep)
-- can wait for the writers that saw it awake, then look once more: no event waits for the next poll.
-- Advisory lock keys (api/locks.py): (keel.advisory_lock_key('outbox'), 1) ringing, (…, 2) awake.

CREATE OR REPLACE FUNCTION keel.outbox_notify()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
DECLARE
    v_first uuid := (SELECT n.id FROM new_rows AS n LIMIT 1);
BEGIN
    IF v_first IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(keel.advisory_lock_key('outbox'), 1);
    IF pg_try_advisory_lock_shared(keel.advisory_lock_key('outbox'), 2) THEN
        -- No dispatcher is awake: ring (one wake-up per statement, delivered at commit; the payload is
        -- an event id only, dispatchers claim whatever is due).
        PERFORM pg_advisory_unlock_shared(keel.advisory_lock_key('outbox'), 2);
        PERFORM pg_notify('keel_outbox', v_first::text);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION keel.outbox_notify() IS
    'Trigger (AFTER INSERT, per statement, on keel.outbox): NOTIFY keel_outbox with one new event id at '
    'commit, unless a dispatcher is awake (keel.outbox_awake), which polls on its own. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.outbox_awake()
    RETURNS boolean
    LANGUAGE sql
    VOLATILE
AS $$
    SELECT pg_try_advisory_lock(keel.advisory_lock_key('outbox'), 2)
$$;
COMMENT ON FUNCTION keel.outbox_awake() IS
    'Dispatcher call, on a session of its own: announces that a dispatcher is polling (a session advisory '
    'lock), so writers skip the NOTIFY until keel.outbox_asleep or the end of the session. Returns false, '
    'announcing nothing, when another dispatcher already holds the announcement. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.outbox_asleep(p_wait interval)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_deadline timestamptz := clock_timestamp() + p_wait;
BEGIN
    PERFORM pg_advisory_unlock(keel.advisory_lock_key('outbox'), 2);
    -- Writers that saw the announcement hold the ringing lock (shared) until they end. Only try the
    -- exclusive lock, never queue for it: a queued request would hold up every new writer behind it.
    LOOP
        IF pg_try_advisory_lock(keel.advisory_lock_key('outbox'), 1) THEN
            PERFORM pg_advisory_unlock(keel.advisory_lock_key('outbox'), 1);
            RETURN true;
        END IF;
        EXIT WHEN clock_timestamp() >= v_deadline;
        PERFORM pg_sleep(0.005);
    END LOOP;
    RETURN false;
END
$$;
COMMENT ON FUNCTION keel.outbox_asleep(interval) IS
    'Dispatcher call, on the session that called keel.outbox_awake (and got true): withdraws the '
    'announcement, so writers NOTIFY again, then waits up to p_wait for the transactions that skipped their '
    'NOTIFY meanwhile to end. Returns true when they all ended (the dispatcher then looks once more), false '
    'when one is still open (its event is found by the next poll). Raises nothing.';

CREATE OR REPLACE TRIGGER outbox_notify
    AFTER INSERT ON keel.outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION keel.outbox_notify();

CREATE OR REPLACE FUNCTION keel.enqueue_event(
    p_topic text,
    p_payload jsonb,
    p_available_at timestamptz DEFAULT now()
)
    RETURNS uuid
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    INSERT INTO keel.outbox (topic, payload, available_at)
    VALUES (p_topic, coalesce(p_payload, '{}'::jsonb), coalesce(p_available_at, now()))
    RETURNING id
$$;
COMMENT ON FUNCTION keel.enqueue_event(text, jsonb, timestamptz) IS
    'Appends an event to keel.outbox in the caller''s transaction (it is delivered only if that commits). '
    'Arguments: topic (dotted lowercase, e.g. appointment.booked), payload (ids and the fields a receiver '
    'needs, never decrypted medical fields), available_at (default now). Returns the event id (the '
    'webhook-id receivers see). Errors: 23514 when the topic is malformed.';

CREATE OR REPLACE FUNCTION keel.claim_outbox(
    p_limit integer,
    p_lease interval,
    p_worker text DEFAULT NULL
)
    RETURNS TABLE (id uuid, topic text, payload jsonb, created_at timestamptz, attempts integer, claim_token uuid)
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    WITH due AS (
        SELECT o.id
        FROM keel.outbox AS o
        WHERE o.delivered_at IS NULL
          AND o.failed_at IS NULL
          AND o.available_at <= now()
        ORDER BY o.available_at
        LIMIT greatest(p_limit, 1)
        FOR UPDATE SKIP LOCKED
    ), token AS (
        SELECT gen_random_uuid() AS value
    )
    UPDATE keel.outbox AS o
    SET available_at = now() + p_lease,
        attempts = o.attempts + 1,
        last_attempt_at = now(),
        claimed_by = p_worker,
        claim_token = token.value
    FROM due, token
    WHERE o.id = due.id
    RETURNING o.id, o.topic, o.payload, o.created_at, o.attempts, o.claim_token
$$;
COMMENT ON FUNCTION keel.claim_outbox(integer, interval, text) IS
    'Dispatcher call: claims up to p_limit due events (FOR UPDATE SKIP LOCKED, so concurrent dispatchers '
    'never claim the same one) by moving available_at forward by p_lease, counting the attempt and giving '
    'the batch a new claim token (a later claim of the same event replaces it). The lease must be renewed '
    'when each delivery starts (keel.start_outbox_delivery); complete and fail act only with the current '
    'token. An event whose dispatcher dies is due again when the lease ends. Arguments: limit, lease, '
    'worker name (stored in claimed_by). Returns the claimed events with their claim token. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.start_outbox_delivery(p_id uuid, p_token uuid, p_lease interval)
    RETURNS boolean
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    WITH started AS (
        UPDATE keel.outbox AS o
        SET available_at = now() + p_lease, last_attempt_at = now()
        WHERE o.id = p_id AND o.claim_token = p_token AND o.delivered_at IS NULL AND o.failed_at IS NULL
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM started)
$$;
COMMENT ON FUNCTION keel.start_outbox_delivery(uuid, uuid, interval) IS
    'Dispatcher call, just before it sends one claimed event: the event''s lease runs p_lease from now '
    '(not from the batch''s claim, which may have waited behind slow deliveries). Returns false, and the '
    'dispatcher must not send, when the claim token is no longer the event''s (another dispatcher '
    're-claimed it after the lease ran out) or the event is delivered or failed. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.complete_outbox(p_id uuid, p_token uuid, p_status integer DEFAULT NULL)
    RETURNS boolean
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    WITH done AS (
        UPDATE keel.outbox
        SET delivered_at = now(), last_status = p_status
        WHERE id = p_id AND claim_token = p_token AND delivered_at IS NULL
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM done)
$$;
COMMENT ON FUNCTION keel.complete_outbox(uuid, uuid, integer) IS
    'Dispatcher call: marks an event delivered (p_token: the claim token keel.claim_outbox returned; '
    'p_status: the receiver''s HTTP status, NULL when no receiver is configured). Earlier failures stay in '
    'last_error. Returns false when the event was already delivered, does not exist, or was claimed again '
    'since (the token is not the current one). Raises nothing.';

CREATE OR REPLACE FUNCTION keel.complete_outbox_unsent(p_ids uuid[], p_token uuid)
    RETURNS integer
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    WITH done AS (
        UPDATE keel.outbox
        SET delivered_at = now(), last_status = NULL
        WHERE id = ANY (p_ids) AND claim_token = p_token AND delivered_at IS NULL
        RETURNING 1
    )
    SELECT count(*)::integer FROM done
$$;
COMMENT ON FUNCTION keel.complete_outbox_unsent(uuid[], uuid) IS
    'Dispatcher call when no receiver is configured: marks a whole claimed batch (p_token: its claim '
    'token) delivered in one statement (the events were logged instead of sent). Returns how many were '
    'marked. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.fail_outbox(
    p_id uuid,
    p_token uuid,
    p_error text,
    p_status integer,
    p_max_attempts integer,
    p_backoff_base interval,
    p_backoff_max interval
)
    RETURNS TABLE (outcome text, next_attempt_at timestamptz)
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    WITH failed AS (
        UPDATE keel.outbox AS o
        SET last_error = left(p_error, 2000),
            last_status = p_status,
            failed_at = CASE WHEN o.attempts >= p_max_attempts THEN now() END,
            -- Exponential backoff with ±20 % jitter: base, 2·base, 4·base, … capped at p_backoff_max.
            available_at = CASE
                WHEN o.attempts >= p_max_attempts THEN o.available_at
                ELSE now() + least(p_backoff_base * power(2, least(o.attempts - 1, 30)), p_backoff_max)
                             * (0.8 + 0.4 * random())
            END
        WHERE o.id = p_id AND o.claim_token = p_token AND o.delivered_at IS NULL
        RETURNING o.failed_at, o.available_at
    )
    SELECT CASE WHEN f.failed_at IS NULL THEN 'retry' ELSE 'failed' END,
           CASE WHEN f.failed_at IS NULL THEN f.available_at END
    FROM failed AS f
    UNION ALL
    -- Nothing written: another dispatcher holds the event now (its lease ran out here), or it is gone.
    SELECT 'lost', NULL
    WHERE NOT EXISTS (SELECT FROM failed)
$$;
COMMENT ON FUNCTION keel.fail_outbox(uuid, uuid, text, integer, integer, interval, interval) IS
    'Dispatcher call: records a failed delivery attempt (p_token: the claim token; error text, HTTP status '
    'or NULL). Below p_max_attempts the event is retried after an exponential backoff (p_backoff_base '
    'doubled per attempt, capped at p_backoff_max, ±20 % jitter); at p_max_attempts it is marked failed '
    '(failed_at) and kept for inspection (see keel.retry_outbox). Returns one row (outcome, '
    'next_attempt_at): (''retry'', when), (''failed'', NULL) when it gave up, or (''lost'', NULL) when the '
    'claim is no longer the caller''s (re-claimed by another dispatcher) or the event is delivered or gone: '
    'nothing is written then. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.retry_outbox(p_id uuid)
    RETURNS boolean
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
BEGIN
    UPDATE keel.outbox
    SET failed_at = NULL, attempts = 0, available_at = now()
    WHERE id = p_id AND failed_at IS NOT NULL AND delivered_at IS NULL;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM pg_notify('keel_outbox', p_id::text);
    RETURN true;
END
$$;
COMMENT ON FUNCTION keel.retry_outbox(uuid) IS
    'DBA call: puts an event that exhausted its attempts back in the queue (attempts reset, due now; its '
    'last_error is kept until the next attempt). Returns false unless the event exists and had failed.';

CREATE OR REPLACE FUNCTION keel.prune_outbox(p_retention interval, p_limit integer DEFAULT 10000)
    RETURNS integer
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    WITH gone AS (
        DELETE FROM keel.outbox
        WHERE id IN (
            SELECT o.id
            FROM keel.outbox AS o
            WHERE o.delivered_at IS NOT NULL AND o.delivered_at < now() - p_retention
            ORDER BY o.delivered_at
            LIMIT greatest(p_limit, 1)
            FOR UPDATE SKIP LOCKED
        )
        RETURNING 1
    )
    SELECT count(*)::integer FROM gone
$$;
COMMENT ON FUNCTION keel.prune_outbox(interval, integer) IS
    'Dispatcher/DBA call: deletes up to p_limit events delivered longer than p_retention ago (failed events '
    'are kept). Returns the number deleted. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.outbox_next_due()
    RETURNS double precision
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    SELECT extract(epoch FROM min(available_at) - now())::double precision
    FROM keel.outbox
    WHERE delivered_at IS NULL AND failed_at IS NULL
$$;
COMMENT ON FUNCTION keel.outbox_next_due() IS
    'Dispatcher call: seconds (database clock) until the earliest pending event is due — a retry after its '
    'backoff or an event whose lease runs out; 0 or less when one is due now; NULL when none is pending. '
    'Raises nothing.';

CREATE OR REPLACE FUNCTION keel.outbox_stats()
    RETURNS TABLE (pending bigint, due bigint, failed bigint, delivered bigint, oldest_pending timestamptz)
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
    SELECT count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL),
           count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL AND available_at <= now()),
           count(*) FILTER (WHERE failed_at IS NOT NULL AND delivered_at IS NULL),
           count(*) FILTER (WHERE delivered_at IS NOT NULL),
           min(created_at) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL)
    FROM keel.outbox
$$;
COMMENT ON FUNCTION keel.outbox_stats() IS
    'Counts of outbox events: pending (not delivered, not given up), due now, failed, delivered (not yet '
    'pruned), and the creation time of the oldest pending one. Raises nothing.';

-- Dispatchers run as keel_worker (api/db.py WORKER); request handlers (keel_api) reach none of these.
-- The outbox triggers write through SECURITY DEFINER trigger functions, which need no grant.
REVOKE ALL ON FUNCTION keel.outbox_notify() FROM PUBLIC;
REVOKE ALL ON FUNCTION keel.claim_outbox(integer, interval, text) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.start_outbox_delivery(uuid, uuid, interval) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.complete_outbox(uuid, uuid, integer) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.complete_outbox_unsent(uuid[], uuid) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.fail_outbox(uuid, uuid, text, integer, integer, interval, interval) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.retry_outbox(uuid) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.prune_outbox(interval, integer) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.enqueue_event(text, jsonb, timestamptz) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.outbox_awake() FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.outbox_asleep(interval) FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.outbox_next_due() FROM PUBLIC, keel_api;
REVOKE ALL ON FUNCTION keel.outbox_stats() FROM PUBLIC, keel_api;
GRANT EXECUTE ON FUNCTION keel.claim_outbox(integer, interval, text) TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.start_outbox_delivery(uuid, uuid, interval) TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.complete_outbox(uuid, uuid, integer) TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.complete_outbox_unsent(uuid[], uuid) TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.fail_outbox(uuid, uuid, text, integer, integer, interval, interval) TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.prune_outbox(interval, integer) TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.outbox_next_due() TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.outbox_awake() TO keel_worker;
GRANT EXECUTE ON FUNCTION keel.outbox_asleep(interval) TO keel_worker;

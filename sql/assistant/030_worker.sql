-- The worker's side of the assistant: claim replies with a lease, stream text into them, finish or fail them.
--
-- SECURITY DEFINER (workers see every clinic's queue) but callable only outside an API request: they refuse
-- to run when request claims are set, so no token can reach them. Every write after the claim is guarded by
-- the attempt number the claim returned: a worker whose lease was taken over writes nothing.

CREATE OR REPLACE FUNCTION assistant.require_worker()
    RETURNS void
    LANGUAGE plpgsql
    STABLE
AS $$
BEGIN
    IF keel.current_claims() IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'assistant worker functions cannot be called within an API request';
    END IF;
END
$$;
COMMENT ON FUNCTION assistant.require_worker() IS
    'Guard of the worker functions: raises 42501 when request claims are set (i.e. inside an API request).';

CREATE OR REPLACE FUNCTION assistant.claim_replies(
    worker text,
    max_count integer,
    lease_seconds double precision,
    max_attempts integer
)
    RETURNS TABLE (
        id uuid,
        attempt integer,
        clinic_id uuid,
        staff_id uuid,
        caller_role text,
        model text,
        history jsonb
    )
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, assistant
AS $$
BEGIN
    PERFORM assistant.require_worker();
    IF max_count IS NULL OR max_count < 1 OR lease_seconds IS NULL OR lease_seconds <= 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'max_count and lease_seconds must be positive';
    END IF;

    -- A reply whose workers keep dying (lease expired, no attempts left) is given up on, not retried forever.
    UPDATE assistant.messages AS m
    SET status = 'failed',
        error = format('the reply was abandoned after %s attempts: its worker stopped responding', m.attempts),
        lease_until = NULL,
        worker = NULL,
        completed_at = now()
    WHERE m.id IN (
        SELECT s.id FROM assistant.messages AS s
        WHERE s.status = 'running' AND s.lease_until < now() AND s.attempts >= claim_replies.max_attempts
        FOR UPDATE SKIP LOCKED
    );

    RETURN QUERY
    WITH picked AS (
        SELECT s.id
        FROM assistant.messages AS s
        WHERE s.role = 'assistant'
          AND ((s.status = 'queued' AND s.available_at <= now())
               OR (s.status = 'running' AND s.lease_until < now()))
        ORDER BY s.available_at, s.seq
        LIMIT claim_replies.max_count
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE assistant.messages AS m
        SET status = 'running',
            attempts = m.attempts + 1,
            content = '',  -- a restart never appends to an abandoned attempt's text
            lease_until = now() + make_interval(secs => claim_replies.lease_seconds),
            worker = claim_replies.worker,
            started_at = coalesce(m.started_at, now()),
            completed_at = NULL  -- a failed reply a DBA queued again
        FROM picked
        WHERE m.id = picked.id
        RETURNING m.id, m.attempts, m.clinic_id, m.staff_id, m.conversation_id, m.seq, m.caller_role, m.model
    )
    SELECT c.id, c.attempts, c.clinic_id, c.staff_id, c.caller_role, c.model,
           coalesce((
               SELECT jsonb_agg(jsonb_build_object('role', h.role, 'content', h.content) ORDER BY h.seq)
               FROM (
                   SELECT p.role, p.content, p.seq
                   FROM assistant.messages AS p
                   WHERE p.clinic_id = c.clinic_id AND p.staff_id = c.staff_id
                     AND p.conversation_id = c.conversation_id AND p.seq < c.seq
                     AND (p.role = 'user' OR p.status = 'done')
                   ORDER BY p.seq DESC
                   LIMIT 40
               ) AS h
           ), '[]'::jsonb)
    FROM claimed AS c;
END
$$;
COMMENT ON FUNCTION assistant.claim_replies(text, integer, double precision, integer) IS
    'Worker: claims up to max_count assistant replies that are queued and due, or running with an expired lease '
    '(FOR UPDATE SKIP LOCKED), marks them running with a lease of lease_seconds, counts the attempt and resets '
    'any partial text. Running replies whose lease expired after max_attempts attempts are marked failed first. '
    'Arguments: worker (a name for logs), max_count, lease_seconds, max_attempts. Returns per reply its id, '
    'attempt number (pass it to every later call), clinic_id, staff_id, caller_role, model, and history (up to '
    '40 earlier messages [{role, content}] in order). Errors: 42501 inside an API request; 22023 bad arguments.';

CREATE OR REPLACE FUNCTION assistant.append_reply(
    id uuid,
    attempt integer,
    at_offset integer,
    delta text,
    lease_seconds double precision
)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, assistant
AS $$
BEGIN
    PERFORM assistant.require_worker();
    IF at_offset IS NULL OR at_offset < 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'at_offset must be 0 or more';
    END IF;
    -- Partial text is disposable (a reply whose worker or server dies is restarted from scratch), so its
    -- many small commits need not wait for the WAL flush; the final reply's commit does.
    PERFORM set_config('synchronous_commit', 'off', true);
    -- Writing at an offset makes a repeated write (its first outcome unknown) harmless: readers only ever
    -- see the text grow.
    UPDATE assistant.messages AS m
    SET content = left(m.content, append_reply.at_offset) || coalesce(append_reply.delta, ''),
        lease_until = greatest(m.lease_until, now() + make_interval(secs => append_reply.lease_seconds))
    WHERE m.id = append_reply.id AND m.attempts = append_reply.attempt AND m.status = 'running'
      AND char_length(m.content) >= append_reply.at_offset;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION assistant.append_reply(uuid, integer, integer, text, double precision) IS
    'Worker: writes streamed text (delta, may be empty) into a running reply at character offset at_offset '
    '(the length the worker knows it has written; repeating a write is harmless) and extends its lease to '
    'now() + lease_seconds; SSE readers are woken by NOTIFY assistant_messages. Returns false, writing nothing, '
    'when the attempt is no longer the reply''s current running attempt (its lease was taken over). '
    'Errors: 42501 inside an API request; 22023 negative offset.';

CREATE OR REPLACE FUNCTION assistant.complete_reply(id uuid, attempt integer, content text, tool_calls jsonb DEFAULT NULL)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, assistant
AS $$
BEGIN
    PERFORM assistant.require_worker();
    UPDATE assistant.messages AS m
    SET status = 'done',
        content = complete_reply.content,
        tool_calls = complete_reply.tool_calls,
        error = NULL,
        lease_until = NULL,
        worker = NULL,
        completed_at = now()
    WHERE m.id = complete_reply.id AND m.attempts = complete_reply.attempt AND m.status = 'running';
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION assistant.complete_reply(uuid, integer, text, jsonb) IS
    'Worker: stores the final text of a reply (content) and the tools it used (tool_calls), status done. '
    'Only the current running attempt can do it, so a reply is stored once however many workers raced; '
    'returns false, writing nothing, otherwise. Errors: 42501 inside an API request.';

CREATE OR REPLACE FUNCTION assistant.fail_reply(
    id uuid,
    attempt integer,
    error text,
    retry_after double precision,
    max_attempts integer
)
    RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, assistant
AS $$
DECLARE
    new_status text;
BEGIN
    PERFORM assistant.require_worker();
    UPDATE assistant.messages AS m
    SET status = CASE WHEN retry_after IS NOT NULL AND m.attempts < fail_reply.max_attempts
                      THEN 'queued' ELSE 'failed' END,
        available_at = CASE WHEN retry_after IS NOT NULL AND m.attempts < fail_reply.max_attempts
                            THEN now() + make_interval(secs => greatest(retry_after, 0)) ELSE m.available_at END,
        content = CASE WHEN retry_after IS NOT NULL AND m.attempts < fail_reply.max_attempts
                       THEN '' ELSE m.content END,
        error = CASE WHEN retry_after IS NOT NULL AND m.attempts >= fail_reply.max_attempts
                     THEN format('gave up after %s attempts: %s', m.attempts, fail_reply.error)
                     ELSE fail_reply.error END,
        completed_at = CASE WHEN retry_after IS NOT NULL AND m.attempts < fail_reply.max_attempts
                            THEN NULL ELSE now() END,
        lease_until = NULL,
        worker = NULL
    WHERE m.id = fail_reply.id AND m.attempts = fail_reply.attempt AND m.status = 'running'
    RETURNING m.status INTO new_status;
    RETURN new_status;
END
$$;
COMMENT ON FUNCTION assistant.fail_reply(uuid, integer, text, double precision, integer) IS
    'Worker: records a failed attempt of a reply. With retry_after (seconds) and attempts left (fewer than '
    'max_attempts), the reply is queued again after that delay with its partial text cleared; with retry_after '
    'NULL (a permanent error) or no attempts left it becomes failed. error is kept readable on the row. Returns '
    'the new status, or NULL when the attempt was not the current running one. Errors: 42501 inside an API request.';

CREATE OR REPLACE FUNCTION assistant.release_reply(id uuid, attempt integer)
    RETURNS boolean
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, assistant
AS $$
BEGIN
    PERFORM assistant.require_worker();
    UPDATE assistant.messages AS m
    SET status = 'queued', content = '', available_at = now(), lease_until = NULL, worker = NULL
    WHERE m.id = release_reply.id AND m.attempts = release_reply.attempt AND m.status = 'running';
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION assistant.release_reply(uuid, integer) IS
    'Worker: hands a running reply back to the queue at once (the worker is shutting down), partial text cleared. '
    'Returns false when the attempt was not the current running one. Errors: 42501 inside an API request.';

REVOKE EXECUTE ON FUNCTION assistant.claim_replies(text, integer, double precision, integer) FROM PUBLIC, keel_api;
REVOKE EXECUTE ON FUNCTION assistant.append_reply(uuid, integer, integer, text, double precision) FROM PUBLIC, keel_api;
REVOKE EXECUTE ON FUNCTION assistant.complete_reply(uuid, integer, text, jsonb) FROM PUBLIC, keel_api;
REVOKE EXECUTE ON FUNCTION assistant.fail_reply(uuid, integer, text, double precision, integer) FROM PUBLIC, keel_api;
REVOKE EXECUTE ON FUNCTION assistant.release_reply(uuid, integer) FROM PUBLIC, keel_api;
GRANT EXECUTE ON FUNCTION assistant.claim_replies(text, integer, double precision, integer) TO keel_worker;
GRANT EXECUTE ON FUNCTION assistant.append_reply(uuid, integer, integer, text, double precision) TO keel_worker;
GRANT EXECUTE ON FUNCTION assistant.complete_reply(uuid, integer, text, jsonb) TO keel_worker;
GRANT EXECUTE ON FUNCTION assistant.fail_reply(uuid, integer, text, double precision, integer) TO keel_worker;
GRANT EXECUTE ON FUNCTION assistant.release_reply(uuid, integer) TO keel_worker;

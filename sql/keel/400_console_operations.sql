-- The console's operations page (issue 18, DESIGN §13): what an operator watches — the outbox, the
-- assistant's jobs, the control-tower refresh log — each read through one function.
--
-- Who sees what, under row-level security: a request whose claims carry a clinic sees that clinic only,
-- and only with the admin role (42501 otherwise); a DBA (keel_owner or a superuser, no claims) bypasses RLS
-- and sees every clinic. keel.outbox.clinic_id is generated from the payload (migration 0730).

DROP POLICY IF EXISTS outbox_console_read ON keel.outbox;
CREATE POLICY outbox_console_read ON keel.outbox FOR SELECT TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()) AND (SELECT keel.current_role_claim()) = 'admin');

DROP POLICY IF EXISTS outbox_console_retry ON keel.outbox;
CREATE POLICY outbox_console_retry ON keel.outbox FOR UPDATE TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()) AND (SELECT keel.current_role_claim()) = 'admin')
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()) AND (SELECT keel.current_role_claim()) = 'admin');

CREATE OR REPLACE FUNCTION keel.console_require_admin()
    RETURNS void
    LANGUAGE plpgsql
    STABLE
AS $$
BEGIN
    IF keel.current_claims() IS NOT NULL AND keel.current_role_claim() IS DISTINCT FROM 'admin' THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'Only a clinic admin may see operations.',
            HINT = 'Use a token whose role claim is admin.';
    END IF;
END
$$;
COMMENT ON FUNCTION keel.console_require_admin() IS
    'Raises 42501 when the current request carries claims whose role is not admin; does nothing for a DBA '
    '(no claims). No arguments.';

CREATE OR REPLACE FUNCTION keel.console_assistant_jobs(p_clinic_id uuid)
    RETURNS TABLE (status text, jobs bigint, oldest timestamptz)
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, assistant
AS $$
    -- SECURITY DEFINER: messages are private to their author under RLS; this answers counts only, never
    -- content, for the caller's own clinic (the API passes its claim; see keel.operations_overview).
    SELECT m.status, count(*), min(m.created_at)
    FROM assistant.messages AS m
    WHERE m.role = 'assistant' AND m.clinic_id = p_clinic_id
      AND p_clinic_id = keel.current_clinic_id() AND keel.current_role_claim() = 'admin'
    GROUP BY m.status
$$;
COMMENT ON FUNCTION keel.console_assistant_jobs(uuid) IS
    'Assistant replies (the jobs) of one clinic by status: status, jobs, oldest created_at. An API caller '
    'gets rows only for its own clinic with the admin role. Argument: p_clinic_id. Raises nothing.';

CREATE OR REPLACE FUNCTION keel.console_refresh_log()
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
BEGIN
    -- SECURITY DEFINER: keel_api has no privilege on keel.metrics_refresh_log (issue 13, finding 6). The
    -- log is one for all clinics (a refresh covers every clinic) and names none; admins only.
    PERFORM keel.console_require_admin();
    RETURN coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'id', r.id, 'started_at', r.started_at, 'finished_at', r.finished_at,
                   'duration_ms', r.duration_ms, 'outcome', r.outcome, 'detail', r.detail) ORDER BY r.id DESC)
        FROM (SELECT * FROM keel.metrics_refresh_log ORDER BY id DESC LIMIT 10) AS r), '[]'::jsonb);
END
$$;
COMMENT ON FUNCTION keel.console_refresh_log() IS
    'The last 10 control-tower refresh runs (id, started_at, finished_at, duration_ms, outcome, detail), '
    'newest first, as a JSON array. Errors: 42501 for a request whose role claim is not admin.';
REVOKE EXECUTE ON FUNCTION keel.console_refresh_log() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keel.console_refresh_log() TO keel_api;

CREATE OR REPLACE FUNCTION keel.operations_overview(failed_limit integer DEFAULT 20)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_clinic uuid := keel.current_clinic_id();
    v_limit integer := least(greatest(coalesce(failed_limit, 20), 1), 200);
    result jsonb;
BEGIN
    PERFORM keel.console_require_admin();
    SELECT jsonb_build_object(
        'clinic_id', v_clinic,
        'generated_at', now(),
        'outbox', (
            SELECT jsonb_build_object(
                'pending', count(*) FILTER (WHERE o.failed_at IS NULL),
                'due', count(*) FILTER (WHERE o.failed_at IS NULL AND o.available_at <= now()),
                'failed', count(*) FILTER (WHERE o.failed_at IS NOT NULL),
                'oldest_pending', min(o.created_at) FILTER (WHERE o.failed_at IS NULL))
            FROM keel.outbox AS o
            WHERE o.delivered_at IS NULL),
        'failed_events', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'id', f.id, 'topic', f.topic, 'clinic_id', f.clinic_id, 'created_at', f.created_at,
                       'failed_at', f.failed_at, 'attempts', f.attempts, 'last_status', f.last_status,
                       'last_error', f.last_error) ORDER BY f.failed_at DESC, f.id)
            FROM (SELECT o.* FROM keel.outbox AS o
                  WHERE o.failed_at IS NOT NULL AND o.delivered_at IS NULL
                  ORDER BY o.failed_at DESC, o.id
                  LIMIT v_limit) AS f), '[]'::jsonb),
        'assistant_jobs', coalesce((
            SELECT jsonb_agg(jsonb_build_object('status', j.status, 'jobs', j.jobs, 'oldest', j.oldest)
                             ORDER BY j.status)
            FROM (
                SELECT a.status, a.jobs, a.oldest FROM keel.console_assistant_jobs(v_clinic) AS a
                WHERE v_clinic IS NOT NULL
                UNION ALL
                -- A DBA (no claims, RLS bypassed): every clinic.
                SELECT m.status, count(*), min(m.created_at)
                FROM assistant.messages AS m
                WHERE v_clinic IS NULL AND m.role = 'assistant'
                GROUP BY m.status
            ) AS j), '[]'::jsonb),
        'refresh_log', keel.console_refresh_log()
    ) INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION keel.operations_overview(integer) IS
    'What the console''s operations page shows, as one JSON document: outbox depth {pending, due, failed, '
    'oldest_pending}, failed_events (newest first, at most failed_limit, 1..200, default 20: id, topic, '
    'clinic_id, created_at, failed_at, attempts, last_status, last_error), assistant_jobs [{status, jobs, '
    'oldest}] and the last 10 refresh_log runs. Under RLS: an API caller sees its own clinic (admin role '
    'only, else 42501); a DBA in psql sees every clinic: SELECT keel.operations_overview();';

CREATE OR REPLACE FUNCTION keel.console_retry_outbox(p_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_event jsonb;
BEGIN
    PERFORM keel.console_require_admin();
    UPDATE keel.outbox AS o
    SET failed_at = NULL, attempts = 0, available_at = now()
    WHERE o.id = p_id AND o.failed_at IS NOT NULL AND o.delivered_at IS NULL
    RETURNING jsonb_build_object('id', o.id, 'topic', o.topic, 'clinic_id', o.clinic_id,
                                 'available_at', o.available_at, 'last_error', o.last_error)
    INTO v_event;
    IF v_event IS NULL THEN
        IF EXISTS (SELECT FROM keel.outbox AS o WHERE o.id = p_id) THEN
            RAISE EXCEPTION USING ERRCODE = '55000',
                MESSAGE = pg_catalog.format('Outbox event %s has not failed: only failed events can be retried.', p_id),
                HINT = 'It is still pending (the dispatcher retries it by itself) or already delivered.';
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = pg_catalog.format('Outbox event %s not found.', p_id);
    END IF;
    PERFORM pg_notify('keel_outbox', p_id::text);
    RETURN v_event;
END
$$;
COMMENT ON FUNCTION keel.console_retry_outbox(uuid) IS
    'Puts a failed outbox event back in the queue (attempts reset, due now; last_error kept until the next '
    'attempt) and wakes the dispatchers; returns {id, topic, clinic_id, available_at, last_error}. Under RLS: '
    'an API caller retries its own clinic''s events (admin role only). Errors: 42501 not an admin, P0002 no '
    'such event (or another clinic''s), 55000 the event is pending or delivered, not failed.';

REVOKE ALL ON FUNCTION keel.console_require_admin() FROM PUBLIC;
REVOKE ALL ON FUNCTION keel.console_assistant_jobs(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION keel.operations_overview(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION keel.console_retry_outbox(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keel.console_require_admin() TO keel_api;
GRANT EXECUTE ON FUNCTION keel.console_assistant_jobs(uuid) TO keel_api;
GRANT EXECUTE ON FUNCTION keel.operations_overview(integer) TO keel_api;
GRANT EXECUTE ON FUNCTION keel.console_retry_outbox(uuid) TO keel_api;

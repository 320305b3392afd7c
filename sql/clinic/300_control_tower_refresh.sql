-- Control tower refresh (DESIGN §5, §8): CALL clinic.refresh_control_tower(), run by cron through
-- `keel refresh-metrics` (or pg_cron). The views themselves are in migrations/0300_control_tower_views.sql.

CREATE OR REPLACE FUNCTION clinic.control_tower_views()
    RETURNS regclass[]
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT ARRAY[
        'clinic.control_tower_leads_daily',
        'clinic.control_tower_lead_status',
        'clinic.control_tower_appointments_daily',
        'clinic.control_tower_doctor_load_daily',
        'clinic.control_tower_patients_daily'
    ]::regclass[]
$$;
COMMENT ON FUNCTION clinic.control_tower_views() IS
    'The control-tower materialized views, in the order clinic.refresh_control_tower() refreshes them. '
    'No arguments; raises nothing.';

CREATE OR REPLACE PROCEDURE clinic.refresh_control_tower(
    INOUT outcome text DEFAULT NULL,
    INOUT duration_ms numeric DEFAULT NULL,
    INOUT detail text DEFAULT NULL
)
    LANGUAGE plpgsql
-- No SET clause and not SECURITY DEFINER: either would forbid the COMMITs below. Every name is qualified.
AS $$
DECLARE
    -- Session-level advisory lock (survives the COMMITs between views); the registry is api/locks.py.
    lock_class CONSTANT integer := keel.advisory_lock_key('control_tower_refresh');
    lock_object CONSTANT integer := 300;
    run_id bigint;
    run_started timestamptz;
    view_name regclass;
    view_started timestamptz;
    holder integer;
    timings text[] := '{}';
    failures text[] := '{}';
    first_failure text;
BEGIN
    -- End the CALL's own transaction first. Inside a transaction block (BEGIN; CALL …) this fails at once
    -- with 2D000, before any lock is taken — the refresh must run in its own transactions.
    COMMIT;

    IF NOT pg_catalog.pg_try_advisory_lock(lock_class, lock_object) THEN
        SELECT l.pid INTO holder
        FROM pg_catalog.pg_locks AS l
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                  SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
              AND l.classid = lock_class::oid AND l.objid = lock_object::oid AND l.objsubid = 2
        LIMIT 1;
        outcome := 'skipped';
        duration_ms := 0;
        detail := pg_catalog.format('another refresh is running (backend pid %s)', coalesce(holder::text, '?'));
        INSERT INTO keel.metrics_refresh_log (started_at, finished_at, duration_ms, outcome, detail)
        VALUES (pg_catalog.clock_timestamp(), pg_catalog.clock_timestamp(), 0, 'skipped', detail);
        COMMIT;
        RAISE NOTICE 'clinic.refresh_control_tower: skipped, %', detail;
        RETURN;
    END IF;

    -- Holding the lock, any run still marked running belongs to a session that died mid-refresh.
    BEGIN
        UPDATE keel.metrics_refresh_log AS r
        SET outcome = 'failed',
            finished_at = pg_catalog.clock_timestamp(),
            detail = 'abandoned: the refreshing session ended before it finished'
        WHERE r.outcome = 'running';
        INSERT INTO keel.metrics_refresh_log (outcome)
        VALUES ('running')
        RETURNING id, started_at INTO run_id, run_started;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        PERFORM pg_catalog.pg_advisory_unlock(lock_class, lock_object);
        RAISE;
    END;
    COMMIT;  -- the running row is visible to others while the views refresh

    FOREACH view_name IN ARRAY clinic.control_tower_views() LOOP
        view_started := pg_catalog.clock_timestamp();
        BEGIN
            EXECUTE pg_catalog.format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', view_name);
            timings := timings || pg_catalog.format('%s %s ms', view_name,
                round(extract(epoch FROM pg_catalog.clock_timestamp() - view_started) * 1000, 1));
        EXCEPTION
            WHEN query_canceled THEN
                -- Cancelled (Ctrl-C, statement_timeout): free the lock for the next run, then stop.
                -- The run's row stays 'running' and the next run marks it abandoned.
                PERFORM pg_catalog.pg_advisory_unlock(lock_class, lock_object);
                RAISE;
            WHEN OTHERS THEN
                failures := failures || pg_catalog.format('%s: %s (SQLSTATE %s)', view_name, SQLERRM, SQLSTATE);
                first_failure := coalesce(first_failure, SQLSTATE);
        END;
        COMMIT;  -- each view's new contents appear as soon as they are ready; its lock is released
    END LOOP;

    duration_ms := round(extract(epoch FROM pg_catalog.clock_timestamp() - run_started) * 1000, 3);
    IF pg_catalog.cardinality(failures) = 0 THEN
        outcome := 'ok';
        detail := pg_catalog.array_to_string(timings, '; ');
    ELSE
        outcome := 'failed';
        detail := pg_catalog.array_to_string(failures || timings, '; ');
    END IF;
    UPDATE keel.metrics_refresh_log AS r
    SET outcome = refresh_control_tower.outcome,
        finished_at = pg_catalog.clock_timestamp(),
        duration_ms = refresh_control_tower.duration_ms,
        detail = refresh_control_tower.detail
    WHERE r.id = run_id;
    -- The log keeps 90 days.
    DELETE FROM keel.metrics_refresh_log AS r WHERE r.started_at < run_started - interval '90 days';
    COMMIT;
    PERFORM pg_catalog.pg_advisory_unlock(lock_class, lock_object);

    IF outcome = 'failed' THEN
        RAISE EXCEPTION USING
            ERRCODE = first_failure,
            MESSAGE = pg_catalog.format('control tower refresh failed: %s', pg_catalog.array_to_string(failures, '; ')),
            HINT = pg_catalog.format('See keel.metrics_refresh_log id %s.', run_id);
    END IF;
END
$$;
COMMENT ON PROCEDURE clinic.refresh_control_tower(text, numeric, text) IS
    'Refreshes every control-tower materialized view CONCURRENTLY (reads are never blocked), committing after '
    'each view, and logs the run in keel.metrics_refresh_log (started_at, finished_at, duration_ms, outcome, '
    'detail with per-view timings). Call it as CALL clinic.refresh_control_tower(); outside a transaction '
    'block (psql autocommit, cron, pg_cron); the INOUT arguments are outputs and may be omitted: it answers '
    'one row (outcome ok|skipped|failed, duration_ms, detail). Overlapping runs do not pile up: a run that '
    'finds another holding the advisory lock returns at once with outcome skipped, a NOTICE and a log row. '
    'Errors: 2D000 when called inside a transaction block; when a view fails to refresh, the others are '
    'still refreshed, the run is logged failed and the call then raises the first failure''s SQLSTATE '
    '(e.g. 42501 when the caller is not keel_owner or a member of it) naming every failed view.';

REVOKE ALL ON PROCEDURE clinic.refresh_control_tower(text, numeric, text) FROM PUBLIC, keel_api;

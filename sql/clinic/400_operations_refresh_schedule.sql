-- `keel serve` refreshes the control-tower views on a schedule (KEEL_REFRESH_INTERVAL; api/console/refresher.py).
-- Any number of processes run the schedule: each asks this first, so only one of them refreshes per
-- interval; two that ask at the same instant are still kept apart by the refresh's advisory lock (the
-- second logs `skipped`).

CREATE OR REPLACE FUNCTION clinic.control_tower_refresh_due(p_interval interval)
    RETURNS boolean
    LANGUAGE sql
    STABLE
AS $$
    SELECT NOT EXISTS (
        SELECT FROM keel.metrics_refresh_log AS r
        WHERE r.started_at > pg_catalog.clock_timestamp() - p_interval
          AND r.outcome IN ('running', 'ok')
    )
$$;
COMMENT ON FUNCTION clinic.control_tower_refresh_due(interval) IS
    'True when no control-tower refresh ran (or is running) within p_interval: the scheduler of keel serve '
    'asks it before CALL clinic.refresh_control_tower(). Argument: p_interval. Raises nothing.';

REVOKE ALL ON FUNCTION clinic.control_tower_refresh_due(interval) FROM PUBLIC, keel_api;

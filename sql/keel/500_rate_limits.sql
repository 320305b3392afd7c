-- Rate limits shared by every API process (migration 0850): a counter per key and fixed window in
-- keel.rate_limits. callmaster.shared_lookup counts a hit, then runs the limited lookup in a
-- subtransaction, so the hit counts whatever the lookup does (a lookup of an unknown token raises: were
-- the hit rolled back with it, a guesser would never be limited).

CREATE OR REPLACE FUNCTION keel.rate_limit_hit(p_key text, p_limit integer, p_window_seconds integer)
    RETURNS integer
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, keel
AS $$
DECLARE
    v_now    timestamptz := clock_timestamp();
    v_start  timestamptz;
    v_hits   integer;
    v_opened boolean;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_window_seconds IS NULL OR p_window_seconds < 1 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'rate_limit_hit: limit and window must be positive',
            HINT = format('got limit %s, window %s s', p_limit, p_window_seconds);
    END IF;
    v_start := to_timestamp(floor(extract(epoch FROM v_now) / p_window_seconds) * p_window_seconds);
    -- At the limit the row is left as it is (no update, nothing returned): refused hits do not count.
    INSERT INTO keel.rate_limits AS r (key, window_start) VALUES (p_key, v_start)
    ON CONFLICT (key, window_start) DO UPDATE SET hits = r.hits + 1 WHERE r.hits < p_limit
    RETURNING r.hits, r.xmax = 0 INTO v_hits, v_opened;
    IF v_opened THEN  -- a new window: clear a few windows that have ended (never waiting for a lock)
        DELETE FROM keel.rate_limits AS r
        WHERE (r.key, r.window_start) IN (SELECT o.key, o.window_start FROM keel.rate_limits AS o
                                          WHERE o.window_start < v_start - make_interval(secs => p_window_seconds)
                                          LIMIT 100 FOR UPDATE SKIP LOCKED);
    END IF;
    IF v_hits IS NOT NULL THEN
        RETURN 0;
    END IF;
    RETURN greatest(1, ceil(extract(epoch FROM v_start + make_interval(secs => p_window_seconds) - v_now)))::integer;
END
$$;
COMMENT ON FUNCTION keel.rate_limit_hit(text, integer, integer) IS
    'Counts one hit of p_key in the current fixed window of p_window_seconds (windows start at multiples '
    'of it since the epoch), allowing p_limit hits per window whatever process sends them. Returns 0 when '
    'the hit is allowed, else the seconds until the window ends (the hit is refused and not counted). '
    'Errors: 22023 when p_limit or p_window_seconds is not positive.';
REVOKE ALL ON FUNCTION keel.rate_limit_hit(text, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keel.rate_limit_hit(text, integer, integer) TO keel_api;

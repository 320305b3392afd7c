-- A share-link lookup behind its client's rate limit, in one call. The hit is counted first and a lookup
-- that fails (unknown, revoked or expired link; script not of the link's show) is caught in a
-- subtransaction, so the hit stays counted: the failed lookups are the ones worth limiting, and a
-- transaction that rolled back with them would never count a guesser.

CREATE OR REPLACE FUNCTION callmaster.shared_lookup(
    p_client    text,
    p_limit     integer,
    p_lookup    text,
    p_token     text,
    p_script_id uuid DEFAULT NULL,
    p_after     bigint DEFAULT NULL
)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_retry integer;
BEGIN
    IF p_lookup IS NULL OR p_lookup NOT IN ('show', 'script', 'presence', 'live') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('unknown share-link lookup %L', p_lookup),
            HINT = 'One of show, script, presence, live.';
    END IF;
    v_retry := keel.rate_limit_hit('share_link:' || coalesce(p_client, 'unknown'), p_limit, 60);
    IF v_retry > 0 THEN
        RETURN jsonb_build_object('retry_after', v_retry);
    END IF;
    BEGIN
        RETURN jsonb_build_object('found', CASE p_lookup
            WHEN 'show'     THEN callmaster.shared_show(p_token)
            WHEN 'script'   THEN callmaster.shared_script(p_token, p_script_id)
            WHEN 'presence' THEN callmaster.live_presence_shared(p_token, p_script_id)
            WHEN 'live'     THEN callmaster.live_open_shared(p_token, p_script_id, p_after)
        END);
    EXCEPTION WHEN no_data_found THEN
        RETURN jsonb_build_object('not_found', SQLERRM);
    END;
END
$$;
COMMENT ON FUNCTION callmaster.shared_lookup(text, integer, text, text, uuid, bigint) IS
    'API (GET /api/shared/{token}…): one share-link lookup counted against its client''s limit (p_limit '
    'lookups per minute and p_client, across processes: keel.rate_limit_hit). p_lookup: show '
    '(shared_show), script (shared_script), presence (live_presence_shared) or live (live_open_shared, '
    'p_after as Last-Event-ID). Returns {"found": answer}, {"not_found": message} (the hit still counts) or '
    '{"retry_after": seconds} past the limit (nothing looked up). Errors: 22023 unknown p_lookup or '
    'non-positive p_limit.';
REVOKE ALL ON FUNCTION callmaster.shared_lookup(text, integer, text, text, uuid, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.shared_lookup(text, integer, text, text, uuid, bigint) TO keel_api;

-- Share links (issue 16): read-only access to one show's scripts and live feeds for crew without an
-- account. The token (`sl_` + 43 url-safe characters from two random UUIDs, 244 random bits) is
-- returned once; only its SHA-256 is stored. A revoked or expired link, or one whose owner is deactivated
-- (Clerk user.deleted), is "not found" (P0002), exactly like a token that never existed. Lookups are rate-limited per client by the API.

CREATE OR REPLACE FUNCTION callmaster.share_link_hash(p_token text)
    RETURNS bytea
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
$$;
COMMENT ON FUNCTION callmaster.share_link_hash(text) IS
    'The stored form of a share-link token: its SHA-256. No errors.';
REVOKE ALL ON FUNCTION callmaster.share_link_hash(text) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.share_link_json(l callmaster.share_links)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT jsonb_build_object('id', l.id, 'show_id', l.show_id, 'expires_at', l.expires_at,
                              'revoked_at', l.revoked_at, 'created_at', l.created_at,
                              'active', l.revoked_at IS NULL AND l.expires_at > now())
$$;
COMMENT ON FUNCTION callmaster.share_link_json(callmaster.share_links) IS
    'A share link as its owner sees it (never the token or its hash). No errors.';
REVOKE ALL ON FUNCTION callmaster.share_link_json(callmaster.share_links) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.share_link_create(p_show_id uuid, p_expires_in_hours integer DEFAULT 24)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_show  callmaster.shows := callmaster.writable_show(p_show_id);
    v_token text;
    v_link  callmaster.share_links;
BEGIN
    IF p_expires_in_hours IS NULL OR p_expires_in_hours NOT BETWEEN 1 AND 720 THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('expires_in_hours must be between 1 and 720, not %s', coalesce(p_expires_in_hours::text, 'null'));
    END IF;
    v_token := 'sl_' || rtrim(translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()),
                                               'base64'), '+/', '-_'), '=');
    INSERT INTO callmaster.share_links (show_id, owner_id, token_hash, expires_at)
    VALUES (v_show.id, v_show.owner_id, callmaster.share_link_hash(v_token),
            now() + make_interval(hours => p_expires_in_hours))
    RETURNING * INTO v_link;
    RETURN callmaster.share_link_json(v_link) || jsonb_build_object('token', v_token);
END
$$;
COMMENT ON FUNCTION callmaster.share_link_create(uuid, integer) IS
    'Creates a read-only share link to a show (its scripts and their live feeds) for the show''s owner (or a '
    'DBA). Arguments: show id, expires_in_hours (1..720, default 24). Returns {id, show_id, expires_at, '
    'token, …}: the token is shown only here. Errors: P0002 show not found; 42501 crew of the show; 22023 '
    'expiry out of range.';

CREATE OR REPLACE FUNCTION callmaster.share_link_revoke(p_show_id uuid, p_link_id uuid)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_show callmaster.shows := callmaster.writable_show(p_show_id);
BEGIN
    UPDATE callmaster.share_links AS l SET revoked_at = coalesce(l.revoked_at, now())
    WHERE l.id = p_link_id AND l.show_id = v_show.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('share link %s not found', p_link_id);
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.share_link_revoke(uuid, uuid) IS
    'Revokes a share link of a show (idempotent): lookups answer not found and its live subscribers are '
    'disconnected within seconds. Arguments: show id, link id. Errors: P0002 show or link not found; 42501 '
    'crew of the show.';

CREATE OR REPLACE FUNCTION callmaster.share_link_list(p_show_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT coalesce(jsonb_agg(callmaster.share_link_json(l) ORDER BY l.created_at, l.id), '[]')
    FROM callmaster.writable_show(p_show_id) AS s
    JOIN callmaster.share_links AS l ON l.show_id = s.id
$$;
COMMENT ON FUNCTION callmaster.share_link_list(uuid) IS
    'The share links of a show, oldest first, without tokens. Errors: P0002 show not found; 42501 crew.';

CREATE OR REPLACE FUNCTION callmaster.shared_link(p_token text)
    RETURNS callmaster.share_links
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_link callmaster.share_links;
BEGIN
    -- A link speaks for its owner: while the owner is deactivated (Clerk user.deleted) it grants nothing.
    SELECT l.* INTO v_link
    FROM callmaster.share_links AS l
    JOIN callmaster.users AS o ON o.id = l.owner_id AND o.is_active
    WHERE l.token_hash = callmaster.share_link_hash(p_token)
      AND l.revoked_at IS NULL
      AND l.expires_at > now();
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'share link not found',
            HINT = 'The link may have expired or been revoked; ask the show''s owner for a new one.';
    END IF;
    RETURN v_link;
END
$$;
COMMENT ON FUNCTION callmaster.shared_link(text) IS
    'Internal: the valid share link of a token (not revoked, not expired, its owner active). Errors: P0002 '
    'unknown, revoked or expired link, or one whose owner is deactivated.';
REVOKE ALL ON FUNCTION callmaster.shared_link(text) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.shared_show(p_token text)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT jsonb_build_object(
        'show', jsonb_build_object('id', s.id, 'name', s.name, 'show_date', s.show_date, 'show_end', s.show_end,
                                   'venue_name', (SELECT v.name FROM callmaster.venues AS v WHERE v.id = s.venue_id)),
        'scripts', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', sc.id, 'name', sc.name, 'status', sc.status,
                                                                 'start_time', sc.start_time)
                                              ORDER BY sc.created_at, sc.id), '[]')
                    FROM callmaster.scripts AS sc WHERE sc.show_id = s.id),
        'expires_at', l.expires_at)
    FROM callmaster.shared_link(p_token) AS l
    JOIN callmaster.shows AS s ON s.id = l.show_id
$$;
COMMENT ON FUNCTION callmaster.shared_show(text) IS
    'A share link''s show and its scripts (read-only, no personal data). Arguments: the token. Returns '
    '{show, scripts, expires_at}. Errors: P0002 unknown, revoked or expired link.';

CREATE OR REPLACE FUNCTION callmaster.shared_script(p_token text, p_script_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_link   callmaster.share_links := callmaster.shared_link(p_token);
    v_result jsonb;
BEGIN
    SELECT jsonb_build_object(
        'id', sc.id, 'name', sc.name, 'status', sc.status,
        'elements', coalesce((SELECT jsonb_agg(d.document - 'created_by' - 'updated_by' - 'owner_id'
                                               ORDER BY e.sequence, e.time_offset_ms, e.id)
                              FROM callmaster.script_elements AS e
                              JOIN callmaster.element_documents(ARRAY(SELECT x.id FROM callmaster.script_elements AS x
                                                                      WHERE x.script_id = sc.id)) AS d
                                ON d.id = e.id
                              WHERE e.script_id = sc.id), '[]'))
    INTO v_result
    FROM callmaster.scripts AS sc
    WHERE sc.id = p_script_id AND sc.show_id = v_link.show_id;
    IF v_result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', p_script_id);
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.shared_script(text, uuid) IS
    'A script of a share link''s show with its elements in script order (read-only). Arguments: token, '
    'script id. Errors: P0002 unknown, revoked or expired link, or a script of another show.';

REVOKE EXECUTE ON FUNCTION callmaster.share_link_create(uuid, integer), callmaster.share_link_revoke(uuid, uuid),
    callmaster.share_link_list(uuid), callmaster.shared_show(text), callmaster.shared_script(text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.share_link_create(uuid, integer), callmaster.share_link_revoke(uuid, uuid),
    callmaster.share_link_list(uuid), callmaster.shared_show(text), callmaster.shared_script(text, uuid) TO keel_api;

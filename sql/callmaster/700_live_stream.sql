-- Following a script live (issue 16): what GET /api/scripts/{id}/live and the share-link feed call
-- when a subscriber connects (live_open*: access check, state, replay), what each API process's relay
-- calls every few seconds (live_heartbeat: re-checks every subscriber's access, reports presence), and
-- presence counts. Readers: the script's owner, crew actively assigned to its show, a valid share link
-- of its show.

CREATE OR REPLACE FUNCTION callmaster.live_replay(p_script_id uuid, p_after bigint, p_limit integer)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    WITH h AS (SELECT * FROM callmaster.live_feed_heads AS h WHERE h.script_id = p_script_id),
    gap AS (SELECT p_after IS NOT NULL AND (p_after < h.pruned_through OR p_after > h.position) AS reset FROM h)
    SELECT jsonb_build_object(
        'state', callmaster.live_state(p_script_id),
        'reset', gap.reset,
        'events', CASE WHEN p_after IS NULL OR gap.reset THEN '[]'::jsonb ELSE coalesce((
            SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                       'id', e.id, 'event', e.event, 'element_id', e.element_id, 'run_id', e.run_id,
                       'fields', e.fields, 'command', e.command, 'run', e.run, 'at', e.created_at))
                   ORDER BY e.id)
            FROM callmaster.live_events_after(ARRAY[p_script_id], ARRAY[p_after], p_limit) AS e
            WHERE e.id <= p_after + p_limit), '[]') END)
    FROM gap
$$;
COMMENT ON FUNCTION callmaster.live_replay(uuid, bigint, integer) IS
    'Internal (checks no access): {state, reset, events} of a script: its live state, and the events after '
    'position p_after (the first p_limit of them: a caller that gets p_limit events asks again after the '
    'last) — none and reset = true when p_after is older than the log holds (pruned) or beyond its head; '
    'none when p_after is NULL. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_replay(uuid, bigint, integer) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_reader(p_script_id uuid)
    RETURNS TABLE (audience text, department_id uuid)
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_me     uuid := callmaster.acting_user_id();
    v_script callmaster.scripts;
BEGIN
    SELECT s.* INTO v_script FROM callmaster.scripts AS s WHERE s.id = p_script_id;
    IF FOUND AND (v_me IS NULL OR v_script.owner_id = v_me) THEN
        RETURN QUERY SELECT 'owner'::text, NULL::uuid;
        RETURN;
    END IF;
    IF FOUND THEN
        RETURN QUERY
        SELECT 'crew'::text, (array_agg(ca.department_id ORDER BY ca.department_id) FILTER (
                                  WHERE ca.department_id IS NOT NULL))[1]
        FROM callmaster.crew_assignments AS ca
        WHERE ca.show_id = v_script.show_id AND ca.user_id = v_me AND ca.is_active
        HAVING count(*) > 0;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', p_script_id);
END
$$;
COMMENT ON FUNCTION callmaster.live_reader(uuid) IS
    'Internal: how the acting user follows a script: (owner, NULL) for its owner or a DBA, (crew, the '
    'department of their assignment) for assigned crew. Errors: P0002 anybody else.';
REVOKE ALL ON FUNCTION callmaster.live_reader(uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_open(p_script_id uuid, p_after bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT callmaster.live_replay(p_script_id, p_after, 10000)
           || jsonb_build_object('audience', r.audience, 'department_id', r.department_id)
    FROM callmaster.live_reader(p_script_id) AS r
$$;
COMMENT ON FUNCTION callmaster.live_open(uuid, bigint) IS
    'API (GET /api/scripts/{id}/live) and DBAs: the live state of a script the user may read and the feed '
    'events after position p_after (a Last-Event-ID; NULL: none), at most 10,000. Returns {state: {script, '
    'run}, reset, events: [{id, event, element_id?, fields?, command?, run?, at}], audience, department_id}; '
    'reset is true when p_after is older than the log holds; after 10,000 events, ask again after the last '
    'one. Errors: P0002 script not found (or not the '
    'user''s to see); 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.live_open_shared(p_token text, p_script_id uuid, p_after bigint DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_link callmaster.share_links := callmaster.shared_link(p_token);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM callmaster.scripts AS s WHERE s.id = p_script_id AND s.show_id = v_link.show_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', p_script_id);
    END IF;
    RETURN callmaster.live_replay(p_script_id, p_after, 10000)
           || jsonb_build_object('audience', 'shared', 'link_id', v_link.id);
END
$$;
COMMENT ON FUNCTION callmaster.live_open_shared(text, uuid, bigint) IS
    'API (GET /api/shared/{token}/scripts/{id}/live): live_open for a share link of the script''s show. '
    'Returns the same document with audience shared and link_id. Errors: P0002 unknown, revoked or expired '
    'link, or a script of another show.';

CREATE OR REPLACE FUNCTION callmaster.live_heartbeat(p_process_id uuid, p_subscribers jsonb)
    RETURNS jsonb
    LANGUAGE sql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    WITH subs AS MATERIALIZED (
        SELECT x.key, x.script_id, a.audience, a.department_id, x.devices, a.audience IS NOT NULL AS allowed
        FROM jsonb_to_recordset(coalesce(p_subscribers, '[]')) AS x (key text, script_id uuid, sub text,
                                                                     link_id uuid, devices integer)
        LEFT JOIN LATERAL (
            SELECT CASE WHEN s.owner_id = u.id THEN 'owner' ELSE 'crew' END AS audience,
                   (SELECT min(ca.department_id::text)::uuid FROM callmaster.crew_assignments AS ca
                    WHERE ca.show_id = s.show_id AND ca.user_id = u.id AND ca.is_active) AS department_id
            FROM callmaster.users AS u
            JOIN callmaster.scripts AS s ON s.id = x.script_id
            WHERE x.sub IS NOT NULL AND u.clerk_user_id = x.sub AND u.is_active
              AND (s.owner_id = u.id OR EXISTS (SELECT 1 FROM callmaster.crew_assignments AS ca
                                               WHERE ca.show_id = s.show_id AND ca.user_id = u.id
                                                 AND ca.is_active))
            UNION ALL
            SELECT 'shared', NULL
            FROM callmaster.share_links AS l
            JOIN callmaster.scripts AS s ON s.id = x.script_id AND s.show_id = l.show_id
            JOIN callmaster.users AS o ON o.id = l.owner_id AND o.is_active  -- as callmaster.shared_link
            WHERE x.link_id IS NOT NULL AND l.id = x.link_id AND l.revoked_at IS NULL AND l.expires_at > now()
            LIMIT 1
        ) AS a ON true
    ),
    forget AS (
        DELETE FROM callmaster.live_presence AS p
        WHERE p.process_id = p_process_id OR p.reported_at < now() - interval '1 minute'
    ),
    report AS (
        INSERT INTO callmaster.live_presence (process_id, script_id, audience, department_id, devices)
        SELECT p_process_id, t.script_id, t.audience, t.department_id, sum(t.devices)
        FROM subs AS t
        WHERE t.allowed AND t.devices > 0
        GROUP BY t.script_id, t.audience, t.department_id
    )
    SELECT coalesce(jsonb_agg(t.key ORDER BY t.key), '[]') FROM subs AS t WHERE NOT t.allowed
$$;
COMMENT ON FUNCTION callmaster.live_heartbeat(uuid, jsonb) IS
    'Relay call, every few seconds per API process: re-checks the access of its subscribers and records '
    'presence. Arguments: the process id, [{key, script_id, sub (Clerk user id) | link_id, devices}]. '
    'Replaces the process''s presence rows (counts per script, audience and department; rows of processes '
    'silent for a minute are dropped). Returns the keys that may no longer read their script (user '
    'deactivated or unassigned, link revoked or expired or its owner deactivated, script deleted). No errors.';

CREATE OR REPLACE FUNCTION callmaster.live_presence_counts(p_script_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    WITH fresh AS (
        SELECT p.audience, p.department_id, sum(p.devices)::integer AS devices
        FROM callmaster.live_presence AS p
        WHERE p.script_id = p_script_id AND p.reported_at > now() - interval '15 seconds'
        GROUP BY p.audience, p.department_id
    )
    SELECT jsonb_build_object(
        'devices', coalesce((SELECT sum(f.devices) FROM fresh AS f), 0),
        'owner', coalesce((SELECT sum(f.devices) FROM fresh AS f WHERE f.audience = 'owner'), 0),
        'shared', coalesce((SELECT sum(f.devices) FROM fresh AS f WHERE f.audience = 'shared'), 0),
        'by_department', coalesce((
            SELECT jsonb_agg(jsonb_build_object('department_id', f.department_id, 'name', d.name,
                                                'devices', f.devices) ORDER BY d.name NULLS LAST)
            FROM fresh AS f
            LEFT JOIN callmaster.departments AS d ON d.id = f.department_id
            WHERE f.audience = 'crew'), '[]'))
$$;
COMMENT ON FUNCTION callmaster.live_presence_counts(uuid) IS
    'Internal (checks no access): devices following a script now, from the relays'' last reports: '
    '{devices, owner, shared, by_department: [{department_id (null: crew without one), name, devices}]}. '
    'Counts only, nobody''s identity. No errors.';
REVOKE ALL ON FUNCTION callmaster.live_presence_counts(uuid) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.live_presence(p_script_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT callmaster.live_presence_counts(p_script_id) FROM callmaster.live_reader(p_script_id)
$$;
COMMENT ON FUNCTION callmaster.live_presence(uuid) IS
    'API (GET /api/scripts/{id}/live/presence) and DBAs: how many devices follow a script, by department '
    '(see live_presence_counts). Errors: P0002 script not found (or not the user''s to see).';

CREATE OR REPLACE FUNCTION callmaster.live_presence_shared(p_token text, p_script_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT callmaster.live_presence_counts(s.id)
    FROM callmaster.shared_link(p_token) AS l
    JOIN callmaster.scripts AS s ON s.show_id = l.show_id AND s.id = p_script_id
$$;
COMMENT ON FUNCTION callmaster.live_presence_shared(text, uuid) IS
    'API (GET /api/shared/{token}/scripts/{id}/live/presence): presence counts for a share link (numbers '
    'and department names only). Returns NULL for a script of another show. Errors: P0002 unknown, revoked '
    'or expired link.';

-- keel_api has no privilege on the feed, share links or presence (migration 0800): the functions above
-- are the way in. Should one ever be granted, these policies still keep each user to their own scripts.
DROP POLICY IF EXISTS live_feed_heads_read ON callmaster.live_feed_heads;
CREATE POLICY live_feed_heads_read ON callmaster.live_feed_heads FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.scripts AS s WHERE s.id = live_feed_heads.script_id));
DROP POLICY IF EXISTS live_events_read ON callmaster.live_events;
CREATE POLICY live_events_read ON callmaster.live_events FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.scripts AS s WHERE s.id = live_events.script_id));
DROP POLICY IF EXISTS live_presence_read ON callmaster.live_presence;
CREATE POLICY live_presence_read ON callmaster.live_presence FOR SELECT TO keel_api
    USING (EXISTS (SELECT 1 FROM callmaster.scripts AS s WHERE s.id = live_presence.script_id));
DROP POLICY IF EXISTS share_links_owner ON callmaster.share_links;
CREATE POLICY share_links_owner ON callmaster.share_links FOR SELECT TO keel_api
    USING (owner_id = (SELECT callmaster.current_user_id()));

REVOKE EXECUTE ON FUNCTION callmaster.live_open(uuid, bigint), callmaster.live_open_shared(text, uuid, bigint),
    callmaster.live_heartbeat(uuid, jsonb), callmaster.live_presence(uuid),
    callmaster.live_presence_shared(text, uuid), callmaster.live_events_after(uuid[], bigint[], integer),
    callmaster.live_relay_asleep(interval), callmaster.live_relay_awake(),
    callmaster.prune_live_events(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.live_open(uuid, bigint), callmaster.live_open_shared(text, uuid, bigint),
    callmaster.live_presence(uuid), callmaster.live_presence_shared(text, uuid) TO keel_api;
-- The relay's calls (heartbeat, events_after, asleep/awake, prune) act for every tenant's scripts: its own
-- session runs them as keel_worker (SET ROLE, like the outbox dispatcher); handlers never call them.
REVOKE EXECUTE ON FUNCTION callmaster.live_heartbeat(uuid, jsonb),
    callmaster.live_events_after(uuid[], bigint[], integer), callmaster.live_relay_asleep(interval),
    callmaster.live_relay_awake(), callmaster.prune_live_events(interval) FROM keel_api;
GRANT EXECUTE ON FUNCTION callmaster.live_heartbeat(uuid, jsonb),
    callmaster.live_events_after(uuid[], bigint[], integer), callmaster.live_relay_asleep(interval),
    callmaster.live_relay_awake(), callmaster.prune_live_events(interval) TO keel_worker;

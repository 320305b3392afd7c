-- Shows and their crew assignments (issue 8), and the access helpers the show/script/element
-- functions share.
--
-- Access: the owner of a show writes it and everything under it; crew actively assigned to the show
-- read it (RLS, sql/callmaster/010_access.sql); anybody else gets "not found". Writes by crew are
-- refused with 42501 rather than "not found", since they can see the row.
--
-- Lock order, shared with 610_scripts.sql and 620_elements.sql, so that concurrent calls serialize
-- instead of deadlocking or seeing half of each other:
--   shows:   delete_show FOR UPDATE; duplicate_script FOR KEY SHARE (source and target, by id).
--   scripts: delete_show / delete_script FOR UPDATE; duplicate_script FOR SHARE; script-wide element
--            writes (edit batches, bulk updates, auto-sort) FOR NO KEY UPDATE; single-element writes
--            FOR SHARE.
--   then the script's live feed head (callmaster.live_lock_head; show commands take it first), held
--   to commit, before any element row: the feed triggers would otherwise take it at the end of the
--   writing statement, holding rows that a transaction holding the head may want next.
-- A duplicate racing a delete_show of the same show therefore either completes first (and the delete
-- then removes the copy too) or waits and fails with P0002 — never a half copy.

-- Access helpers --------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.acting_user_id()
    RETURNS uuid
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_me uuid := callmaster.request_user_id();
BEGIN
    -- Without request claims the caller is a DBA (owner role, RLS bypassed) — unless it is the API
    -- role, which must always act as somebody: SECURITY DEFINER functions rely on this.
    IF v_me IS NULL AND current_setting('role', true) = 'keel_api' THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'CallMaster calls made as keel_api need a request user (request.jwt.claims with a sub).';
    END IF;
    RETURN v_me;
END
$$;
COMMENT ON FUNCTION callmaster.acting_user_id() IS
    'The callmaster.users id the current call acts as: the API request''s user, or NULL for a DBA '
    '(no request claims, not running as keel_api). Errors: 42501 unknown or deactivated Clerk user '
    '(see request_user_id), or keel_api without claims.';

CREATE OR REPLACE FUNCTION callmaster.writable_show(show_id uuid)
    RETURNS callmaster.shows
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_me   uuid := callmaster.acting_user_id();
    v_show callmaster.shows;
BEGIN
    SELECT * INTO v_show FROM callmaster.shows AS s WHERE s.id = writable_show.show_id;
    IF FOUND AND (v_me IS NULL OR v_show.owner_id = v_me) THEN
        RETURN v_show;
    END IF;
    IF FOUND AND EXISTS (SELECT 1
                         FROM callmaster.crew_assignments AS ca
                         WHERE ca.show_id = v_show.id
                           AND ca.user_id = v_me
                           AND ca.is_active) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('show %s is read-only for its crew', writable_show.show_id),
            HINT = 'Only the show''s owner may change it.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('show %s not found', writable_show.show_id);
END
$$;
COMMENT ON FUNCTION callmaster.writable_show(uuid) IS
    'The show row if the acting user may change it (its owner, or a DBA). Does not lock. Arguments: '
    'show_id. Errors: P0002 no such show (or another owner''s that the user does not crew); 42501 the user '
    'is crew of the show (read-only).';

CREATE OR REPLACE FUNCTION callmaster.writable_script(script_id uuid)
    RETURNS callmaster.scripts
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_me     uuid := callmaster.acting_user_id();
    v_script callmaster.scripts;
BEGIN
    SELECT * INTO v_script FROM callmaster.scripts AS s WHERE s.id = writable_script.script_id;
    IF FOUND AND (v_me IS NULL OR v_script.owner_id = v_me) THEN
        RETURN v_script;
    END IF;
    IF FOUND AND EXISTS (SELECT 1
                         FROM callmaster.crew_assignments AS ca
                         WHERE ca.show_id = v_script.show_id
                           AND ca.user_id = v_me
                           AND ca.is_active) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('script %s is read-only for the show''s crew', writable_script.script_id),
            HINT = 'Only the show''s owner may change its scripts.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', writable_script.script_id);
END
$$;
COMMENT ON FUNCTION callmaster.writable_script(uuid) IS
    'The script row if the acting user may change it (its owner, or a DBA). Does not lock. Arguments: '
    'script_id. Errors: P0002 no such script (or another owner''s that the user does not crew); 42501 the '
    'user is crew of the script''s show (read-only).';

CREATE OR REPLACE FUNCTION callmaster.writable_element(element_id uuid)
    RETURNS callmaster.script_elements
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_me      uuid := callmaster.acting_user_id();
    v_element callmaster.script_elements;
BEGIN
    SELECT * INTO v_element FROM callmaster.script_elements AS e WHERE e.id = writable_element.element_id;
    IF FOUND AND (v_me IS NULL OR v_element.owner_id = v_me) THEN
        RETURN v_element;
    END IF;
    IF FOUND AND EXISTS (SELECT 1
                         FROM callmaster.scripts AS s
                         JOIN callmaster.crew_assignments AS ca ON ca.show_id = s.show_id
                         WHERE s.id = v_element.script_id
                           AND ca.user_id = v_me
                           AND ca.is_active) THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('element %s is read-only for the show''s crew', writable_element.element_id),
            HINT = 'Only the show''s owner may change its scripts.';
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = 'P0002', MESSAGE = format('element %s not found', writable_element.element_id);
END
$$;
COMMENT ON FUNCTION callmaster.writable_element(uuid) IS
    'The script element row if the acting user may change it (its owner, or a DBA). Does not lock. '
    'Arguments: element_id. Errors: P0002 no such element (or another owner''s that the user does not '
    'crew); 42501 the user is crew of the element''s show (read-only).';

CREATE OR REPLACE FUNCTION callmaster.reject_unknown_keys(data jsonb, allowed text[], what text)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
AS $$
DECLARE
    v_key text;
BEGIN
    IF jsonb_typeof(data) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s must be a JSON object', what);
    END IF;
    SELECT k INTO v_key FROM jsonb_object_keys(data) AS k WHERE k <> ALL (allowed) ORDER BY k LIMIT 1;
    IF v_key IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('%s has an unknown field "%s"', what, v_key),
            HINT = format('Allowed fields: %s.', array_to_string(allowed, ', '));
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.reject_unknown_keys(jsonb, text[], text) IS
    'Checks that data is a JSON object whose keys are all in allowed. Arguments: data, allowed, what (the '
    'name used in the message). Errors: 22023 not an object, or an unknown key (named).';

-- Shows -----------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.show_json(s callmaster.shows)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT to_jsonb(s)
        || jsonb_build_object(
            'venue_name', (SELECT v.name FROM callmaster.venues AS v WHERE v.id = s.venue_id),
            'script_count', (SELECT count(*) FROM callmaster.scripts AS sc WHERE sc.show_id = s.id))
$$;
COMMENT ON FUNCTION callmaster.show_json(callmaster.shows) IS
    'The API representation of a show: its columns plus venue_name and script_count. Arguments: the row. '
    'No errors.';

CREATE OR REPLACE FUNCTION callmaster.list_shows(lim integer, skip integer, q text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_pattern text := '%' || callmaster.like_escape(nullif(btrim(q), '')) || '%';
    v_result  jsonb;
BEGIN
    PERFORM callmaster.acting_user_id();
    -- RLS: the user's own shows and the shows they are assigned to as crew.
    WITH visible AS (
        SELECT s.*
        FROM callmaster.shows AS s
        WHERE v_pattern IS NULL OR s.name ILIKE v_pattern
    ),
    page AS (
        SELECT v.* FROM visible AS v ORDER BY v.show_date NULLS LAST, lower(v.name), v.id LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(callmaster.show_json(p) ORDER BY p.show_date NULLS LAST, lower(p.name), p.id)
                           FROM page AS p), '[]'),
        'total', (SELECT count(*) FROM visible),
        'limit', lim,
        'offset', skip)
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.list_shows(integer, integer, text) IS
    'API: the shows the requesting user owns or crews, by show_date then name. Arguments: lim, skip '
    '(page), q (optional case-insensitive substring of the name). Returns {items, total, limit, offset}. '
    'Errors: 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.get_show(show_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.acting_user_id();
    SELECT callmaster.show_json(s) INTO v_result FROM callmaster.shows AS s WHERE s.id = get_show.show_id;
    IF v_result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('show %s not found', get_show.show_id);
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.get_show(uuid) IS
    'API: one show the requesting user owns or crews (show_json). Arguments: show_id. Errors: P0002 not '
    'found (or another owner''s); 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.check_show_venue(venue_id uuid, owner_id uuid)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
AS $$
BEGIN
    IF check_show_venue.venue_id IS NOT NULL
       AND NOT EXISTS (SELECT 1
                       FROM callmaster.venues AS v
                       WHERE v.id = check_show_venue.venue_id
                         AND v.owner_id = check_show_venue.owner_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('venue %s not found', check_show_venue.venue_id),
            DETAIL = format('Key (venue_id)=(%s) is not present in table "venues".', check_show_venue.venue_id),
            HINT = 'A show''s venue must be one of the show owner''s venues.';
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.check_show_venue(uuid, uuid) IS
    'Checks that venue_id (when not NULL) is a venue of owner_id. Arguments: venue_id, owner_id. Errors: '
    '23503 (detail "is not present") when it is not.';

CREATE OR REPLACE FUNCTION callmaster.create_show(data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me    uuid := callmaster.acting_user_id();
    v_owner uuid;
    r       callmaster.shows;
BEGIN
    IF jsonb_typeof(data) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'show data must be a JSON object';
    END IF;
    r := jsonb_populate_record(NULL::callmaster.shows, data - ARRAY['id', 'created_at', 'updated_at']);
    v_owner := coalesce(v_me, r.owner_id);
    IF v_owner IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'owner_id is required when create_show is called outside an API request';
    END IF;
    IF nullif(btrim(r.name), '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a show needs a name';
    END IF;
    PERFORM callmaster.check_show_venue(r.venue_id, v_owner);
    INSERT INTO callmaster.shows (owner_id, venue_id, name, show_date, show_end, deadline, notes)
    VALUES (v_owner, r.venue_id, btrim(r.name), r.show_date, r.show_end, r.deadline, r.notes)
    RETURNING * INTO r;
    RETURN callmaster.show_json(r);
END
$$;
COMMENT ON FUNCTION callmaster.create_show(jsonb) IS
    'Creates a show owned by the requesting user (a DBA passes owner_id in data). Arguments: data {name, '
    'venue_id?, show_date?, show_end?, deadline?, notes?}. Returns show_json. Errors: 22023 no name, or no '
    'owner outside a request; 23503 (422) venue_id is not one of the owner''s venues; 23514 show_end '
    'before show_date; 22xxx malformed values; 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.update_show(show_id uuid, patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_show  callmaster.shows := callmaster.writable_show(update_show.show_id);
    v_patch jsonb := patch - ARRAY['id', 'owner_id', 'created_at', 'updated_at'];
    r       callmaster.shows;
BEGIN
    IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'patch must be a JSON object';
    END IF;
    IF v_patch ? 'name' AND nullif(btrim(v_patch ->> 'name'), '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a show needs a name';
    END IF;
    IF v_patch ? 'venue_id' THEN
        PERFORM callmaster.check_show_venue((v_patch ->> 'venue_id')::uuid, v_show.owner_id);
    END IF;
    UPDATE callmaster.shows AS s
    SET (venue_id, name, show_date, show_end, deadline, notes) = (
        SELECT n.venue_id, btrim(n.name), n.show_date, n.show_end, n.deadline, n.notes
        FROM jsonb_populate_record(s, v_patch) AS n)
    WHERE s.id = update_show.show_id
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('show %s not found', update_show.show_id);
    END IF;
    RETURN callmaster.show_json(r);
END
$$;
COMMENT ON FUNCTION callmaster.update_show(uuid, jsonb) IS
    'Changes the given fields of a show (absent keys keep their value; null clears). Arguments: show_id, '
    'patch {name?, venue_id?, show_date?, show_end?, deadline?, notes?}. Returns show_json. Errors: P0002 '
    'not found (or another owner''s); 42501 crew (read-only) or unknown user; 22023 empty name; 23503 (422) '
    'venue not the owner''s; 23514 show_end before show_date.';

CREATE OR REPLACE FUNCTION callmaster.delete_show(show_id uuid)
    RETURNS TABLE (table_name text, deleted_rows bigint)
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_script_ids uuid[];
    v_tables     text[];
    v_counts     bigint[];
    v_crew       bigint;
    v_shows      bigint;
BEGIN
    PERFORM callmaster.writable_show(delete_show.show_id);
    -- Lock the show, then its scripts: a duplicate of one of its scripts (FOR KEY SHARE on the show,
    -- FOR SHARE on the script) has finished before we get here, or waits and then finds nothing.
    PERFORM 1 FROM callmaster.shows AS s WHERE s.id = delete_show.show_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('show %s not found', delete_show.show_id);
    END IF;
    v_script_ids := ARRAY(SELECT sc.id
                          FROM callmaster.scripts AS sc
                          WHERE sc.show_id = delete_show.show_id
                          ORDER BY sc.id
                          FOR UPDATE);

    -- Everything under the show, bottom up: the scripts with all their rows, then the crew, then the
    -- show itself. Nothing is left for ON DELETE CASCADE, so the counts are exactly what was removed.
    SELECT array_agg(r.table_name ORDER BY r.n), array_agg(r.deleted_rows ORDER BY r.n)
    INTO v_tables, v_counts
    FROM callmaster.delete_script_rows_unchecked(v_script_ids) WITH ORDINALITY AS r (table_name, deleted_rows, n);
    DELETE FROM callmaster.crew_assignments AS x WHERE x.show_id = delete_show.show_id;
    GET DIAGNOSTICS v_crew = ROW_COUNT;
    DELETE FROM callmaster.shows AS x WHERE x.id = delete_show.show_id;
    GET DIAGNOSTICS v_shows = ROW_COUNT;

    RETURN QUERY VALUES ('shows'::text, v_shows), ('crew_assignments', v_crew);
    RETURN QUERY SELECT u.t, u.n FROM unnest(v_tables, v_counts) WITH ORDINALITY AS u (t, n, i) ORDER BY u.i;
END
$$;
COMMENT ON FUNCTION callmaster.delete_show(uuid) IS
    'Deletes a show and everything under it — crew assignments, scripts, their elements and every '
    'supporting row (equipment, element crew and performer assignments, conditional rules, group '
    'membership) — in one transaction. Serializes with duplicate_script (see the lock order in '
    'sql/callmaster/600_shows.sql). Arguments: show_id. Returns one row per table: (table_name, '
    'deleted_rows). Errors: P0002 not found (or another owner''s); 42501 the API user is crew of the show '
    '(read-only), or unknown.';

-- Crew assignments ------------------------------------------------------------------------------

-- SECURITY DEFINER: the crew of a show read its assignments, but not the owner's invitations (their notes
-- are the owner's); a user summary of a pending member is what they may see of it, as of a guest.
CREATE OR REPLACE FUNCTION callmaster.pending_member_summary(p_manager_user_id uuid, p_invitation_id uuid)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
    SELECT jsonb_build_object('id', i.id, 'email', i.email, 'first_name', i.first_name,
                              'last_name', i.last_name, 'status', 'guest')
    FROM callmaster.crew_invitations AS i
    WHERE i.manager_user_id = p_manager_user_id
      AND i.id = p_invitation_id
      AND (callmaster.acting_user_id() IS NULL
           OR i.manager_user_id = callmaster.acting_user_id()
           OR EXISTS (SELECT
                      FROM callmaster.crew_assignments AS ca
                      WHERE ca.invitation_id = i.id
                        AND ca.owner_id = i.manager_user_id
                        AND ca.show_id = ANY (callmaster.assigned_show_ids())))
$$;
COMMENT ON FUNCTION callmaster.pending_member_summary(uuid, uuid) IS
    'The user summary of a pending crew member (an invitation) as crew_assignment_json shows it, exactly '
    'the shape of a guest''s: {id (the invitation id), email, first_name, last_name (as the manager typed '
    'them), status guest}. NULL unless the acting user is its manager, a DBA, or crew of a show it is '
    'assigned to (who would see a guest there too). Arguments: its manager (the show owner), the invitation '
    'id. Errors: 42501 unknown '
    'or deactivated user.';
REVOKE EXECUTE ON FUNCTION callmaster.pending_member_summary(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION callmaster.pending_member_summary(uuid, uuid) TO keel_api;

CREATE OR REPLACE FUNCTION callmaster.crew_assignment_json(ca callmaster.crew_assignments)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    -- The member is a user or, while pending, an invitation (issue 13, finding 15): both answer alike.
    SELECT (to_jsonb(ca) - 'invitation_id' - 'member_id')
        || jsonb_build_object(
            'user_id', ca.member_id,
            'user', CASE WHEN ca.invitation_id IS NULL
                         THEN (SELECT jsonb_build_object('id', u.id, 'email', u.email, 'first_name', u.first_name,
                                                         'last_name', u.last_name, 'status', u.status)
                               FROM callmaster.users AS u
                               WHERE u.id = ca.user_id)
                         ELSE callmaster.pending_member_summary(ca.owner_id, ca.invitation_id) END,
            'department', (SELECT jsonb_build_object('id', d.id, 'name', d.name, 'color', d.color,
                                                     'initials', d.initials)
                           FROM callmaster.departments AS d
                           WHERE d.id = ca.department_id))
$$;
COMMENT ON FUNCTION callmaster.crew_assignment_json(callmaster.crew_assignments) IS
    'The API representation of a show crew assignment: its columns plus a user summary and the '
    'department (or null). A pending member''s assignment shows its member id as user_id and the summary '
    'its manager typed (pending_member_summary), exactly as a guest''s. Arguments: the row. No errors.';

CREATE OR REPLACE FUNCTION callmaster.list_show_crew(show_id uuid, lim integer, skip integer)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.acting_user_id();
    PERFORM 1 FROM callmaster.shows AS s WHERE s.id = list_show_crew.show_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('show %s not found', list_show_crew.show_id);
    END IF;
    WITH crew AS (
        SELECT ca.* FROM callmaster.crew_assignments AS ca WHERE ca.show_id = list_show_crew.show_id
    ),
    page AS (
        SELECT c.* FROM crew AS c ORDER BY c.created_at, c.id LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(callmaster.crew_assignment_json(p) ORDER BY p.created_at, p.id)
                           FROM page AS p), '[]'),
        'total', (SELECT count(*) FROM crew),
        'limit', lim,
        'offset', skip)
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.list_show_crew(uuid, integer, integer) IS
    'API: the crew assignments of a show the requesting user owns or crews. Arguments: show_id, lim, skip. '
    'Returns {items, total, limit, offset} of crew_assignment_json. Errors: P0002 show not found (or '
    'another owner''s); 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.add_show_crew(show_id uuid, data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_show    callmaster.shows := callmaster.writable_show(add_show_crew.show_id);
    r         callmaster.crew_assignments;
    v_pending boolean;
BEGIN
    PERFORM callmaster.reject_unknown_keys(data, ARRAY['user_id', 'department_id', 'show_role', 'is_active'],
                                           'crew assignment');
    r := jsonb_populate_record(NULL::callmaster.crew_assignments, data);
    IF r.user_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a crew assignment needs a user_id';
    END IF;
    -- Through the API only users the owner can see (self, their crew, ...) may be assigned, and the owner's
    -- pending members (then the assignment names the invitation, and grants nothing until accepted).
    v_pending := r.user_id = ANY (callmaster.check_member_refs(ARRAY[r.user_id], v_show.owner_id, 'user',
                                                               'user_id'));
    IF r.department_id IS NOT NULL
       AND NOT EXISTS (SELECT 1
                       FROM callmaster.departments AS d
                       WHERE d.id = r.department_id
                         AND d.owner_id = v_show.owner_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('department %s not found', r.department_id),
            DETAIL = format('Key (department_id)=(%s) is not present in table "departments".', r.department_id);
    END IF;
    BEGIN
        INSERT INTO callmaster.crew_assignments (show_id, owner_id, user_id, invitation_id, department_id,
                                                 show_role, is_active)
        VALUES (v_show.id, v_show.owner_id, CASE WHEN NOT v_pending THEN r.user_id END,
                CASE WHEN v_pending THEN r.user_id END, r.department_id, nullif(btrim(r.show_role), ''),
                coalesce(r.is_active, true))
        RETURNING * INTO r;
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING
            ERRCODE = '23505',
            MESSAGE = format('user %s is already assigned to show %s in that department', r.user_id, v_show.id);
    END;
    RETURN callmaster.crew_assignment_json(r);
END
$$;
COMMENT ON FUNCTION callmaster.add_show_crew(uuid, jsonb) IS
    'Assigns a user to a show as crew (then they may read the show, its scripts and elements); user_id '
    'may be a pending member of the owner''s crew (an invitation: the assignment grants nothing until it is '
    'accepted, then it is the user''s). Arguments: show_id, data {user_id, department_id?, show_role?, '
    'is_active?}. Returns crew_assignment_json. Errors: P0002 show not found; 42501 not the owner; 22023 '
    'unknown field or no user_id; 23503 (422) user not visible to the owner (check_member_refs), or '
    'department not the owner''s; 23505 the user '
    'already has that assignment (same department).';

CREATE OR REPLACE FUNCTION callmaster.remove_show_crew(
    show_id uuid,
    user_id uuid DEFAULT NULL,
    department_id uuid DEFAULT NULL,
    assignment_id uuid DEFAULT NULL)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    v_show    callmaster.shows := callmaster.writable_show(remove_show_crew.show_id);
    v_removed integer;
BEGIN
    IF remove_show_crew.user_id IS NULL AND remove_show_crew.assignment_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'name the user_id or the assignment_id to remove';
    END IF;
    DELETE FROM callmaster.crew_assignments AS ca
    WHERE ca.show_id = v_show.id
      AND (remove_show_crew.assignment_id IS NULL OR ca.id = remove_show_crew.assignment_id)
      AND (remove_show_crew.user_id IS NULL OR ca.member_id = remove_show_crew.user_id)
      AND (remove_show_crew.department_id IS NULL OR ca.department_id = remove_show_crew.department_id);
    GET DIAGNOSTICS v_removed = ROW_COUNT;
    IF v_removed = 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('no such crew assignment on show %s', v_show.id);
    END IF;
    RETURN v_removed;
END
$$;
COMMENT ON FUNCTION callmaster.remove_show_crew(uuid, uuid, uuid, uuid) IS
    'Removes crew assignments from a show: one assignment by id, or every assignment of user_id (a user '
    'or a pending member; optionally only in department_id). Arguments: show_id, user_id, department_id, assignment_id. '
    'Returns how many were removed. Errors: 22023 neither user_id nor assignment_id; P0002 show or '
    'assignment not found; 42501 not the owner.';

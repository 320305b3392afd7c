-- Scripts of a show (issue 8): CRUD, cascading delete with per-table counts, and the set-based deep
-- copy (duplicate_script). Lock order: see sql/callmaster/600_shows.sql.

CREATE OR REPLACE FUNCTION callmaster.script_json(s callmaster.scripts)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT to_jsonb(s)
        || jsonb_build_object(
            'element_count', (SELECT count(*)
                              FROM callmaster.script_elements AS e
                              WHERE e.script_id = s.id
                                AND e.owner_id = s.owner_id))
$$;
COMMENT ON FUNCTION callmaster.script_json(callmaster.scripts) IS
    'The API representation of a script: its columns plus element_count. Arguments: the row. No errors.';

CREATE OR REPLACE FUNCTION callmaster.list_show_scripts(show_id uuid, lim integer, skip integer)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.acting_user_id();
    PERFORM 1 FROM callmaster.shows AS s WHERE s.id = list_show_scripts.show_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002', MESSAGE = format('show %s not found', list_show_scripts.show_id);
    END IF;
    WITH scripts AS (
        SELECT sc.* FROM callmaster.scripts AS sc WHERE sc.show_id = list_show_scripts.show_id
    ),
    page AS (
        SELECT s.* FROM scripts AS s ORDER BY s.created_at, s.id LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(callmaster.script_json(p) ORDER BY p.created_at, p.id)
                           FROM page AS p), '[]'),
        'total', (SELECT count(*) FROM scripts),
        'limit', lim,
        'offset', skip)
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.list_show_scripts(uuid, integer, integer) IS
    'API: the scripts of a show the requesting user owns or crews, oldest first. Arguments: show_id, lim, '
    'skip. Returns {items, total, limit, offset} of script_json. Errors: P0002 show not found (or another '
    'owner''s); 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.get_script(script_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.acting_user_id();
    SELECT callmaster.script_json(s) INTO v_result FROM callmaster.scripts AS s WHERE s.id = get_script.script_id;
    IF v_result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', get_script.script_id);
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.get_script(uuid) IS
    'API: one script the requesting user owns or crews (script_json). Arguments: script_id. Errors: P0002 '
    'not found (or another owner''s); 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.create_script(show_id uuid, data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_show callmaster.shows := callmaster.writable_show(create_script.show_id);
    r      callmaster.scripts;
BEGIN
    PERFORM callmaster.reject_unknown_keys(
        data, ARRAY['name', 'notes', 'status', 'start_time', 'end_time', 'actual_start_time'], 'script');
    r := jsonb_populate_record(NULL::callmaster.scripts, data);
    IF nullif(btrim(r.name), '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a script needs a name';
    END IF;
    INSERT INTO callmaster.scripts (show_id, owner_id, name, notes, status, start_time, end_time,
                                    actual_start_time)
    VALUES (v_show.id, v_show.owner_id, btrim(r.name), r.notes, coalesce(r.status, 'draft'), r.start_time,
            r.end_time, r.actual_start_time)
    RETURNING * INTO r;
    RETURN callmaster.script_json(r);
END
$$;
COMMENT ON FUNCTION callmaster.create_script(uuid, jsonb) IS
    'Creates a script in a show. Arguments: show_id, data {name, notes?, status? (draft|copy|working|final|'
    'backup, default draft), start_time?, end_time?, actual_start_time?}. Returns script_json. Errors: '
    'P0002 show not found; 42501 not the show''s owner; 22023 no name or unknown field; 23514 bad status or '
    'end before start.';

CREATE OR REPLACE FUNCTION callmaster.update_script(script_id uuid, patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    r callmaster.scripts := callmaster.writable_script(update_script.script_id);
BEGIN
    PERFORM callmaster.reject_unknown_keys(
        patch, ARRAY['name', 'notes', 'status', 'start_time', 'end_time', 'actual_start_time'], 'script');
    IF patch ? 'name' AND nullif(btrim(patch ->> 'name'), '') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'a script needs a name';
    END IF;
    UPDATE callmaster.scripts AS s
    SET (name, notes, status, start_time, end_time, actual_start_time) = (
        SELECT btrim(n.name), n.notes, n.status, n.start_time, n.end_time, n.actual_start_time
        FROM jsonb_populate_record(s, patch) AS n)
    WHERE s.id = update_script.script_id
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', update_script.script_id);
    END IF;
    RETURN callmaster.script_json(r);
END
$$;
COMMENT ON FUNCTION callmaster.update_script(uuid, jsonb) IS
    'Changes the given fields of a script (absent keys keep their value; null clears). Arguments: '
    'script_id, patch {name?, notes?, status?, start_time?, end_time?, actual_start_time?}. Returns '
    'script_json. Errors: P0002 not found; 42501 crew (read-only); 22023 empty name or unknown field; '
    '23502 null status; 23514 bad status or end before start.';

CREATE OR REPLACE FUNCTION callmaster.delete_script_rows_unchecked(script_ids uuid[])
    RETURNS TABLE (table_name text, deleted_rows bigint)
    LANGUAGE plpgsql
AS $$
BEGIN
    -- Bottom up, in one statement: every child row is deleted explicitly along with its parent, so
    -- nothing is left for ON DELETE CASCADE and the counts are exactly what was removed.
    RETURN QUERY
    WITH doomed_elements AS MATERIALIZED (
        SELECT e.id
        FROM callmaster.script_elements AS e
        WHERE e.script_id = ANY (delete_script_rows_unchecked.script_ids)
    ),
    equipment AS (
        DELETE FROM callmaster.script_element_equipment AS x
        WHERE x.element_id IN (SELECT d.id FROM doomed_elements AS d)
        RETURNING 1
    ),
    element_crew AS (
        DELETE FROM callmaster.script_element_crew_assignments AS x
        WHERE x.element_id IN (SELECT d.id FROM doomed_elements AS d)
        RETURNING 1
    ),
    performers AS (
        DELETE FROM callmaster.script_element_performer_assignments AS x
        WHERE x.element_id IN (SELECT d.id FROM doomed_elements AS d)
        RETURNING 1
    ),
    rules AS (
        DELETE FROM callmaster.script_element_conditional_rules AS x
        WHERE x.element_id IN (SELECT d.id FROM doomed_elements AS d)
        RETURNING 1
    ),
    groups AS (
        DELETE FROM callmaster.script_element_groups AS x
        WHERE x.group_id IN (SELECT d.id FROM doomed_elements AS d)
        RETURNING 1
    ),
    elements AS (
        DELETE FROM callmaster.script_elements AS x
        WHERE x.script_id = ANY (delete_script_rows_unchecked.script_ids)
        RETURNING 1
    ),
    scripts AS (
        DELETE FROM callmaster.scripts AS x
        WHERE x.id = ANY (delete_script_rows_unchecked.script_ids)
        RETURNING 1
    )
    SELECT v.t, v.n
    FROM (VALUES
        ('scripts', (SELECT count(*) FROM scripts)),
        ('script_elements', (SELECT count(*) FROM elements)),
        ('script_element_equipment', (SELECT count(*) FROM equipment)),
        ('script_element_crew_assignments', (SELECT count(*) FROM element_crew)),
        ('script_element_performer_assignments', (SELECT count(*) FROM performers)),
        ('script_element_conditional_rules', (SELECT count(*) FROM rules)),
        ('script_element_groups', (SELECT count(*) FROM groups))
    ) AS v (t, n);
END
$$;
COMMENT ON FUNCTION callmaster.delete_script_rows_unchecked(uuid[]) IS
    'Internal, not for DBAs or the API (use delete_script / delete_show): deletes the given scripts, all '
    'their elements and every supporting row (equipment, element crew and performer assignments, '
    'conditional rules, group membership) in one statement. Checks no access and takes no locks: the '
    'caller has checked the scripts are writable and locked them FOR UPDATE (see the lock order in '
    'sql/callmaster/600_shows.sql). Arguments: script_ids. Returns one row per table, scripts first: '
    '(table_name, deleted_rows). No errors of its own.';
REVOKE ALL ON FUNCTION callmaster.delete_script_rows_unchecked(uuid[]) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION callmaster.delete_script(script_id uuid)
    RETURNS TABLE (table_name text, deleted_rows bigint)
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
BEGIN
    PERFORM callmaster.writable_script(delete_script.script_id);
    -- Waits for a running duplicate of this script (FOR SHARE) to finish.
    PERFORM 1 FROM callmaster.scripts AS s WHERE s.id = delete_script.script_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', delete_script.script_id);
    END IF;
    RETURN QUERY SELECT r.table_name, r.deleted_rows
                 FROM callmaster.delete_script_rows_unchecked(ARRAY[delete_script.script_id]) AS r;
END
$$;
COMMENT ON FUNCTION callmaster.delete_script(uuid) IS
    'Deletes a script with all its elements and their supporting rows in one transaction (waits for a '
    'running duplicate of it). Arguments: script_id. Returns one row per table: (table_name, deleted_rows). '
    'Errors: P0002 not found (or another owner''s); 42501 crew (read-only) or unknown user.';

CREATE OR REPLACE FUNCTION callmaster.copied_id(copy_id uuid, original_id uuid)
    RETURNS uuid
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    -- A name-based UUID (version 8, RFC 9562): the first 128 bits of SHA-256(copy_id || original_id)
    -- with the version nibble and the variant nibble set to 8 (120 bits of the hash remain). Inlined
    -- into the calling statement (one expression).
    SELECT overlay(overlay(encode(substr(sha256(uuid_send(copy_id) || uuid_send(original_id)), 1, 16), 'hex')
                           PLACING '8' FROM 13 FOR 1)
                   PLACING '8' FROM 17 FOR 1)::uuid
$$;
COMMENT ON FUNCTION callmaster.copied_id(uuid, uuid) IS
    'The id of the copy of a row in a copied script (duplicate_script): a version-8 UUID from the SHA-256 '
    'of the copy''s script id and the original row''s id, the same every time it is computed, so references '
    'between copied rows are remapped without an old->new map. Arguments: copy_id (the new script''s id), '
    'original_id (NULL gives NULL). No errors.';

CREATE OR REPLACE FUNCTION callmaster.duplicate_script(
    script_id uuid,
    new_name text DEFAULT NULL,
    target_show_id uuid DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, callmaster
AS $$
DECLARE
    v_me     uuid := callmaster.acting_user_id();
    v_src    callmaster.scripts := callmaster.writable_script(duplicate_script.script_id);
    v_target uuid := coalesce(duplicate_script.target_show_id, v_src.show_id);
    v_new    uuid := gen_random_uuid();
    v_rows   bigint;
BEGIN
    IF duplicate_script.new_name IS NOT NULL AND btrim(duplicate_script.new_name) = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'the copy''s name must not be empty';
    END IF;
    -- Lock order as delete_show: shows first (both, by id), then the script. A delete_show that got
    -- there first makes these locks wait and then find nothing: the copy fails before writing.
    PERFORM 1
    FROM callmaster.shows AS s
    WHERE s.id IN (v_src.show_id, v_target)
    ORDER BY s.id
    FOR KEY SHARE;
    SELECT * INTO v_src FROM callmaster.scripts AS s WHERE s.id = duplicate_script.script_id FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002',
            MESSAGE = format('script %s not found (deleted)', duplicate_script.script_id);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM callmaster.shows AS s WHERE s.id = v_target AND s.owner_id = v_src.owner_id) THEN
        IF duplicate_script.target_show_id IS NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = 'P0002', MESSAGE = format('show %s of script %s not found (deleted)', v_target, v_src.id);
        END IF;
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('target show %s not found', v_target),
            DETAIL = format('Key (show_id)=(%s) is not present in table "shows".', v_target),
            HINT = 'A script can be copied into another show of the same owner.';
    END IF;

    INSERT INTO callmaster.scripts (id, show_id, owner_id, name, notes, status, start_time, end_time)
    VALUES (v_new, v_target, v_src.owner_id, coalesce(btrim(duplicate_script.new_name), v_src.name || ' (copy)'),
            v_src.notes, 'copy', v_src.start_time, v_src.end_time);

    -- The deep copy is one statement (one snapshot). A copied row's id is computed from the copy's
    -- id and the original row's id (copied_id), so every reference inside the script (parent, group,
    -- group member, supporting row) is remapped by computing it again, not looked up in an old->new
    -- map. The only joins left are of the script's elements (read once: source) with their supporting
    -- rows on the supporting tables' indexed element_id (group_id for memberships): no plan (a generic
    -- one, or statistics that do not know the script yet) can make the copy quadratic, as nested loops
    -- over a map in a CTE did.
    -- An element's new id is computed once (source.new_id) and its supporting rows (and its group
    -- memberships) take it from that join, so SHA-256 runs once per element, parent and group member,
    -- not again per supporting row (35k fewer hashes for a 10k-element script of the bench).
    -- Each INSERT takes its rows in the order of the new ids, so the per-row work PostgreSQL cannot
    -- batch (primary-key insertion, each supporting row's foreign-key check against its new element)
    -- walks the indexes in key order instead of at random.
    WITH source AS MATERIALIZED (
        SELECT e.*, callmaster.copied_id(v_new, e.id) AS new_id
        FROM callmaster.script_elements AS e
        WHERE e.script_id = v_src.id
    ),
    elements AS (
        INSERT INTO callmaster.script_elements (
            id, script_id, owner_id, element_type, sequence, cue_id, description, cue_notes, department_id,
            parent_element_id, trigger_type, follows_cue_id, priority, time_offset_ms, duration_ms,
            fade_in_ms, fade_out_ms, location, location_details, custom_color, group_level, is_collapsed,
            is_safety_critical, safety_notes, version, is_active, created_by, updated_by)
        SELECT s.new_id, v_new, s.owner_id, s.element_type, s.sequence, s.cue_id,
               s.description, s.cue_notes, s.department_id, callmaster.copied_id(v_new, s.parent_element_id),
               s.trigger_type, s.follows_cue_id, s.priority, s.time_offset_ms, s.duration_ms, s.fade_in_ms,
               s.fade_out_ms, s.location, s.location_details, s.custom_color, s.group_level, s.is_collapsed,
               s.is_safety_critical, s.safety_notes, 1, s.is_active, coalesce(v_me, s.created_by),
               coalesce(v_me, s.updated_by)
        FROM source AS s
        ORDER BY 1
        RETURNING 1
    ),
    equipment AS (
        INSERT INTO callmaster.script_element_equipment (element_id, equipment_name, is_required, notes)
        SELECT s.new_id, x.equipment_name, x.is_required, x.notes
        FROM source AS s
        JOIN callmaster.script_element_equipment AS x ON x.element_id = s.id
        ORDER BY 1, 2
        RETURNING 1
    ),
    element_crew AS (
        INSERT INTO callmaster.script_element_crew_assignments (element_id, crew_user_id, invitation_id,
                                                                assignment_role, is_lead)
        SELECT s.new_id, x.crew_user_id, x.invitation_id, x.assignment_role, x.is_lead
        FROM source AS s
        JOIN callmaster.script_element_crew_assignments AS x ON x.element_id = s.id
        ORDER BY 1, 2
        RETURNING 1
    ),
    performers AS (
        INSERT INTO callmaster.script_element_performer_assignments (element_id, performer_id, invitation_id,
                                                                     character_name, notes)
        SELECT s.new_id, x.performer_id, x.invitation_id, x.character_name, x.notes
        FROM source AS s
        JOIN callmaster.script_element_performer_assignments AS x ON x.element_id = s.id
        ORDER BY 1, 2
        RETURNING 1
    ),
    rules AS (
        INSERT INTO callmaster.script_element_conditional_rules (
            element_id, condition_type, operator, condition_value, description, is_active)
        SELECT s.new_id, x.condition_type, x.operator, x.condition_value,
               x.description, x.is_active
        FROM source AS s
        JOIN callmaster.script_element_conditional_rules AS x ON x.element_id = s.id
        ORDER BY 1
        RETURNING 1
    ),
    groups AS (
        INSERT INTO callmaster.script_element_groups (group_id, child_element_id, script_id, order_in_group)
        SELECT s.new_id, callmaster.copied_id(v_new, x.child_element_id), v_new, x.order_in_group
        FROM source AS s
        JOIN callmaster.script_element_groups AS x ON x.group_id = s.id
        ORDER BY 1, 2
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM elements) + (SELECT count(*) FROM equipment)
           + (SELECT count(*) FROM element_crew) + (SELECT count(*) FROM performers)
           + (SELECT count(*) FROM rules) + (SELECT count(*) FROM groups)
    INTO v_rows;
    RETURN v_new;
END
$$;
COMMENT ON FUNCTION callmaster.duplicate_script(uuid, text, uuid) IS
    'Deep copy of a script: the script (status copy, actual_start_time cleared), every element and every '
    'supporting row (equipment, element crew and performer assignments, conditional rules, group '
    'membership), with all references inside the script (parent_element_id, group, group member) '
    'remapped to the copies — nothing in the copy points at the original. Set-based: one statement '
    'copies everything; the copies'' ids are derived from the new script id and the originals'' ids '
    '(copied_id). Serializes with delete_show / delete_script (it '
    'completes before them, or fails with P0002 after them; never a half copy). Arguments: script_id, '
    'new_name (default "<name> (copy)"), target_show_id (default the same show; must belong to the same '
    'owner). Returns the new script id. Errors: P0002 script not found or deleted meanwhile; 42501 crew '
    '(read-only) or unknown user; 22023 empty new_name; 23503 (422) target show not found or another '
    'owner''s.';

CREATE OR REPLACE FUNCTION callmaster.duplicate_script_json(
    script_id uuid,
    new_name text DEFAULT NULL,
    target_show_id uuid DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_new uuid := callmaster.duplicate_script(script_id, new_name, target_show_id);
BEGIN
    RETURN (SELECT callmaster.script_json(s) FROM callmaster.scripts AS s WHERE s.id = v_new);
END
$$;
COMMENT ON FUNCTION callmaster.duplicate_script_json(uuid, text, uuid) IS
    'API: duplicate_script, answering the new script (script_json). Arguments and errors: as '
    'duplicate_script.';

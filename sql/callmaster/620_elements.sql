-- Script elements (issue 8): cues, notes and groups with their supporting rows (equipment, element
-- crew and performer assignments, conditional rules, group membership), bulk updates, auto-sort and
-- edit batches. Every change bumps the element's version (trigger below) and sets updated_by to the
-- acting user. References stay inside the script (parent, group members); the composite foreign
-- keys of migration 0500 are the backstop, the checks here give the readable errors.
-- Lock order: see sql/callmaster/600_shows.sql.

-- Versioning ------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.bump_element_version()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION callmaster.bump_element_version() IS
    'Trigger (script_elements): BEFORE UPDATE, version := old version + 1 unless the statement set the '
    'version itself (the functions here do, which skips the trigger call), so every change — API, bulk, '
    'auto-sort or a DBA''s raw UPDATE — is visible to optimistic concurrency checks. No errors.';

CREATE OR REPLACE TRIGGER script_elements_bump_version
    BEFORE UPDATE ON callmaster.script_elements
    FOR EACH ROW WHEN (NEW.version = OLD.version)
    EXECUTE FUNCTION callmaster.bump_element_version();

-- Field lists and JSON ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.element_fields()
    RETURNS text[]
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT ARRAY[
        'element_type', 'sequence', 'cue_id', 'description', 'cue_notes', 'department_id',
        'parent_element_id', 'trigger_type', 'follows_cue_id', 'priority', 'time_offset_ms', 'duration_ms',
        'fade_in_ms', 'fade_out_ms', 'location', 'location_details', 'custom_color', 'group_level',
        'is_collapsed', 'is_safety_critical', 'safety_notes', 'is_active']
$$;
COMMENT ON FUNCTION callmaster.element_fields() IS
    'The script_elements columns a client may set (create, update, bulk update, edit batches). No errors.';

CREATE OR REPLACE FUNCTION callmaster.element_nested_fields()
    RETURNS text[]
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT ARRAY['equipment', 'crew_assignments', 'performer_assignments', 'conditional_rules', 'group_members']
$$;
COMMENT ON FUNCTION callmaster.element_nested_fields() IS
    'The keys of an element document that hold its supporting rows (each a JSON array). No errors.';

CREATE OR REPLACE FUNCTION callmaster.element_documents(element_ids uuid[])
    RETURNS TABLE (id uuid, document jsonb)
    LANGUAGE sql
    STABLE
AS $$
    -- Set-based: one grouped pass per supporting table for all the elements asked for, so a page of
    -- a script costs a handful of scans (and RLS helpers run once per statement, not per element).
    SELECT e.id,
           to_jsonb(e)
           || jsonb_build_object(
               'equipment', coalesce(q.items, '[]'),
               'crew_assignments', coalesce(c.items, '[]'),
               'performer_assignments', coalesce(p.items, '[]'),
               'conditional_rules', coalesce(r.items, '[]'),
               'group_members', coalesce(g.items, '[]'))
    FROM callmaster.script_elements AS e
    LEFT JOIN (
        SELECT x.element_id,
               jsonb_agg(jsonb_build_object('equipment_name', x.equipment_name,
                                            'is_required', x.is_required,
                                            'notes', x.notes) ORDER BY x.equipment_name) AS items
        FROM callmaster.script_element_equipment AS x
        WHERE x.element_id = ANY (element_ids)
        GROUP BY x.element_id
    ) AS q ON q.element_id = e.id
    LEFT JOIN (
        SELECT x.element_id,
               jsonb_agg(jsonb_build_object('crew_user_id', x.member_id,
                                            'assignment_role', x.assignment_role,
                                            'is_lead', x.is_lead) ORDER BY x.is_lead DESC, x.member_id) AS items
        FROM callmaster.script_element_crew_assignments AS x
        WHERE x.element_id = ANY (element_ids)
        GROUP BY x.element_id
    ) AS c ON c.element_id = e.id
    LEFT JOIN (
        SELECT x.element_id,
               jsonb_agg(jsonb_build_object('performer_id', x.member_id,
                                            'character_name', x.character_name,
                                            'notes', x.notes) ORDER BY x.character_name, x.member_id) AS items
        FROM callmaster.script_element_performer_assignments AS x
        WHERE x.element_id = ANY (element_ids)
        GROUP BY x.element_id
    ) AS p ON p.element_id = e.id
    LEFT JOIN (
        SELECT x.element_id,
               jsonb_agg(jsonb_build_object('id', x.id,
                                            'condition_type', x.condition_type,
                                            'operator', x.operator,
                                            'condition_value', x.condition_value,
                                            'description', x.description,
                                            'is_active', x.is_active) ORDER BY x.created_at, x.id) AS items
        FROM callmaster.script_element_conditional_rules AS x
        WHERE x.element_id = ANY (element_ids)
        GROUP BY x.element_id
    ) AS r ON r.element_id = e.id
    LEFT JOIN (
        SELECT x.group_id,
               jsonb_agg(jsonb_build_object('child_element_id', x.child_element_id,
                                            'order_in_group', x.order_in_group)
                         ORDER BY x.order_in_group, x.child_element_id) AS items
        FROM callmaster.script_element_groups AS x
        WHERE x.group_id = ANY (element_ids)
        GROUP BY x.group_id
    ) AS g ON g.group_id = e.id
    WHERE e.id = ANY (element_ids)
$$;
COMMENT ON FUNCTION callmaster.element_documents(uuid[]) IS
    'The API representation of elements: each element''s columns plus its supporting rows nested as '
    'arrays (equipment, crew_assignments, performer_assignments, conditional_rules, group_members; a crew '
    'user or performer is its member id: the user''s, or a pending member''s invitation id), for '
    'all the given ids in one statement (rows the caller may not see are left out). Arguments: '
    'element_ids. Returns (id, document). No errors.';

CREATE OR REPLACE FUNCTION callmaster.element_json(e callmaster.script_elements)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT d.document FROM callmaster.element_documents(ARRAY[e.id]) AS d
$$;
COMMENT ON FUNCTION callmaster.element_json(callmaster.script_elements) IS
    'The API representation of one element as stored (see element_documents). Arguments: the row (its '
    'id is what counts). No errors.';

-- Checks ------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.check_item_array(items jsonb, allowed text[], what text)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
AS $$
DECLARE
    v_bad text;
BEGIN
    IF jsonb_typeof(items) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s must be a JSON array', what);
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(items) AS i WHERE jsonb_typeof(i) <> 'object') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('every item of %s must be a JSON object', what);
    END IF;
    SELECT k INTO v_bad
    FROM jsonb_array_elements(items) AS i, jsonb_object_keys(i) AS k
    WHERE k <> ALL (allowed)
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('an item of %s has an unknown field "%s"', what, v_bad),
            HINT = format('Allowed fields: %s.', array_to_string(allowed, ', '));
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.check_item_array(jsonb, text[], text) IS
    'Checks that items is a JSON array of objects whose keys are all in allowed. Arguments: items, '
    'allowed, what (the name used in messages). Errors: 22023 otherwise, naming the unknown field.';

CREATE OR REPLACE FUNCTION callmaster.check_element_refs(
    script_id uuid,
    owner_id uuid,
    parent_element_id uuid,
    department_id uuid)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
AS $$
BEGIN
    IF check_element_refs.parent_element_id IS NOT NULL
       AND NOT EXISTS (SELECT 1
                       FROM callmaster.script_elements AS e
                       WHERE e.id = check_element_refs.parent_element_id
                         AND e.script_id = check_element_refs.script_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('parent element %s is not in script %s', check_element_refs.parent_element_id,
                             check_element_refs.script_id),
            DETAIL = format('Key (parent_element_id)=(%s) is not present in script %s.',
                            check_element_refs.parent_element_id, check_element_refs.script_id);
    END IF;
    IF check_element_refs.department_id IS NOT NULL
       AND NOT EXISTS (SELECT 1
                       FROM callmaster.departments AS d
                       WHERE d.id = check_element_refs.department_id
                         AND d.owner_id = check_element_refs.owner_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('department %s not found', check_element_refs.department_id),
            DETAIL = format('Key (department_id)=(%s) is not present in table "departments".',
                            check_element_refs.department_id);
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.check_element_refs(uuid, uuid, uuid, uuid) IS
    'Checks an element''s references: the parent (when not NULL) is an element of the same script, the '
    'department (when not NULL) belongs to the script''s owner. Arguments: script_id, owner_id, '
    'parent_element_id, department_id. Errors: 23503 (detail "is not present", 422 in the API).';

CREATE OR REPLACE FUNCTION callmaster.check_parent_cycles(element_ids uuid[])
    RETURNS void
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_bad uuid;
BEGIN
    WITH RECURSIVE up (start_id, id) AS (
        SELECT e.id, e.parent_element_id
        FROM callmaster.script_elements AS e
        WHERE e.id = ANY (check_parent_cycles.element_ids)
          AND e.parent_element_id IS NOT NULL
        UNION
        SELECT up.start_id, e.parent_element_id
        FROM up
        JOIN callmaster.script_elements AS e ON e.id = up.id
        WHERE e.parent_element_id IS NOT NULL
    )
    SELECT up.start_id INTO v_bad FROM up WHERE up.id = up.start_id LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('element %s would be its own ancestor (parent_element_id cycle)', v_bad);
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.check_parent_cycles(uuid[]) IS
    'Checks that following parent_element_id up from each given element never comes back to it. '
    'Arguments: element_ids. Errors: 22023 naming an element on a cycle.';

CREATE OR REPLACE FUNCTION callmaster.check_member_refs(
    member_ids uuid[],
    owner_id uuid,
    what text,
    key text)
    RETURNS uuid[]
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    v_me      uuid := callmaster.acting_user_id();
    v_pending uuid[];
    v_visible uuid[];
    v_bad     uuid;
BEGIN
    -- Pending members (issue 13, finding 15): the owner's invitations, withdrawn ones too (a guest removed
    -- from the crew stays assignable as well). Key-share locked, as the foreign key would: an acceptance
    -- (FOR UPDATE) moving them waits for this transaction, or this one waits and finds none.
    SELECT coalesce(array_agg(p.id), '{}') INTO v_pending
    FROM (SELECT i.id
          FROM callmaster.crew_invitations AS i
          WHERE i.manager_user_id = check_member_refs.owner_id
            AND i.id = ANY (member_ids)
          ORDER BY i.id
          FOR KEY SHARE) AS p;
    IF v_me IS NOT NULL THEN
        v_visible := callmaster.visible_user_ids();
    END IF;
    SELECT u.id INTO v_bad
    FROM unnest(member_ids) WITH ORDINALITY AS u (id, n)
    WHERE u.id IS NOT NULL
      AND u.id <> ALL (v_pending)
      AND ((v_me IS NOT NULL AND u.id <> ALL (v_visible))
           OR NOT EXISTS (SELECT 1 FROM callmaster.users AS x WHERE x.id = u.id))
    ORDER BY u.n
    LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('%s %s not found', what, v_bad),
            DETAIL = format('Key (%s)=(%s) is not present in table "users".', key, v_bad),
            HINT = 'Add the person to your crew first (POST /api/crew/guests).';
    END IF;
    RETURN v_pending;
END
$$;
COMMENT ON FUNCTION callmaster.check_member_refs(uuid[], uuid, text, text) IS
    'Checks the members an assignment names: every non-NULL id must be a user the acting user can see '
    '(visible_user_ids; any existing user for a DBA) or a pending member of owner_id (one of their crew '
    'invitations, which it key-share locks). Arguments: member_ids, owner_id (the owner of the show or '
    'element), what (the name in the message, e.g. ''crew user''), key (the column named in the detail). '
    'Returns the ids that are pending members (store them as invitation_id). Errors: 23503 '
    '(detail "is not present") naming the first offending id.';

-- Element rows have no owner column, so the composite foreign key that keeps a show's pending members the
-- owner's (crew_assignments) is this trigger for them, whoever writes: API, DBA or a raw INSERT.
CREATE OR REPLACE FUNCTION callmaster.check_element_member_owner()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT
                   FROM callmaster.script_elements AS e
                   JOIN callmaster.crew_invitations AS i ON i.manager_user_id = e.owner_id
                   WHERE e.id = NEW.element_id AND i.id = NEW.invitation_id) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('pending member %s is not in the crew of the element''s owner', NEW.invitation_id),
            DETAIL = format('Key (invitation_id)=(%s) is not present in table "crew_invitations".',
                            NEW.invitation_id);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION callmaster.check_element_member_owner() IS
    'Trigger (script_element_crew_assignments, script_element_performer_assignments; BEFORE INSERT or '
    'UPDATE of the invitation or element, for rows naming a pending member): the invitation must be one '
    'of the element owner''s. Errors: 23503 another owner''s (or no) invitation.';

CREATE OR REPLACE TRIGGER script_element_crew_assignments_member_owner
    BEFORE INSERT OR UPDATE OF invitation_id, element_id ON callmaster.script_element_crew_assignments
    FOR EACH ROW WHEN (NEW.invitation_id IS NOT NULL)
    EXECUTE FUNCTION callmaster.check_element_member_owner();
CREATE OR REPLACE TRIGGER script_element_performer_assignments_member_owner
    BEFORE INSERT OR UPDATE OF invitation_id, element_id ON callmaster.script_element_performer_assignments
    FOR EACH ROW WHEN (NEW.invitation_id IS NOT NULL)
    EXECUTE FUNCTION callmaster.check_element_member_owner();

-- Writing one element -----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.write_element_children(el callmaster.script_elements, data jsonb)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    v_pending uuid[];
    v_bad     uuid;
BEGIN

    IF data ? 'equipment' THEN
        PERFORM callmaster.check_item_array(data -> 'equipment', ARRAY['equipment_name', 'is_required', 'notes'],
                                            'equipment');
        DELETE FROM callmaster.script_element_equipment AS x WHERE x.element_id = el.id;
        INSERT INTO callmaster.script_element_equipment (element_id, equipment_name, is_required, notes)
        SELECT el.id, btrim(x.equipment_name), coalesce(x.is_required, true), x.notes
        FROM jsonb_populate_recordset(NULL::callmaster.script_element_equipment, data -> 'equipment') AS x;
    END IF;

    IF data ? 'crew_assignments' THEN
        PERFORM callmaster.check_item_array(data -> 'crew_assignments',
                                            ARRAY['crew_user_id', 'assignment_role', 'is_lead'], 'crew_assignments');
        v_pending := callmaster.check_member_refs(
            ARRAY(SELECT x.crew_user_id
                  FROM jsonb_populate_recordset(NULL::callmaster.script_element_crew_assignments,
                                                data -> 'crew_assignments') AS x),
            el.owner_id, 'crew user', 'crew_user_id');
        DELETE FROM callmaster.script_element_crew_assignments AS x WHERE x.element_id = el.id;
        INSERT INTO callmaster.script_element_crew_assignments (element_id, crew_user_id, invitation_id,
                                                                assignment_role, is_lead)
        SELECT el.id, CASE WHEN x.crew_user_id <> ALL (v_pending) THEN x.crew_user_id END,
               CASE WHEN x.crew_user_id = ANY (v_pending) THEN x.crew_user_id END,
               x.assignment_role, coalesce(x.is_lead, false)
        FROM jsonb_populate_recordset(NULL::callmaster.script_element_crew_assignments,
                                      data -> 'crew_assignments') AS x;
    END IF;

    IF data ? 'performer_assignments' THEN
        PERFORM callmaster.check_item_array(data -> 'performer_assignments',
                                            ARRAY['performer_id', 'character_name', 'notes'], 'performer_assignments');
        v_pending := callmaster.check_member_refs(
            ARRAY(SELECT x.performer_id
                  FROM jsonb_populate_recordset(NULL::callmaster.script_element_performer_assignments,
                                                data -> 'performer_assignments') AS x),
            el.owner_id, 'performer', 'performer_id');
        DELETE FROM callmaster.script_element_performer_assignments AS x WHERE x.element_id = el.id;
        INSERT INTO callmaster.script_element_performer_assignments (element_id, performer_id, invitation_id,
                                                                     character_name, notes)
        SELECT el.id, CASE WHEN x.performer_id <> ALL (v_pending) THEN x.performer_id END,
               CASE WHEN x.performer_id = ANY (v_pending) THEN x.performer_id END, x.character_name, x.notes
        FROM jsonb_populate_recordset(NULL::callmaster.script_element_performer_assignments,
                                      data -> 'performer_assignments') AS x;
    END IF;

    IF data ? 'conditional_rules' THEN
        PERFORM callmaster.check_item_array(
            data -> 'conditional_rules',
            ARRAY['condition_type', 'operator', 'condition_value', 'description', 'is_active'], 'conditional_rules');
        DELETE FROM callmaster.script_element_conditional_rules AS x WHERE x.element_id = el.id;
        INSERT INTO callmaster.script_element_conditional_rules (
            element_id, condition_type, operator, condition_value, description, is_active)
        SELECT el.id, x.condition_type, x.operator, x.condition_value, x.description, coalesce(x.is_active, true)
        FROM jsonb_populate_recordset(NULL::callmaster.script_element_conditional_rules,
                                      data -> 'conditional_rules') AS x;
    END IF;

    IF data ? 'group_members' THEN
        PERFORM callmaster.check_item_array(data -> 'group_members', ARRAY['child_element_id', 'order_in_group'],
                                            'group_members');
        IF el.element_type <> 'group' AND jsonb_array_length(data -> 'group_members') > 0 THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('element %s is a %s: only group elements have group_members', el.id,
                                 el.element_type);
        END IF;
        SELECT x.child_element_id INTO v_bad
        FROM jsonb_populate_recordset(NULL::callmaster.script_element_groups, data -> 'group_members') AS x
        WHERE x.child_element_id IS NOT NULL
          AND NOT EXISTS (SELECT 1
                          FROM callmaster.script_elements AS e
                          WHERE e.id = x.child_element_id
                            AND e.script_id = el.script_id)
        LIMIT 1;
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = '23503',
                MESSAGE = format('group member %s is not in script %s', v_bad, el.script_id),
                DETAIL = format('Key (child_element_id)=(%s) is not present in script %s.', v_bad, el.script_id);
        END IF;
        DELETE FROM callmaster.script_element_groups AS x WHERE x.group_id = el.id;
        INSERT INTO callmaster.script_element_groups (group_id, child_element_id, script_id, order_in_group)
        SELECT el.id, x.child_element_id, el.script_id, coalesce(x.order_in_group, (x.ordinality - 1)::integer)
        FROM jsonb_populate_recordset(NULL::callmaster.script_element_groups, data -> 'group_members')
             WITH ORDINALITY AS x;
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.write_element_children(callmaster.script_elements, jsonb) IS
    'Replaces the supporting rows of an element for each nested key present in data: equipment '
    '[{equipment_name, is_required?, notes?}], crew_assignments [{crew_user_id, assignment_role?, is_lead?}], '
    'performer_assignments [{performer_id, character_name?, notes?}], conditional_rules [{condition_type, '
    'operator, condition_value, description?, is_active?}], group_members [{child_element_id, '
    'order_in_group?}] (groups only; members must be elements of the same script). Absent keys leave those '
    'rows alone; an empty array clears them. A crew user or performer may be a pending member of the '
    'element''s owner (check_member_refs). Arguments: el (the element row), data. Errors: 22023 bad shape '
    'or unknown field, members on a non-group; 23503 (422) a user the caller cannot see, a member outside '
    'the script; 23502/23514 missing or invalid values; 23505 a duplicate within one array.';

CREATE OR REPLACE FUNCTION callmaster.insert_element(sc callmaster.scripts, data jsonb)
    RETURNS callmaster.script_elements
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.acting_user_id();
    r    callmaster.script_elements;
BEGIN
    PERFORM callmaster.reject_unknown_keys(data, callmaster.element_fields() || callmaster.element_nested_fields(),
                                           'element');
    r := jsonb_populate_record(NULL::callmaster.script_elements, data - callmaster.element_nested_fields());
    IF r.element_type IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = 'an element needs an element_type (cue, note or group)';
    END IF;
    IF r.sequence IS NULL THEN
        SELECT coalesce(max(e.sequence), 0) + 1 INTO r.sequence
        FROM callmaster.script_elements AS e
        WHERE e.script_id = sc.id
          AND e.owner_id = sc.owner_id;
    END IF;
    PERFORM callmaster.check_element_refs(sc.id, sc.owner_id, r.parent_element_id, r.department_id);
    INSERT INTO callmaster.script_elements (
        script_id, owner_id, element_type, sequence, cue_id, description, cue_notes, department_id,
        parent_element_id, trigger_type, follows_cue_id, priority, time_offset_ms, duration_ms, fade_in_ms,
        fade_out_ms, location, location_details, custom_color, group_level, is_collapsed, is_safety_critical,
        safety_notes, is_active, created_by, updated_by)
    VALUES (
        sc.id, sc.owner_id, r.element_type, r.sequence, r.cue_id, r.description, r.cue_notes, r.department_id,
        r.parent_element_id, coalesce(r.trigger_type, 'manual'), r.follows_cue_id, coalesce(r.priority, 'normal'),
        coalesce(r.time_offset_ms, 0), r.duration_ms, r.fade_in_ms, r.fade_out_ms, r.location,
        r.location_details, r.custom_color, coalesce(r.group_level, 0), coalesce(r.is_collapsed, false),
        coalesce(r.is_safety_critical, false), r.safety_notes, coalesce(r.is_active, true), v_me, v_me)
    RETURNING * INTO r;
    PERFORM callmaster.write_element_children(r, data);
    RETURN r;
END
$$;
COMMENT ON FUNCTION callmaster.insert_element(callmaster.scripts, jsonb) IS
    'Inserts an element with its supporting rows into a script (no access check or lock: callers do '
    'that). Arguments: sc (the script row), data (element_fields plus nested arrays, see '
    'write_element_children; sequence defaults to after the last element). Returns the row. Errors: '
    '22023 unknown field or no element_type; 23503 (422) parent/department/member/user outside the '
    'script or owner; 23514 invalid enum value; 22xxx malformed values.';

CREATE OR REPLACE FUNCTION callmaster.update_element_row(el callmaster.script_elements, data jsonb)
    RETURNS callmaster.script_elements
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me     uuid := callmaster.acting_user_id();
    v_fields jsonb;
    r        callmaster.script_elements;
BEGIN
    PERFORM callmaster.reject_unknown_keys(data, callmaster.element_fields() || callmaster.element_nested_fields(),
                                           'element');
    v_fields := data - callmaster.element_nested_fields();
    r := jsonb_populate_record(el, v_fields);
    PERFORM callmaster.check_element_refs(
        el.script_id, el.owner_id,
        CASE WHEN v_fields ? 'parent_element_id' THEN r.parent_element_id END,
        CASE WHEN v_fields ? 'department_id' THEN r.department_id END);
    UPDATE callmaster.script_elements AS e
    SET (element_type, sequence, cue_id, description, cue_notes, department_id, parent_element_id, trigger_type,
         follows_cue_id, priority, time_offset_ms, duration_ms, fade_in_ms, fade_out_ms, location,
         location_details, custom_color, group_level, is_collapsed, is_safety_critical, safety_notes,
         is_active) = (
        SELECT n.element_type, n.sequence, n.cue_id, n.description, n.cue_notes, n.department_id,
               n.parent_element_id, n.trigger_type, n.follows_cue_id, n.priority, n.time_offset_ms,
               n.duration_ms, n.fade_in_ms, n.fade_out_ms, n.location, n.location_details, n.custom_color,
               n.group_level, n.is_collapsed, n.is_safety_critical, n.safety_notes, n.is_active
        FROM jsonb_populate_record(e, v_fields) AS n),
        updated_by = coalesce(v_me, e.updated_by),
        version = e.version + 1,
        updated_at = now()
    WHERE e.id = el.id
    RETURNING * INTO r;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('element %s not found', el.id);
    END IF;
    IF v_fields ? 'parent_element_id' THEN
        PERFORM callmaster.check_parent_cycles(ARRAY[el.id]);
    END IF;
    PERFORM callmaster.write_element_children(r, data);
    RETURN r;
END
$$;
COMMENT ON FUNCTION callmaster.update_element_row(callmaster.script_elements, jsonb) IS
    'Changes the fields present in data (absent keys keep their value; null clears) and replaces the '
    'nested supporting rows present in data; bumps version, sets updated_by (no access check or lock: '
    'callers do that). Arguments: el (the element row), data. Returns the updated row. Errors: as '
    'insert_element; 22023 a parent cycle; P0002 the element vanished.';

CREATE OR REPLACE FUNCTION callmaster.check_base_version(el callmaster.script_elements, base_version integer)
    RETURNS void
    LANGUAGE plpgsql
    IMMUTABLE
AS $$
BEGIN
    IF base_version IS NOT NULL AND el.version <> base_version THEN
        RAISE EXCEPTION USING
            ERRCODE = '55000',
            MESSAGE = format('element %s changed meanwhile: it is at version %s, the edit was based on version %s',
                             el.id, el.version, base_version),
            HINT = 'Reload the element and apply the edit again.';
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.check_base_version(callmaster.script_elements, integer) IS
    'Optimistic concurrency: checks that the element is still at base_version (NULL skips the check). '
    'Arguments: el, base_version. Errors: 55000 (409 Conflict in the API) when the element is at another '
    'version.';

CREATE OR REPLACE FUNCTION callmaster.lock_element_for_write(element_id uuid, base_version integer DEFAULT NULL)
    RETURNS callmaster.script_elements
    LANGUAGE plpgsql
AS $$
DECLARE
    v_el callmaster.script_elements := callmaster.writable_element(lock_element_for_write.element_id);
BEGIN
    -- Single-element write: the script FOR SHARE (waits for edit batches and auto-sort), its feed
    -- head, then the element FOR UPDATE, then the optimistic version check on the locked row.
    PERFORM 1 FROM callmaster.scripts AS s WHERE s.id = v_el.script_id FOR SHARE;
    PERFORM callmaster.live_lock_head(v_el.script_id);
    SELECT * INTO v_el FROM callmaster.script_elements AS e WHERE e.id = lock_element_for_write.element_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002', MESSAGE = format('element %s not found', lock_element_for_write.element_id);
    END IF;
    PERFORM callmaster.check_base_version(v_el, lock_element_for_write.base_version);
    RETURN v_el;
END
$$;
COMMENT ON FUNCTION callmaster.lock_element_for_write(uuid, integer) IS
    'Access check and locks for a write to one element (update_element, delete_element): its script FOR '
    'SHARE, its feed head, then the element FOR UPDATE (lock order: sql/callmaster/600_shows.sql). Arguments: '
    'element_id, base_version (optional: the version the edit is based on). Returns the locked element '
    'row. Errors: P0002 not found (or deleted meanwhile); 42501 crew (read-only) or unknown user; 55000 '
    '(409) stale base_version.';

-- Elements API --------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.list_script_elements(script_id uuid, lim integer, skip integer)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.acting_user_id();
    PERFORM 1 FROM callmaster.scripts AS s WHERE s.id = list_script_elements.script_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002', MESSAGE = format('script %s not found', list_script_elements.script_id);
    END IF;
    -- One statement: the page of elements in script order, each with its supporting rows nested.
    WITH elements AS (
        SELECT e.id, e.sequence, e.time_offset_ms
        FROM callmaster.script_elements AS e
        WHERE e.script_id = list_script_elements.script_id
    ),
    page AS MATERIALIZED (
        SELECT x.* FROM elements AS x ORDER BY x.sequence, x.time_offset_ms, x.id LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(d.document ORDER BY p.sequence, p.time_offset_ms, p.id)
                           FROM page AS p
                           JOIN callmaster.element_documents(ARRAY(SELECT pp.id FROM page AS pp)) AS d
                             ON d.id = p.id), '[]'),
        'total', (SELECT count(*) FROM elements),
        'limit', lim,
        'offset', skip)
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.list_script_elements(uuid, integer, integer) IS
    'API: the elements of a script the requesting user owns or crews, in script order (sequence, then '
    'time_offset_ms), each with its supporting rows nested (element_json). Arguments: script_id, lim, '
    'skip. Returns {items, total, limit, offset}. Errors: P0002 script not found (or another owner''s); '
    '42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.get_element(element_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.acting_user_id();
    SELECT callmaster.element_json(e) INTO v_result
    FROM callmaster.script_elements AS e
    WHERE e.id = get_element.element_id;
    IF v_result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('element %s not found', get_element.element_id);
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.get_element(uuid) IS
    'API: one element (element_json) of a script the requesting user owns or crews. Arguments: '
    'element_id. Errors: P0002 not found (or another owner''s); 42501 unknown or deactivated user.';

CREATE OR REPLACE FUNCTION callmaster.create_element(script_id uuid, data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_script callmaster.scripts := callmaster.writable_script(create_element.script_id);
    v_row    callmaster.script_elements;
BEGIN
    PERFORM 1 FROM callmaster.scripts AS s WHERE s.id = v_script.id FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('script %s not found', v_script.id);
    END IF;
    PERFORM callmaster.live_lock_head(v_script.id);
    v_row := callmaster.insert_element(v_script, data);
    RETURN callmaster.element_json(v_row);
END
$$;
COMMENT ON FUNCTION callmaster.create_element(uuid, jsonb) IS
    'Creates an element with its nested supporting rows in one call. Arguments: script_id, data '
    '(element fields, element_type required, plus nested arrays — see write_element_children). Returns '
    'element_json. Errors: P0002 script not found; 42501 crew (read-only); as insert_element.';

CREATE OR REPLACE FUNCTION callmaster.update_element(element_id uuid, patch jsonb, base_version integer DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_el callmaster.script_elements :=
        callmaster.lock_element_for_write(update_element.element_id, update_element.base_version);
BEGIN
    v_el := callmaster.update_element_row(v_el, patch);
    RETURN callmaster.element_json(v_el);
END
$$;
COMMENT ON FUNCTION callmaster.update_element(uuid, jsonb, integer) IS
    'Changes an element: the fields present in patch, and the nested supporting rows present in it '
    '(replaced). Bumps version, sets updated_by. Arguments: element_id, patch, base_version (optional: '
    'the version the edit is based on). Returns element_json. Errors: P0002 not found; 42501 crew '
    '(read-only); 55000 (409) stale base_version; as update_element_row.';

CREATE OR REPLACE FUNCTION callmaster.delete_element(element_id uuid, base_version integer DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    v_el callmaster.script_elements :=
        callmaster.lock_element_for_write(delete_element.element_id, delete_element.base_version);
BEGIN
    DELETE FROM callmaster.script_elements AS e WHERE e.id = v_el.id;
END
$$;
COMMENT ON FUNCTION callmaster.delete_element(uuid, integer) IS
    'Deletes an element and its supporting rows and group memberships; its children move to the top '
    'level (parent_element_id NULL). Arguments: element_id, base_version (optional). Errors: P0002 not '
    'found; 42501 crew (read-only); 55000 (409) stale base_version.';

-- Script-wide operations ----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.bulk_update_script_elements(script_id uuid, updates jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me      uuid := callmaster.acting_user_id();
    v_script  callmaster.scripts := callmaster.writable_script(bulk_update_script_elements.script_id);
    v_fields  text[] := callmaster.element_fields();
    v_items   record;
    v_bad     text;
    v_bad_id  uuid;
    v_count   integer;
    v_changed jsonb;
BEGIN
    IF jsonb_typeof(updates) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'updates must be a JSON array of {id, ...fields}';
    END IF;
    -- One pass over the items for the checks that need no table: the first item that is not an
    -- object with an id, whether any item has an unknown field, whether any sends a parent or a
    -- department (only then are those looked up, and parent cycles checked).
    SELECT min(u.n) FILTER (WHERE jsonb_typeof(u.item) <> 'object' OR NOT (u.item ? 'id')) AS bad_item,
           bool_or(CASE WHEN jsonb_typeof(u.item) = 'object' THEN u.item - v_fields - 'id' <> '{}' END) AS unknown,
           bool_or(u.item ? 'parent_element_id') AS parents,
           bool_or(u.item ? 'department_id') AS departments
    INTO v_items
    FROM jsonb_array_elements(updates) WITH ORDINALITY AS u (item, n);
    IF v_items.bad_item IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = format('updates[%s] must be an object with an id', v_items.bad_item - 1);
    END IF;
    IF v_items.unknown THEN
        SELECT format('updates[%s] has an unknown field "%s"', u.n - 1, k) INTO v_bad
        FROM jsonb_array_elements(updates) WITH ORDINALITY AS u (item, n), jsonb_object_keys(u.item) AS k
        WHERE k <> 'id' AND k <> ALL (v_fields)
        ORDER BY u.n, k
        LIMIT 1;
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = v_bad, HINT = format('Fields: %s.', array_to_string(v_fields, ', '));
    END IF;
    SELECT (u.item ->> 'id')::uuid INTO v_bad_id
    FROM jsonb_array_elements(updates) AS u (item)
    GROUP BY (u.item ->> 'id')::uuid
    HAVING count(*) > 1
    LIMIT 1;
    IF v_bad_id IS NOT NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023', MESSAGE = format('element %s appears more than once in updates', v_bad_id);
    END IF;

    -- Serialize with edit batches and auto-sort of this script (they hold FOR NO KEY UPDATE).
    PERFORM 1 FROM callmaster.scripts AS s WHERE s.id = v_script.id FOR SHARE;
    PERFORM callmaster.live_lock_head(v_script.id);

    IF v_items.parents THEN
        SELECT (x.item ->> 'parent_element_id')::uuid INTO v_bad_id
        FROM jsonb_array_elements(updates) AS x (item)
        WHERE x.item ->> 'parent_element_id' IS NOT NULL
          AND NOT EXISTS (SELECT 1
                          FROM callmaster.script_elements AS e
                          WHERE e.id = (x.item ->> 'parent_element_id')::uuid
                            AND e.script_id = v_script.id)
        LIMIT 1;
        IF v_bad_id IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = '23503',
                MESSAGE = format('parent element %s is not in script %s; nothing was changed', v_bad_id, v_script.id),
                DETAIL = format('Key (parent_element_id)=(%s) is not present in script %s.', v_bad_id, v_script.id);
        END IF;
    END IF;
    IF v_items.departments THEN
        SELECT (x.item ->> 'department_id')::uuid INTO v_bad_id
        FROM jsonb_array_elements(updates) AS x (item)
        WHERE x.item ->> 'department_id' IS NOT NULL
          AND NOT EXISTS (SELECT 1
                          FROM callmaster.departments AS d
                          WHERE d.id = (x.item ->> 'department_id')::uuid
                            AND d.owner_id = v_script.owner_id)
        LIMIT 1;
        IF v_bad_id IS NOT NULL THEN
            RAISE EXCEPTION USING
                ERRCODE = '23503',
                MESSAGE = format('department %s not found; nothing was changed', v_bad_id),
                DETAIL = format('Key (department_id)=(%s) is not present in table "departments".', v_bad_id);
        END IF;
    END IF;

    -- The update itself: one statement for every element, reading each item once. A column changes
    -- only when its key is sent (an explicit null clears it); the others keep their stored value, so
    -- a row whose indexed columns keep their values can be updated in place (HOT). Values convert as
    -- jsonb_populate_record would convert them (text input of the column's type).
    WITH changed AS (
        UPDATE callmaster.script_elements AS e
        SET element_type = CASE WHEN u.item ? 'element_type' THEN u.item ->> 'element_type' ELSE e.element_type END,
            sequence = CASE WHEN u.item ? 'sequence' THEN (u.item ->> 'sequence')::integer ELSE e.sequence END,
            cue_id = CASE WHEN u.item ? 'cue_id' THEN u.item ->> 'cue_id' ELSE e.cue_id END,
            description = CASE WHEN u.item ? 'description' THEN u.item ->> 'description' ELSE e.description END,
            cue_notes = CASE WHEN u.item ? 'cue_notes' THEN u.item ->> 'cue_notes' ELSE e.cue_notes END,
            department_id = CASE WHEN u.item ? 'department_id'
                                 THEN (u.item ->> 'department_id')::uuid ELSE e.department_id END,
            parent_element_id = CASE WHEN u.item ? 'parent_element_id'
                                     THEN (u.item ->> 'parent_element_id')::uuid ELSE e.parent_element_id END,
            trigger_type = CASE WHEN u.item ? 'trigger_type' THEN u.item ->> 'trigger_type' ELSE e.trigger_type END,
            follows_cue_id = CASE WHEN u.item ? 'follows_cue_id'
                                  THEN u.item ->> 'follows_cue_id' ELSE e.follows_cue_id END,
            priority = CASE WHEN u.item ? 'priority' THEN u.item ->> 'priority' ELSE e.priority END,
            time_offset_ms = CASE WHEN u.item ? 'time_offset_ms'
                                  THEN (u.item ->> 'time_offset_ms')::bigint ELSE e.time_offset_ms END,
            duration_ms = CASE WHEN u.item ? 'duration_ms'
                               THEN (u.item ->> 'duration_ms')::bigint ELSE e.duration_ms END,
            fade_in_ms = CASE WHEN u.item ? 'fade_in_ms' THEN (u.item ->> 'fade_in_ms')::bigint ELSE e.fade_in_ms END,
            fade_out_ms = CASE WHEN u.item ? 'fade_out_ms'
                               THEN (u.item ->> 'fade_out_ms')::bigint ELSE e.fade_out_ms END,
            location = CASE WHEN u.item ? 'location' THEN u.item ->> 'location' ELSE e.location END,
            location_details = CASE WHEN u.item ? 'location_details'
                                    THEN u.item ->> 'location_details' ELSE e.location_details END,
            custom_color = CASE WHEN u.item ? 'custom_color' THEN u.item ->> 'custom_color' ELSE e.custom_color END,
            group_level = CASE WHEN u.item ? 'group_level'
                               THEN (u.item ->> 'group_level')::integer ELSE e.group_level END,
            is_collapsed = CASE WHEN u.item ? 'is_collapsed'
                                THEN (u.item ->> 'is_collapsed')::boolean ELSE e.is_collapsed END,
            is_safety_critical = CASE WHEN u.item ? 'is_safety_critical'
                                      THEN (u.item ->> 'is_safety_critical')::boolean ELSE e.is_safety_critical END,
            safety_notes = CASE WHEN u.item ? 'safety_notes' THEN u.item ->> 'safety_notes' ELSE e.safety_notes END,
            is_active = CASE WHEN u.item ? 'is_active' THEN (u.item ->> 'is_active')::boolean ELSE e.is_active END,
            updated_by = coalesce(v_me, e.updated_by),
            version = e.version + 1,
            updated_at = now()
        FROM jsonb_array_elements(updates) AS u (item)
        WHERE e.id = (u.item ->> 'id')::uuid
          AND e.script_id = v_script.id
        RETURNING e.id, e.version, e.sequence, e.time_offset_ms
    )
    SELECT count(*),
           coalesce(jsonb_agg(jsonb_build_object('id', c.id, 'version', c.version)
                              ORDER BY c.sequence, c.time_offset_ms, c.id), '[]')
    INTO v_count, v_changed
    FROM changed AS c;

    IF v_count <> jsonb_array_length(updates) THEN
        -- Some id matched no element of the script: name it; raising undoes the update.
        SELECT u.id INTO v_bad_id
        FROM (SELECT (x.item ->> 'id')::uuid AS id FROM jsonb_array_elements(updates) AS x (item)) AS u
        WHERE NOT EXISTS (SELECT 1
                          FROM callmaster.script_elements AS e
                          WHERE e.id = u.id
                            AND e.script_id = v_script.id)
        LIMIT 1;
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('element %s is not in script %s; nothing was changed',
                             coalesce(v_bad_id::text, '?'), v_script.id),
            DETAIL = format('Key (id)=(%s) is not present in script %s.', coalesce(v_bad_id::text, '?'), v_script.id);
    END IF;
    IF v_items.parents THEN
        PERFORM callmaster.check_parent_cycles(ARRAY(
            SELECT (x.item ->> 'id')::uuid
            FROM jsonb_array_elements(updates) AS x (item)
            WHERE x.item ? 'parent_element_id'));
    END IF;
    RETURN jsonb_build_object('updated', v_count, 'elements', v_changed);
END
$$;
COMMENT ON FUNCTION callmaster.bulk_update_script_elements(uuid, jsonb) IS
    'Updates many elements of one script in one UPDATE statement, all or nothing: each item names an '
    'element id and the fields to change (absent fields keep their value, null clears); every element''s version is '
    'bumped and updated_by set. Arguments: script_id, updates (jsonb array of {id, ...element_fields}). '
    'Returns {updated, elements: [{id, version}]}. Errors: P0002 script not found; 42501 crew (read-only); '
    '22023 not an array, an item without id, an unknown field, an id twice, a parent cycle; 23503 (422) an '
    'id, parent or department outside the script (named; nothing changed); 23514/23502/22xxx invalid '
    'values.';

CREATE OR REPLACE FUNCTION callmaster.auto_sort_script_elements(script_id uuid)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me      uuid := callmaster.acting_user_id();
    v_script  callmaster.scripts := callmaster.writable_script(auto_sort_script_elements.script_id);
    v_renumbered integer;
BEGIN
    PERFORM 1 FROM callmaster.scripts AS s WHERE s.id = v_script.id FOR NO KEY UPDATE;
    PERFORM callmaster.live_lock_head(v_script.id);
    WITH ordered AS (
        SELECT e.id, row_number() OVER (ORDER BY e.time_offset_ms, e.sequence, e.id)::integer AS seq
        FROM callmaster.script_elements AS e
        WHERE e.script_id = v_script.id
    )
    UPDATE callmaster.script_elements AS e
    SET sequence = o.seq,
        updated_by = coalesce(v_me, e.updated_by),
        version = e.version + 1,
        updated_at = now()
    FROM ordered AS o
    WHERE e.id = o.id
      AND e.sequence <> o.seq;
    GET DIAGNOSTICS v_renumbered = ROW_COUNT;
    RETURN v_renumbered;
END
$$;
COMMENT ON FUNCTION callmaster.auto_sort_script_elements(uuid) IS
    'Renumbers the sequence of every element of a script 1..n by time_offset_ms, in one statement; ties '
    'keep their previous order (sequence, then id). Only elements whose number changes are updated (and '
    'get a new version). Arguments: script_id. Returns how many elements were renumbered. Errors: P0002 '
    'script not found; 42501 crew (read-only) or unknown user.';

CREATE OR REPLACE FUNCTION callmaster.move_element(sc callmaster.scripts, element_id uuid, after_id uuid)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.acting_user_id();
BEGIN
    IF move_element.after_id = move_element.element_id THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'an element cannot be moved after itself';
    END IF;
    IF move_element.after_id IS NOT NULL
       AND NOT EXISTS (SELECT 1
                       FROM callmaster.script_elements AS e
                       WHERE e.id = move_element.after_id
                         AND e.script_id = sc.id) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('element %s (after_id) is not in script %s', move_element.after_id, sc.id),
            DETAIL = format('Key (after_id)=(%s) is not present in script %s.', move_element.after_id, sc.id);
    END IF;
    -- Script order without the moved element, the moved one placed after its anchor, renumbered 1..n;
    -- only the elements whose number changes are written.
    WITH others AS (
        SELECT e.id, row_number() OVER (ORDER BY e.sequence, e.time_offset_ms, e.id)::integer AS pos
        FROM callmaster.script_elements AS e
        WHERE e.script_id = sc.id
          AND e.id <> move_element.element_id
    ),
    anchor AS (
        SELECT coalesce((SELECT o.pos FROM others AS o WHERE o.id = move_element.after_id), 0) AS pos
    ),
    target AS (
        SELECT o.id, CASE WHEN o.pos <= a.pos THEN o.pos ELSE o.pos + 1 END AS seq
        FROM others AS o
        CROSS JOIN anchor AS a
        UNION ALL
        SELECT move_element.element_id, a.pos + 1
        FROM anchor AS a
    )
    UPDATE callmaster.script_elements AS e
    SET sequence = t.seq,
        updated_by = coalesce(v_me, e.updated_by),
        version = e.version + 1,
        updated_at = now()
    FROM target AS t
    WHERE e.id = t.id
      AND e.script_id = sc.id
      AND e.sequence <> t.seq;
END
$$;
COMMENT ON FUNCTION callmaster.move_element(callmaster.scripts, uuid, uuid) IS
    'Moves an element right after another one of the same script (after_id NULL: to the top), '
    'renumbering sequence 1..n in one statement (no access check or lock: callers do that). Arguments: '
    'sc (the script row), element_id, after_id. Errors: 22023 after itself; 23503 (422) after_id not in '
    'the script.';

CREATE OR REPLACE FUNCTION callmaster.resolve_temp_ids(data jsonb, temp_ids jsonb)
    RETURNS jsonb
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT CASE
        WHEN jsonb_typeof(data) IS DISTINCT FROM 'object' THEN data
        ELSE data
            || CASE WHEN temp_ids ? (data ->> 'parent_element_id')
                    THEN jsonb_build_object('parent_element_id', temp_ids -> (data ->> 'parent_element_id'))
                    ELSE '{}'
               END
            || CASE WHEN jsonb_typeof(data -> 'group_members') = 'array'
                    THEN jsonb_build_object('group_members', (
                        SELECT coalesce(jsonb_agg(
                                   CASE WHEN jsonb_typeof(g.m) = 'object' AND temp_ids ? (g.m ->> 'child_element_id')
                                        THEN g.m || jsonb_build_object('child_element_id',
                                                                       temp_ids -> (g.m ->> 'child_element_id'))
                                        ELSE g.m
                                   END ORDER BY g.n), '[]')
                        FROM jsonb_array_elements(data -> 'group_members') WITH ORDINALITY AS g (m, n)))
                    ELSE '{}'
               END
    END
$$;
COMMENT ON FUNCTION callmaster.resolve_temp_ids(jsonb, jsonb) IS
    'Edit batches: replaces client-side temporary ids in an element document (parent_element_id, '
    'group_members[].child_element_id) by the ids the batch created for them. Arguments: data, temp_ids '
    '(object temp id -> element id). No errors.';

CREATE OR REPLACE FUNCTION callmaster.resolve_temp_id(value text, temp_ids jsonb)
    RETURNS uuid
    LANGUAGE sql
    IMMUTABLE
AS $$
    SELECT coalesce(temp_ids ->> value, value)::uuid
$$;
COMMENT ON FUNCTION callmaster.resolve_temp_id(text, jsonb) IS
    'Edit batches: the element id for value, which is either a temporary id created earlier in the '
    'batch or an element id. Arguments: value, temp_ids. Errors: 22P02 neither a known temporary id nor '
    'a uuid.';

CREATE OR REPLACE FUNCTION callmaster.apply_script_edits(script_id uuid, operations jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_script  callmaster.scripts := callmaster.writable_script(apply_script_edits.script_id);
    v_start   jsonb;
    v_temp    jsonb := '{}';
    v_results jsonb := '[]';
    v_op      jsonb;
    v_index   integer;
    v_kind    text;
    v_id      uuid;
    v_el      callmaster.script_elements;
    v_state   text;
    v_msg     text;
    v_detail  text;
    v_hint    text;
    v_constr  text;
    v_context text;
BEGIN
    IF jsonb_typeof(operations) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'operations must be a JSON array';
    END IF;
    -- One batch at a time per script; single-element writes (FOR SHARE) wait for it too.
    PERFORM 1 FROM callmaster.scripts AS s WHERE s.id = v_script.id FOR NO KEY UPDATE;
    PERFORM callmaster.live_lock_head(v_script.id);
    -- base_version is checked against the versions at the start of the batch, so earlier operations
    -- of the same batch (e.g. a move renumbering its neighbours) never make a later one stale.
    IF EXISTS (SELECT 1
               FROM jsonb_array_elements(operations) AS o
               WHERE jsonb_typeof(o) = 'object' AND o ? 'base_version') THEN
        SELECT coalesce(jsonb_object_agg(e.id, e.version), '{}') INTO v_start
        FROM callmaster.script_elements AS e
        WHERE e.script_id = v_script.id;
    END IF;

    FOR v_op, v_index IN
        SELECT o.value, (o.ordinality - 1)::integer
        FROM jsonb_array_elements(operations) WITH ORDINALITY AS o
        ORDER BY o.ordinality
    LOOP
        v_kind := NULL;
        BEGIN
            IF jsonb_typeof(v_op) IS DISTINCT FROM 'object' THEN
                RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'an operation must be a JSON object';
            END IF;
            v_kind := v_op ->> 'op';
            IF v_kind = 'create' THEN
                PERFORM callmaster.reject_unknown_keys(v_op, ARRAY['op', 'temp_id', 'data'], 'a create operation');
                IF v_op ? 'temp_id' AND v_temp ? (v_op ->> 'temp_id') THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '22023', MESSAGE = format('temp_id %s is used twice', v_op ->> 'temp_id');
                END IF;
                v_el := callmaster.insert_element(
                    v_script, callmaster.resolve_temp_ids(coalesce(v_op -> 'data', '{}'), v_temp));
                IF v_op ->> 'temp_id' IS NOT NULL THEN
                    v_temp := v_temp || jsonb_build_object(v_op ->> 'temp_id', v_el.id);
                END IF;
                v_results := v_results || jsonb_build_object(
                    'index', v_index, 'op', v_kind, 'id', v_el.id, 'temp_id', v_op -> 'temp_id',
                    'version', v_el.version);
            ELSIF v_kind IN ('update', 'delete', 'move') THEN
                PERFORM callmaster.reject_unknown_keys(
                    v_op,
                    CASE v_kind
                        WHEN 'update' THEN ARRAY['op', 'id', 'base_version', 'data']
                        WHEN 'delete' THEN ARRAY['op', 'id', 'base_version']
                        ELSE ARRAY['op', 'id', 'base_version', 'after_id']
                    END,
                    format('an %s operation', v_kind));
                v_id := callmaster.resolve_temp_id(v_op ->> 'id', v_temp);
                SELECT * INTO v_el
                FROM callmaster.script_elements AS e
                WHERE e.id = v_id
                  AND e.script_id = v_script.id
                FOR UPDATE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION USING
                        ERRCODE = '23503',
                        MESSAGE = format('element %s is not in script %s', coalesce(v_op ->> 'id', 'NULL'), v_script.id),
                        DETAIL = format('Key (id)=(%s) is not present in script %s.', v_op ->> 'id', v_script.id);
                END IF;
                IF v_op ? 'base_version' AND v_start ? v_id::text THEN
                    v_el.version := (v_start ->> v_id::text)::integer;
                    PERFORM callmaster.check_base_version(v_el, (v_op ->> 'base_version')::integer);
                END IF;
                IF v_kind = 'update' THEN
                    v_el := callmaster.update_element_row(
                        v_el, callmaster.resolve_temp_ids(coalesce(v_op -> 'data', '{}'), v_temp));
                    v_results := v_results || jsonb_build_object(
                        'index', v_index, 'op', v_kind, 'id', v_el.id, 'version', v_el.version);
                ELSIF v_kind = 'delete' THEN
                    DELETE FROM callmaster.script_elements AS e WHERE e.id = v_id;
                    v_results := v_results || jsonb_build_object(
                        'index', v_index, 'op', v_kind, 'id', v_id, 'version', NULL);
                ELSE
                    PERFORM callmaster.move_element(
                        v_script, v_id, callmaster.resolve_temp_id(v_op ->> 'after_id', v_temp));
                    v_results := v_results || (
                        SELECT jsonb_build_object('index', v_index, 'op', v_kind, 'id', e.id,
                                                  'version', e.version, 'sequence', e.sequence)
                        FROM callmaster.script_elements AS e
                        WHERE e.id = v_id);
                END IF;
            ELSE
                RAISE EXCEPTION USING
                    ERRCODE = '22023',
                    MESSAGE = format('op must be create, update, delete or move, not %s',
                                     coalesce(v_op ->> 'op', 'missing'));
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS
                v_state = RETURNED_SQLSTATE,
                v_msg = MESSAGE_TEXT,
                v_detail = PG_EXCEPTION_DETAIL,
                v_hint = PG_EXCEPTION_HINT,
                v_constr = CONSTRAINT_NAME,
                v_context = PG_EXCEPTION_CONTEXT;
            -- Re-raised, any error looks like Keel's own RAISE to the API (api.errors.raised_by_keel),
            -- which sends own DETAILs. PostgreSQL's own DETAILs quote stored rows ("Failing row contains
            -- (…)", "Key (…)=(…)"): pass on only a DETAIL that a RAISE of ours wrote.
            IF split_part(v_context, E'\n', 1) NOT LIKE '% at RAISE' THEN
                v_detail := NULL;
            END IF;
            RAISE EXCEPTION USING
                ERRCODE = v_state,
                MESSAGE = format('operations[%s] (%s): %s; nothing was applied', v_index, coalesce(v_kind, '?'),
                                 v_msg),
                DETAIL = coalesce(v_detail, ''),
                HINT = coalesce(v_hint, ''),
                CONSTRAINT = coalesce(v_constr, '');
        END;
    END LOOP;

    RETURN jsonb_build_object(
        'script_id', v_script.id,
        'applied', jsonb_array_length(operations),
        'temp_ids', v_temp,
        'results', v_results);
END
$$;
COMMENT ON FUNCTION callmaster.apply_script_edits(uuid, jsonb) IS
    'Applies an edit-queue batch to a script atomically, operations in order: {op: "create", temp_id?, '
    'data}, {op: "update", id, data, base_version?}, {op: "delete", id, base_version?}, {op: "move", id, '
    'after_id (null: to the top), base_version?}. A later operation may name an element created earlier '
    'by its temp_id (as id, after_id, parent_element_id or a group member). base_version is compared with '
    'the element''s version when the batch began (optimistic concurrency). Arguments: script_id, '
    'operations (jsonb array). Returns {script_id, applied, temp_ids, results: [{index, op, id, version}]}. '
    'Errors: the failing operation''s own SQLSTATE with the message prefixed "operations[i] (op): ", '
    'nothing applied — 22023 bad operation, 23503 (422) element not in the script, 55000 (409) stale '
    'base_version, and those of insert_element / update_element_row; P0002 script not found; 42501 crew.';

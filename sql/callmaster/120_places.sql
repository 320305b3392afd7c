-- Venues and departments of the requesting user. RLS keeps every statement to rows the user may
-- see (own rows; crew read a show's venue and its owner's departments) and change (own rows), so a
-- row of another owner is "not found" exactly like a missing one.

CREATE OR REPLACE FUNCTION callmaster.like_escape(term text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT replace(replace(replace(term, '\', '\\'), '%', '\%'), '_', '\_')
$$;
COMMENT ON FUNCTION callmaster.like_escape(text) IS
    'The term with LIKE wildcards (%, _) and the escape character (\) escaped, for a literal substring '
    'match with LIKE/ILIKE. Arguments: term (NULL gives NULL). No errors.';

CREATE OR REPLACE FUNCTION callmaster.raise_missing_or_read_only(what text, id uuid, readable boolean)
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    IF readable THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = format('%s %s belongs to another user; you may only read it', what, id),
            HINT = 'Only the owner changes it; you see it as crew of one of the owner''s shows.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('%s %s not found', what, id);
END
$$;
COMMENT ON FUNCTION callmaster.raise_missing_or_read_only(text, uuid, boolean) IS
    'Raises the error for a write that matched no row: 42501 when the row is readable by the caller (crew '
    'of the owner''s show), else P0002 not found. Arguments: what (e.g. ''venue''), id, readable. Always '
    'raises.';

-- Venues ---------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.list_venues(lim integer, skip integer, q text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_me      uuid := callmaster.require_user_id();
    v_pattern text := '%' || callmaster.like_escape(nullif(btrim(q), '')) || '%';
    v_result  jsonb;
BEGIN
    WITH mine AS (
        SELECT v.*
        FROM callmaster.venues AS v
        WHERE v.owner_id = v_me
          AND (v_pattern IS NULL OR v.name ILIKE v_pattern OR v.city ILIKE v_pattern)
    ),
    page AS (
        SELECT m.* FROM mine AS m ORDER BY lower(m.name), m.id LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(to_jsonb(p) ORDER BY lower(p.name), p.id) FROM page AS p), '[]'),
        'total', (SELECT count(*) FROM mine),
        'limit', lim,
        'offset', skip)
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.list_venues(integer, integer, text) IS
    'API: the requesting user''s venues ordered by name. Arguments: lim, skip (page), q (optional '
    'case-insensitive substring of name or city). Returns {items, total, limit, offset}. Errors: 42501 no '
    'request user.';

CREATE OR REPLACE FUNCTION callmaster.get_venue(venue_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.require_user_id();
    SELECT to_jsonb(v) INTO v_result FROM callmaster.venues AS v WHERE v.id = get_venue.venue_id;
    IF v_result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('venue %s not found', get_venue.venue_id);
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.get_venue(uuid) IS
    'API: one venue the requesting user may see (their own, or the venue of a show they crew). Arguments: '
    'venue_id. Errors: P0002 not found (or another owner''s); 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.create_venue(data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
    r    callmaster.venues := jsonb_populate_record(NULL::callmaster.venues, data);
BEGIN
    INSERT INTO callmaster.venues (
        owner_id, name, address, city, state, capacity, venue_type, contact_name, contact_email,
        contact_phone, stage_width, stage_depth, fly_height, equipment, notes, rental_rate, minimum_rental)
    VALUES (
        v_me, r.name, r.address, r.city, r.state, r.capacity, r.venue_type, r.contact_name, r.contact_email,
        r.contact_phone, r.stage_width, r.stage_depth, r.fly_height, coalesce(r.equipment, '[]'), r.notes,
        r.rental_rate, r.minimum_rental)
    RETURNING * INTO r;
    RETURN to_jsonb(r);
END
$$;
COMMENT ON FUNCTION callmaster.create_venue(jsonb) IS
    'API: creates a venue owned by the requesting user. Arguments: data (jsonb object with the venue''s '
    'columns; name required; id, owner_id and timestamps are ignored). Returns the venue. Errors: 23502 '
    'no name; 23514 a check fails (capacity >= 0, contact_email format, non-negative sizes and rates, '
    'equipment an array, venue_type snake_case); 22xxx a value of the wrong type; 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.update_venue(venue_id uuid, patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_patch jsonb := patch - ARRAY['id', 'owner_id', 'created_at', 'updated_at'];
    r       callmaster.venues;
BEGIN
    PERFORM callmaster.require_user_id();
    IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'patch must be a JSON object';
    END IF;
    UPDATE callmaster.venues AS v
    SET (name, address, city, state, capacity, venue_type, contact_name, contact_email, contact_phone,
         stage_width, stage_depth, fly_height, equipment, notes, rental_rate, minimum_rental) = (
        SELECT n.name, n.address, n.city, n.state, n.capacity, n.venue_type, n.contact_name, n.contact_email,
               n.contact_phone, n.stage_width, n.stage_depth, n.fly_height, coalesce(n.equipment, '[]'),
               n.notes, n.rental_rate, n.minimum_rental
        FROM jsonb_populate_record(v, v_patch) AS n)
    WHERE v.id = update_venue.venue_id
    RETURNING * INTO r;
    IF NOT FOUND THEN
        PERFORM callmaster.raise_missing_or_read_only(
            'venue', update_venue.venue_id, EXISTS (SELECT 1 FROM callmaster.venues AS x WHERE x.id = update_venue.venue_id));
    END IF;
    RETURN to_jsonb(r);
END
$$;
COMMENT ON FUNCTION callmaster.update_venue(uuid, jsonb) IS
    'API: changes the given columns of one of the requesting user''s venues (keys absent from patch keep '
    'their value; null clears). Arguments: venue_id, patch (jsonb object). Returns the venue. Errors: '
    'P0002 not found (or another owner''s); 42501 read-only (crew of the owner''s show) or no request user; '
    '23502/23514/22xxx as create_venue.';

CREATE OR REPLACE FUNCTION callmaster.delete_venue(venue_id uuid)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    v_owner    uuid;
    v_detached integer;
BEGIN
    PERFORM callmaster.request_user_id();
    -- The lock keeps new shows from taking this venue between the detach and the delete.
    SELECT v.owner_id INTO v_owner FROM callmaster.venues AS v WHERE v.id = delete_venue.venue_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM callmaster.raise_missing_or_read_only(
            'venue', delete_venue.venue_id, EXISTS (SELECT 1 FROM callmaster.venues AS x WHERE x.id = delete_venue.venue_id));
    END IF;
    UPDATE callmaster.shows AS s
    SET venue_id = NULL
    WHERE s.venue_id = delete_venue.venue_id
      AND s.owner_id = v_owner;
    GET DIAGNOSTICS v_detached = ROW_COUNT;
    DELETE FROM callmaster.venues AS v WHERE v.id = delete_venue.venue_id;
    RETURN v_detached;
END
$$;
COMMENT ON FUNCTION callmaster.delete_venue(uuid) IS
    'Detaches every show at the venue (venue_id set to NULL) and deletes the venue, in one transaction. '
    'Arguments: venue_id. Returns the number of shows detached. From the API only the owner may delete. '
    'Errors: P0002 venue not found (or, through the API, another owner''s); 42501 (API) read-only for the '
    'caller (crew of a show there), or unknown or deactivated user.';

-- Departments ----------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION callmaster.list_departments(lim integer, skip integer, q text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_me      uuid := callmaster.require_user_id();
    v_pattern text := '%' || callmaster.like_escape(nullif(btrim(q), '')) || '%';
    v_result  jsonb;
BEGIN
    WITH mine AS (
        SELECT d.*
        FROM callmaster.departments AS d
        WHERE d.owner_id = v_me
          AND (v_pattern IS NULL OR d.name ILIKE v_pattern OR d.initials ILIKE v_pattern)
    ),
    page AS (
        SELECT m.* FROM mine AS m ORDER BY lower(m.name), m.id LIMIT lim OFFSET skip
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(to_jsonb(p) ORDER BY lower(p.name), p.id) FROM page AS p), '[]'),
        'total', (SELECT count(*) FROM mine),
        'limit', lim,
        'offset', skip)
    INTO v_result;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.list_departments(integer, integer, text) IS
    'API: the requesting user''s departments ordered by name. Arguments: lim, skip (page), q (optional '
    'case-insensitive substring of name or initials). Returns {items, total, limit, offset}. Errors: 42501 '
    'no request user.';

CREATE OR REPLACE FUNCTION callmaster.get_department(department_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_result jsonb;
BEGIN
    PERFORM callmaster.require_user_id();
    SELECT to_jsonb(d) INTO v_result
    FROM callmaster.departments AS d
    WHERE d.id = get_department.department_id;
    IF v_result IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = 'P0002', MESSAGE = format('department %s not found', get_department.department_id);
    END IF;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION callmaster.get_department(uuid) IS
    'API: one department the requesting user may see (their own, or one of the owner of a show they '
    'crew). Arguments: department_id. Errors: P0002 not found (or another owner''s); 42501 no request user.';

CREATE OR REPLACE FUNCTION callmaster.create_department(data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_me uuid := callmaster.require_user_id();
    r    callmaster.departments := jsonb_populate_record(NULL::callmaster.departments, data);
BEGIN
    INSERT INTO callmaster.departments (owner_id, name, description, color, initials)
    VALUES (v_me, btrim(r.name), r.description, r.color, r.initials)
    RETURNING * INTO r;
    RETURN to_jsonb(r);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING
        ERRCODE = '23505',
        MESSAGE = format('you already have a department named %s', btrim(r.name)),
        HINT = 'Department names are unique per owner, ignoring case.';
END
$$;
COMMENT ON FUNCTION callmaster.create_department(jsonb) IS
    'API: creates a department owned by the requesting user. Arguments: data {name, description?, color? '
    '(#RRGGBB), initials? (1-5 letters or digits)}. Returns the department. Errors: 23505 the user has a '
    'department of that name (case-insensitive); 23502 no name; 23514 bad colour or initials; 42501 no '
    'request user.';

CREATE OR REPLACE FUNCTION callmaster.update_department(department_id uuid, patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_patch jsonb := patch - ARRAY['id', 'owner_id', 'created_at', 'updated_at'];
    r       callmaster.departments;
BEGIN
    PERFORM callmaster.require_user_id();
    IF jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'patch must be a JSON object';
    END IF;
    UPDATE callmaster.departments AS d
    SET (name, description, color, initials) = (
        SELECT btrim(n.name), n.description, n.color, n.initials
        FROM jsonb_populate_record(d, v_patch) AS n)
    WHERE d.id = update_department.department_id
    RETURNING * INTO r;
    IF NOT FOUND THEN
        PERFORM callmaster.raise_missing_or_read_only(
            'department', update_department.department_id, EXISTS (SELECT 1 FROM callmaster.departments AS x WHERE x.id = update_department.department_id));
    END IF;
    RETURN to_jsonb(r);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING
        ERRCODE = '23505',
        MESSAGE = format('you already have a department named %s', btrim(v_patch ->> 'name')),
        HINT = 'Department names are unique per owner, ignoring case.';
END
$$;
COMMENT ON FUNCTION callmaster.update_department(uuid, jsonb) IS
    'API: changes the given columns of one of the requesting user''s departments (absent keys keep their '
    'value; null clears). Arguments: department_id, patch (jsonb object). Returns the department. Errors: '
    'P0002 not found (or another owner''s); 23505 duplicate name; 23502/23514 as create_department; 42501 '
    'read-only (crew of the owner''s show) or no request user.';

CREATE OR REPLACE FUNCTION callmaster.merge_department_assignments()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    -- ON DELETE SET NULL turns an assignment "X in this department" into "X, no department"; when the
    -- show already has that assignment, the unique key (NULLS NOT DISTINCT) would refuse the delete
    -- with 23505. The two then mean the same thing, so the department's copy goes and the other stays.
    DELETE FROM callmaster.crew_assignments AS a
    WHERE a.department_id = OLD.id
      AND a.owner_id = OLD.owner_id
      AND EXISTS (
          SELECT FROM callmaster.crew_assignments AS k
          WHERE k.show_id = a.show_id AND k.owner_id = a.owner_id AND k.member_id = a.member_id
            AND k.department_id IS NULL
      );
    RETURN OLD;
END
$$;
COMMENT ON FUNCTION callmaster.merge_department_assignments() IS
    'Trigger function (BEFORE DELETE on callmaster.departments): removes the department''s crew '
    'assignments whose person is already on the same show without a department, so the ON DELETE SET '
    'NULL that follows cannot collide with crew_assignments_show_user_department_key. Raises nothing.';
REVOKE EXECUTE ON FUNCTION callmaster.merge_department_assignments() FROM PUBLIC;

CREATE OR REPLACE TRIGGER departments_merge_assignments
    BEFORE DELETE ON callmaster.departments
    FOR EACH ROW EXECUTE FUNCTION callmaster.merge_department_assignments();

CREATE OR REPLACE FUNCTION callmaster.delete_department(department_id uuid)
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM callmaster.require_user_id();
    DELETE FROM callmaster.departments AS d WHERE d.id = delete_department.department_id;
    IF NOT FOUND THEN
        PERFORM callmaster.raise_missing_or_read_only(
            'department', delete_department.department_id, EXISTS (SELECT 1 FROM callmaster.departments AS x WHERE x.id = delete_department.department_id));
    END IF;
END
$$;
COMMENT ON FUNCTION callmaster.delete_department(uuid) IS
    'API: deletes one of the requesting user''s departments; crew assignments and script elements that '
    'named it keep existing with department_id NULL (an assignment the show already has without a '
    'department merges into it). Arguments: department_id. Errors: P0002 not found (or '
    'another owner''s); 42501 read-only (crew of the owner''s show) or no request user.';

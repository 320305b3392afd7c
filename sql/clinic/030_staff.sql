-- Staff: create, read, update, list. Writes are admin-only (enforced by the policies in
-- 090_records_policies.sql); doctors are staff with role 'doctor'.

CREATE OR REPLACE TRIGGER staff_touch_updated_at
    BEFORE UPDATE ON clinic.staff
    FOR EACH ROW EXECUTE FUNCTION clinic.touch_updated_at();

CREATE OR REPLACE FUNCTION clinic.create_staff(data jsonb)
    RETURNS jsonb
    LANGUAGE sql
AS $$
    INSERT INTO clinic.staff (clinic_id, name, email, role, specialty, is_active)
    VALUES (
        clinic.tenant_id((data ->> 'clinic_id')::uuid),
        data ->> 'name',
        btrim(data ->> 'email'),
        data ->> 'role',
        data ->> 'specialty',
        coalesce((data ->> 'is_active')::boolean, true)
    )
    RETURNING to_jsonb(staff.*)
$$;
COMMENT ON FUNCTION clinic.create_staff(jsonb) IS
    'Adds a staff member to the current clinic. data: {name, email, role, specialty?, is_active?, '
    'clinic_id? (DBA use only)}. Returns the row as JSON. Errors: 23505 e-mail already used in the clinic '
    '(case-insensitive); 23514 empty name, bad e-mail or role; 23502 missing required field; 42501 caller '
    'is not an admin of the clinic.';

CREATE OR REPLACE FUNCTION clinic.get_staff(id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(s) INTO result FROM clinic.staff AS s WHERE s.id = get_staff.id;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'staff member not found';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.get_staff(uuid) IS
    'One staff member of the current clinic as JSON. Errors: P0002 not found (or another clinic''s).';

CREATE OR REPLACE FUNCTION clinic.update_staff(id uuid, data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    result jsonb;
BEGIN
    UPDATE clinic.staff AS s SET
        name      = CASE WHEN data ? 'name' THEN data ->> 'name' ELSE s.name END,
        email     = CASE WHEN data ? 'email' THEN btrim(data ->> 'email') ELSE s.email END,
        role      = CASE WHEN data ? 'role' THEN data ->> 'role' ELSE s.role END,
        specialty = CASE WHEN data ? 'specialty' THEN data ->> 'specialty' ELSE s.specialty END,
        is_active = CASE WHEN data ? 'is_active' THEN (data ->> 'is_active')::boolean ELSE s.is_active END
    WHERE s.id = update_staff.id
    RETURNING to_jsonb(s) INTO result;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'staff member not found';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.update_staff(uuid, jsonb) IS
    'Changes the keys present in data (name, email, role, specialty, is_active) of one staff member; '
    'returns the row as JSON. Errors: P0002 not found, another clinic''s, or caller not an admin; 23505 '
    'e-mail taken; 23514 bad value; 23502 a required field set to null.';

CREATE OR REPLACE FUNCTION clinic.list_staff(
    role text DEFAULT NULL,
    is_active boolean DEFAULT NULL,
    q text DEFAULT NULL,
    page_limit integer DEFAULT 50,
    page_offset integer DEFAULT 0
)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    result jsonb;
BEGIN
    WITH matched AS (
        SELECT s.*
        FROM clinic.staff AS s
        WHERE (list_staff.role IS NULL OR s.role = list_staff.role)
          AND (list_staff.is_active IS NULL OR s.is_active = list_staff.is_active)
          AND (list_staff.q IS NULL
               OR s.name ILIKE clinic.like_pattern(list_staff.q)
               OR s.email ILIKE clinic.like_pattern(list_staff.q))
    ), page AS (
        SELECT * FROM matched ORDER BY name, id LIMIT page_limit OFFSET page_offset
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(to_jsonb(page) ORDER BY page.name, page.id) FROM page), '[]'),
        'total', (SELECT count(*) FROM matched)
    ) INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.list_staff(text, boolean, text, integer, integer) IS
    'A page of the current clinic''s staff ordered by name: {items, total}. Filters (NULL = any): role, '
    'is_active, q (substring of name or e-mail). Raises nothing.';

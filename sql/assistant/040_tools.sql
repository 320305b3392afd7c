-- Read-only tools the assistant's model may call. Each is assistant.tool_<name>(args jsonb) RETURNS jsonb,
-- SECURITY INVOKER and run by the worker under the asking staff member's claims, so row-level security
-- and the explicit clinic filter keep every answer inside the caller's clinic. api/assistant/tools.py lists
-- them for the model (one line each).

CREATE OR REPLACE FUNCTION assistant.tool_clinic()
    RETURNS uuid
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    clinic uuid := keel.current_clinic_id();
BEGIN
    IF clinic IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'assistant tools answer within a clinic only',
            HINT = 'Set request.jwt.claims with a clinic_id (the worker sets the asking staff member''s claims).';
    END IF;
    RETURN clinic;
END
$$;
COMMENT ON FUNCTION assistant.tool_clinic() IS
    'The clinic a tool answers for: the clinic_id claim. Errors: 42501 when there is none.';

CREATE OR REPLACE FUNCTION assistant.tool_find_patient(args jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    clinic uuid := assistant.tool_clinic();
    wanted text := upper(btrim(args ->> 'uhid'));
    result jsonb;
BEGIN
    IF wanted IS NULL OR wanted = '' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'uhid is required';
    END IF;
    SELECT jsonb_build_object(
        'found', true,
        'uhid', p.uhid,
        'name', p.name,
        'gender', p.gender,
        'age', CASE WHEN p.dob IS NOT NULL THEN extract(year FROM age(current_date, p.dob))::int END,
        'city', p.city,
        'status', p.status,
        'registration_date', p.registration_date,
        'assigned_doctor', d.name,
        'converted_from_lead', p.lead_id IS NOT NULL
    ) INTO result
    FROM clinic.patients AS p
    LEFT JOIN clinic.staff AS d ON d.clinic_id = p.clinic_id AND d.id = p.assigned_doctor_id
    WHERE p.clinic_id = clinic AND upper(p.uhid) = wanted;
    RETURN coalesce(result, jsonb_build_object('found', false, 'uhid', wanted));
END
$$;
COMMENT ON FUNCTION assistant.tool_find_patient(jsonb) IS
    'Assistant tool: a patient of the caller''s clinic by UHID. args: {"uhid": "P-000123"}. Returns '
    '{found, uhid, name, gender, age, city, status, registration_date, assigned_doctor, converted_from_lead} or '
    '{found: false, uhid}. Errors: 22023 without uhid; 42501 without a clinic_id claim.';

CREATE OR REPLACE FUNCTION assistant.tool_clinic_overview(args jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    clinic uuid := assistant.tool_clinic();
    days integer := coalesce((args ->> 'days')::integer, 7);
    since date;
BEGIN
    IF days < 1 OR days > 3660 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'days must be between 1 and 3660';
    END IF;
    since := current_date - (days - 1);
    RETURN jsonb_build_object(
        'clinic', (SELECT c.name FROM clinic.clinics AS c WHERE c.id = clinic),
        'period', jsonb_build_object('from', since, 'to', current_date, 'days', days),
        'leads_total', (SELECT count(*) FROM clinic.leads AS l WHERE l.clinic_id = clinic),
        'leads_created_in_period', (
            SELECT count(*) FROM clinic.leads AS l WHERE l.clinic_id = clinic AND l.date_added >= since
        ),
        'lead_status_counts', coalesce((
            SELECT jsonb_object_agg(s.status, s.n)
            FROM (SELECT l.status, count(*) AS n FROM clinic.leads AS l WHERE l.clinic_id = clinic GROUP BY 1) AS s
        ), '{}'::jsonb),
        'patients_total', (SELECT count(*) FROM clinic.patients AS p WHERE p.clinic_id = clinic),
        'patients_registered_in_period', (
            SELECT count(*) FROM clinic.patients AS p WHERE p.clinic_id = clinic AND p.registration_date >= since
        ),
        'active_staff_by_role', coalesce((
            SELECT jsonb_object_agg(s.role, s.n)
            FROM (
                SELECT st.role, count(*) AS n FROM clinic.staff AS st
                WHERE st.clinic_id = clinic AND st.is_active GROUP BY 1
            ) AS s
        ), '{}'::jsonb)
    );
END
$$;
COMMENT ON FUNCTION assistant.tool_clinic_overview(jsonb) IS
    'Assistant tool: headline figures of the caller''s clinic — leads in total, created in the last `days` days '
    'and by status; patients in total and registered in the period; active staff by role. args: {"days": 7} '
    '(optional, 1..3660). Errors: 22023 bad days; 42501 without a clinic_id claim.';

CREATE OR REPLACE FUNCTION assistant.tool_list_doctors(args jsonb)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT jsonb_build_object('doctors', coalesce(jsonb_agg(
        jsonb_build_object('name', s.name, 'specialty', s.specialty) ORDER BY s.name
    ), '[]'::jsonb))
    FROM clinic.staff AS s
    WHERE s.clinic_id = (SELECT assistant.tool_clinic()) AND s.role = 'doctor' AND s.is_active
$$;
COMMENT ON FUNCTION assistant.tool_list_doctors(jsonb) IS
    'Assistant tool: the active doctors of the caller''s clinic with their specialty. args: {} (ignored). '
    'Errors: 42501 without a clinic_id claim.';

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
        'age', CASE WHEN p.dob IS NOT NULL THEN extract(year FROM age(assistant.tool_today(), p.dob))::int END,
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
    today date := assistant.tool_today();
    since date;
BEGIN
    IF days < 1 OR days > 3660 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'days must be between 1 and 3660';
    END IF;
    since := today - (days - 1);
    RETURN jsonb_build_object(
        'clinic', (SELECT c.name FROM clinic.clinics AS c WHERE c.id = clinic),
        'period', jsonb_build_object('from', since, 'to', today, 'days', days),
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

CREATE OR REPLACE FUNCTION assistant.tool_today()
    RETURNS date
    LANGUAGE sql
    STABLE
AS $$
    SELECT coalesce((SELECT (now() AT TIME ZONE c.timezone)::date FROM clinic.clinics AS c
                     WHERE c.id = (SELECT assistant.tool_clinic())), current_date)
$$;
COMMENT ON FUNCTION assistant.tool_today() IS
    'Today''s date in the caller''s clinic''s timezone. Errors: 42501 without a clinic_id claim.';

CREATE OR REPLACE FUNCTION assistant.tool_date_arg(args jsonb, key text, fallback date)
    RETURNS date
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    raw text := nullif(btrim(args ->> key), '');
BEGIN
    IF raw IS NULL THEN
        RETURN fallback;
    END IF;
    IF raw !~ '^\d{4}-\d{2}-\d{2}$' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('%s must be a date as YYYY-MM-DD', key);
    END IF;
    RETURN raw::date;
END
$$;
COMMENT ON FUNCTION assistant.tool_date_arg(jsonb, text, date) IS
    'Argument key of a tool''s args as a date (YYYY-MM-DD), fallback when absent. Errors: 22023 not a date; '
    '22008 an impossible date.';

CREATE OR REPLACE FUNCTION assistant.tool_appointments(args jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    clinic uuid := assistant.tool_clinic();
    v_day date := assistant.tool_date_arg(args, 'date', assistant.tool_today());
    wanted text := nullif(btrim(args ->> 'status'), '');
BEGIN
    IF wanted IS NOT NULL AND wanted NOT IN ('scheduled', 'checked_in', 'completed', 'cancelled', 'no_show') THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('unknown status %L', wanted);
    END IF;
    RETURN jsonb_build_object(
        'date', v_day,
        'total', (SELECT count(*) FROM clinic.appointments AS a
                  WHERE a.clinic_id = clinic AND a.appointment_date = v_day
                    AND (wanted IS NULL OR a.status = wanted)),
        'appointments', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                       'start', to_char(a.start_time, 'HH24:MI'), 'end', to_char(a.end_time, 'HH24:MI'),
                       'patient', a.patient_name_snapshot, 'doctor', a.doctor_name_snapshot,
                       'status', a.status, 'type', a.type, 'visit_reason', a.visit_reason
                   ) ORDER BY a.start_time, a.id)
            FROM (
                SELECT * FROM clinic.appointments AS x
                WHERE x.clinic_id = clinic AND x.appointment_date = v_day AND (wanted IS NULL OR x.status = wanted)
                ORDER BY x.start_time, x.id
                LIMIT 100
            ) AS a
        ), '[]'::jsonb)
    );
END
$$;
COMMENT ON FUNCTION assistant.tool_appointments(jsonb) IS
    'Assistant tool: the caller''s clinic''s appointments of one day (default today in the clinic''s timezone), '
    'in time order, at most 100: start, end, patient, doctor, status, type, visit_reason; with the total. '
    'args: {"date": "YYYY-MM-DD", "status": "no_show"} (both optional). Errors: 22023 bad date or status; '
    '42501 without a clinic_id claim.';

CREATE OR REPLACE FUNCTION assistant.tool_appointment_stats(args jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    clinic uuid := assistant.tool_clinic();
    today date := assistant.tool_today();
    v_from date := assistant.tool_date_arg(args, 'from', date_trunc('week', today::timestamp)::date);
    v_to date := assistant.tool_date_arg(args, 'to', today);
BEGIN
    IF v_to < v_from OR v_to - v_from > 3660 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'to must be on or after from, at most ten years later';
    END IF;
    RETURN jsonb_build_object(
        'from', v_from,
        'to', v_to,
        'total', (SELECT count(*) FROM clinic.appointments AS a
                  WHERE a.clinic_id = clinic AND a.appointment_date BETWEEN v_from AND v_to),
        'by_status', (
            SELECT jsonb_object_agg(s.status, coalesce(n.count, 0))
            FROM unnest(ARRAY['scheduled', 'checked_in', 'completed', 'cancelled', 'no_show']) AS s(status)
            LEFT JOIN (
                SELECT a.status, count(*) AS count FROM clinic.appointments AS a
                WHERE a.clinic_id = clinic AND a.appointment_date BETWEEN v_from AND v_to
                GROUP BY a.status
            ) AS n ON n.status = s.status
        ),
        'by_doctor', coalesce((
            SELECT jsonb_agg(jsonb_build_object('doctor', d.doctor, 'total', d.total, 'no_show', d.no_show,
                                                'cancelled', d.cancelled, 'completed', d.completed)
                             ORDER BY d.total DESC, d.doctor)
            FROM (
                SELECT a.doctor_name_snapshot AS doctor, count(*) AS total,
                       count(*) FILTER (WHERE a.status = 'no_show') AS no_show,
                       count(*) FILTER (WHERE a.status = 'cancelled') AS cancelled,
                       count(*) FILTER (WHERE a.status = 'completed') AS completed
                FROM clinic.appointments AS a
                WHERE a.clinic_id = clinic AND a.appointment_date BETWEEN v_from AND v_to
                GROUP BY a.doctor_name_snapshot
            ) AS d
        ), '[]'::jsonb)
    );
END
$$;
COMMENT ON FUNCTION assistant.tool_appointment_stats(jsonb) IS
    'Assistant tool: live counts of the caller''s clinic''s appointments between from and to (inclusive; '
    'default this week, Monday to today, in the clinic''s timezone), by status (scheduled, checked_in, '
    'completed, cancelled, no_show) and by doctor. args: {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"} (optional). '
    'Errors: 22023 bad dates or range; 42501 without a clinic_id claim.';

CREATE OR REPLACE FUNCTION assistant.tool_control_tower(args jsonb)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
AS $$
    SELECT clinic.control_tower_summary((SELECT assistant.tool_clinic()))
$$;
COMMENT ON FUNCTION assistant.tool_control_tower(jsonb) IS
    'Assistant tool: the control-tower summary of the caller''s clinic (clinic.control_tower_summary): KPIs '
    '(conversion, CRO success and churn rates, average days to convert), this month''s figures, the funnel, '
    'lead status counts, leads by source, today''s appointments, and when the figures were refreshed. '
    'args: {} (ignored). Errors: 42501 without a clinic_id claim; those of clinic.control_tower_summary.';

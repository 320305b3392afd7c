-- Appointment calls behind /api/appointments (one call per request). They run with the caller's
-- privileges: as keel_api, row-level security limits them to the clinic of the request's claims.

CREATE OR REPLACE FUNCTION clinic.appointment_json(a clinic.appointments)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    SELECT to_jsonb(a) - 'slot'
$$;
COMMENT ON FUNCTION clinic.appointment_json(clinic.appointments) IS
    'The API representation of an appointment row (every column except the internal slot range). Raises nothing.';

CREATE OR REPLACE FUNCTION clinic.assert_slot_free(
    p_clinic_id uuid,
    p_doctor_id uuid,
    p_date date,
    p_start time,
    p_end time,
    p_except_id uuid DEFAULT NULL
)
    RETURNS void
    LANGUAGE plpgsql
    -- A generic plan, always. The custom plan's estimate (one day of the clinic, by the status index) is
    -- lower than the generic plan's (the doctor-and-day index), so the plan cache never switched to the
    -- generic one and planned this probe afresh on every booking: ~0.2-0.8 ms, most of the probe's
    -- ~240 µs per call and a sixth of a booking's database CPU (bench/README.md, booking vs floor). The
    -- generic plan is the doctor-and-day index scan, the right one at any size of the clinic.
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    c record;
BEGIN
    SELECT a.id, a.appointment_date, a.start_time, a.end_time, a.doctor_name_snapshot
    INTO c
    FROM clinic.appointments AS a
    WHERE a.clinic_id = p_clinic_id
      AND a.doctor_id = p_doctor_id
      AND a.appointment_date = p_date  -- a slot lies within its day: this keeps the probe to one day
      AND a.status <> 'cancelled'
      AND a.slot && tsrange(p_date + p_start, p_date + p_end, '[)')
      AND a.id IS DISTINCT FROM p_except_id
    ORDER BY a.start_time
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '23P01',
            CONSTRAINT = 'appointments_no_overlap',
            MESSAGE = format('%s is already booked on %s from %s to %s',
                             coalesce(c.doctor_name_snapshot, 'the doctor'), c.appointment_date,
                             to_char(c.start_time, 'HH24:MI'), to_char(c.end_time, 'HH24:MI')),
            DETAIL = format('Conflicting appointment %s (%s %s-%s).', c.id, c.appointment_date,
                            to_char(c.start_time, 'HH24:MI'), to_char(c.end_time, 'HH24:MI')),
            HINT = 'Choose a slot that does not overlap it; back-to-back slots are fine.';
    END IF;
END
$$;
COMMENT ON FUNCTION clinic.assert_slot_free(uuid, uuid, date, time, time, uuid) IS
    'Raises 23P01 naming the conflicting appointment and its time when the doctor has a live (not cancelled) '
    'appointment overlapping the slot; returns otherwise. Arguments: clinic, doctor, date, start (< end), '
    'end, an appointment id to ignore (the one being moved). Exact only while the doctor''s schedule lock '
    '(clinic.lock_doctor_schedule) is held.';

CREATE OR REPLACE FUNCTION clinic.appointment_overlap_error(
    p_clinic_id uuid,
    p_doctor_id uuid,
    p_date date,
    p_start time,
    p_end time,
    p_except_id uuid DEFAULT NULL
)
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM clinic.assert_slot_free(p_clinic_id, p_doctor_id, p_date, p_start, p_end, p_except_id);
    RAISE EXCEPTION USING
        ERRCODE = '23P01',
        CONSTRAINT = 'appointments_no_overlap',
        MESSAGE = format('the doctor is already booked between %s and %s on %s',
                         to_char(p_start, 'HH24:MI'), to_char(p_end, 'HH24:MI'), p_date),
        HINT = 'Choose a slot that does not overlap; back-to-back slots are fine.';
END
$$;
COMMENT ON FUNCTION clinic.appointment_overlap_error(uuid, uuid, date, time, time, uuid) IS
    'Raises the overlap error for a slot of a doctor (after an exclusion violation), naming the conflicting '
    'appointment and its time when it is visible. Arguments as clinic.assert_slot_free. Always raises 23P01.';

CREATE OR REPLACE FUNCTION clinic.book_appointment(p_data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    v_clinic uuid := keel.current_clinic_id();
    v_doctor uuid;
    v_date date;
    v_start time;
    v_end time;
    r clinic.appointments;
BEGIN
    IF v_clinic IS NULL THEN
        -- DBA in psql: the patient decides (the snapshot trigger fills clinic_id).
        IF keel.current_claims() IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'the request carries no clinic_id claim';
        END IF;
    END IF;
    IF p_data IS NULL OR jsonb_typeof(p_data) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'appointment data must be a JSON object';
    END IF;
    v_doctor := (p_data ->> 'doctor_id')::uuid;
    v_date := (p_data ->> 'appointment_date')::date;
    v_start := (p_data ->> 'start_time')::time;
    v_end := (p_data ->> 'end_time')::time;
    -- Claim the doctor's schedule (the snapshot trigger takes the same lock) and check the slot under
    -- it: exact, and it names the conflict without a subtransaction to catch the exclusion violation.
    -- Incomplete or inverted input is left to the INSERT's constraints and triggers to report.
    IF v_doctor IS NOT NULL AND v_date IS NOT NULL AND v_start < v_end THEN
        PERFORM clinic.lock_doctor_schedule(v_doctor);
        PERFORM clinic.assert_slot_free(
            coalesce(v_clinic, (SELECT pt.clinic_id FROM clinic.patients AS pt
                                WHERE pt.id = (p_data ->> 'patient_id')::uuid)),
            v_doctor, v_date, v_start, v_end
        );
    END IF;
    INSERT INTO clinic.appointments (
        clinic_id, patient_id, lead_id, doctor_id, appointment_date, start_time, end_time,
        type, visit_reason, source
    )
    VALUES (
        v_clinic,
        (p_data ->> 'patient_id')::uuid,
        (p_data ->> 'lead_id')::uuid,
        v_doctor,
        v_date,
        v_start,
        v_end,
        coalesce(p_data ->> 'type', 'consultation'),
        p_data ->> 'visit_reason',
        p_data ->> 'source'
    )
    RETURNING * INTO r;
    RETURN clinic.appointment_json(r);
END
$$;
COMMENT ON FUNCTION clinic.book_appointment(jsonb) IS
    'Books an appointment (status scheduled) in the request''s clinic and returns it with its snapshots. '
    'Argument: JSON object with patient_id, doctor_id, appointment_date (YYYY-MM-DD), start_time, end_time '
    '(HH:MM[:SS], clinic local time), optional type (default consultation), visit_reason, source, lead_id. '
    'Errors: 23P01 when the doctor has an overlapping live appointment (the message names it); 23503 when '
    'the patient, doctor or lead is not of this clinic; 22023 when doctor_id is not an active doctor; '
    '23514 when end_time <= start_time, the date is outside 1900-2199 or type is malformed; 23502 when a required field is missing; '
    '22P02/22007/22008 for malformed values; 42501 for a request without a clinic.';

CREATE OR REPLACE FUNCTION clinic.get_appointment(p_id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    r clinic.appointments;
BEGIN
    SELECT * INTO r FROM clinic.appointments AS a WHERE a.id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('appointment %s not found', p_id);
    END IF;
    RETURN clinic.appointment_json(r);
END
$$;
COMMENT ON FUNCTION clinic.get_appointment(uuid) IS
    'One appointment of the request''s clinic. Errors: P0002 when it does not exist or belongs to another clinic.';

CREATE OR REPLACE FUNCTION clinic.list_appointments(
    p_date date DEFAULT NULL,
    p_doctor_id uuid DEFAULT NULL,
    p_status text DEFAULT NULL,
    p_patient_id uuid DEFAULT NULL,
    p_from date DEFAULT NULL,
    p_to date DEFAULT NULL,
    p_limit integer DEFAULT 50,
    p_offset integer DEFAULT 0
)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    v_clinic uuid := keel.current_clinic_id();
    v_where text := 'a.clinic_id = $1';
    v_result jsonb;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 500 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'limit must be between 1 and 500';
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'offset must be 0 or more';
    END IF;
    IF p_status IS NOT NULL
       AND p_status NOT IN ('scheduled', 'checked_in', 'completed', 'cancelled', 'no_show') THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('unknown status %L', p_status),
            HINT = 'status is one of scheduled, checked_in, completed, cancelled, no_show.';
    END IF;
    IF v_clinic IS NULL THEN
        -- DBA in psql without claims: every clinic.
        v_where := '($1::uuid IS NULL)';
    END IF;
    -- Only the filters given enter the query, planned for these values: each is served by an index
    -- leading with clinic_id (date, doctor, patient, status).
    IF p_date IS NOT NULL THEN v_where := v_where || ' AND a.appointment_date = $2'; END IF;
    IF p_doctor_id IS NOT NULL THEN v_where := v_where || ' AND a.doctor_id = $3'; END IF;
    IF p_status IS NOT NULL THEN v_where := v_where || ' AND a.status = $4'; END IF;
    IF p_patient_id IS NOT NULL THEN v_where := v_where || ' AND a.patient_id = $5'; END IF;
    IF p_from IS NOT NULL THEN v_where := v_where || ' AND a.appointment_date >= $6'; END IF;
    IF p_to IS NOT NULL THEN v_where := v_where || ' AND a.appointment_date <= $7'; END IF;

    EXECUTE format(
        'SELECT jsonb_build_object('
        '  ''items'', coalesce((SELECT jsonb_agg(clinic.appointment_json(p) ORDER BY p.appointment_date, p.start_time, p.id)'
        '                       FROM (SELECT a.* FROM clinic.appointments AS a WHERE %1$s'
        '                             ORDER BY a.appointment_date, a.start_time, a.id LIMIT $8 OFFSET $9) AS p), ''[]''::jsonb),'
        '  ''total'', (SELECT count(*) FROM clinic.appointments AS a WHERE %1$s))',
        v_where
    )
    INTO v_result
    USING v_clinic, p_date, p_doctor_id, p_status, p_patient_id, p_from, p_to, p_limit, p_offset;
    RETURN v_result || jsonb_build_object('limit', p_limit, 'offset', p_offset);
END
$$;
COMMENT ON FUNCTION clinic.list_appointments(date, uuid, text, uuid, date, date, integer, integer) IS
    'A page of the request''s clinic''s appointments, ordered by date, start time, id: '
    '{"items": [...], "total": n, "limit": l, "offset": o}. Arguments (all optional): date, doctor_id, status, '
    'patient_id, from/to (inclusive date range), limit (1-500, default 50), offset. '
    'Errors: 22023 for an unknown status or a limit/offset out of range.';

CREATE OR REPLACE FUNCTION clinic.update_appointment(p_id uuid, p_patch jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    cur clinic.appointments;
    r clinic.appointments;
    v_unknown text;
BEGIN
    IF p_patch IS NULL OR jsonb_typeof(p_patch) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'the patch must be a JSON object';
    END IF;
    SELECT k INTO v_unknown
    FROM jsonb_object_keys(p_patch) AS k
    WHERE k NOT IN ('patient_id', 'doctor_id', 'lead_id', 'appointment_date', 'start_time', 'end_time',
                    'type', 'status', 'visit_reason', 'source', 'cancel_reason')
    LIMIT 1;
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = format('appointments have no field %L to change', v_unknown);
    END IF;

    SELECT * INTO cur FROM clinic.appointments AS a WHERE a.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('appointment %s not found', p_id);
    END IF;
    r := cur;
    IF p_patch ? 'patient_id' THEN r.patient_id := (p_patch ->> 'patient_id')::uuid; END IF;
    IF p_patch ? 'doctor_id' THEN r.doctor_id := (p_patch ->> 'doctor_id')::uuid; END IF;
    IF p_patch ? 'lead_id' THEN r.lead_id := (p_patch ->> 'lead_id')::uuid; END IF;
    IF p_patch ? 'appointment_date' THEN r.appointment_date := (p_patch ->> 'appointment_date')::date; END IF;
    IF p_patch ? 'start_time' THEN r.start_time := (p_patch ->> 'start_time')::time; END IF;
    IF p_patch ? 'end_time' THEN r.end_time := (p_patch ->> 'end_time')::time; END IF;
    IF p_patch ? 'type' THEN r.type := p_patch ->> 'type'; END IF;
    IF p_patch ? 'status' THEN r.status := p_patch ->> 'status'; END IF;
    IF p_patch ? 'visit_reason' THEN r.visit_reason := p_patch ->> 'visit_reason'; END IF;
    IF p_patch ? 'source' THEN r.source := p_patch ->> 'source'; END IF;
    IF p_patch ? 'cancel_reason' THEN r.cancel_reason := p_patch ->> 'cancel_reason'; END IF;

    BEGIN
        UPDATE clinic.appointments AS a
        SET patient_id = r.patient_id,
            doctor_id = r.doctor_id,
            lead_id = r.lead_id,
            appointment_date = r.appointment_date,
            start_time = r.start_time,
            end_time = r.end_time,
            type = r.type,
            status = r.status,
            visit_reason = r.visit_reason,
            source = r.source,
            cancel_reason = r.cancel_reason
        WHERE a.id = p_id
        RETURNING a.* INTO r;
    EXCEPTION WHEN exclusion_violation THEN
        PERFORM clinic.appointment_overlap_error(
            cur.clinic_id, r.doctor_id, r.appointment_date, r.start_time, r.end_time, p_id
        );
    END;
    RETURN clinic.appointment_json(r);
END
$$;
COMMENT ON FUNCTION clinic.update_appointment(uuid, jsonb) IS
    'Changes an appointment of the request''s clinic: the fields present in the patch (patient_id, doctor_id, '
    'lead_id, appointment_date, start_time, end_time, type, status, visit_reason, source, cancel_reason) are '
    'set, the others kept. A reschedule re-checks the overlap; a new patient or doctor refreshes the snapshots. '
    'Returns the appointment. Errors: P0002 not found; 55000 for a refused status transition or a change to '
    'an appointment that is no longer scheduled; 23P01 overlap (names the conflicting appointment); 23503 '
    'patient/doctor/lead not of this clinic; 22023 unknown field or not an active doctor; 23514 end <= start; '
    '23502 a required field set to null.';

CREATE OR REPLACE FUNCTION clinic.cancel_appointment(p_id uuid, p_reason text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    cur_status text;
    r clinic.appointments;
BEGIN
    SELECT a.status INTO cur_status FROM clinic.appointments AS a WHERE a.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = format('appointment %s not found', p_id);
    END IF;
    IF cur_status = 'cancelled' THEN
        RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = 'the appointment is already cancelled';
    END IF;
    UPDATE clinic.appointments AS a
    SET status = 'cancelled', cancel_reason = nullif(btrim(p_reason), '')
    WHERE a.id = p_id
    RETURNING a.* INTO r;
    RETURN clinic.appointment_json(r);
END
$$;
COMMENT ON FUNCTION clinic.cancel_appointment(uuid, text) IS
    'Cancels an appointment of the request''s clinic that is scheduled or checked in, recording the reason; '
    'its slot is free at once for another booking. Returns the appointment. Errors: P0002 not found; 55000 '
    'when it is already cancelled, completed or a no-show.';

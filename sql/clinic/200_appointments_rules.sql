-- Appointment rules that hold for every writer (API, DBA in psql, imports): snapshots of the patient
-- and the doctor, the status lifecycle, and what may change once an appointment is under way.
-- The overlap rule is the exclusion constraint appointments_no_overlap (migration 0200).

CREATE OR REPLACE FUNCTION clinic.lock_doctor_schedule(p_doctor_id uuid)
    RETURNS void
    LANGUAGE sql
    VOLATILE
AS $$
    -- Two-key advisory locks live apart from the one-key (bigint) space other code uses.
    SELECT pg_advisory_xact_lock(1095782484, hashtext(p_doctor_id::text))
$$;
COMMENT ON FUNCTION clinic.lock_doctor_schedule(uuid) IS
    'Takes the transaction-scoped advisory lock of a doctor''s schedule. The booking triggers take it before '
    'a slot is claimed, so concurrent bookings of one doctor queue (the loser then fails at once with 23P01) '
    'instead of deadlocking on each other''s uncommitted rows in the exclusion index, which PostgreSQL only '
    'resolves after deadlock_timeout. Bookings of different doctors never wait for each other. Raises nothing.';

CREATE OR REPLACE FUNCTION clinic.appointment_fill_snapshots()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    p record;
    d record;
    patient_changed boolean;
    doctor_changed boolean;
BEGIN
    IF NEW.clinic_id IS NULL THEN
        -- The request's clinic, else (DBA in psql) the patient's.
        NEW.clinic_id := coalesce(
            keel.current_clinic_id(),
            (SELECT pt.clinic_id FROM clinic.patients AS pt WHERE pt.id = NEW.patient_id)
        );
    END IF;
    IF NEW.clinic_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = format('patient %s does not exist', NEW.patient_id),
            DETAIL = format('Key (patient_id)=(%s) is not present in table "patients".', NEW.patient_id),
            HINT = 'Register the patient first (POST /api/patients or clinic.create_patient).';
    END IF;

    IF TG_OP = 'INSERT' AND NEW.status <> 'cancelled' THEN
        PERFORM clinic.lock_doctor_schedule(NEW.doctor_id);
    END IF;

    patient_changed := TG_OP = 'INSERT'
        OR NEW.patient_id IS DISTINCT FROM OLD.patient_id
        OR NEW.clinic_id IS DISTINCT FROM OLD.clinic_id;
    doctor_changed := TG_OP = 'INSERT'
        OR NEW.doctor_id IS DISTINCT FROM OLD.doctor_id
        OR NEW.clinic_id IS DISTINCT FROM OLD.clinic_id;

    IF patient_changed THEN
        SELECT pt.name, pt.mobile, pt.email, pt.dob, pt.gender, pt.lead_id,
               nullif(concat_ws(', ', nullif(btrim(pt.address), ''), nullif(btrim(pt.city), ''),
                                nullif(btrim(pt.state), ''), nullif(btrim(pt.postal_code), '')), '') AS address
        INTO p
        FROM clinic.patients AS pt
        WHERE pt.clinic_id = NEW.clinic_id AND pt.id = NEW.patient_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = '23503',
                MESSAGE = format('patient %s does not exist in this clinic', NEW.patient_id),
                DETAIL = format('Key (patient_id)=(%s) is not present in table "patients".', NEW.patient_id),
                HINT = 'An appointment can only be booked for a patient of the same clinic.';
        END IF;
        NEW.patient_name_snapshot := p.name;
        NEW.patient_phone_snapshot := p.mobile;
        NEW.patient_email_snapshot := p.email;
        NEW.patient_dob_snapshot := p.dob;
        NEW.patient_sex_snapshot := p.gender;
        NEW.patient_address_snapshot := p.address;
        -- The lead the patient came from, unless the writer named one explicitly.
        IF TG_OP = 'INSERT' THEN
            NEW.lead_id := coalesce(NEW.lead_id, p.lead_id);
        ELSIF NEW.lead_id IS NOT DISTINCT FROM OLD.lead_id THEN
            NEW.lead_id := p.lead_id;
        END IF;
    END IF;

    -- Age at the appointment date, from the snapshot (a reschedule re-ages, a patient edit does not).
    IF patient_changed OR NEW.appointment_date IS DISTINCT FROM OLD.appointment_date THEN
        NEW.patient_age_snapshot := CASE
            WHEN NEW.patient_dob_snapshot IS NOT NULL AND NEW.patient_dob_snapshot <= NEW.appointment_date
            THEN extract(year FROM age(NEW.appointment_date, NEW.patient_dob_snapshot))::integer
        END;
    END IF;

    IF doctor_changed THEN
        SELECT s.name, s.role, s.is_active
        INTO d
        FROM clinic.staff AS s
        WHERE s.clinic_id = NEW.clinic_id AND s.id = NEW.doctor_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING
                ERRCODE = '23503',
                MESSAGE = format('doctor %s does not exist in this clinic', NEW.doctor_id),
                DETAIL = format('Key (doctor_id)=(%s) is not present in table "staff".', NEW.doctor_id),
                HINT = 'doctor_id must be a staff member with role doctor of the same clinic (GET /api/doctors).';
        END IF;
        IF d.role <> 'doctor' THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('staff member %s (%s) is not a doctor', NEW.doctor_id, d.role),
                HINT = 'doctor_id must be a staff member with role doctor (GET /api/doctors).';
        END IF;
        IF NOT d.is_active THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = format('doctor %s is inactive', NEW.doctor_id),
                HINT = 'Book with an active doctor, or reactivate this one first.';
        END IF;
        NEW.doctor_name_snapshot := d.name;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.appointment_fill_snapshots() IS
    'Trigger (BEFORE INSERT OR UPDATE OF clinic_id, patient_id, doctor_id, appointment_date on '
    'clinic.appointments): fills clinic_id when omitted (request claims, else the patient''s clinic); copies '
    'the patient (name, mobile, email, dob, gender, address, lead) and the doctor''s name into the *_snapshot '
    'columns when the patient or doctor is set or changed, and the patient''s age at the appointment date. '
    'Later edits of the patient or doctor leave existing snapshots alone. Errors: 23503 when the patient or '
    'doctor is not a row of the same clinic; 22023 when doctor_id is not an active staff member with role doctor.';

CREATE OR REPLACE TRIGGER appointments_10_snapshots
    BEFORE INSERT OR UPDATE OF clinic_id, patient_id, doctor_id, appointment_date ON clinic.appointments
    FOR EACH ROW
    EXECUTE FUNCTION clinic.appointment_fill_snapshots();

CREATE OR REPLACE FUNCTION clinic.appointment_check_change()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.clinic_id IS DISTINCT FROM OLD.clinic_id THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'an appointment cannot move to another clinic';
    END IF;

    IF NEW.status <> 'cancelled' AND (
        NEW.doctor_id IS DISTINCT FROM OLD.doctor_id
        OR NEW.appointment_date IS DISTINCT FROM OLD.appointment_date
        OR NEW.start_time IS DISTINCT FROM OLD.start_time
        OR NEW.end_time IS DISTINCT FROM OLD.end_time
    ) THEN
        PERFORM clinic.lock_doctor_schedule(NEW.doctor_id);
    END IF;

    IF NEW.status IS DISTINCT FROM OLD.status THEN
        -- An unknown status is left to the CHECK constraint (23514).
        IF NEW.status IN ('scheduled', 'checked_in', 'completed', 'cancelled', 'no_show')
           AND (OLD.status, NEW.status) NOT IN (
            ('scheduled', 'checked_in'), ('checked_in', 'completed'), ('scheduled', 'no_show'),
            ('scheduled', 'cancelled'), ('checked_in', 'cancelled')
        ) THEN
            RAISE EXCEPTION USING
                ERRCODE = '55000',
                MESSAGE = format('an appointment cannot go from %s to %s', OLD.status, NEW.status),
                HINT = 'Allowed: scheduled → checked_in → completed, scheduled → no_show, '
                       'scheduled or checked_in → cancelled. completed, no_show and cancelled are final.';
        END IF;
        CASE NEW.status
            WHEN 'checked_in' THEN NEW.checked_in_at := coalesce(NEW.checked_in_at, now());
            WHEN 'completed' THEN NEW.completed_at := coalesce(NEW.completed_at, now());
            WHEN 'cancelled' THEN NEW.cancelled_at := coalesce(NEW.cancelled_at, now());
            ELSE NULL;
        END CASE;
    END IF;

    IF OLD.status <> 'scheduled' AND (
        NEW.patient_id IS DISTINCT FROM OLD.patient_id
        OR NEW.doctor_id IS DISTINCT FROM OLD.doctor_id
        OR NEW.appointment_date IS DISTINCT FROM OLD.appointment_date
        OR NEW.start_time IS DISTINCT FROM OLD.start_time
        OR NEW.end_time IS DISTINCT FROM OLD.end_time
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = '55000',
            MESSAGE = format('a %s appointment cannot be rescheduled or reassigned', OLD.status),
            HINT = 'Only scheduled appointments change patient, doctor, date or time; book a new one instead.';
    END IF;

    IF NOT keel.keeps_updated_at() THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.appointment_check_change() IS
    'Trigger (BEFORE UPDATE on clinic.appointments): enforces the status lifecycle — scheduled → '
    'checked_in → completed, scheduled → no_show, scheduled or checked_in → cancelled — and stamps '
    'checked_in_at/completed_at/cancelled_at; only scheduled appointments may change patient, doctor, date '
    'or time; clinic_id never changes; updated_at is set (except during a maintenance write, '
    'keel.keeps_updated_at()). Errors: 55000 (object not in prerequisite state) '
    'for a refused transition or change; 22023 when clinic_id changes.';

CREATE OR REPLACE TRIGGER appointments_05_check_change
    BEFORE UPDATE ON clinic.appointments
    FOR EACH ROW
    EXECUTE FUNCTION clinic.appointment_check_change();

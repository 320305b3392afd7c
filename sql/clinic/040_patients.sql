-- Patients: UHID allocation, assigned-doctor check, create, read, update, search.

CREATE OR REPLACE FUNCTION clinic.assign_uhid()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
DECLARE
    prefix text;
    next_value bigint;
BEGIN
    IF NEW.uhid IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT c.uhid_prefix INTO prefix FROM clinic.clinics AS c WHERE c.id = NEW.clinic_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING
            ERRCODE = '23503',
            MESSAGE = 'clinic not found',
            DETAIL = format('Key (clinic_id)=(%s) is not present in table "clinics".', NEW.clinic_id);
    END IF;
    -- The counter row's lock serialises allocation per clinic until this transaction ends: no two
    -- patients get one number; a rolled-back insert leaves a gap, which is allowed. A number already
    -- taken by an explicit uhid (a DBA's INSERT) is skipped, so the counter never hands it out again:
    -- without the skip, that one row would make every later registration fail with 23505.
    LOOP
        INSERT INTO clinic.uhid_counters AS u (clinic_id, last_value)
        VALUES (NEW.clinic_id, 1)
        ON CONFLICT (clinic_id) DO UPDATE SET last_value = u.last_value + 1
        RETURNING u.last_value INTO next_value;
        NEW.uhid := prefix || '-' || lpad(next_value::text, greatest(6, length(next_value::text)), '0');
        EXIT WHEN NOT EXISTS (
            SELECT FROM clinic.patients AS p WHERE p.clinic_id = NEW.clinic_id AND p.uhid = NEW.uhid
        );
    END LOOP;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.assign_uhid() IS
    'Trigger function on clinic.patients: when uhid is NULL, allocates the clinic''s next number as '
    '<uhid_prefix>-000123 (never duplicated, gaps allowed; numbers already taken by an explicit uhid are '
    'skipped). Errors: 23503 clinic does not exist.';

CREATE OR REPLACE TRIGGER patients_assign_uhid
    BEFORE INSERT ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION clinic.assign_uhid();

CREATE OR REPLACE FUNCTION clinic.check_assigned_doctor()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NEW.assigned_doctor_id IS NOT NULL AND EXISTS (
        SELECT FROM clinic.staff AS s
        WHERE s.clinic_id = NEW.clinic_id AND s.id = NEW.assigned_doctor_id AND s.role <> 'doctor'
    ) THEN
        RAISE EXCEPTION USING
            ERRCODE = '23514',
            MESSAGE = 'assigned_doctor_id must name a staff member whose role is doctor',
            CONSTRAINT = 'patients_assigned_doctor_role';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.check_assigned_doctor() IS
    'Trigger function on clinic.patients: an assigned doctor must be staff with role doctor (a missing '
    'one is left to the foreign key, 23503). Errors: 23514 the staff member is not a doctor.';

CREATE OR REPLACE TRIGGER patients_fill_local_date
    BEFORE INSERT ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION clinic.fill_local_date();

CREATE OR REPLACE TRIGGER patients_check_assigned_doctor
    BEFORE INSERT OR UPDATE OF assigned_doctor_id ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION clinic.check_assigned_doctor();

CREATE OR REPLACE TRIGGER patients_touch_updated_at
    BEFORE UPDATE ON clinic.patients
    FOR EACH ROW EXECUTE FUNCTION clinic.touch_updated_at();

-- VOLATILE on purpose: it must see a patient inserted earlier in the calling statement, as in
-- SELECT clinic.patient_json(clinic.convert_lead(…)).
CREATE OR REPLACE FUNCTION clinic.patient_json(id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    VOLATILE
AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(p) INTO result FROM clinic.patients AS p WHERE p.id = patient_json.id;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'patient not found';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.patient_json(uuid) IS
    'One patient of the current clinic as JSON, seeing rows written earlier in the same statement. '
    'Errors: P0002 not found (or another clinic''s).';

CREATE OR REPLACE FUNCTION clinic.get_patient(id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT to_jsonb(p) INTO result FROM clinic.patients AS p WHERE p.id = get_patient.id;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'patient not found';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.get_patient(uuid) IS
    'One patient of the current clinic as JSON. Errors: P0002 not found (or another clinic''s).';

CREATE OR REPLACE FUNCTION clinic.create_patient(data jsonb)
    RETURNS jsonb
    LANGUAGE sql
AS $$
    INSERT INTO clinic.patients (
        clinic_id, name, mobile, email, gender, dob, marital_status, blood_group, address, city, state,
        postal_code, emergency_contact_name, emergency_contact_phone, assigned_doctor_id,
        registration_date, status
    )
    VALUES (
        clinic.tenant_id((data ->> 'clinic_id')::uuid),
        data ->> 'name',
        data ->> 'mobile',
        data ->> 'email',
        data ->> 'gender',
        (data ->> 'dob')::date,
        data ->> 'marital_status',
        data ->> 'blood_group',
        data ->> 'address',
        data ->> 'city',
        data ->> 'state',
        data ->> 'postal_code',
        data ->> 'emergency_contact_name',
        data ->> 'emergency_contact_phone',
        (data ->> 'assigned_doctor_id')::uuid,
        (data ->> 'registration_date')::date,
        coalesce(data ->> 'status', 'active')
    )
    RETURNING to_jsonb(patients.*)
$$;
COMMENT ON FUNCTION clinic.create_patient(jsonb) IS
    'Registers a patient in the current clinic with the next UHID. data: {name, mobile, email?, gender?, '
    'dob?, marital_status?, blood_group?, address?, city?, state?, postal_code?, emergency_contact_name?, '
    'emergency_contact_phone?, assigned_doctor_id?, registration_date? (default: today in the clinic''s '
    'timezone), status?, clinic_id? (DBA use)}. '
    'Returns the row as JSON. Errors: 23503 assigned doctor not in the clinic; 23514 bad value or the '
    'staff member is not a doctor; 23502 missing name or mobile; 22xxx malformed value.';

CREATE OR REPLACE FUNCTION clinic.update_patient(id uuid, data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    result jsonb;
BEGIN
    UPDATE clinic.patients AS p SET
        name = CASE WHEN data ? 'name' THEN data ->> 'name' ELSE p.name END,
        mobile = CASE WHEN data ? 'mobile' THEN data ->> 'mobile' ELSE p.mobile END,
        email = CASE WHEN data ? 'email' THEN data ->> 'email' ELSE p.email END,
        gender = CASE WHEN data ? 'gender' THEN data ->> 'gender' ELSE p.gender END,
        dob = CASE WHEN data ? 'dob' THEN (data ->> 'dob')::date ELSE p.dob END,
        marital_status = CASE WHEN data ? 'marital_status' THEN data ->> 'marital_status' ELSE p.marital_status END,
        blood_group = CASE WHEN data ? 'blood_group' THEN data ->> 'blood_group' ELSE p.blood_group END,
        address = CASE WHEN data ? 'address' THEN data ->> 'address' ELSE p.address END,
        city = CASE WHEN data ? 'city' THEN data ->> 'city' ELSE p.city END,
        state = CASE WHEN data ? 'state' THEN data ->> 'state' ELSE p.state END,
        postal_code = CASE WHEN data ? 'postal_code' THEN data ->> 'postal_code' ELSE p.postal_code END,
        emergency_contact_name = CASE WHEN data ? 'emergency_contact_name'
            THEN data ->> 'emergency_contact_name' ELSE p.emergency_contact_name END,
        emergency_contact_phone = CASE WHEN data ? 'emergency_contact_phone'
            THEN data ->> 'emergency_contact_phone' ELSE p.emergency_contact_phone END,
        assigned_doctor_id = CASE WHEN data ? 'assigned_doctor_id'
            THEN (data ->> 'assigned_doctor_id')::uuid ELSE p.assigned_doctor_id END,
        registration_date = CASE WHEN data ? 'registration_date'
            THEN (data ->> 'registration_date')::date ELSE p.registration_date END,
        status = CASE WHEN data ? 'status' THEN data ->> 'status' ELSE p.status END
    WHERE p.id = update_patient.id
    RETURNING to_jsonb(p) INTO result;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'patient not found';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.update_patient(uuid, jsonb) IS
    'Changes the keys present in data (any create_patient field; uhid and lead_id are fixed) of one '
    'patient; returns the row as JSON. Errors: P0002 not found (or another clinic''s); 23503 assigned '
    'doctor not in the clinic; 23514 bad value; 23502 a required field set to null.';

CREATE OR REPLACE FUNCTION clinic.search_patients(
    q text DEFAULT NULL,
    status text DEFAULT NULL,
    page_limit integer DEFAULT 50,
    page_offset integer DEFAULT 0
)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    digits text := nullif(regexp_replace(coalesce(search_patients.q, ''), '[^0-9]', '', 'g'), '');
    result jsonb;
BEGIN
    IF length(digits) < 3 OR digits <> regexp_replace(search_patients.q, '[\s()+-]', '', 'g') THEN
        digits := NULL;  -- only a query that is a phone number (3+ digits) searches mobiles
    END IF;
    WITH matched AS (
        SELECT p.*
        FROM clinic.patients AS p
        WHERE (search_patients.status IS NULL OR p.status = search_patients.status)
          AND (search_patients.q IS NULL
               OR p.name ILIKE clinic.like_pattern(search_patients.q)
               OR p.mobile LIKE clinic.like_pattern(digits)
               OR p.uhid = upper(btrim(search_patients.q)))
    ), page AS (
        SELECT * FROM matched ORDER BY created_at DESC, id DESC LIMIT page_limit OFFSET page_offset
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(to_jsonb(page) ORDER BY page.created_at DESC, page.id DESC)
                           FROM page), '[]'),
        'total', (SELECT count(*) FROM matched)
    ) INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.search_patients(text, text, integer, integer) IS
    'A page of the current clinic''s patients, newest first: {items, total}. q matches a substring of the '
    'name (trigram index), digits of the mobile, or the exact UHID; status filters (NULL = any). '
    'Raises nothing.';

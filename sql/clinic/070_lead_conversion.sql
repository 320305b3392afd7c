-- Lead → patient conversion (DESIGN §5): one transaction, or nothing.

CREATE OR REPLACE FUNCTION clinic.convert_lead(
    lead_id uuid,
    mobile text DEFAULT NULL,
    name text DEFAULT NULL,
    email text DEFAULT NULL,
    gender text DEFAULT NULL,
    dob date DEFAULT NULL,
    marital_status text DEFAULT NULL,
    blood_group text DEFAULT NULL,
    address text DEFAULT NULL,
    city text DEFAULT NULL,
    state text DEFAULT NULL,
    postal_code text DEFAULT NULL,
    emergency_contact_name text DEFAULT NULL,
    emergency_contact_phone text DEFAULT NULL,
    assigned_doctor_id uuid DEFAULT NULL,
    registration_date date DEFAULT NULL
)
    RETURNS uuid
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    lead clinic.leads;
    patient_id uuid;
BEGIN
    -- The row lock makes concurrent conversions of one lead queue up; the loser sees 'converted'.
    SELECT * INTO lead FROM clinic.leads AS l WHERE l.id = convert_lead.lead_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'lead not found';
    END IF;
    IF lead.status = 'converted' THEN
        RAISE EXCEPTION USING
            ERRCODE = '23505',
            MESSAGE = 'the lead is already converted',
            DETAIL = format('Lead %s is linked to patient %s.', lead.id,
                            (SELECT p.id FROM clinic.patients AS p
                             WHERE p.clinic_id = lead.clinic_id AND p.lead_id = lead.id)),
            CONSTRAINT = 'patients_clinic_id_lead_id_key';
    END IF;
    IF convert_lead.mobile IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'mobile is required',
            HINT = 'The lead''s phone is stored encrypted and cannot be read in SQL: pass mobile => ''…''.';
    END IF;

    INSERT INTO clinic.patients (
        clinic_id, lead_id, name, mobile, email, gender, dob, marital_status, blood_group, address, city,
        state, postal_code, emergency_contact_name, emergency_contact_phone, assigned_doctor_id,
        registration_date
    )
    VALUES (
        lead.clinic_id,
        lead.id,
        coalesce(convert_lead.name, lead.name),
        convert_lead.mobile,
        convert_lead.email,
        coalesce(convert_lead.gender, lead.gender),
        convert_lead.dob,
        convert_lead.marital_status,
        convert_lead.blood_group,
        convert_lead.address,
        convert_lead.city,
        convert_lead.state,
        convert_lead.postal_code,
        convert_lead.emergency_contact_name,
        convert_lead.emergency_contact_phone,
        convert_lead.assigned_doctor_id,
        convert_lead.registration_date
    )
    RETURNING id INTO patient_id;

    UPDATE clinic.leads SET status = 'converted' WHERE id = lead.id;
    RETURN patient_id;
END
$$;
COMMENT ON FUNCTION clinic.convert_lead(uuid, text, text, text, text, date, text, text, text, text, text,
                                        text, text, text, uuid, date) IS
    'Converts a lead into a patient atomically: the patient (next UHID, linked by lead_id; name and gender '
    'default to the lead''s, registration_date to today in the clinic''s timezone) is created and the lead '
    'becomes converted. Arguments: lead_id, then patient fields by name (mobile is required here: the '
    'lead''s phone is encrypted; the API fills it in from the lead). Returns the patient id. Errors: '
    'P0002 lead not found (or another clinic''s); 23505 already converted; 22023 mobile missing; 23503 '
    'assigned doctor not in the clinic; 23514 bad patient value. On any error nothing changes.';

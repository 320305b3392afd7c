-- Clinic records: clinics, staff, leads (sensitive fields encrypted by the API), patients, and the
-- per-clinic UHID counters. Functions, triggers and policies for these live in sql/clinic/.
--
-- Encrypted columns hold 'v1:<key id>:<base64url(nonce || ciphertext || tag)>' (AES-256-GCM); the CHECK
-- constraints refuse anything else, so clear text can never be stored in them by mistake.

CREATE TABLE clinic.clinics (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL CONSTRAINT clinics_name_check CHECK (btrim(name) <> ''),
    timezone    text        NOT NULL DEFAULT 'UTC',
    uhid_prefix text        NOT NULL DEFAULT 'P'
                CONSTRAINT clinics_uhid_prefix_check CHECK (uhid_prefix ~ '^[A-Z0-9]{1,12}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per clinic; UPDATE … RETURNING on it serialises UHID allocation for that clinic only.
CREATE TABLE clinic.uhid_counters (
    clinic_id  uuid   PRIMARY KEY REFERENCES clinic.clinics (id) ON DELETE CASCADE,
    last_value bigint NOT NULL DEFAULT 0 CHECK (last_value >= 0)
);

CREATE TABLE clinic.staff (
    id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id  uuid        NOT NULL REFERENCES clinic.clinics (id) ON DELETE CASCADE,
    name       text        NOT NULL CONSTRAINT staff_name_check CHECK (btrim(name) <> ''),
    email      text        NOT NULL CONSTRAINT staff_email_check CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    role       text        NOT NULL
               CONSTRAINT staff_role_check CHECK (role IN ('admin', 'doctor', 'front_desk', 'cro')),
    specialty  text,
    is_active  boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT staff_clinic_id_id_key UNIQUE (clinic_id, id)
);
CREATE UNIQUE INDEX staff_clinic_id_email_key ON clinic.staff (clinic_id, lower(email));
CREATE INDEX staff_clinic_id_role_idx ON clinic.staff (clinic_id, role) WHERE is_active;

CREATE TABLE clinic.leads (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id           uuid        NOT NULL REFERENCES clinic.clinics (id) ON DELETE CASCADE,
    date_added          date        NOT NULL DEFAULT current_date,
    name                text        NOT NULL CONSTRAINT leads_name_check CHECK (btrim(name) <> ''),
    phone               text        NOT NULL
                        CONSTRAINT leads_phone_encrypted CHECK (phone ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    phone_bidx          text,
    alternate_phone     text
                        CONSTRAINT leads_alternate_phone_encrypted
                        CHECK (alternate_phone ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    age                 integer     CONSTRAINT leads_age_check CHECK (age BETWEEN 0 AND 150),
    gender              text        CONSTRAINT leads_gender_check CHECK (gender IN ('male', 'female', 'other')),
    source              text,
    inquiry             text,
    problem             text
                        CONSTRAINT leads_problem_encrypted
                        CHECK (problem ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    treatment_doctor    text
                        CONSTRAINT leads_treatment_doctor_encrypted
                        CHECK (treatment_doctor ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    treatment_suggested text
                        CONSTRAINT leads_treatment_suggested_encrypted
                        CHECK (treatment_suggested ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    status              text        NOT NULL DEFAULT 'new_inquiry'
                        CONSTRAINT leads_status_check CHECK (status IN (
                            'new_inquiry', 'cro_queue', 'first_consult', 'follow_up',
                            'converted', 'lost', 'not_interested'
                        )),
    assigned_to_id      uuid,
    guardian_name       text,
    guardian_age        integer     CONSTRAINT leads_guardian_age_check CHECK (guardian_age BETWEEN 0 AND 150),
    location            text,
    referral_required   boolean     NOT NULL DEFAULT false,
    notes               text,
    -- Key ids the encrypted columns were written with: what `keel keys rotate` still has to move.
    key_ids             text[]      GENERATED ALWAYS AS (array_remove(ARRAY[
                            split_part(phone, ':', 2),
                            split_part(alternate_phone, ':', 2),
                            split_part(problem, ':', 2),
                            split_part(treatment_doctor, ':', 2),
                            split_part(treatment_suggested, ':', 2)
                        ], NULL)) STORED,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT leads_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT leads_assigned_to_fkey FOREIGN KEY (clinic_id, assigned_to_id)
        REFERENCES clinic.staff (clinic_id, id) ON DELETE SET NULL (assigned_to_id)
);
CREATE INDEX leads_clinic_id_assigned_to_id_idx ON clinic.leads (clinic_id, assigned_to_id);
CREATE INDEX leads_clinic_id_phone_bidx_idx ON clinic.leads (clinic_id, phone_bidx);
CREATE INDEX leads_clinic_id_status_created_at_idx ON clinic.leads (clinic_id, status, created_at DESC);
CREATE INDEX leads_clinic_id_created_at_idx ON clinic.leads (clinic_id, created_at DESC);
CREATE INDEX leads_name_trgm_idx ON clinic.leads USING gin (name public.gin_trgm_ops);

CREATE TABLE clinic.patients (
    id                      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id               uuid        NOT NULL REFERENCES clinic.clinics (id) ON DELETE CASCADE,
    uhid                    text        NOT NULL,
    lead_id                 uuid,
    name                    text        NOT NULL CONSTRAINT patients_name_check CHECK (btrim(name) <> ''),
    mobile                  text        NOT NULL CONSTRAINT patients_mobile_check CHECK (mobile ~ '^\+?[0-9]{6,15}$'),
    email                   text        CONSTRAINT patients_email_check CHECK (email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'),
    gender                  text        CONSTRAINT patients_gender_check CHECK (gender IN ('male', 'female', 'other')),
    dob                     date,
    marital_status          text        CONSTRAINT patients_marital_status_check CHECK (marital_status IN (
                                            'single', 'married', 'divorced', 'widowed', 'separated', 'other'
                                        )),
    blood_group             text        CONSTRAINT patients_blood_group_check
                                        CHECK (blood_group IN ('A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-')),
    address                 text,
    city                    text,
    state                   text,
    postal_code             text,
    emergency_contact_name  text,
    emergency_contact_phone text,
    assigned_doctor_id      uuid,
    registration_date       date        NOT NULL DEFAULT current_date,
    status                  text        NOT NULL DEFAULT 'active'
                            CONSTRAINT patients_status_check CHECK (status IN ('active', 'inactive', 'deceased')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT patients_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT patients_clinic_id_uhid_key UNIQUE (clinic_id, uhid),
    -- A lead becomes at most one patient; also the index behind the lead foreign key.
    CONSTRAINT patients_clinic_id_lead_id_key UNIQUE (clinic_id, lead_id),
    CONSTRAINT patients_lead_fkey FOREIGN KEY (clinic_id, lead_id)
        REFERENCES clinic.leads (clinic_id, id) ON DELETE SET NULL (lead_id),
    CONSTRAINT patients_assigned_doctor_fkey FOREIGN KEY (clinic_id, assigned_doctor_id)
        REFERENCES clinic.staff (clinic_id, id) ON DELETE SET NULL (assigned_doctor_id)
);
CREATE INDEX patients_clinic_id_assigned_doctor_id_idx ON clinic.patients (clinic_id, assigned_doctor_id);
CREATE INDEX patients_clinic_id_created_at_idx ON clinic.patients (clinic_id, created_at DESC);
CREATE INDEX patients_name_trgm_idx ON clinic.patients USING gin (name public.gin_trgm_ops);
CREATE INDEX patients_mobile_trgm_idx ON clinic.patients USING gin (mobile public.gin_trgm_ops);

-- Tenant isolation: policies (sql/clinic/090_records_policies.sql) decide what keel_api sees.
ALTER TABLE clinic.clinics ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE clinic.uhid_counters ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE clinic.staff ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE clinic.leads ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE clinic.patients ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- Counters are reached only through the SECURITY DEFINER UHID trigger.
REVOKE ALL ON clinic.uhid_counters FROM keel_api;

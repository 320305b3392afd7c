-- Appointments (DESIGN §4): one doctor, one patient, one slot of one day in the clinic's timezone.
--
-- Times are the clinic's wall-clock times (`appointment_date` + `start_time`/`end_time`, no offset);
-- `slot` is the half-open local range [start, end) they describe, generated so a DBA can never set it
-- out of step. Every appointment of a doctor belongs to the doctor's clinic (composite foreign key),
-- so all ranges compared by the exclusion constraint are in one timezone and the comparison is exact;
-- back-to-back appointments (10:00-10:30, 10:30-11:00) do not overlap.
--
-- The snapshot trigger, status rules, outbox triggers and policies live in sql/clinic/2xx_*.sql.

-- Composite foreign keys below need these targets; 0100 declares them, this keeps 0200 self-sufficient.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint AS c
        WHERE c.conrelid = 'clinic.patients'::regclass AND c.contype IN ('u', 'p')
          AND c.conkey = ARRAY[
              (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'clinic.patients'::regclass AND attname = 'clinic_id'),
              (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'clinic.patients'::regclass AND attname = 'id')
          ]::int2[]
    ) THEN
        ALTER TABLE clinic.patients ADD CONSTRAINT patients_clinic_id_id_key UNIQUE (clinic_id, id);
    END IF;
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint AS c
        WHERE c.conrelid = 'clinic.staff'::regclass AND c.contype IN ('u', 'p')
          AND c.conkey = ARRAY[
              (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'clinic.staff'::regclass AND attname = 'clinic_id'),
              (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'clinic.staff'::regclass AND attname = 'id')
          ]::int2[]
    ) THEN
        ALTER TABLE clinic.staff ADD CONSTRAINT staff_clinic_id_id_key UNIQUE (clinic_id, id);
    END IF;
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint AS c
        WHERE c.conrelid = 'clinic.leads'::regclass AND c.contype IN ('u', 'p')
          AND c.conkey = ARRAY[
              (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'clinic.leads'::regclass AND attname = 'clinic_id'),
              (SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = 'clinic.leads'::regclass AND attname = 'id')
          ]::int2[]
    ) THEN
        ALTER TABLE clinic.leads ADD CONSTRAINT leads_clinic_id_id_key UNIQUE (clinic_id, id);
    END IF;
END
$$;

CREATE TABLE clinic.appointments (
    id                       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- May be omitted on INSERT: the snapshot trigger takes it from the request's claims or the patient.
    clinic_id                uuid        NOT NULL REFERENCES clinic.clinics (id) ON DELETE CASCADE,
    patient_id               uuid        NOT NULL,
    lead_id                  uuid,
    doctor_id                uuid        NOT NULL,
    appointment_date         date        NOT NULL,
    start_time               time        NOT NULL,
    end_time                 time        NOT NULL,
    -- NULL for an inverted slot, so the CHECK below reports it (rather than a range error).
    slot                     tsrange     GENERATED ALWAYS AS (
                                 CASE WHEN end_time > start_time
                                 THEN tsrange(appointment_date + start_time, appointment_date + end_time, '[)')
                                 END
                             ) STORED,
    type                     text        NOT NULL DEFAULT 'consultation'
                             CONSTRAINT appointments_type_check CHECK (type ~ '^[a-z][a-z0-9_]{0,39}$'),
    status                   text        NOT NULL DEFAULT 'scheduled'
                             CONSTRAINT appointments_status_check
                             CHECK (status IN ('scheduled', 'checked_in', 'completed', 'cancelled', 'no_show')),
    visit_reason             text,
    source                   text,
    cancel_reason            text,
    patient_name_snapshot    text,
    patient_phone_snapshot   text,
    patient_email_snapshot   text,
    patient_dob_snapshot     date,
    patient_sex_snapshot     text,
    patient_age_snapshot     integer,
    patient_address_snapshot text,
    doctor_name_snapshot     text,
    checked_in_at            timestamptz,
    completed_at             timestamptz,
    cancelled_at             timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT appointments_time_order_check CHECK (end_time > start_time),
    CONSTRAINT appointments_clinic_id_id_key UNIQUE (clinic_id, id),
    CONSTRAINT appointments_patient_fkey FOREIGN KEY (clinic_id, patient_id)
        REFERENCES clinic.patients (clinic_id, id),
    CONSTRAINT appointments_doctor_fkey FOREIGN KEY (clinic_id, doctor_id)
        REFERENCES clinic.staff (clinic_id, id),
    CONSTRAINT appointments_lead_fkey FOREIGN KEY (clinic_id, lead_id)
        REFERENCES clinic.leads (clinic_id, id) ON DELETE SET NULL (lead_id),
    -- No two live appointments of one doctor overlap (SQLSTATE 23P01). clinic_id leads so the
    -- constraint stays valid if the table is ever distributed by clinic.
    CONSTRAINT appointments_no_overlap EXCLUDE USING gist (
        clinic_id WITH =, doctor_id WITH =, slot WITH &&
    ) WHERE (status <> 'cancelled')
);

-- List filters (GET /api/appointments?date=&doctor_id=&status=&patient_id=) and the foreign keys.
CREATE INDEX appointments_clinic_id_date_idx
    ON clinic.appointments (clinic_id, appointment_date, start_time, id);
CREATE INDEX appointments_clinic_id_doctor_id_date_idx
    ON clinic.appointments (clinic_id, doctor_id, appointment_date, start_time);
CREATE INDEX appointments_clinic_id_patient_id_date_idx
    ON clinic.appointments (clinic_id, patient_id, appointment_date, start_time);
CREATE INDEX appointments_clinic_id_status_date_idx
    ON clinic.appointments (clinic_id, status, appointment_date, start_time);
CREATE INDEX appointments_clinic_id_lead_id_idx
    ON clinic.appointments (clinic_id, lead_id);

ALTER TABLE clinic.appointments ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

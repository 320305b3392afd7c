-- Outbox events of the clinic domain, written in the same transaction as the change (DESIGN §7):
--   appointment.booked       a scheduled appointment was inserted (API, psql, import)
--   appointment.rescheduled  a scheduled appointment changed date, time or doctor
--   appointment.cancelled    an appointment became cancelled
--   lead.created             a lead was inserted (single create, import or COPY)
-- Triggers are per statement over transition tables, so a bulk insert appends its events in one
-- set-based INSERT and wakes dispatchers once. Payloads carry ids, statuses and times, never personal or
-- medical data (no patient or lead name, phone, email, visit or cancel reason): the outbox is stored,
-- logged when no receiver is set, and sent to a third party. A receiver reads the person by id.
-- SECURITY DEFINER: keel_api has no privilege on keel.outbox.

CREATE OR REPLACE FUNCTION clinic.appointments_outbox_booked()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic, keel
AS $$
BEGIN
    INSERT INTO keel.outbox (topic, payload)
    SELECT 'appointment.booked',
           jsonb_build_object(
               'appointment_id', n.id,
               'clinic_id', n.clinic_id,
               'patient_id', n.patient_id,
               'doctor_id', n.doctor_id,
               'lead_id', n.lead_id,
               'status', n.status,
               'type', n.type,
               'appointment_date', n.appointment_date,
               'start_time', n.start_time,
               'end_time', n.end_time,
               'timezone', c.timezone,
               'starts_at', (n.appointment_date + n.start_time) AT TIME ZONE c.timezone,
               'ends_at', (n.appointment_date + n.end_time) AT TIME ZONE c.timezone,
               'doctor_name', n.doctor_name_snapshot,
               'clinic_name', c.name
           )
    FROM new_rows AS n
    JOIN clinic.clinics AS c ON c.id = n.clinic_id
    WHERE n.status = 'scheduled'
    ORDER BY n.appointment_date, n.start_time;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION clinic.appointments_outbox_booked() IS
    'Trigger (AFTER INSERT, per statement, on clinic.appointments): appends an appointment.booked event to '
    'keel.outbox for every inserted scheduled appointment (ids, times in the clinic''s timezone with absolute '
    'starts_at/ends_at, doctor and clinic names; the patient by id only). Raises nothing of its own.';

CREATE OR REPLACE TRIGGER appointments_outbox_booked
    AFTER INSERT ON clinic.appointments
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION clinic.appointments_outbox_booked();

CREATE OR REPLACE FUNCTION clinic.appointments_outbox_changed()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic, keel
AS $$
BEGIN
    INSERT INTO keel.outbox (topic, payload)
    SELECT e.topic,
           jsonb_build_object(
               'appointment_id', n.id,
               'clinic_id', n.clinic_id,
               'patient_id', n.patient_id,
               'doctor_id', n.doctor_id,
               'lead_id', n.lead_id,
               'status', n.status,
               'type', n.type,
               'appointment_date', n.appointment_date,
               'start_time', n.start_time,
               'end_time', n.end_time,
               'timezone', c.timezone,
               'starts_at', (n.appointment_date + n.start_time) AT TIME ZONE c.timezone,
               'ends_at', (n.appointment_date + n.end_time) AT TIME ZONE c.timezone,
               'doctor_name', n.doctor_name_snapshot,
               'clinic_name', c.name
           ) || CASE WHEN e.topic = 'appointment.rescheduled' THEN jsonb_build_object(
               'previous', jsonb_build_object(
                   'doctor_id', o.doctor_id,
                   'appointment_date', o.appointment_date,
                   'start_time', o.start_time,
                   'end_time', o.end_time,
                   'starts_at', (o.appointment_date + o.start_time) AT TIME ZONE c.timezone
               )) ELSE '{}'::jsonb END
    FROM new_rows AS n
    JOIN old_rows AS o ON o.id = n.id
    JOIN clinic.clinics AS c ON c.id = n.clinic_id
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN n.status = 'cancelled' AND o.status <> 'cancelled' THEN 'appointment.cancelled'
            WHEN n.status = 'scheduled' AND o.status = 'scheduled'
                 AND (n.slot <> o.slot OR n.doctor_id <> o.doctor_id) THEN 'appointment.rescheduled'
        END AS topic
    ) AS e
    WHERE e.topic IS NOT NULL;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION clinic.appointments_outbox_changed() IS
    'Trigger (AFTER UPDATE, per statement, on clinic.appointments): appends appointment.cancelled for each '
    'appointment that became cancelled and appointment.rescheduled (with the previous slot) for each scheduled '
    'one whose date, time or doctor changed. Raises nothing of its own.';

CREATE OR REPLACE TRIGGER appointments_outbox_changed
    AFTER UPDATE ON clinic.appointments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION clinic.appointments_outbox_changed();

CREATE OR REPLACE FUNCTION clinic.leads_outbox_created()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic, keel
AS $$
BEGIN
    INSERT INTO keel.outbox (topic, payload)
    SELECT 'lead.created',
           jsonb_build_object(
               'lead_id', n.id,
               'clinic_id', n.clinic_id,
               'status', n.status,
               'source', n.source,
               'date_added', n.date_added,
               'assigned_to_id', n.assigned_to_id,
               'created_at', n.created_at
           )
    FROM new_rows AS n;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION clinic.leads_outbox_created() IS
    'Trigger (AFTER INSERT, per statement, on clinic.leads): appends a lead.created event per inserted lead '
    '(ids, status, source, assignee; no name, phone or medical field). Raises nothing of its own.';

CREATE OR REPLACE TRIGGER leads_outbox_created
    AFTER INSERT ON clinic.leads
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT
    EXECUTE FUNCTION clinic.leads_outbox_created();

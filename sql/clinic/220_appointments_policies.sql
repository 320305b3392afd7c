-- Row-level security for clinic.appointments: a request sees and writes only its clinic's rows.
-- There is no DELETE policy: appointments are cancelled, never deleted, through the API.

DROP POLICY IF EXISTS appointments_select ON clinic.appointments;
CREATE POLICY appointments_select ON clinic.appointments
    FOR SELECT TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()));

DROP POLICY IF EXISTS appointments_insert ON clinic.appointments;
CREATE POLICY appointments_insert ON clinic.appointments
    FOR INSERT TO keel_api
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()));

DROP POLICY IF EXISTS appointments_update ON clinic.appointments;
CREATE POLICY appointments_update ON clinic.appointments
    FOR UPDATE TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()))
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()));

-- Row-level security for the clinic-records tables: a request sees only its own clinic's rows
-- (clinic_id claim, read once per statement); staff writes need the admin role claim.

DROP POLICY IF EXISTS clinics_tenant ON clinic.clinics;
CREATE POLICY clinics_tenant ON clinic.clinics
    FOR SELECT
    TO keel_api
    USING (id = (SELECT keel.current_clinic_id()));

DROP POLICY IF EXISTS staff_tenant_read ON clinic.staff;
CREATE POLICY staff_tenant_read ON clinic.staff
    FOR SELECT
    TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()));

DROP POLICY IF EXISTS staff_admin_insert ON clinic.staff;
CREATE POLICY staff_admin_insert ON clinic.staff
    FOR INSERT
    TO keel_api
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()) AND (SELECT keel.current_role_claim()) = 'admin');

DROP POLICY IF EXISTS staff_admin_update ON clinic.staff;
CREATE POLICY staff_admin_update ON clinic.staff
    FOR UPDATE
    TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()) AND (SELECT keel.current_role_claim()) = 'admin')
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()));

DROP POLICY IF EXISTS staff_admin_delete ON clinic.staff;
CREATE POLICY staff_admin_delete ON clinic.staff
    FOR DELETE
    TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()) AND (SELECT keel.current_role_claim()) = 'admin');

DROP POLICY IF EXISTS leads_tenant ON clinic.leads;
CREATE POLICY leads_tenant ON clinic.leads
    FOR ALL
    TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()))
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()));

DROP POLICY IF EXISTS patients_tenant ON clinic.patients;
CREATE POLICY patients_tenant ON clinic.patients
    FOR ALL
    TO keel_api
    USING (clinic_id = (SELECT keel.current_clinic_id()))
    WITH CHECK (clinic_id = (SELECT keel.current_clinic_id()));

-- clinic.uhid_counters has no policy: keel_api cannot touch it; the SECURITY DEFINER UHID trigger can.

-- Drops the clinic-records tables and every function sql/clinic/ defines for them.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'clinic'::regnamespace
          AND p.proname = ANY (ARRAY[
              'touch_updated_at', 'tenant_id', 'like_pattern', 'check_clinic_timezone', 'create_clinic',
              'create_staff', 'update_staff', 'list_staff', 'get_staff', 'assign_uhid',
              'check_assigned_doctor', 'patient_json', 'create_patient', 'update_patient', 'get_patient',
              'search_patients', 'lead_json', 'create_lead', 'update_lead', 'get_lead', 'list_leads',
              'import_leads', 'convert_lead', 'rekey_leads', 'leads_to_rekey'
          ])
    LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', fn);
    END LOOP;
END
$$;

DROP TABLE IF EXISTS clinic.patients;
DROP TABLE IF EXISTS clinic.leads;
DROP TABLE IF EXISTS clinic.staff;
DROP TABLE IF EXISTS clinic.uhid_counters;
DROP TABLE IF EXISTS clinic.clinics;

-- Drops the appointments table and every function sql/clinic/2xx_*.sql defines for it (the outbox
-- trigger on clinic.leads goes too: it only exists to announce events of this area).
DROP TRIGGER IF EXISTS leads_outbox_created ON clinic.leads;
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'clinic'::regnamespace
          AND p.proname = ANY (ARRAY[
              'lock_doctor_schedule', 'appointment_fill_snapshots', 'appointment_check_change', 'appointment_json',
              'appointment_overlap_error', 'book_appointment', 'get_appointment', 'list_appointments',
              'update_appointment', 'cancel_appointment', 'appointment_outbox_payload',
              'appointments_outbox_booked', 'appointments_outbox_changed', 'leads_outbox_created'
          ])
    LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', fn);
    END LOOP;
END
$$;

DROP TABLE IF EXISTS clinic.appointments;

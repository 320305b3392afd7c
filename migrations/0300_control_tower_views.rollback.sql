-- Undo 0300_control_tower_views. The functions of sql/clinic/3xx_control_tower_*.sql that read these
-- views go first: a later migrate reloads them.

DROP PROCEDURE IF EXISTS clinic.refresh_control_tower(text, numeric, text);
DROP FUNCTION IF EXISTS clinic.control_tower_summary(uuid);
DROP FUNCTION IF EXISTS clinic.control_tower_daily(date, date, uuid);
DROP FUNCTION IF EXISTS clinic.control_tower_doctors(date, date, uuid);
DROP FUNCTION IF EXISTS clinic.control_tower_intervention_queue(integer, integer, integer, uuid);
DROP FUNCTION IF EXISTS clinic.control_tower_range(date, date, date);
DROP FUNCTION IF EXISTS clinic.control_tower_clinic(uuid);
DROP FUNCTION IF EXISTS clinic.control_tower_refreshed_at();
DROP FUNCTION IF EXISTS clinic.control_tower_views();

DROP MATERIALIZED VIEW IF EXISTS clinic.control_tower_patients_daily;
DROP MATERIALIZED VIEW IF EXISTS clinic.control_tower_doctor_load_daily;
DROP MATERIALIZED VIEW IF EXISTS clinic.control_tower_appointments_daily;
DROP MATERIALIZED VIEW IF EXISTS clinic.control_tower_lead_status;
DROP MATERIALIZED VIEW IF EXISTS clinic.control_tower_leads_daily;

DROP INDEX IF EXISTS clinic.leads_cro_queue_updated_at_idx;
DROP INDEX IF EXISTS keel.metrics_refresh_log_ok_started_at_idx;

DELETE FROM keel.metrics_refresh_log WHERE detail = 'populated by migration 0300_control_tower_views';

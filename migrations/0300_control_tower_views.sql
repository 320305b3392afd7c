-- Control tower (DESIGN §8): the aggregates behind the dashboard, as materialized views per clinic and day.
--
-- Every view has a plain UNIQUE index on column names covering all rows, so
-- `REFRESH MATERIALIZED VIEW CONCURRENTLY` works (clinic.refresh_control_tower(), sql/clinic/300_*),
-- and the same index serves the reads (clinic_id, day …): a dashboard read touches only the aggregate
-- rows of one clinic and one date range, whatever the size of the base tables.
--
-- Nothing here depends on the clock (no now(), current_date): a refresh rewrites only the rows whose
-- figures changed. Lead figures are by the lead's `date_added` (the clinic's own date for the lead), and
-- count each lead by its status at the last refresh ("cohort" figures). Appointment figures are by
-- `appointment_date`, patients by `registration_date` — all dates in the clinic's own timezone.
--
-- Materialized views cannot have row-level security: keel_api has no privilege on them. The API reads
-- them only through the SECURITY DEFINER functions of sql/clinic/310_control_tower_reads.sql, which
-- filter by the request's clinic.

-- Leads by clinic, day added and source; one column per status. source '' = no source recorded.
CREATE MATERIALIZED VIEW clinic.control_tower_leads_daily AS
SELECT l.clinic_id,
       l.date_added                                                AS day,
       coalesce(l.source, '')                                      AS source,
       count(*)                                                    AS leads,
       count(*) FILTER (WHERE l.status = 'new_inquiry')            AS new_inquiry,
       count(*) FILTER (WHERE l.status = 'cro_queue')              AS cro_queue,
       count(*) FILTER (WHERE l.status = 'first_consult')          AS first_consult,
       count(*) FILTER (WHERE l.status = 'follow_up')              AS follow_up,
       count(*) FILTER (WHERE l.status = 'converted')              AS converted,
       count(*) FILTER (WHERE l.status = 'lost')                   AS lost,
       count(*) FILTER (WHERE l.status = 'not_interested')         AS not_interested
FROM clinic.leads AS l
GROUP BY l.clinic_id, l.date_added, coalesce(l.source, '');
CREATE UNIQUE INDEX control_tower_leads_daily_key
    ON clinic.control_tower_leads_daily (clinic_id, day, source);
COMMENT ON MATERIALIZED VIEW clinic.control_tower_leads_daily IS
    'Control tower: leads per clinic, date_added and source (empty string = none), counted by their status '
    'at the last refresh. Refreshed by CALL clinic.refresh_control_tower().';

-- Every lead of a clinic by current status (the pipeline as it stands).
CREATE MATERIALIZED VIEW clinic.control_tower_lead_status AS
SELECT l.clinic_id,
       l.status,
       count(*) AS leads
FROM clinic.leads AS l
GROUP BY l.clinic_id, l.status;
CREATE UNIQUE INDEX control_tower_lead_status_key
    ON clinic.control_tower_lead_status (clinic_id, status);
COMMENT ON MATERIALIZED VIEW clinic.control_tower_lead_status IS
    'Control tower: number of leads per clinic and current status, all dates. '
    'Refreshed by CALL clinic.refresh_control_tower().';

-- Appointments by clinic and appointment day. booked = every appointment on the day, whatever its status.
CREATE MATERIALIZED VIEW clinic.control_tower_appointments_daily AS
SELECT a.clinic_id,
       a.appointment_date                                    AS day,
       count(*)                                              AS booked,
       count(*) FILTER (WHERE a.status = 'scheduled')        AS scheduled,
       count(*) FILTER (WHERE a.status = 'checked_in')       AS checked_in,
       count(*) FILTER (WHERE a.status = 'completed')        AS completed,
       count(*) FILTER (WHERE a.status = 'cancelled')        AS cancelled,
       count(*) FILTER (WHERE a.status = 'no_show')          AS no_show
FROM clinic.appointments AS a
GROUP BY a.clinic_id, a.appointment_date;
CREATE UNIQUE INDEX control_tower_appointments_daily_key
    ON clinic.control_tower_appointments_daily (clinic_id, day);
COMMENT ON MATERIALIZED VIEW clinic.control_tower_appointments_daily IS
    'Control tower: appointments per clinic and appointment_date; booked counts all of them, the other '
    'columns split them by status at the last refresh. Refreshed by CALL clinic.refresh_control_tower().';

-- Per-doctor load by day. appointments and booked_minutes leave cancelled appointments out (they free
-- the slot); cancelled is counted on its own.
CREATE MATERIALIZED VIEW clinic.control_tower_doctor_load_daily AS
SELECT a.clinic_id,
       a.appointment_date                                              AS day,
       a.doctor_id,
       count(*) FILTER (WHERE a.status <> 'cancelled')                 AS appointments,
       count(*) FILTER (WHERE a.status = 'completed')                  AS completed,
       count(*) FILTER (WHERE a.status = 'no_show')                    AS no_show,
       count(*) FILTER (WHERE a.status = 'cancelled')                  AS cancelled,
       coalesce(sum(extract(epoch FROM a.end_time - a.start_time))
                FILTER (WHERE a.status <> 'cancelled'), 0) / 60        AS booked_minutes
FROM clinic.appointments AS a
GROUP BY a.clinic_id, a.appointment_date, a.doctor_id;
CREATE UNIQUE INDEX control_tower_doctor_load_daily_key
    ON clinic.control_tower_doctor_load_daily (clinic_id, day, doctor_id);
COMMENT ON MATERIALIZED VIEW clinic.control_tower_doctor_load_daily IS
    'Control tower: per clinic, appointment_date and doctor — non-cancelled appointments and their booked '
    'minutes (end_time - start_time), completed, no-show and cancelled counts. '
    'Refreshed by CALL clinic.refresh_control_tower().';

-- Patients by registration day, with the lead → patient conversions among them: from_leads counts the
-- patients linked to a lead, days_to_convert sums registration_date - lead.date_added over those, so an
-- average over any range is sum(days_to_convert) / sum(from_leads), exactly.
CREATE MATERIALIZED VIEW clinic.control_tower_patients_daily AS
SELECT p.clinic_id,
       p.registration_date                                   AS day,
       count(*)                                              AS registered,
       count(l.id)                                           AS from_leads,
       coalesce(sum(p.registration_date - l.date_added), 0)  AS days_to_convert
FROM clinic.patients AS p
LEFT JOIN clinic.leads AS l ON l.clinic_id = p.clinic_id AND l.id = p.lead_id
GROUP BY p.clinic_id, p.registration_date;
CREATE UNIQUE INDEX control_tower_patients_daily_key
    ON clinic.control_tower_patients_daily (clinic_id, day);
COMMENT ON MATERIALIZED VIEW clinic.control_tower_patients_daily IS
    'Control tower: patients per clinic and registration_date; from_leads = those converted from a lead, '
    'days_to_convert = sum of (registration_date - lead date_added) in days over them. '
    'Refreshed by CALL clinic.refresh_control_tower().';

-- No tenant filter is possible on a materialized view: the API role reads them only through functions.
REVOKE ALL ON clinic.control_tower_leads_daily, clinic.control_tower_lead_status,
    clinic.control_tower_appointments_daily, clinic.control_tower_doctor_load_daily,
    clinic.control_tower_patients_daily FROM keel_api, PUBLIC;

-- The intervention queue (live): leads waiting in the CRO queue, least recently touched first.
CREATE INDEX leads_cro_queue_updated_at_idx
    ON clinic.leads (clinic_id, updated_at, id) WHERE status = 'cro_queue';

-- refreshed_at of every dashboard answer: the newest successful refresh, one index probe.
CREATE INDEX metrics_refresh_log_ok_started_at_idx
    ON keel.metrics_refresh_log (started_at DESC) WHERE outcome = 'ok';

-- The views above were just populated: say so, so reads carry a refreshed_at before the first cron run.
INSERT INTO keel.metrics_refresh_log (started_at, finished_at, duration_ms, outcome, detail)
VALUES (clock_timestamp(), clock_timestamp(), 0, 'ok', 'populated by migration 0300_control_tower_views');

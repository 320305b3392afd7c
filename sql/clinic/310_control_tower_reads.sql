-- Control tower reads (DESIGN §6, §8): one function per dashboard endpoint, each answering the whole JSON
-- document in one call.
--
-- The materialized views (migrations/0300_control_tower_views.sql) have no row-level security and keel_api
-- has no privilege on them, so these functions are SECURITY DEFINER and filter every view by the caller's
-- clinic (the request's clinic_id claim; DBAs may pass clinic_id instead). Each read touches only the
-- aggregate rows of that clinic and date range through the views' (clinic_id, day …) unique indexes —
-- never the base tables, except two small live, index-backed queries: today's appointments of the clinic
-- and its stalled CRO queue.
--
-- Definitions (also in the README, "Control tower"). Lead figures are cohort figures: a lead counts on its
-- date_added, by its status at the last refresh. In the clinic's timezone, "this month" is the calendar
-- month of today.
--   conversion rate      converted / leads, over the month's leads
--   CRO success rate     (first_consult + follow_up + converted) / (leads - new_inquiry): of the month's
--                        leads the CRO team has picked up (anything past new_inquiry, lost and not
--                        interested included), the share that reached a consultation
--   churn rate           (lost + not_interested) / leads, over the month's leads
--   avg days to convert  mean of (registration_date - lead date_added) over the patients registered this
--                        month from a lead
--   funnel (cumulative)  new = all the month's leads; first_consult = leads at first_consult or beyond
--                        (first_consult, follow_up, converted); follow_up = follow_up or converted;
--                        converted = converted
-- A rate whose denominator is zero is 0, so a clinic without data reads zeros.

CREATE OR REPLACE FUNCTION clinic.control_tower_refreshed_at()
    RETURNS timestamptz
    LANGUAGE sql
    STABLE
AS $$
    SELECT max(r.started_at) FROM keel.metrics_refresh_log AS r WHERE r.outcome = 'ok'
$$;
COMMENT ON FUNCTION clinic.control_tower_refreshed_at() IS
    'Start of the newest successful control-tower refresh (the views hold the data of at least that '
    'moment); NULL when none was logged. No arguments; raises nothing.';

CREATE OR REPLACE FUNCTION clinic.control_tower_clinic(clinic_id uuid DEFAULT NULL)
    RETURNS clinic.clinics
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    picked clinic.clinics;
BEGIN
    -- Through the API the clinic comes from the token only; an argument is for DBAs in psql.
    IF keel.current_clinic_id() IS NULL AND pg_catalog.current_setting('role') = 'keel_api' THEN
        RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = 'the request carries no clinic';
    END IF;
    SELECT * INTO picked FROM clinic.clinics AS c WHERE c.id = clinic.tenant_id(control_tower_clinic.clinic_id);
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'clinic not found';
    END IF;
    RETURN picked;
END
$$;
COMMENT ON FUNCTION clinic.control_tower_clinic(uuid) IS
    'The clinic a control-tower read is for: the request''s clinic_id claim, else the clinic_id argument '
    '(DBA use). Errors: 22023 neither given; 42501 argument differs from the claim, or an API call without '
    'a clinic claim; P0002 no such clinic.';

CREATE OR REPLACE FUNCTION clinic.control_tower_range(
    from_date date,
    to_date date,
    today date,
    OUT first_day date,
    OUT last_day date
)
    LANGUAGE plpgsql
    IMMUTABLE
AS $$
BEGIN
    last_day := coalesce(to_date, today);
    first_day := coalesce(from_date, last_day - 29);
    IF first_day > last_day THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = pg_catalog.format('from (%s) is after to (%s)', first_day, last_day),
            HINT = 'Give from <= to; to defaults to today and from to 29 days before to.';
    END IF;
    IF last_day - first_day + 1 > 366 THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = pg_catalog.format('the range %s .. %s spans %s days; at most 366 are allowed',
                                        first_day, last_day, last_day - first_day + 1),
            HINT = 'Ask for a year at a time.';
    END IF;
END
$$;
COMMENT ON FUNCTION clinic.control_tower_range(date, date, date) IS
    'Validates a control-tower date range (both ends included): to defaults to today, from to to - 29 days. '
    'Returns (first_day, last_day). Errors: 22023 from after to, or more than 366 days.';

CREATE OR REPLACE FUNCTION clinic.control_tower_summary(clinic_id uuid DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
DECLARE
    c clinic.clinics := clinic.control_tower_clinic(control_tower_summary.clinic_id);
    today date := (now() AT TIME ZONE c.timezone)::date;
    month_first date := date_trunc('month', today::timestamp)::date;
    month_last date := (date_trunc('month', today::timestamp) + interval '1 month')::date - 1;
    refreshed timestamptz := clinic.control_tower_refreshed_at();
    l record;
    p record;
    a record;
    sources jsonb;
    statuses jsonb;
    today_by_status jsonb;
    today_total bigint;
BEGIN
    SELECT coalesce(sum(d.leads), 0)::bigint AS leads,
           coalesce(sum(d.new_inquiry), 0)::bigint AS new_inquiry,
           coalesce(sum(d.cro_queue), 0)::bigint AS cro_queue,
           coalesce(sum(d.first_consult), 0)::bigint AS first_consult,
           coalesce(sum(d.follow_up), 0)::bigint AS follow_up,
           coalesce(sum(d.converted), 0)::bigint AS converted,
           coalesce(sum(d.lost), 0)::bigint AS lost,
           coalesce(sum(d.not_interested), 0)::bigint AS not_interested
    INTO l
    FROM clinic.control_tower_leads_daily AS d
    WHERE d.clinic_id = c.id AND d.day BETWEEN month_first AND month_last;

    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'source', nullif(s.source, ''), 'leads', s.leads, 'converted', s.converted
           ) ORDER BY s.leads DESC, s.source), '[]')
    INTO sources
    FROM (
        SELECT d.source, sum(d.leads)::bigint AS leads, sum(d.converted)::bigint AS converted
        FROM clinic.control_tower_leads_daily AS d
        WHERE d.clinic_id = c.id AND d.day BETWEEN month_first AND month_last
        GROUP BY d.source
    ) AS s;

    SELECT coalesce(sum(d.registered), 0)::bigint AS registered,
           coalesce(sum(d.from_leads), 0)::bigint AS from_leads,
           coalesce(sum(d.days_to_convert), 0)::bigint AS days_to_convert
    INTO p
    FROM clinic.control_tower_patients_daily AS d
    WHERE d.clinic_id = c.id AND d.day BETWEEN month_first AND month_last;

    SELECT coalesce(sum(d.booked), 0)::bigint AS booked,
           coalesce(sum(d.completed), 0)::bigint AS completed,
           coalesce(sum(d.cancelled), 0)::bigint AS cancelled,
           coalesce(sum(d.no_show), 0)::bigint AS no_show
    INTO a
    FROM clinic.control_tower_appointments_daily AS d
    WHERE d.clinic_id = c.id AND d.day BETWEEN month_first AND month_last;

    SELECT jsonb_agg(jsonb_build_object('status', s.status, 'count', coalesce(v.leads, 0)) ORDER BY s.ord)
    INTO statuses
    FROM unnest(ARRAY['new_inquiry', 'cro_queue', 'first_consult', 'follow_up', 'converted', 'lost',
                      'not_interested']) WITH ORDINALITY AS s(status, ord)
    LEFT JOIN clinic.control_tower_lead_status AS v ON v.clinic_id = c.id AND v.status = s.status;

    -- Live: today's appointments of this clinic (appointments_clinic_id_date_idx), small and current.
    SELECT jsonb_agg(jsonb_build_object('status', s.status, 'count', coalesce(t.n, 0)) ORDER BY s.ord),
           coalesce(sum(t.n), 0)::bigint
    INTO today_by_status, today_total
    FROM unnest(ARRAY['scheduled', 'checked_in', 'completed', 'cancelled', 'no_show'])
         WITH ORDINALITY AS s(status, ord)
    LEFT JOIN (
        SELECT ap.status, count(*) AS n
        FROM clinic.appointments AS ap
        WHERE ap.clinic_id = c.id AND ap.appointment_date = today
        GROUP BY ap.status
    ) AS t ON t.status = s.status;

    RETURN jsonb_build_object(
        'clinic_id', c.id,
        'timezone', c.timezone,
        'today', today,
        'period', jsonb_build_object('from', month_first, 'to', month_last),
        'kpis', jsonb_build_object(
            'conversion_rate', CASE WHEN l.leads > 0 THEN round(l.converted::numeric / l.leads, 4) ELSE 0 END,
            'cro_success_rate', CASE WHEN l.leads - l.new_inquiry > 0
                THEN round((l.first_consult + l.follow_up + l.converted)::numeric / (l.leads - l.new_inquiry), 4)
                ELSE 0 END,
            'churn_rate', CASE WHEN l.leads > 0
                THEN round((l.lost + l.not_interested)::numeric / l.leads, 4) ELSE 0 END,
            'avg_days_to_convert', CASE WHEN p.from_leads > 0
                THEN round(p.days_to_convert::numeric / p.from_leads, 2) ELSE 0 END
        ),
        'month', jsonb_build_object(
            'leads', l.leads,
            'new_inquiry', l.new_inquiry,
            'cro_queue', l.cro_queue,
            'first_consult', l.first_consult,
            'follow_up', l.follow_up,
            'converted', l.converted,
            'lost', l.lost,
            'not_interested', l.not_interested,
            'cro_handled', l.leads - l.new_inquiry,
            'cro_success', l.first_consult + l.follow_up + l.converted,
            'patients_registered', p.registered,
            'patients_from_leads', p.from_leads,
            'appointments_booked', a.booked,
            'appointments_completed', a.completed,
            'appointments_cancelled', a.cancelled,
            'appointments_no_show', a.no_show
        ),
        'funnel', jsonb_build_array(
            jsonb_build_object('stage', 'new', 'count', l.leads),
            jsonb_build_object('stage', 'first_consult', 'count', l.first_consult + l.follow_up + l.converted),
            jsonb_build_object('stage', 'follow_up', 'count', l.follow_up + l.converted),
            jsonb_build_object('stage', 'converted', 'count', l.converted)
        ),
        'lead_status_counts', statuses,
        'leads_by_source', sources,
        'appointments_today', jsonb_build_object('date', today, 'total', today_total, 'by_status', today_by_status),
        'refreshed_at', refreshed,
        'stale_seconds', floor(extract(epoch FROM now() - refreshed))::bigint
    );
END
$$;
COMMENT ON FUNCTION clinic.control_tower_summary(uuid) IS
    'Control-tower summary of the current clinic as one JSON document, for the current calendar month in the '
    'clinic''s timezone (lead figures by date_added, each lead in its status at the last refresh): kpis — '
    'conversion_rate = converted / leads; cro_success_rate = (first_consult + follow_up + converted) / '
    '(leads - new_inquiry), i.e. of the leads the CRO team picked up, the share that reached a consultation; '
    'churn_rate = (lost + not_interested) / leads; avg_days_to_convert = mean of (registration_date - lead '
    'date_added) over the patients registered this month from a lead (rates 0..1, 0 when undefined); month '
    'figures; the cumulative funnel (new = all leads, first_consult = at first_consult or beyond, follow_up '
    '= follow_up or converted, converted); lead_status_counts [{status, count}] over all leads; '
    'leads_by_source; appointments_today {date, total, by_status} (live); refreshed_at, stale_seconds. '
    'Argument: clinic_id (DBA use; the API''s comes from the token). Errors: 22023 no clinic; 42501 '
    'clinic_id differs from the request''s; P0002 no such clinic.';

CREATE OR REPLACE FUNCTION clinic.control_tower_daily(
    from_date date DEFAULT NULL,
    to_date date DEFAULT NULL,
    clinic_id uuid DEFAULT NULL
)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
DECLARE
    c clinic.clinics := clinic.control_tower_clinic(control_tower_daily.clinic_id);
    span record := clinic.control_tower_range(from_date, to_date, (now() AT TIME ZONE c.timezone)::date);
    refreshed timestamptz := clinic.control_tower_refreshed_at();
    days jsonb;
    totals jsonb;
BEGIN
    WITH leads AS (
        SELECT d.day, sum(d.leads) AS leads, sum(d.converted) AS converted, sum(d.lost) AS lost,
               sum(d.not_interested) AS not_interested
        FROM clinic.control_tower_leads_daily AS d
        WHERE d.clinic_id = c.id AND d.day BETWEEN span.first_day AND span.last_day
        GROUP BY d.day
    ),
    day_rows AS (
        SELECT k.day::date AS day,
               coalesce(l.leads, 0)::bigint AS leads_created,
               coalesce(l.converted, 0)::bigint AS leads_converted,
               coalesce(l.lost, 0)::bigint AS leads_lost,
               coalesce(l.not_interested, 0)::bigint AS leads_not_interested,
               coalesce(a.booked, 0) AS appointments_booked,
               coalesce(a.completed, 0) AS appointments_completed,
               coalesce(a.cancelled, 0) AS appointments_cancelled,
               coalesce(a.no_show, 0) AS appointments_no_show,
               coalesce(p.registered, 0) AS patients_registered,
               coalesce(p.from_leads, 0) AS patients_from_leads
        FROM generate_series(span.first_day::timestamp, span.last_day::timestamp, interval '1 day') AS k(day)
        LEFT JOIN leads AS l ON l.day = k.day::date
        -- The range bound on each view keeps the read to the range's rows, however long the history.
        LEFT JOIN clinic.control_tower_appointments_daily AS a
            ON a.clinic_id = c.id AND a.day = k.day::date AND a.day BETWEEN span.first_day AND span.last_day
        LEFT JOIN clinic.control_tower_patients_daily AS p
            ON p.clinic_id = c.id AND p.day = k.day::date AND p.day BETWEEN span.first_day AND span.last_day
    )
    SELECT json_agg(r ORDER BY r.day)::jsonb,
           jsonb_build_object(
               'leads_created', sum(r.leads_created),
               'leads_converted', sum(r.leads_converted),
               'leads_lost', sum(r.leads_lost),
               'leads_not_interested', sum(r.leads_not_interested),
               'appointments_booked', sum(r.appointments_booked),
               'appointments_completed', sum(r.appointments_completed),
               'appointments_cancelled', sum(r.appointments_cancelled),
               'appointments_no_show', sum(r.appointments_no_show),
               'patients_registered', sum(r.patients_registered),
               'patients_from_leads', sum(r.patients_from_leads)
           )
    INTO days, totals
    FROM day_rows AS r;

    RETURN jsonb_build_object(
        'from', span.first_day,
        'to', span.last_day,
        'days', days,
        'totals', totals,
        'refreshed_at', refreshed,
        'stale_seconds', floor(extract(epoch FROM now() - refreshed))::bigint
    );
END
$$;
COMMENT ON FUNCTION clinic.control_tower_daily(date, date, uuid) IS
    'Control-tower figures of the current clinic per day, one row per day of [from_date, to_date] including '
    'days without data (zeros): days [{day, leads_created, leads_converted, leads_lost, '
    'leads_not_interested (leads by date_added and current status), appointments_booked, '
    'appointments_completed, appointments_cancelled, appointments_no_show (by appointment_date), '
    'patients_registered, patients_from_leads (by registration_date)}], totals over the range, from, to, '
    'refreshed_at, stale_seconds. to defaults to today in the clinic''s timezone, from to to - 29. '
    'Arguments: from_date, to_date, clinic_id (DBA use). Errors: 22023 from after to, more than 366 days, or '
    'no clinic; 42501 clinic_id differs from the request''s; P0002 no such clinic.';

CREATE OR REPLACE FUNCTION clinic.control_tower_doctor_load(
    clinic_id uuid,
    from_date date,
    to_date date,
    by_day boolean
)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
DECLARE
    c clinic.clinics := clinic.control_tower_clinic(control_tower_doctor_load.clinic_id);
    span record := clinic.control_tower_range(from_date, to_date, (now() AT TIME ZONE c.timezone)::date);
    refreshed timestamptz := clinic.control_tower_refreshed_at();
    doctors jsonb;
BEGIN
    WITH load AS (
        SELECT d.doctor_id,
               sum(d.appointments)::bigint AS appointments,
               sum(d.completed)::bigint AS completed,
               sum(d.no_show)::bigint AS no_show,
               sum(d.cancelled)::bigint AS cancelled,
               sum(d.booked_minutes) AS booked_minutes,
               count(*) FILTER (WHERE d.appointments > 0)::bigint AS days_worked,
               -- An aggregate is computed even under a false CASE: by_day goes into its FILTER.
               json_agg(json_build_object(
                   'day', d.day,
                   'appointments', d.appointments,
                   'booked_minutes', round(d.booked_minutes, 2)
               ) ORDER BY d.day) FILTER (WHERE by_day AND d.appointments > 0) AS days
        FROM clinic.control_tower_doctor_load_daily AS d
        WHERE d.clinic_id = c.id AND d.day BETWEEN span.first_day AND span.last_day
        GROUP BY d.doctor_id
    )
    SELECT jsonb_agg(jsonb_build_object(
               'doctor_id', s.id,
               'name', s.name,
               'specialty', s.specialty,
               'is_active', s.is_active,
               'appointments', coalesce(ld.appointments, 0),
               'completed', coalesce(ld.completed, 0),
               'no_show', coalesce(ld.no_show, 0),
               'cancelled', coalesce(ld.cancelled, 0),
               'booked_minutes', round(coalesce(ld.booked_minutes, 0), 2),
               'days_worked', coalesce(ld.days_worked, 0),
               'avg_booked_minutes_per_day_worked', CASE WHEN ld.days_worked > 0
                   THEN round(ld.booked_minutes / ld.days_worked, 2) ELSE 0 END
           ) || CASE WHEN by_day THEN jsonb_build_object('days', coalesce(ld.days::jsonb, '[]')) ELSE '{}' END
           ORDER BY coalesce(ld.booked_minutes, 0) DESC, s.name, s.id)
    INTO doctors
    FROM clinic.staff AS s
    LEFT JOIN load AS ld ON ld.doctor_id = s.id
    WHERE s.clinic_id = c.id
      AND ((s.role = 'doctor' AND s.is_active) OR ld.doctor_id IS NOT NULL);

    RETURN jsonb_build_object(
        'from', span.first_day,
        'to', span.last_day,
        'doctors', coalesce(doctors, '[]'),
        'refreshed_at', refreshed,
        'stale_seconds', floor(extract(epoch FROM now() - refreshed))::bigint
    );
END
$$;
COMMENT ON FUNCTION clinic.control_tower_doctor_load(uuid, date, date, boolean) IS
    'Per-doctor load over [from_date, to_date] for clinic.control_tower_doctors and '
    'clinic.control_tower_doctors_by_day (which see). Arguments: clinic_id (NULL = the request''s), '
    'from_date, to_date, by_day (add each doctor''s days). Errors as clinic.control_tower_doctors.';
REVOKE ALL ON FUNCTION clinic.control_tower_doctor_load(uuid, date, date, boolean) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION clinic.control_tower_doctors(
    from_date date DEFAULT NULL,
    to_date date DEFAULT NULL,
    clinic_id uuid DEFAULT NULL
)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
    SELECT clinic.control_tower_doctor_load(clinic_id, from_date, to_date, false)
$$;
COMMENT ON FUNCTION clinic.control_tower_doctors(date, date, uuid) IS
    'Per-doctor load of the current clinic over [from_date, to_date]: every active doctor and anyone with '
    'appointments in the range, busiest first — appointments (not cancelled), completed, no_show, '
    'cancelled, booked_minutes (sum of end_time - start_time of non-cancelled appointments), days_worked '
    '(days with a non-cancelled appointment), avg_booked_minutes_per_day_worked; from, to, refreshed_at, '
    'stale_seconds. Reads (clinic, day, doctor) aggregate rows only. Defaults: to = today in the clinic''s '
    'timezone, from = to - 29. Arguments: from_date, to_date, clinic_id (DBA use). Errors: 22023 from after '
    'to, more than 366 days, or no clinic; 42501 clinic_id differs from the request''s; P0002 no such clinic.';

CREATE OR REPLACE FUNCTION clinic.control_tower_doctors_by_day(
    from_date date DEFAULT NULL,
    to_date date DEFAULT NULL,
    clinic_id uuid DEFAULT NULL
)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
    SELECT clinic.control_tower_doctor_load(clinic_id, from_date, to_date, true)
$$;
COMMENT ON FUNCTION clinic.control_tower_doctors_by_day(date, date, uuid) IS
    'As clinic.control_tower_doctors, and each doctor also carries days [{day, appointments, booked_minutes}] '
    'for the days of the range with non-cancelled appointments (the answer grows with doctors x days, '
    'never with the number of appointments). Arguments, defaults and errors as clinic.control_tower_doctors.';

CREATE OR REPLACE FUNCTION clinic.control_tower_intervention_queue(
    min_days integer DEFAULT 3,
    page_limit integer DEFAULT 50,
    page_offset integer DEFAULT 0,
    clinic_id uuid DEFAULT NULL
)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
DECLARE
    c clinic.clinics := clinic.control_tower_clinic(control_tower_intervention_queue.clinic_id);
    cutoff timestamptz;
    items jsonb;
    total bigint;
BEGIN
    IF min_days IS NULL OR min_days NOT BETWEEN 0 AND 3650 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'min_days must be between 0 and 3650';
    END IF;
    IF page_limit IS NULL OR page_limit NOT BETWEEN 1 AND 500 OR page_offset IS NULL OR page_offset < 0 THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'page_limit must be 1..500 and page_offset >= 0';
    END IF;
    cutoff := now() - make_interval(days => min_days);

    -- Live and index-backed: leads_cro_queue_updated_at_idx (clinic_id, updated_at, id) WHERE cro_queue.
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'lead_id', q.id,
               'name', q.name,
               'source', q.source,
               'date_added', q.date_added,
               'assigned_to_id', q.assigned_to_id,
               'assigned_to_name', s.name,
               'last_activity_at', q.updated_at,
               'days_stalled', floor(extract(epoch FROM now() - q.updated_at) / 86400)::integer
           ) ORDER BY q.updated_at, q.id), '[]')
    INTO items
    FROM (
        SELECT l.id, l.name, l.source, l.date_added, l.assigned_to_id, l.updated_at, l.clinic_id
        FROM clinic.leads AS l
        WHERE l.clinic_id = c.id AND l.status = 'cro_queue' AND l.updated_at <= cutoff
        ORDER BY l.updated_at, l.id
        LIMIT page_limit OFFSET page_offset
    ) AS q
    LEFT JOIN clinic.staff AS s ON s.clinic_id = q.clinic_id AND s.id = q.assigned_to_id;

    SELECT count(*) INTO total
    FROM clinic.leads AS l
    WHERE l.clinic_id = c.id AND l.status = 'cro_queue' AND l.updated_at <= cutoff;

    RETURN jsonb_build_object(
        'items', items,
        'total', total,
        'min_days', min_days,
        'refreshed_at', now(),
        'stale_seconds', 0
    );
END
$$;
COMMENT ON FUNCTION clinic.control_tower_intervention_queue(integer, integer, integer, uuid) IS
    'Leads of the current clinic stalled in the CRO queue (status cro_queue, untouched — updated_at — for at '
    'least min_days days), least recently touched first, live: {items [{lead_id, name, source, date_added, '
    'assigned_to_id, assigned_to_name, last_activity_at, days_stalled (whole days since last_activity_at)}], '
    'total, min_days, refreshed_at (now), stale_seconds (0)}. Arguments: min_days (0..3650, default 3), '
    'page_limit (1..500), page_offset, clinic_id (DBA use). Errors: 22023 bad argument or no clinic; 42501 '
    'clinic_id differs from the request''s; P0002 no such clinic.';

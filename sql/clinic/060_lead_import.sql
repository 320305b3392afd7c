-- Bulk lead import: rows validated and encrypted by the API, staged in a temporary table (the API
-- streams them in with COPY; clinic.import_leads stages a JSON array), checked against the clinic's
-- staff and inserted with one set-based statement.

CREATE OR REPLACE FUNCTION clinic.create_lead_import_staging()
    RETURNS void
    LANGUAGE plpgsql
AS $$
BEGIN
    IF to_regclass('pg_temp.lead_import_rows') IS NOT NULL THEN
        DROP TABLE pg_temp.lead_import_rows;
    END IF;
    CREATE TEMPORARY TABLE lead_import_rows (
        index integer,
        id uuid,
        date_added date,
        name text,
        phone text,
        phone_bidx text,
        alternate_phone text,
        age integer,
        gender text,
        source text,
        inquiry text,
        problem text,
        treatment_doctor text,
        treatment_suggested text,
        status text,
        assigned_to_id uuid,
        guardian_name text,
        guardian_age integer,
        location text,
        referral_required boolean,
        notes text
    ) ON COMMIT DROP;
END
$$;
COMMENT ON FUNCTION clinic.create_lead_import_staging() IS
    'Creates the empty staging table pg_temp.lead_import_rows (dropped at commit; one left from earlier in '
    'the transaction is replaced) for clinic.import_staged_leads: one row per lead as create_lead takes it '
    '(id, chosen by the API as the ciphertexts are bound to it; sensitive fields already encrypted, '
    'phone_bidx the phone''s blind index) plus index, its position in the source. Fill it with COPY ... FROM STDIN or INSERT. No arguments; raises nothing.';

CREATE OR REPLACE FUNCTION clinic.import_staged_leads(partial boolean DEFAULT false, clinic_id uuid DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    tenant uuid := clinic.tenant_id(import_staged_leads.clinic_id);
    rejected jsonb;
    imported integer;
BEGIN
    IF to_regclass('pg_temp.lead_import_rows') IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'no leads are staged for import',
            HINT = 'Call clinic.create_lead_import_staging() and fill pg_temp.lead_import_rows first.';
    END IF;

    -- What the API cannot check (the assigned staff member must belong to this clinic) and what only
    -- conversion may set (status converted: clinic.check_lead_conversion would refuse the whole batch).
    SELECT jsonb_agg(jsonb_build_object('index', e.index, 'errors', e.errors) ORDER BY e.index)
    INTO rejected
    FROM (
        SELECT r.index, jsonb_agg(x.error) AS errors
        FROM pg_temp.lead_import_rows AS r
        CROSS JOIN LATERAL (
            SELECT jsonb_build_object('field', 'assigned_to_id',
                                      'reason', 'no staff member with this id in the clinic') AS error
            WHERE r.assigned_to_id IS NOT NULL
              AND NOT EXISTS (
                  SELECT FROM clinic.staff AS s WHERE s.clinic_id = tenant AND s.id = r.assigned_to_id
              )
            UNION ALL
            SELECT jsonb_build_object('field', 'status',
                                      'reason', 'a lead becomes converted only by conversion')
            WHERE r.status = 'converted'
        ) AS x
        GROUP BY r.index
    ) AS e;

    IF rejected IS NOT NULL AND NOT partial THEN
        DROP TABLE pg_temp.lead_import_rows;
        RETURN jsonb_build_object('imported', 0, 'rejected', rejected);
    END IF;

    INSERT INTO clinic.leads (
        id, clinic_id, date_added, name, phone, phone_bidx, alternate_phone, age, gender, source, inquiry,
        problem, treatment_doctor, treatment_suggested, status, assigned_to_id, guardian_name,
        guardian_age, location, referral_required, notes
    )
    SELECT
        coalesce(r.id, gen_random_uuid()),
        tenant,
        r.date_added,
        r.name,
        r.phone,
        r.phone_bidx,
        r.alternate_phone,
        r.age,
        r.gender,
        r.source,
        r.inquiry,
        r.problem,
        r.treatment_doctor,
        r.treatment_suggested,
        coalesce(r.status, 'new_inquiry'),
        r.assigned_to_id,
        r.guardian_name,
        r.guardian_age,
        r.location,
        coalesce(r.referral_required, false),
        r.notes
    FROM pg_temp.lead_import_rows AS r
    WHERE (r.assigned_to_id IS NULL
           OR EXISTS (SELECT FROM clinic.staff AS s WHERE s.clinic_id = tenant AND s.id = r.assigned_to_id))
      AND r.status IS DISTINCT FROM 'converted'
    ORDER BY r.index;
    GET DIAGNOSTICS imported = ROW_COUNT;

    DROP TABLE pg_temp.lead_import_rows;
    RETURN jsonb_build_object('imported', imported, 'rejected', coalesce(rejected, '[]'));
END
$$;
COMMENT ON FUNCTION clinic.import_staged_leads(boolean, uuid) IS
    'Inserts the leads staged in pg_temp.lead_import_rows (see clinic.create_lead_import_staging) into the '
    'current clinic (or clinic_id, DBA use) with one statement, then drops the staging table. Rows naming '
    'an assigned_to_id outside the clinic or with status converted are rejected: with partial false nothing is inserted, with '
    'partial true the others are. Returns {imported, rejected: [{index, errors: [{field, reason}]}]}. '
    'Errors: 22023 nothing staged or no clinic; 42501 clinic_id differs from the request''s clinic; '
    '23514/23502/22xxx a row breaks a constraint (nothing inserted).';

CREATE OR REPLACE FUNCTION clinic.import_leads(rows jsonb, partial boolean DEFAULT false, clinic_id uuid DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
BEGIN
    IF jsonb_typeof(rows) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'rows must be a JSON array';
    END IF;
    PERFORM clinic.create_lead_import_staging();
    INSERT INTO pg_temp.lead_import_rows
    SELECT * FROM jsonb_populate_recordset(NULL::pg_temp.lead_import_rows, rows);
    RETURN clinic.import_staged_leads(partial, import_leads.clinic_id);
END
$$;
COMMENT ON FUNCTION clinic.import_leads(jsonb, boolean, uuid) IS
    'Inserts many leads into the current clinic (or clinic_id, DBA use) with one statement. rows: JSON '
    'array of lead objects as create_lead takes them, each with its source position as index. Rows naming '
    'an assigned_to_id outside the clinic or with status converted are rejected: with partial false nothing is inserted, with '
    'partial true the others are. Returns {imported, rejected: [{index, errors: [{field, reason}]}]}. '
    'Stages the rows with clinic.create_lead_import_staging and inserts them with '
    'clinic.import_staged_leads. Errors: 22023 rows not an array or no clinic; 42501 clinic_id differs '
    'from the request''s clinic; 23514/23502/22xxx a row breaks a constraint (nothing inserted).';

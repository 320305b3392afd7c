-- Leads: create (with duplicate hint), read, update, list. phone, alternate_phone, problem,
-- treatment_doctor and treatment_suggested arrive already encrypted by the API; phone_bidx is the keyed
-- blind index of the normalised phone, and callers pass the candidate blind indexes (one per live key)
-- as phone_matches to search by phone.

CREATE OR REPLACE TRIGGER leads_touch_updated_at
    BEFORE UPDATE ON clinic.leads
    FOR EACH ROW EXECUTE FUNCTION clinic.touch_updated_at();

CREATE OR REPLACE TRIGGER leads_fill_local_date
    BEFORE INSERT ON clinic.leads
    FOR EACH ROW EXECUTE FUNCTION clinic.fill_local_date();

CREATE OR REPLACE FUNCTION clinic.check_lead_conversion()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    -- 'converted' means "has a patient": only clinic.convert_lead (which inserts the patient first)
    -- can make it true, whatever path writes the lead (API, import, a DBA's raw INSERT or UPDATE).
    IF NEW.status = 'converted' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'converted')
       AND NOT EXISTS (
           SELECT FROM clinic.patients AS p WHERE p.clinic_id = NEW.clinic_id AND p.lead_id = NEW.id
       ) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'a lead becomes converted only by conversion',
            HINT = 'Convert it with clinic.convert_lead (POST /api/leads/{id}/convert), which creates its patient.';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = 'converted' AND NEW.status IS DISTINCT FROM 'converted'
       AND EXISTS (
           SELECT FROM clinic.patients AS p WHERE p.clinic_id = NEW.clinic_id AND p.lead_id = NEW.id
       ) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'a converted lead keeps its status',
            HINT = 'The lead is linked to its patient.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.check_lead_conversion() IS
    'Trigger function (BEFORE INSERT OR UPDATE OF status on clinic.leads): status converted only with a '
    'patient linked to the lead (as clinic.convert_lead leaves it), and a lead linked to a patient stays '
    'converted. Errors: 22023 either rule broken.';
REVOKE EXECUTE ON FUNCTION clinic.check_lead_conversion() FROM PUBLIC;

CREATE OR REPLACE TRIGGER leads_check_conversion
    BEFORE INSERT OR UPDATE OF status ON clinic.leads
    FOR EACH ROW EXECUTE FUNCTION clinic.check_lead_conversion();

CREATE OR REPLACE FUNCTION clinic.lead_json(lead clinic.leads)
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    SELECT to_jsonb(lead) - 'phone_bidx' - 'key_ids'
$$;
COMMENT ON FUNCTION clinic.lead_json(clinic.leads) IS
    'A lead row as JSON for the API (encrypted fields still encrypted; blind index and key ids left out). '
    'Raises nothing.';

CREATE OR REPLACE FUNCTION clinic.create_lead(data jsonb, phone_matches text[] DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    lead clinic.leads;
    duplicate_of uuid;
BEGIN
    IF data ->> 'status' = 'converted' THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'a lead cannot be created as converted',
            HINT = 'Create it, then convert it with clinic.convert_lead (POST /api/leads/{id}/convert).';
    END IF;
    -- Looked up before the insert, so the new lead is never its own duplicate.
    SELECT l.id INTO duplicate_of
    FROM clinic.leads AS l
    WHERE l.phone_bidx = ANY (phone_matches)
      AND l.clinic_id = clinic.tenant_id((data ->> 'clinic_id')::uuid)
    ORDER BY l.created_at DESC, l.id DESC
    LIMIT 1;

    INSERT INTO clinic.leads (
        id, clinic_id, date_added, name, phone, phone_bidx, alternate_phone, age, gender, source, inquiry,
        problem, treatment_doctor, treatment_suggested, status, assigned_to_id, guardian_name,
        guardian_age, location, referral_required, notes
    )
    VALUES (
        coalesce((data ->> 'id')::uuid, gen_random_uuid()),
        clinic.tenant_id((data ->> 'clinic_id')::uuid),
        (data ->> 'date_added')::date,
        data ->> 'name',
        data ->> 'phone',
        data ->> 'phone_bidx',
        data ->> 'alternate_phone',
        (data ->> 'age')::integer,
        data ->> 'gender',
        data ->> 'source',
        data ->> 'inquiry',
        data ->> 'problem',
        data ->> 'treatment_doctor',
        data ->> 'treatment_suggested',
        coalesce(data ->> 'status', 'new_inquiry'),
        (data ->> 'assigned_to_id')::uuid,
        data ->> 'guardian_name',
        (data ->> 'guardian_age')::integer,
        data ->> 'location',
        coalesce((data ->> 'referral_required')::boolean, false),
        data ->> 'notes'
    )
    RETURNING * INTO lead;

    RETURN clinic.lead_json(lead) || jsonb_build_object('possible_duplicate_of', duplicate_of);
END
$$;
COMMENT ON FUNCTION clinic.create_lead(jsonb, text[]) IS
    'Adds a lead to the current clinic. data: lead columns with encrypted fields as ciphertext and '
    'phone_bidx (id? — the API picks it, as its ciphertexts are bound to the row; clinic_id? for DBA use; '
    'date_added defaults to today in the clinic''s timezone); phone_matches: blind indexes of the phone '
    'under every live key. '
    'Returns the lead as JSON plus possible_duplicate_of (the newest lead with the same phone, or null). '
    'Errors: 22023 status converted; 23503 assigned_to_id not in the clinic; 23514 bad value or clear text '
    'in an encrypted column; 23502 missing name or phone.';

CREATE OR REPLACE FUNCTION clinic.get_lead(id uuid)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    result jsonb;
BEGIN
    SELECT clinic.lead_json(l) INTO result FROM clinic.leads AS l WHERE l.id = get_lead.id;
    IF result IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'lead not found';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.get_lead(uuid) IS
    'One lead of the current clinic as JSON (encrypted fields as ciphertext). Errors: P0002 not found '
    '(or another clinic''s).';

CREATE OR REPLACE FUNCTION clinic.update_lead(id uuid, data jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
AS $$
DECLARE
    current_status text;
    lead clinic.leads;
BEGIN
    SELECT l.status INTO current_status FROM clinic.leads AS l WHERE l.id = update_lead.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002', MESSAGE = 'lead not found';
    END IF;
    IF data ? 'status' AND data ->> 'status' IS DISTINCT FROM current_status THEN
        IF data ->> 'status' = 'converted' THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = 'a lead becomes converted only by conversion',
                HINT = 'Use POST /api/leads/{id}/convert (clinic.convert_lead).';
        ELSIF current_status = 'converted' THEN
            RAISE EXCEPTION USING
                ERRCODE = '22023',
                MESSAGE = 'a converted lead keeps its status',
                HINT = 'The lead is linked to its patient.';
        END IF;
    END IF;

    UPDATE clinic.leads AS l SET
        date_added = CASE WHEN data ? 'date_added' THEN (data ->> 'date_added')::date ELSE l.date_added END,
        name = CASE WHEN data ? 'name' THEN data ->> 'name' ELSE l.name END,
        phone = CASE WHEN data ? 'phone' THEN data ->> 'phone' ELSE l.phone END,
        phone_bidx = CASE WHEN data ? 'phone' THEN data ->> 'phone_bidx' ELSE l.phone_bidx END,
        alternate_phone = CASE WHEN data ? 'alternate_phone' THEN data ->> 'alternate_phone' ELSE l.alternate_phone END,
        age = CASE WHEN data ? 'age' THEN (data ->> 'age')::integer ELSE l.age END,
        gender = CASE WHEN data ? 'gender' THEN data ->> 'gender' ELSE l.gender END,
        source = CASE WHEN data ? 'source' THEN data ->> 'source' ELSE l.source END,
        inquiry = CASE WHEN data ? 'inquiry' THEN data ->> 'inquiry' ELSE l.inquiry END,
        problem = CASE WHEN data ? 'problem' THEN data ->> 'problem' ELSE l.problem END,
        treatment_doctor = CASE WHEN data ? 'treatment_doctor'
            THEN data ->> 'treatment_doctor' ELSE l.treatment_doctor END,
        treatment_suggested = CASE WHEN data ? 'treatment_suggested'
            THEN data ->> 'treatment_suggested' ELSE l.treatment_suggested END,
        status = CASE WHEN data ? 'status' THEN data ->> 'status' ELSE l.status END,
        assigned_to_id = CASE WHEN data ? 'assigned_to_id'
            THEN (data ->> 'assigned_to_id')::uuid ELSE l.assigned_to_id END,
        guardian_name = CASE WHEN data ? 'guardian_name' THEN data ->> 'guardian_name' ELSE l.guardian_name END,
        guardian_age = CASE WHEN data ? 'guardian_age' THEN (data ->> 'guardian_age')::integer ELSE l.guardian_age END,
        location = CASE WHEN data ? 'location' THEN data ->> 'location' ELSE l.location END,
        referral_required = CASE WHEN data ? 'referral_required'
            THEN (data ->> 'referral_required')::boolean ELSE l.referral_required END,
        notes = CASE WHEN data ? 'notes' THEN data ->> 'notes' ELSE l.notes END
    WHERE l.id = update_lead.id
    RETURNING * INTO lead;
    RETURN clinic.lead_json(lead);
END
$$;
COMMENT ON FUNCTION clinic.update_lead(uuid, jsonb) IS
    'Changes the keys present in data of one lead (encrypted fields as ciphertext; a new phone comes with '
    'its phone_bidx); returns the lead as JSON. Errors: P0002 not found (or another clinic''s); 22023 '
    'status set to or away from converted; 23503 assigned_to_id not in the clinic; 23514 bad value; '
    '23502 a required field set to null.';

CREATE OR REPLACE FUNCTION clinic.list_leads(
    status text DEFAULT NULL,
    q text DEFAULT NULL,
    phone_matches text[] DEFAULT NULL,
    assigned_to_id uuid DEFAULT NULL,
    page_limit integer DEFAULT 50,
    page_offset integer DEFAULT 0
)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    result jsonb;
BEGIN
    WITH matched AS (
        SELECT l.*
        FROM clinic.leads AS l
        WHERE (list_leads.status IS NULL OR l.status = list_leads.status)
          AND (list_leads.q IS NULL OR l.name ILIKE clinic.like_pattern(list_leads.q))
          AND (list_leads.phone_matches IS NULL OR l.phone_bidx = ANY (list_leads.phone_matches))
          AND (list_leads.assigned_to_id IS NULL OR l.assigned_to_id = list_leads.assigned_to_id)
    ), page AS (
        SELECT * FROM matched ORDER BY created_at DESC, id DESC LIMIT page_limit OFFSET page_offset
    )
    SELECT jsonb_build_object(
        'items', coalesce((SELECT jsonb_agg(clinic.lead_json(page::clinic.leads)
                                            ORDER BY page.created_at DESC, page.id DESC)
                           FROM page), '[]'),
        'total', (SELECT count(*) FROM matched)
    ) INTO result;
    RETURN result;
END
$$;
COMMENT ON FUNCTION clinic.list_leads(text, text, text[], uuid, integer, integer) IS
    'A page of the current clinic''s leads, newest first: {items, total}. Filters (NULL = any): status, '
    'q (substring of the name, trigram index), phone_matches (blind indexes of one phone: exact match on '
    'the indexed phone_bidx), assigned_to_id. Raises nothing.';

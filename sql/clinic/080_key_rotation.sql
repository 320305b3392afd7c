-- Re-encryption of lead fields under the newest key (`keel keys rotate`), in batches.

CREATE OR REPLACE FUNCTION clinic.lead_needs_rekey(lead clinic.leads, current_key text)
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    -- A field under an older key or in the v1 format (not bound to its clinic and row), or a blind
    -- index that is not the clinic's own under current_key.
    SELECT NOT lead.key_ids <@ ARRAY[current_key]
        OR lead.phone_bidx IS NULL
        OR lead.phone_bidx NOT LIKE 'v2:' || current_key || ':%'
        OR EXISTS (
            SELECT FROM unnest(ARRAY[lead.phone, lead.alternate_phone, lead.problem, lead.treatment_doctor,
                                     lead.treatment_suggested]) AS f(value)
            WHERE f.value NOT LIKE 'v2:%'
        )
$$;
COMMENT ON FUNCTION clinic.lead_needs_rekey(clinic.leads, text) IS
    'Whether `keel keys rotate` still has to rewrite this lead: a field under a key other than '
    'current_key or in the v1 format, or a blind index not in the v2 (per-clinic) format under '
    'current_key. Raises nothing.';
REVOKE EXECUTE ON FUNCTION clinic.lead_needs_rekey(clinic.leads, text) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION clinic.leads_to_rekey(current_key text, after_id uuid DEFAULT NULL, batch_size integer DEFAULT 500)
    RETURNS SETOF clinic.leads
    LANGUAGE sql
AS $$
    SELECT l.*
    FROM clinic.leads AS l
    WHERE (after_id IS NULL OR l.id > after_id)
      AND clinic.lead_needs_rekey(l, current_key)
    ORDER BY l.id
    LIMIT batch_size
    FOR UPDATE
$$;
COMMENT ON FUNCTION clinic.leads_to_rekey(text, uuid, integer) IS
    'The next batch (by id, after after_id) of leads with a field or blind index not written under '
    'current_key in the current format (clinic.lead_needs_rekey), locked FOR UPDATE until the transaction '
    'ends. Raises nothing.';
REVOKE EXECUTE ON FUNCTION clinic.leads_to_rekey(text, uuid, integer) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION clinic.rekey_leads(rows jsonb)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    changed integer;
BEGIN
    -- Re-encryption changes how a lead is stored, not what it says: updated_at (the intervention
    -- queue's "last activity") must stay as it was, so the touch trigger is told to leave it.
    PERFORM set_config('keel.keep_updated_at', 'on', true);
    UPDATE clinic.leads AS l SET
        phone = r.phone,
        phone_bidx = r.phone_bidx,
        alternate_phone = r.alternate_phone,
        problem = r.problem,
        treatment_doctor = r.treatment_doctor,
        treatment_suggested = r.treatment_suggested
    FROM jsonb_to_recordset(rows) AS r(
        id uuid, phone text, phone_bidx text, alternate_phone text, problem text,
        treatment_doctor text, treatment_suggested text
    )
    WHERE l.id = r.id;
    GET DIAGNOSTICS changed = ROW_COUNT;
    PERFORM set_config('keel.keep_updated_at', 'off', true);
    RETURN changed;
END
$$;
COMMENT ON FUNCTION clinic.rekey_leads(jsonb) IS
    'Writes re-encrypted fields back: rows is a JSON array of {id, phone, phone_bidx, alternate_phone, '
    'problem, treatment_doctor, treatment_suggested} (ciphertexts under the new key). Returns rows '
    'updated; updated_at is left as it was (a maintenance write). Errors: 23514 a value is not ciphertext. '
    'DBA/CLI use.';
REVOKE EXECUTE ON FUNCTION clinic.rekey_leads(jsonb) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION clinic.count_leads_to_rekey(current_key text)
    RETURNS bigint
    LANGUAGE sql
    STABLE
AS $$
    SELECT count(*)
    FROM clinic.leads AS l
    WHERE clinic.lead_needs_rekey(l, current_key)
$$;
COMMENT ON FUNCTION clinic.count_leads_to_rekey(text) IS
    'How many leads still have a field or blind index not written under current_key in the current '
    'format (what '
    'clinic.leads_to_rekey will return, in total). Raises nothing.';
REVOKE EXECUTE ON FUNCTION clinic.count_leads_to_rekey(text) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION clinic.count_v1_ciphertexts()
    RETURNS bigint
    LANGUAGE sql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
    -- The predicate of the partial index leads_v1_ciphertext_idx (migration 0832), word for word.
    SELECT count(*)
    FROM clinic.leads
    WHERE phone LIKE 'v1:%' OR alternate_phone LIKE 'v1:%' OR problem LIKE 'v1:%'
       OR treatment_doctor LIKE 'v1:%' OR treatment_suggested LIKE 'v1:%' OR phone_bidx NOT LIKE 'v2:%'
$$;
COMMENT ON FUNCTION clinic.count_v1_ciphertexts() IS
    'How many leads, of every clinic, still hold a field or phone blind index in the v1 format (not bound '
    'to its clinic and row): what `keel keys rotate` must still rewrite whatever the keys. The API refuses '
    'to read those values unless KEEL_ACCEPT_V1_CIPHERTEXTS is set. Reported by `keel migrate` and '
    '/api/ready; an index holds only these rows, so it is cheap. Raises nothing.';
-- /api/ready asks it (one number for all clinics; names none).
REVOKE EXECUTE ON FUNCTION clinic.count_v1_ciphertexts() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clinic.count_v1_ciphertexts() TO keel_api;

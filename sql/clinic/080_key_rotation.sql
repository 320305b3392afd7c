-- Re-encryption of lead fields under the newest key (`keel keys rotate`), in batches.

CREATE OR REPLACE FUNCTION clinic.leads_to_rekey(current_key text, after_id uuid DEFAULT NULL, batch_size integer DEFAULT 500)
    RETURNS SETOF clinic.leads
    LANGUAGE sql
AS $$
    SELECT l.*
    FROM clinic.leads AS l
    WHERE (after_id IS NULL OR l.id > after_id)
      AND (NOT l.key_ids <@ ARRAY[current_key]
           OR l.phone_bidx IS NULL
           OR l.phone_bidx NOT LIKE current_key || ':%')
    ORDER BY l.id
    LIMIT batch_size
    FOR UPDATE
$$;
COMMENT ON FUNCTION clinic.leads_to_rekey(text, uuid, integer) IS
    'The next batch (by id, after after_id) of leads with a field or blind index not written under '
    'current_key, locked FOR UPDATE until the transaction ends. Raises nothing.';
REVOKE EXECUTE ON FUNCTION clinic.leads_to_rekey(text, uuid, integer) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION clinic.rekey_leads(rows jsonb)
    RETURNS integer
    LANGUAGE sql
AS $$
    WITH changed AS (
        UPDATE clinic.leads AS l SET
            phone = r.phone,
            phone_bidx = r.phone_bidx,
            alternate_phone = r.alternate_phone,
            problem = r.problem,
            treatment_doctor = r.treatment_doctor,
            treatment_suggested = r.treatment_suggested,
            updated_at = l.updated_at
        FROM jsonb_to_recordset(rows) AS r(
            id uuid, phone text, phone_bidx text, alternate_phone text, problem text,
            treatment_doctor text, treatment_suggested text
        )
        WHERE l.id = r.id
        RETURNING l.id
    )
    SELECT count(*)::integer FROM changed
$$;
COMMENT ON FUNCTION clinic.rekey_leads(jsonb) IS
    'Writes re-encrypted fields back: rows is a JSON array of {id, phone, phone_bidx, alternate_phone, '
    'problem, treatment_doctor, treatment_suggested} (ciphertexts under the new key). Returns rows '
    'updated. Errors: 23514 a value is not ciphertext. DBA/CLI use.';
REVOKE EXECUTE ON FUNCTION clinic.rekey_leads(jsonb) FROM PUBLIC, keel_api;

CREATE OR REPLACE FUNCTION clinic.count_leads_to_rekey(current_key text)
    RETURNS bigint
    LANGUAGE sql
    STABLE
AS $$
    SELECT count(*)
    FROM clinic.leads AS l
    WHERE NOT l.key_ids <@ ARRAY[current_key]
       OR l.phone_bidx IS NULL
       OR l.phone_bidx NOT LIKE current_key || ':%'
$$;
COMMENT ON FUNCTION clinic.count_leads_to_rekey(text) IS
    'How many leads still have a field or blind index not written under current_key (what '
    'clinic.leads_to_rekey will return, in total). Raises nothing.';
REVOKE EXECUTE ON FUNCTION clinic.count_leads_to_rekey(text) FROM PUBLIC, keel_api;

-- Issue 13: leads still holding v1 ciphertexts (encrypted before values were bound to their clinic and
-- row) or v1 blind indexes are counted by `keel migrate` and on every `/api/ready`
-- (clinic.count_v1_ciphertexts in sql/clinic/080_key_rotation.sql): this partial index holds only those
-- rows, so the count costs nothing once `keel keys rotate` has rewritten them. The predicate is the
-- function's WHERE clause, word for word (the planner matches them).

CREATE INDEX leads_v1_ciphertext_idx ON clinic.leads (clinic_id)
    WHERE phone LIKE 'v1:%' OR alternate_phone LIKE 'v1:%' OR problem LIKE 'v1:%'
       OR treatment_doctor LIKE 'v1:%' OR treatment_suggested LIKE 'v1:%' OR phone_bidx NOT LIKE 'v2:%';

-- Lead ciphertexts bound to their clinic and row (api/crypto.py): the v2 format joins v1, which rows
-- written before it keep until `keel keys rotate` rewrites them. Checked in one pass per table.
ALTER TABLE clinic.leads DROP CONSTRAINT leads_phone_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_alternate_phone_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_problem_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_treatment_doctor_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_treatment_suggested_encrypted;
ALTER TABLE clinic.leads
    ADD CONSTRAINT leads_phone_encrypted
        CHECK (phone ~ '^v[12]:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    ADD CONSTRAINT leads_alternate_phone_encrypted
        CHECK (alternate_phone ~ '^v[12]:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    ADD CONSTRAINT leads_problem_encrypted
        CHECK (problem ~ '^v[12]:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    ADD CONSTRAINT leads_treatment_doctor_encrypted
        CHECK (treatment_doctor ~ '^v[12]:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$'),
    ADD CONSTRAINT leads_treatment_suggested_encrypted
        CHECK (treatment_suggested ~ '^v[12]:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$');

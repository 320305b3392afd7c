-- Back to v1 only; rows already in v2 are left as they are (NOT VALID), rotate cannot make them v1.
ALTER TABLE clinic.leads DROP CONSTRAINT leads_phone_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_alternate_phone_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_problem_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_treatment_doctor_encrypted;
ALTER TABLE clinic.leads DROP CONSTRAINT leads_treatment_suggested_encrypted;
ALTER TABLE clinic.leads
    ADD CONSTRAINT leads_phone_encrypted
        CHECK (phone ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$') NOT VALID,
    ADD CONSTRAINT leads_alternate_phone_encrypted
        CHECK (alternate_phone ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$') NOT VALID,
    ADD CONSTRAINT leads_problem_encrypted
        CHECK (problem ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$') NOT VALID,
    ADD CONSTRAINT leads_treatment_doctor_encrypted
        CHECK (treatment_doctor ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$') NOT VALID,
    ADD CONSTRAINT leads_treatment_suggested_encrypted
        CHECK (treatment_suggested ~ '^v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{38,}$') NOT VALID;
-- sql/clinic/080_key_rotation.sql takes a clinic.leads row here: it would keep 0100's rollback from
-- dropping the table (every migrate loads it again).
DROP FUNCTION IF EXISTS clinic.lead_needs_rekey(clinic.leads, text);

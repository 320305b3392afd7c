DROP INDEX IF EXISTS clinic.leads_v1_ciphertext_idx;

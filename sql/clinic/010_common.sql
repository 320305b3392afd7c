-- Helpers shared by the clinic-records functions.

CREATE OR REPLACE FUNCTION clinic.touch_updated_at()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.touch_updated_at() IS
    'Trigger function: sets updated_at to now() on every UPDATE of the row. No arguments; raises nothing.';

CREATE OR REPLACE FUNCTION clinic.tenant_id(clinic_id uuid DEFAULT NULL)
    RETURNS uuid
    LANGUAGE plpgsql
    STABLE
AS $$
DECLARE
    claimed uuid := keel.current_clinic_id();
BEGIN
    IF claimed IS NULL AND tenant_id.clinic_id IS NULL THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = 'no clinic given',
            HINT = 'Call within an API request (clinic_id claim) or pass the clinic_id argument.';
    END IF;
    IF claimed IS NOT NULL AND tenant_id.clinic_id IS NOT NULL AND claimed <> tenant_id.clinic_id THEN
        RAISE EXCEPTION USING
            ERRCODE = '42501',
            MESSAGE = 'clinic_id does not match the clinic of the current request';
    END IF;
    RETURN coalesce(claimed, tenant_id.clinic_id);
END
$$;
COMMENT ON FUNCTION clinic.tenant_id(uuid) IS
    'The clinic a call acts for: the request''s clinic_id claim, else the clinic_id argument (DBA use). '
    'Errors: 22023 when neither is known; 42501 when both are given and differ.';

CREATE OR REPLACE FUNCTION clinic.like_pattern(term text)
    RETURNS text
    LANGUAGE sql
    IMMUTABLE
    PARALLEL SAFE
AS $$
    SELECT '%' || replace(replace(replace(term, '\', '\\'), '%', '\%'), '_', '\_') || '%'
$$;
COMMENT ON FUNCTION clinic.like_pattern(text) IS
    'A LIKE/ILIKE pattern matching term anywhere, with %, _ and \ in term taken literally. Raises nothing.';

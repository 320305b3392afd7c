-- Helpers shared by the clinic-records functions.

CREATE OR REPLACE FUNCTION clinic.touch_updated_at()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT keel.keeps_updated_at() THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.touch_updated_at() IS
    'Trigger function: sets updated_at to now() on every UPDATE of the row, except during a maintenance '
    'write (keel.keeps_updated_at()). No arguments; raises nothing.';

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

CREATE OR REPLACE FUNCTION clinic.local_date(clinic_id uuid, at_time timestamptz DEFAULT now())
    RETURNS date
    LANGUAGE sql
    STABLE
AS $$
    SELECT (at_time AT TIME ZONE coalesce(
        (SELECT c.timezone FROM clinic.clinics AS c WHERE c.id = local_date.clinic_id), 'UTC'))::date
$$;
COMMENT ON FUNCTION clinic.local_date(uuid, timestamptz) IS
    'The calendar date at at_time (default now()) in the clinic''s timezone (clinics.timezone; UTC for a '
    'clinic the caller cannot see). What "today" means for a clinic''s date defaults and the control '
    'tower. Raises nothing.';
-- Called by clinic.fill_local_date under the request role.
REVOKE EXECUTE ON FUNCTION clinic.local_date(uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clinic.local_date(uuid, timestamptz) TO keel_api;

CREATE OR REPLACE FUNCTION clinic.fill_local_date()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    -- A column DEFAULT cannot read the clinic's timezone, so the date columns have none and this
    -- BEFORE INSERT trigger fills them: the API, the import and a DBA's raw INSERT all agree.
    IF TG_TABLE_NAME = 'leads' THEN
        NEW.date_added := coalesce(NEW.date_added, clinic.local_date(NEW.clinic_id));
    ELSIF TG_TABLE_NAME = 'patients' THEN
        NEW.registration_date := coalesce(NEW.registration_date, clinic.local_date(NEW.clinic_id));
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.fill_local_date() IS
    'Trigger function (BEFORE INSERT on clinic.leads and clinic.patients): a missing date_added or '
    'registration_date becomes today in the clinic''s timezone (clinic.local_date). Raises nothing.';
REVOKE EXECUTE ON FUNCTION clinic.fill_local_date() FROM PUBLIC;

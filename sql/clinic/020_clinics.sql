-- Clinics: timezone validation and clinic.create_clinic (DESIGN §5).

CREATE OR REPLACE FUNCTION clinic.check_clinic_timezone()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_timezone_names WHERE name = NEW.timezone) THEN
        RAISE EXCEPTION USING
            ERRCODE = '22023',
            MESSAGE = format('unknown time zone %L', NEW.timezone),
            HINT = 'Use an IANA name such as Asia/Kolkata or Europe/Berlin (see pg_timezone_names).';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION clinic.check_clinic_timezone() IS
    'Trigger function on clinic.clinics: the timezone must be an IANA zone name. Errors: 22023 unknown zone.';

CREATE OR REPLACE TRIGGER clinics_check_timezone
    BEFORE INSERT OR UPDATE OF timezone ON clinic.clinics
    FOR EACH ROW EXECUTE FUNCTION clinic.check_clinic_timezone();

CREATE OR REPLACE FUNCTION clinic.create_clinic(
    name text,
    timezone text,
    uhid_prefix text,
    admin_name text,
    admin_email text
)
    RETURNS TABLE (clinic_id uuid, admin_id uuid)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    new_clinic_id uuid;
    new_admin_id uuid;
BEGIN
    INSERT INTO clinic.clinics (name, timezone, uhid_prefix)
    VALUES (
        create_clinic.name,
        coalesce(create_clinic.timezone, 'UTC'),
        coalesce(upper(btrim(create_clinic.uhid_prefix)), 'P')
    )
    RETURNING id INTO new_clinic_id;

    INSERT INTO clinic.uhid_counters (clinic_id) VALUES (new_clinic_id);

    INSERT INTO clinic.staff (clinic_id, name, email, role)
    VALUES (new_clinic_id, create_clinic.admin_name, btrim(create_clinic.admin_email), 'admin')
    RETURNING id INTO new_admin_id;

    RETURN QUERY SELECT new_clinic_id, new_admin_id;
END
$$;
COMMENT ON FUNCTION clinic.create_clinic(text, text, text, text, text) IS
    'Creates a clinic and its first admin staff member in one transaction. Arguments: name, timezone '
    '(IANA name, NULL = UTC), uhid_prefix (A-Z/0-9, up to 12, upper-cased; NULL = P), admin_name, '
    'admin_email. Returns (clinic_id, admin_id). Errors: 22023 unknown time zone; 23514 empty name, bad '
    'prefix or e-mail; 23502 a required argument is NULL.';
REVOKE EXECUTE ON FUNCTION clinic.create_clinic(text, text, text, text, text) FROM PUBLIC, keel_api;

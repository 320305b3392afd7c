-- Request claims, set per transaction by the API with set_config('request.jwt.claims', …, true).
-- Policies call these as (SELECT keel.current_clinic_id()) so they run once per statement.

CREATE OR REPLACE FUNCTION keel.current_claims()
    RETURNS jsonb
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb
$$;
COMMENT ON FUNCTION keel.current_claims() IS
    'The JSON claims of the current API request (NULL outside a request, e.g. in psql).';

CREATE OR REPLACE FUNCTION keel.current_clinic_id()
    RETURNS uuid
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    -- No FROM clause, so PostgreSQL inlines it into the calling query instead of running it through
    -- the SQL-function executor on every call (it runs several times per booking).
    SELECT CASE
        WHEN keel.current_claims() ->> 'clinic_id'
             ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        THEN (keel.current_claims() ->> 'clinic_id')::uuid
    END
$$;
COMMENT ON FUNCTION keel.current_clinic_id() IS
    'The clinic_id claim of the current request as uuid; NULL when absent or malformed.';

CREATE OR REPLACE FUNCTION keel.current_user_sub()
    RETURNS text
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    SELECT keel.current_claims() ->> 'sub'
$$;
COMMENT ON FUNCTION keel.current_user_sub() IS
    'The sub claim of the current request (staff id for Clinic, Clerk user id for CallMaster); NULL when absent.';

CREATE OR REPLACE FUNCTION keel.current_role_claim()
    RETURNS text
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    SELECT keel.current_claims() ->> 'role'
$$;
COMMENT ON FUNCTION keel.current_role_claim() IS
    'The role claim of the current request (admin, doctor, front_desk, cro); NULL when absent.';

-- Policies and the domain functions call these as keel_api; nothing else needs them.
REVOKE ALL ON FUNCTION keel.current_claims() FROM PUBLIC;
REVOKE ALL ON FUNCTION keel.current_clinic_id() FROM PUBLIC;
REVOKE ALL ON FUNCTION keel.current_user_sub() FROM PUBLIC;
REVOKE ALL ON FUNCTION keel.current_role_claim() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keel.current_claims() TO keel_api;
GRANT EXECUTE ON FUNCTION keel.current_clinic_id() TO keel_api;
GRANT EXECUTE ON FUNCTION keel.current_user_sub() TO keel_api;
GRANT EXECUTE ON FUNCTION keel.current_role_claim() TO keel_api;

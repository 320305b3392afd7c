-- Issue 13, finding 14: a token's authority is the staff member's *current* standing, not what it was when
-- the token was signed. The API's context statement (api/db.py CONTEXT_SQL) passes the verified claims
-- through clinic.request_claims before setting them, in the same statement and round trip as the call:
-- a deactivated staff member is refused on their next request, and a role change applies to it.
-- Cost: one primary-key lookup of clinic.staff per request (figures in the issue note).

CREATE OR REPLACE FUNCTION clinic.request_claims(claims text)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, clinic
AS $$
DECLARE
    v_claims jsonb := nullif(claims, '')::jsonb;
    v_role   text;
    v_active boolean;
BEGIN
    IF jsonb_typeof(v_claims) IS DISTINCT FROM 'object' OR NOT v_claims ? 'clinic_id' THEN
        RETURN claims;  -- no request, or not a clinic token (CallMaster checks its users itself)
    END IF;
    SELECT s.role, s.is_active INTO v_role, v_active
    FROM clinic.staff AS s
    WHERE s.id = CASE WHEN v_claims ->> 'sub' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                      THEN (v_claims ->> 'sub')::uuid END
      AND s.clinic_id = CASE WHEN v_claims ->> 'clinic_id'
                                  ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                             THEN (v_claims ->> 'clinic_id')::uuid END;
    IF NOT FOUND OR NOT v_active THEN
        RAISE EXCEPTION USING
            ERRCODE = '28000',
            MESSAGE = 'The token does not name an active staff member of its clinic.',
            HINT = 'Sign in again.';
    END IF;
    RETURN jsonb_set(v_claims, '{role}', to_jsonb(v_role))::text;
END
$$;
COMMENT ON FUNCTION clinic.request_claims(text) IS
    'The claims a request runs with (api/db.py sets them): unchanged without a clinic_id claim; otherwise '
    'the token''s sub must be an active staff member of that clinic, and the role claim becomes the '
    'staff member''s current role. Argument: the verified claims as JSON text ('''' for none). Errors: '
    '28000 (401) when sub is not an active staff member of clinic_id.';
REVOKE ALL ON FUNCTION clinic.request_claims(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION clinic.request_claims(text) TO keel_api;

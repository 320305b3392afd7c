-- Idempotency-Key records (api/idempotency.py) belong to the caller that stored them: the scope is derived
-- here from the request's verified claims, never taken from the request, and row-level security keeps
-- every other caller's stored answers out of reach (issue 13, finding 6).

CREATE OR REPLACE FUNCTION keel.idempotency_scope()
    RETURNS text
    LANGUAGE sql
    STABLE
    PARALLEL SAFE
AS $$
    SELECT coalesce(keel.current_clinic_id()::text, '-') || '/' || coalesce(keel.current_user_sub(), '-')
$$;
COMMENT ON FUNCTION keel.idempotency_scope() IS
    'The owner of Idempotency-Key records for the current request: "<clinic_id claim or ->/<sub claim or ->". '
    'Row-level security on keel.idempotency_keys admits only rows of this scope. Raises nothing.';
REVOKE ALL ON FUNCTION keel.idempotency_scope() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keel.idempotency_scope() TO keel_api;

DROP POLICY IF EXISTS idempotency_keys_own ON keel.idempotency_keys;
CREATE POLICY idempotency_keys_own ON keel.idempotency_keys
    FOR ALL TO keel_api
    USING (principal = (SELECT keel.idempotency_scope()) AND (SELECT keel.current_user_sub()) IS NOT NULL)
    WITH CHECK (principal = (SELECT keel.idempotency_scope()) AND (SELECT keel.current_user_sub()) IS NOT NULL);

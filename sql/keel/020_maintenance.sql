-- Maintenance writes: paths that rewrite how a row is stored without changing what it says (key
-- rotation re-encrypting lead fields) must not look like an edit. Every touch trigger asks
-- keel.keeps_updated_at() first; a maintenance function turns it on for its own statement with
-- set_config('keel.keep_updated_at', 'on', true) and off again before it returns.

CREATE OR REPLACE FUNCTION keel.keeps_updated_at()
    RETURNS boolean
    LANGUAGE sql
    STABLE
AS $$
    -- Never for the API role: only a maintenance function (run by the owner or a DBA) may keep
    -- updated_at, so a request cannot hide its edits from the intervention queue.
    SELECT coalesce(current_setting('keel.keep_updated_at', true) = 'on', false) AND current_user <> 'keel_api'
$$;
COMMENT ON FUNCTION keel.keeps_updated_at() IS
    'True while a maintenance write asked touch triggers to leave updated_at alone (transaction-local '
    'setting keel.keep_updated_at = on, ignored for keel_api). No arguments; raises nothing.';
-- Touch triggers run as the request role.
REVOKE EXECUTE ON FUNCTION keel.keeps_updated_at() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION keel.keeps_updated_at() TO keel_api;

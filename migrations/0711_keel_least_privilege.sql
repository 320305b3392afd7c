-- Issue 13, finding 6: least privilege for the request role.
--
-- * keel holds every tenant's infrastructure rows: keel_api loses its table privileges there. It keeps
--   keel.idempotency_keys, under row-level security keyed on the request's claims (sql/keel/020_idempotency.sql),
--   so a caller reads and writes only its own stored answers.
-- * Functions are no longer executable by PUBLIC, existing or future (default privileges). keel_api may
--   execute the domain schemas' functions (the API's calls; sql/ revokes the few it must not reach) and
--   the keel functions sql/keel grants it explicitly. tests/test_hardening_privileges.py compares what
--   keel_api and PUBLIC can execute with an explicit allow-list.
-- * Background workers run as keel_worker (sql/bootstrap.sql creates it): they reach the outbox, the reply
--   queue and the retention job through SECURITY DEFINER functions granted to keel_worker only.

REVOKE ALL ON ALL TABLES IN SCHEMA keel FROM keel_api;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA keel FROM keel_api;
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA keel
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM keel_api;
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA keel
    REVOKE USAGE, SELECT ON SEQUENCES FROM keel_api;

GRANT SELECT, INSERT ON keel.idempotency_keys TO keel_api;
ALTER TABLE keel.idempotency_keys ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA clinic, assistant, callmaster
    GRANT EXECUTE ON FUNCTIONS TO keel_api;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA keel, clinic, assistant, callmaster FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA clinic, assistant, callmaster TO keel_api;

GRANT USAGE ON SCHEMA keel, assistant TO keel_worker;

DROP TABLE IF EXISTS keel.webhook_events;
DROP TABLE IF EXISTS keel.metrics_refresh_log;
DROP TABLE IF EXISTS keel.outbox;
DROP TABLE IF EXISTS keel.idempotency_keys;
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA keel, clinic, assistant, callmaster
    REVOKE USAGE, SELECT ON SEQUENCES FROM keel_api;
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA keel, clinic, assistant, callmaster
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM keel_api;
REVOKE USAGE ON SCHEMA keel FROM keel_api;
DROP SCHEMA IF EXISTS callmaster CASCADE;
DROP SCHEMA IF EXISTS assistant CASCADE;
DROP SCHEMA IF EXISTS clinic CASCADE;

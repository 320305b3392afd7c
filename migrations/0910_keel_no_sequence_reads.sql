-- The request role reads no sequence. Default privileges (migration 0001) gave keel_api USAGE and SELECT
-- on every sequence of the domain schemas: `SELECT last_value FROM assistant.messages_seq_seq` told any
-- request session how many assistant messages every clinic together had written, and nextval() let it
-- advance the counter. Sequences carry no tenant key, so row-level security cannot scope them; the
-- identity columns they serve need no privilege on them (PostgreSQL does not check one for an identity's
-- nextval). Future sequences get none either.

REVOKE ALL ON ALL SEQUENCES IN SCHEMA clinic, assistant, callmaster FROM keel_api;
ALTER DEFAULT PRIVILEGES FOR ROLE keel_owner IN SCHEMA clinic, assistant, callmaster
    REVOKE USAGE, SELECT ON SEQUENCES FROM keel_api;

-- The live relay's session runs as keel_worker (SET ROLE, like the outbox dispatcher): the feed functions
-- it calls for every tenant's scripts are granted to keel_worker only (sql/callmaster/700_live_stream.sql),
-- which needs the schema to name them.
GRANT USAGE ON SCHEMA callmaster TO keel_worker;

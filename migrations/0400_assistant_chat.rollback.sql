-- Drops the assistant tables and every function sql/assistant/ defines.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'assistant'::regnamespace
    LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', fn);
    END LOOP;
END
$$;

DROP TABLE IF EXISTS assistant.messages;
DROP TABLE IF EXISTS assistant.conversations;

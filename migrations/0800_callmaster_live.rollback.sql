-- Drops the live feed's functions (and with them its triggers on scripts and elements), then its tables.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'callmaster'::regnamespace
          AND p.proname ~ '^(live_|share_link|shared_)'
    LOOP
        EXECUTE format('DROP FUNCTION %s CASCADE', fn);
    END LOOP;
END
$$;

DROP TABLE callmaster.live_presence;
DROP TABLE callmaster.share_links;
DROP TABLE callmaster.show_runs;
DROP TABLE callmaster.live_events;
DROP TABLE callmaster.live_feed_heads;

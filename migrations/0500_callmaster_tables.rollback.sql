-- Drops every CallMaster table (policies and triggers go with them) and the functions that
-- sql/callmaster/ loaded, leaving the callmaster schema as 0001 created it.

DROP TABLE IF EXISTS callmaster.script_element_groups CASCADE;
DROP TABLE IF EXISTS callmaster.script_element_conditional_rules CASCADE;
DROP TABLE IF EXISTS callmaster.script_element_performer_assignments CASCADE;
DROP TABLE IF EXISTS callmaster.script_element_crew_assignments CASCADE;
DROP TABLE IF EXISTS callmaster.script_element_equipment CASCADE;
DROP TABLE IF EXISTS callmaster.script_elements CASCADE;
DROP TABLE IF EXISTS callmaster.scripts CASCADE;
DROP TABLE IF EXISTS callmaster.crew_assignments CASCADE;
DROP TABLE IF EXISTS callmaster.shows CASCADE;
DROP TABLE IF EXISTS callmaster.departments CASCADE;
DROP TABLE IF EXISTS callmaster.venues CASCADE;
DROP TABLE IF EXISTS callmaster.crew_relationships CASCADE;
DROP TABLE IF EXISTS callmaster.users CASCADE;

DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'callmaster'::regnamespace
    LOOP
        EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', fn);
    END LOOP;
END
$$;

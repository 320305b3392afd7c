-- Drops every CallMaster table (policies and triggers go with them) and the functions that
-- sql/callmaster/ loaded, leaving the callmaster schema as 0001 created it.

DROP TABLE IF EXISTS callmaster.script_element_groups;
DROP TABLE IF EXISTS callmaster.script_element_conditional_rules;
DROP TABLE IF EXISTS callmaster.script_element_performer_assignments;
DROP TABLE IF EXISTS callmaster.script_element_crew_assignments;
DROP TABLE IF EXISTS callmaster.script_element_equipment;
DROP TABLE IF EXISTS callmaster.script_elements;
DROP TABLE IF EXISTS callmaster.scripts;
DROP TABLE IF EXISTS callmaster.crew_assignments;
DROP TABLE IF EXISTS callmaster.shows;
DROP TABLE IF EXISTS callmaster.departments;
DROP TABLE IF EXISTS callmaster.venues;
DROP TABLE IF EXISTS callmaster.crew_relationships;
DROP TABLE IF EXISTS callmaster.users;

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

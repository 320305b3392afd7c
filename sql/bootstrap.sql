-- Run by `keel migrate` before yoyo, as the connecting (superuser or CREATEROLE) account.
-- Idempotent and safe when several databases of one cluster migrate at the same time:
-- roles are cluster-wide, so a concurrent creator's duplicate is ignored.

-- keel_owner owns everything (BYPASSRLS); keel_api runs each request; keel_worker runs the background
-- workers (outbox dispatcher, assistant replies, maintenance), which act for every tenant through
-- SECURITY DEFINER functions granted to that role only.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('keel_owner', 'BYPASSRLS'), ('keel_api', 'NOBYPASSRLS'),
                                   ('keel_worker', 'NOBYPASSRLS')) AS v(name, rls)
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN %s', r.name, r.rls);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- The migrating account acts as keel_owner; the API's login role switches to keel_api per transaction
-- (keel_worker in workers).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['keel_owner', 'keel_api', 'keel_worker'] LOOP
        IF NOT pg_has_role(current_user, r, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', r, current_user);
        END IF;
    END LOOP;
    -- Migrations create the domain schemas as keel_owner.
    EXECUTE format('GRANT CREATE, CONNECT ON DATABASE %I TO keel_owner', current_database());
    -- Lead imports stage their rows in a temporary table; do not depend on PUBLIC's default TEMP.
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO keel_api', current_database());
END
$$;

CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

-- Holds yoyo's bookkeeping and the shared infrastructure tables.
CREATE SCHEMA IF NOT EXISTS keel AUTHORIZATION keel_owner;

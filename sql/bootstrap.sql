-- Run by `keel migrate` before yoyo, as the connecting (superuser or CREATEROLE) account.
-- Idempotent and safe when several databases of one cluster migrate at the same time:
-- roles are cluster-wide, so a concurrent creator's duplicate is ignored.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keel_owner') THEN
        BEGIN
            CREATE ROLE keel_owner NOLOGIN BYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keel_api') THEN
        BEGIN
            CREATE ROLE keel_api NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    -- Background workers (outbox dispatcher, assistant replies, maintenance): they act for every tenant,
    -- through SECURITY DEFINER functions granted to this role only; request handlers run as keel_api.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'keel_worker') THEN
        BEGIN
            CREATE ROLE keel_worker NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END
$$;

-- The migrating account acts as keel_owner; the API's login role switches to keel_api per transaction.
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'keel_owner', 'MEMBER') THEN
        EXECUTE format('GRANT keel_owner TO %I', current_user);
    END IF;
    IF NOT pg_has_role(current_user, 'keel_api', 'MEMBER') THEN
        EXECUTE format('GRANT keel_api TO %I', current_user);
    END IF;
    IF NOT pg_has_role(current_user, 'keel_worker', 'MEMBER') THEN
        EXECUTE format('GRANT keel_worker TO %I', current_user);
    END IF;
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

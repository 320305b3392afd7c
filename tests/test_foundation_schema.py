"""Schema lint (stays green for every later migration) and migration behaviour."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from api.migrate import migrate, migration_ids, pending_migrations, sql_sources_current

DOMAIN_SCHEMAS = ("clinic", "assistant", "callmaster")
ALL_SCHEMAS = ("keel", *DOMAIN_SCHEMAS)


def test_every_table_has_a_primary_key(dba):
    missing = dba.execute(
        """
        SELECT c.oid::regclass::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)
          AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')
        """,
        (list(ALL_SCHEMAS),),
    ).fetchall()
    assert missing == []


def test_every_foreign_key_has_an_index(dba):
    missing = dba.execute(
        """
        SELECT k.conrelid::regclass::text, k.conname
        FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
        WHERE k.contype = 'f' AND n.nspname = ANY(%s)
          AND NOT EXISTS (
              SELECT FROM pg_index i
              WHERE i.indrelid = k.conrelid
                AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] @> k.conkey
                AND (i.indkey::int2[])[0:cardinality(k.conkey) - 1] <@ k.conkey
          )
        """,
        (list(ALL_SCHEMAS),),
    ).fetchall()
    assert missing == []


def test_row_level_security_is_enabled_and_forced_on_every_domain_table(dba):
    loose = dba.execute(
        """
        SELECT c.oid::regclass::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)
          AND NOT (c.relrowsecurity AND c.relforcerowsecurity)
        """,
        (list(DOMAIN_SCHEMAS),),
    ).fetchall()
    assert loose == []


def test_every_domain_function_has_a_comment(dba):
    bare = dba.execute(
        """
        SELECT p.oid::regprocedure::text
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%s)
          AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
          AND obj_description(p.oid, 'pg_proc') IS NULL
        """,
        (list(ALL_SCHEMAS),),
    ).fetchall()
    assert bare == []


def test_objects_are_owned_by_keel_owner(dba):
    foreign = dba.execute(
        """
        SELECT c.oid::regclass::text, pg_get_userbyid(c.relowner)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%s) AND pg_get_userbyid(c.relowner) <> 'keel_owner'
        """,
        (list(ALL_SCHEMAS),),
    ).fetchall()
    assert foreign == []


def test_migrated_database_is_current(db_url):
    with psycopg.connect(db_url) as conn:
        assert pending_migrations(conn) == []
        assert sql_sources_current(conn)


def test_concurrent_migrators_on_an_empty_database_all_succeed(empty_db_url):
    """Three `keel migrate` processes at once: one applies, the others wait, all exit 0."""
    env_code = "from api.migrate import migrate; import sys; migrate(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", env_code, empty_db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [(proc.wait(timeout=180), proc.stderr.read()) for proc in procs]
    assert [code for code, _ in results] == [0, 0, 0], results
    with psycopg.connect(empty_db_url) as conn:
        assert pending_migrations(conn) == []
        applied = conn.execute("SELECT count(*) FROM keel._yoyo_migration").fetchone()[0]
    assert applied == len(migration_ids())


def test_rollback_then_reapply(empty_db_url):
    ids = migration_ids()
    migrate(empty_db_url)
    result = migrate(empty_db_url, rollback=len(ids))
    assert result["rolled_back"] == list(reversed(ids))
    with psycopg.connect(empty_db_url) as conn:
        assert pending_migrations(conn) == ids
        schemas = {row[0] for row in conn.execute("SELECT nspname FROM pg_namespace")}
    assert not schemas & set(DOMAIN_SCHEMAS)
    assert migrate(empty_db_url)["applied"] == ids


def test_two_databases_on_one_cluster_both_migrate(empty_db_url, db_url):
    """Roles are cluster-wide: bootstrapping a second database must not trip over them."""
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(migrate, [empty_db_url, db_url]))
    assert results[1]["applied"] == []


@pytest.mark.parametrize("schema", ALL_SCHEMAS)
def test_api_role_reaches_each_schema(dba, schema: str):
    assert dba.execute("SELECT has_schema_privilege('keel_api', %s, 'USAGE')", (schema,)).fetchone()[0]

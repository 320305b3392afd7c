"""Citus readiness (DESIGN §11): every tenant table carries its tenant key in its primary key, its unique
constraints and the foreign keys between tenant tables, so the schema can be distributed by that key.

What does not hold today is listed below, each with its reason; docs/scaling.md says what would change.
The lint fails on any new violation (a new table or constraint must follow the rule or be listed here
with a reason) and on a listed exception that no longer applies (so the list stays true).
"""

from __future__ import annotations

from typing import Any

import psycopg

TENANT_SCHEMAS = ("clinic", "assistant", "callmaster")
# The tenant key of a tenant table: the first of these columns it has (clinic: the clinic; callmaster:
# the owning user), unless named here.
TENANT_COLUMNS = ("clinic_id", "owner_id")
TENANT_COLUMN_OF = {
    "callmaster.crew_relationships": "manager_user_id",
    "callmaster.crew_invitations": "manager_user_id",
}
# Reference tables (replicated to every node under Citus): the tenants themselves. Foreign keys from a
# distributed table to a reference table are allowed by Citus whatever their columns.
REFERENCE_TABLES = {
    "clinic.clinics": "the clinics (the tenants): small, read by every clinic's rows",
    "callmaster.users": "the users (tenants, and crew of other tenants): email and clerk_user_id are unique "
    "across all users by contract, and crews reference users of other owners",
}

# Reasons, one per kind of exception.
UUID_PK = (
    "primary key is the uuid `id` alone (gen_random_uuid: unique across tenants anyway); under Citus it "
    "becomes (tenant, id), one migration per table, no query changes: every lookup by id is also by tenant"
)
NO_KEY_CHILD = (
    "child row without its own tenant column, reached only through its parent (which has it); under "
    "Citus it gains the parent's tenant column (filled by trigger) and is co-located with the parent"
)


def tenant_key(table: str, columns: list[str]) -> str | None:
    if table in TENANT_COLUMN_OF:
        return TENANT_COLUMN_OF[table]
    return next((column for column in TENANT_COLUMNS if column in columns), None)


def violations(dba: psycopg.Connection[Any]) -> set[tuple[str, str, str]]:
    """(table, kind, constraint or column) for every deviation from the rule."""
    tables = {
        table: list(columns)
        for table, columns in dba.execute(
            """
            SELECT c.oid::regclass::text, array_agg(a.attname::text ORDER BY a.attnum)
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE c.relkind IN ('r', 'p') AND c.relrowsecurity AND n.nspname = ANY(%s)
            GROUP BY 1
            """,
            (list(TENANT_SCHEMAS),),
        ).fetchall()
    }
    found: set[tuple[str, str, str]] = set()
    for reference in REFERENCE_TABLES:
        tables.pop(reference)
    for table, columns in tables.items():
        if tenant_key(table, columns) is None:
            found.add((table, "no tenant column", "-"))
    constraints = dba.execute(
        """
        SELECT k.conrelid::regclass::text, k.contype::text, k.conname::text,
               ARRAY(SELECT a.attname::text FROM unnest(k.conkey) AS u(n)
                     JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n),
               k.confrelid::regclass::text,
               ARRAY(SELECT a.attname::text FROM unnest(k.confkey) AS u(n)
                     JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n)
        FROM pg_constraint k
        WHERE k.contype IN ('p', 'u', 'f', 'x') AND k.conrelid::regclass::text = ANY(%s)
        UNION ALL  -- unique indexes that are not constraints
        SELECT i.indrelid::regclass::text, 'u', c.relname::text,
               ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) AS u(n)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n),
               '-', ARRAY[]::text[]
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indisunique AND i.indrelid::regclass::text = ANY(%s)
          AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        """,
        (list(tables), list(tables)),
    ).fetchall()
    for table, kind, name, columns, target, target_columns in constraints:
        key = tenant_key(table, tables[table])
        if key is None:
            continue  # reported once above
        if kind in ("p", "u", "x") and key not in columns:
            found.add((table, {"p": "primary key", "u": "unique", "x": "exclusion"}[kind], name))
        if kind == "f" and target in tables:
            target_key = tenant_key(target, tables[target])
            if key not in columns or target_key not in target_columns:
                found.add((table, "foreign key", name))
    return found


def test_tenant_keys_are_in_every_key_or_listed_with_a_reason(dba: psycopg.Connection[Any]) -> None:
    found = violations(dba)
    listed = set(EXCEPTIONS)
    assert found - listed == set(), (
        f"new violations: follow the rule or list them with a reason: {sorted(found - listed)}"
    )
    assert listed - found == set(), f"listed exceptions that no longer apply: {sorted(listed - found)}"
    assert all(EXCEPTIONS.values())


SCRIPT_SCOPED = (
    "keyed by script (a script's elements and their parent links never leave the script); under Citus "
    "(owner_id, script_id, id) and (owner_id, script_id, parent_element_id), owner_id being on the row"
)

LIVE_FEED = (
    "the live feed's log, heads and presence are keyed by script (written by triggers on the script's "
    "rows, read by the relay by script); under Citus they gain the script's owner_id and co-locate with it"
)

EXCEPTIONS: dict[tuple[str, str, str], str] = {
    **{
        (table, "primary key", f"{table.split('.')[1]}_pkey"): UUID_PK
        for table in (
            "assistant.conversations",
            "assistant.messages",
            "callmaster.crew_assignments",
            "callmaster.crew_relationships",
            "callmaster.departments",
            "callmaster.script_elements",
            "callmaster.scripts",
            "callmaster.share_links",
            "callmaster.show_runs",
            "callmaster.shows",
            "callmaster.venues",
            "clinic.appointments",
            "clinic.leads",
            "clinic.patients",
            "clinic.staff",
        )
    },
    **{
        (f"callmaster.script_element_{child}", "no tenant column", "-"): NO_KEY_CHILD
        for child in ("conditional_rules", "crew_assignments", "equipment", "groups", "performer_assignments")
    },
    ("callmaster.script_elements", "foreign key", "script_elements_parent_fkey"): SCRIPT_SCOPED,
    ("callmaster.script_elements", "unique", "script_elements_script_id_id_key"): SCRIPT_SCOPED,
    **{
        (f"callmaster.{table}", "no tenant column", "-"): LIVE_FEED
        for table in ("live_events", "live_feed_heads", "live_presence")
    },
    ("callmaster.show_runs", "foreign key", "show_runs_current_fkey"): SCRIPT_SCOPED,
    ("callmaster.show_runs", "foreign key", "show_runs_standby_fkey"): SCRIPT_SCOPED,
    ("callmaster.show_runs", "unique", "show_runs_one_open_idx"): SCRIPT_SCOPED,
    ("callmaster.share_links", "unique", "share_links_token_hash_key"): (
        "a share link is found by its token's hash alone (the visitor names no tenant); under Citus the "
        "link table becomes a reference table, or the token carries the owner"
    ),
}

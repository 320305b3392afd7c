"""Citus readiness (DESIGN §11): every tenant table carries its tenant key in its primary key, its unique
constraints and the foreign keys between tenant tables, so the schema can be distributed by that key.

What does not hold today is listed below, each with its reason; docs/scaling.md says what would change.
The lint fails on any new violation (a new table or constraint must follow the rule or be listed here
with a reason) and on a listed exception that no longer applies (so the list stays true).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

TENANT_SCHEMAS = ("clinic", "assistant", "callmaster")
# The tenant key of a tenant table: the first of these columns it has (clinic: the clinic; callmaster:
# the owning user), unless named here.
TENANT_COLUMNS = ("clinic_id", "owner_id")
TENANT_COLUMN_OF = {"callmaster.crew_relationships": "manager_user_id"}
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


# -- every query path of a request is keyed by the tenant -----------------------------------------------
#
# Under Citus a query is routed to one node when it constrains the distribution column to one value;
# without that it fans out to every shard. Two checks, the second backing the first:
#
# 1. The catalog: every row-level security policy of a tenant table has `<tenant key> = (SELECT
#    <current tenant>())` as a top-level conjunct, so every statement a request runs as keel_api on that
#    table carries the predicate Citus routes on, whatever the SQL wrote.
# 2. The plans: a representative set of requests (clinic and callmaster, reads and writes) runs with
#    auto_explain (nested statements: inside functions and triggers, SECURITY DEFINER ones included, which
#    row-level security does not reach); every scan of a tenant table must have an equality on its tenant
#    key among its index or filter conditions' top-level conjuncts.
#
# What does not hold is listed with its reason; a new unkeyed path or a stale exception fails.

TENANT_FUNCTIONS = ("keel.current_clinic_id", "callmaster.current_user_id")


def conjuncts(expression: str) -> list[str]:
    """The top-level AND-ed terms of an expression as PostgreSQL prints it (`pg_get_expr`, EXPLAIN)."""
    text = expression.strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    terms, depth, start = [], 0, 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "'":
            index = text.index("'", index + 1)
        elif depth == 0 and text.startswith(" AND ", index):
            terms.append(text[start:index])
            start = index + 5
        index += 1
    terms.append(text[start:])
    if len(terms) == 1:
        return [text]
    return [term for part in terms for term in conjuncts(part)]


def _closing(text: str, opening: int) -> int:
    depth = 0
    index = opening
    while index < len(text):
        if text[index] == "'":
            index = text.index("'", index + 1)
        elif text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return -1


def keyed_on(expression: str | None, key: str, value: str = r".+") -> bool:
    """Whether a top-level conjunct of `expression` is `key = <value>` (either side, any alias)."""
    if not expression:
        return False
    column = rf"(?:\w+\.)?{re.escape(key)}"
    pattern = re.compile(rf"^(?:{column} = (?:{value})|(?:{value}) = {column})$")
    return any(pattern.match(term) for term in conjuncts(expression))


CURRENT_TENANT = "|".join(rf"\( SELECT {re.escape(name)}\(\) AS \w+\)" for name in TENANT_FUNCTIONS)


def unkeyed_policies(dba: psycopg.Connection[Any]) -> set[tuple[str, str, str]]:
    """(table, "policy", "<policy> using|with check") for every permissive policy clause of a tenant
    table that does not pin its tenant key to the caller's tenant (unless a restrictive policy does)."""
    found: set[tuple[str, str, str]] = set()
    tables = tenant_tables(dba)
    rows = dba.execute(
        """
        SELECT p.polrelid::regclass::text, p.polname::text, p.polpermissive,
               pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
        FROM pg_policy p WHERE p.polrelid::regclass::text = ANY(%s)
        ORDER BY 1, 2
        """,
        (list(tables),),
    ).fetchall()
    restricted = {
        table
        for table, _, permissive, using, check in rows
        if not permissive and keyed_on(using, tables[table], CURRENT_TENANT)
    }
    for table, name, permissive, using, check in rows:
        if not permissive or table in restricted:
            continue
        for clause, expression in (("using", using), ("with check", check)):
            if expression is not None and not keyed_on(expression, tables[table], CURRENT_TENANT):
                found.add((table, "policy", f"{name} {clause}"))
    return found


def tenant_tables(dba: psycopg.Connection[Any]) -> dict[str, str]:
    """Tenant table → its tenant key, for the tables that have one (the others are exceptions above)."""
    rows = dba.execute(
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
    keys = {table: tenant_key(table, list(columns)) for table, columns in rows if table not in REFERENCE_TABLES}
    return {table: key for table, key in keys.items() if key is not None}


def test_every_policy_pins_the_tenant_key_or_is_listed_with_a_reason(dba: psycopg.Connection[Any]) -> None:
    found = unkeyed_policies(dba)
    listed = set(POLICY_EXCEPTIONS)
    assert found - listed == set(), f"new unkeyed policies: key them or list them: {sorted(found - listed)}"
    assert listed - found == set(), f"listed exceptions that no longer apply: {sorted(listed - found)}"
    assert all(POLICY_EXCEPTIONS.values())


CREW_READ = (
    "crew read: a crew member reads the shows they are assigned to (and what hangs off them), owned by "
    "other users, through callmaster.assigned_show_ids(); cross-tenant by design. Under Citus such a read "
    "goes to the shards of those owners (the assignment names the show, whose owner_id the request can "
    "add to route it); an owner's own reads are keyed by the owner policy beside it"
)
POLICY_EXCEPTIONS: dict[tuple[str, str, str], str] = {
    **{
        (f"callmaster.{table}", "policy", f"{table}_crew_read using"): CREW_READ
        for table in ("crew_assignments", "departments", "script_elements", "scripts", "shows", "venues")
    },
    ("callmaster.crew_relationships", "policy", "crew_relationships_select using"): (
        "a crew member sees the relationships naming them (crew_user_id), whichever manager owns them: "
        "the crew side of the pair; under Citus a multi-shard read of a small table"
    ),
    ("callmaster.show_runs", "policy", "show_runs_read using"): (
        "a show run is visible when its script is (the script's own policies key it): keyed through the "
        "parent; under Citus show_runs is co-located with its script by owner_id"
    ),
}

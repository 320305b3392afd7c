"""Citus readiness (DESIGN §11): every tenant table carries its tenant key in its primary key, its unique
constraints and the foreign keys between tenant tables, so the schema can be distributed by that key.

What does not hold today is listed below, each with its reason; docs/scaling.md says what would change.
The lint fails on any new violation (a new table or constraint must follow the rule or be listed here
with a reason) and on a listed exception that no longer applies (so the list stays true).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from api.app import create_app
from api.settings import Settings
from tests.conftest import live_server
from tests.factories import KEYS_ONE, Clinic, add_script, add_show, add_user, assign, lead_body, patient_body

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
    tables = table_columns(dba)
    found: set[tuple[str, str, str]] = set()
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
    ("callmaster.crew_invitations", "unique", "crew_invitations_id_key"): (
        "referenced by element crew and performer rows naming a pending member (migration 0860), which have "
        "no tenant column (see NO_KEY_CHILD); under Citus they gain owner_id and reference (manager_user_id, "
        "id) like crew_assignments does"
    ),
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


def table_columns(dba: psycopg.Connection[Any]) -> dict[str, list[str]]:
    """Every tenant table (row-level security on, in the tenant schemas; not a reference table) → its
    columns."""
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
    return {table: list(columns) for table, columns in rows if table not in REFERENCE_TABLES}


def tenant_tables(dba: psycopg.Connection[Any]) -> dict[str, str]:
    """Tenant table → its tenant key, for the tables that have one (the others are exceptions above)."""
    keys = {table: tenant_key(table, columns) for table, columns in table_columns(dba).items()}
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


SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan"}
CONDITIONS = ("Index Cond", "Recheck Cond", "Filter", "TID Cond")
AUTO_EXPLAIN = {
    "session_preload_libraries": "auto_explain",
    "auto_explain.log_min_duration": "0",
    "auto_explain.log_nested_statements": "on",
    "auto_explain.log_format": "json",
    "auto_explain.log_verbose": "on",  # the scanned relation's schema
    "auto_explain.log_level": "notice",  # to the client: api.db logs server notices (keel.db.notices)
    # Plans of the statements as written, not of this run's values (a custom plan folds `id = NULL`
    # away): the same on every server version and whichever backend the pooler lends.
    "plan_cache_mode": "force_generic_plan",
}


def unkeyed_scans(plan: dict[str, Any], tables: dict[str, str]) -> Iterator[str]:
    """The tenant tables `plan` scans without an equality on their tenant key."""
    table = f"{plan.get('Schema')}.{plan.get('Relation Name')}"
    keyed = table in tables and any(keyed_on(plan.get(condition), tables[table]) for condition in CONDITIONS)
    if plan["Node Type"] in SCANS and table in tables and not keyed:
        yield table
    for child in plan.get("Plans", []):
        yield from unkeyed_scans(child, tables)


def logged_plans(records: list[logging.LogRecord]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(the function that ran the statement, its plan) for every plan auto_explain sent."""
    for record in records:
        message = record.getMessage()
        if record.name == "keel.db.notices" and "plan:\n" in message:
            plan = json.loads(message.split("plan:\n", 1)[1])
            yield running_function(getattr(record, "context", None), plan["Query Text"]), plan


def running_function(context: str | None, query: str) -> str:
    """The innermost function in a notice's CONTEXT (`SQL statement "…"` then `PL/pgSQL function
    callmaster.x(uuid) line 3 at …`, or `SQL function "y" statement 1`); else the request's own
    statement (where SQL functions are inlined), named by what it calls."""
    found = re.search(r'SQL function "([^"]+)"|PL/pgSQL function ([\w.]+)\(', context or "")
    if found:
        return next(name for name in found.groups() if name)
    called = re.search(r"\b(\w+\.\w+)\(", query)
    return f"request calling {called.group(1)}" if called else "request statement"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


async def test_every_request_query_path_is_keyed_by_the_tenant_or_listed_with_a_reason(
    dba: psycopg.Connection[Any],
    settings: Settings,
    clinic_setup: Clinic,
    bearer: Callable[..., dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dba.execute("LOAD 'auto_explain'")
    for name, value in AUTO_EXPLAIN.items():  # every new connection to this test's database
        dba.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(dba.info.dbname), sql.Identifier(*name.split(".")), sql.Literal(value)
            )
        )
    tables = tenant_tables(dba)
    caplog.set_level(logging.INFO, logger="keel.db.notices")
    # (table, function running the unkeyed statement) → the requests that ran it, and the statement.
    # Per function, not per request: a function called by several requests is one path.
    found: dict[tuple[str, str], tuple[set[str], str]] = {}
    responses: dict[str, Any] = {}
    async with live_server(create_app(settings)) as http:
        for label, method, path, body, who in representative_requests(dba, clinic_setup, responses):
            caplog.clear()
            response = await http.request(
                method, path(), json=body() if body else None, headers=bearer(**who)
            )
            assert response.is_success, (label, response.status_code, response.text)
            plans = list(logged_plans(caplog.records))
            assert plans, f"{label}: no plan logged (is auto_explain loaded?)"
            responses[label] = response.json() if response.content else None
            for function, plan in plans:
                if plan["Query Text"].lstrip().startswith("SELECT 1 FROM ONLY"):
                    continue  # a foreign key check: the key lint above covers foreign keys
                for table in unkeyed_scans(plan["Plan"], tables):
                    labels, _ = found.setdefault((table, function), (set(), plan["Query Text"].strip()))
                    labels.add(label)
    listed = set(PATH_EXCEPTIONS)
    new = {key: found[key] for key in set(found) - listed}
    assert not new, (
        f"(table, function) scanning a tenant table without its tenant key: (requests, statement): {new}"
    )
    stale = listed - set(found) - PLANNER_DEPENDENT
    assert stale == set(), f"listed exceptions that no longer apply: {sorted(stale)}"
    assert all(PATH_EXCEPTIONS.values())


def representative_requests(
    dba: psycopg.Connection[Any], clinic: Clinic, responses: dict[str, Any]
) -> list[tuple[str, str, Callable[[], str], Callable[[], Any] | None, dict[str, Any]]]:
    """(label, method, path, body, bearer claims): the clinic's and CallMaster's main paths, reads and
    writes, as an admin, an owner and a crew member; paths and bodies are built when sent, from the
    `responses` of the requests before (by label)."""

    def answer(label: str, key: str) -> str:
        return str(responses[label][key])

    admin = {"sub": clinic.admin_id, "clinic_id": clinic.id, "role": "admin"}
    owner_id = add_user(dba, "owner_paths")
    crew_id = add_user(dba, "crew_paths")
    crew_show = add_show(dba, owner_id, "Assigned")
    crew_script = add_script(dba, crew_show)
    assign(dba, crew_show, crew_id)
    owner, crew = {"sub": "owner_paths"}, {"sub": "crew_paths"}
    booking = {
        "patient_id": str(clinic.patient_id),
        "doctor_id": str(clinic.doctor_id),
        "appointment_date": "2030-01-07",
        "start_time": "10:00",
        "end_time": "10:30",
    }

    def fixed(value: str) -> Callable[[], str]:
        return lambda: value

    return [
        ("GET staff", "GET", fixed("/api/staff"), None, admin),
        ("GET doctors", "GET", fixed("/api/doctors"), None, admin),
        ("POST lead", "POST", fixed("/api/leads"), lambda: lead_body(), admin),
        ("GET leads by status", "GET", fixed("/api/leads?status=new_inquiry"), None, admin),
        ("GET leads by phone", "GET", fixed("/api/leads?phone=%2B91%2098470%2012345"), None, admin),
        ("GET lead", "GET", lambda: f"/api/leads/{answer('POST lead', 'id')}", None, admin),
        (
            "PATCH lead",
            "PATCH",
            lambda: f"/api/leads/{answer('POST lead', 'id')}",
            lambda: {"notes": "n"},
            admin,
        ),
        ("POST convert", "POST", lambda: f"/api/leads/{answer('POST lead', 'id')}/convert", dict, admin),
        ("POST patient", "POST", fixed("/api/patients"), lambda: patient_body(), admin),
        ("GET patients by q", "GET", fixed("/api/patients?q=Arjun"), None, admin),
        (
            "PATCH patient",
            "PATCH",
            lambda: f"/api/patients/{answer('POST patient', 'id')}",
            lambda: {"city": "Kochi"},
            admin,
        ),
        ("POST appointment", "POST", fixed("/api/appointments"), lambda: booking, admin),
        ("GET appointments", "GET", fixed("/api/appointments?date=2030-01-07"), None, admin),
        (
            "PATCH appointment",
            "PATCH",
            lambda: f"/api/appointments/{answer('POST appointment', 'id')}",
            lambda: {"visit_reason": "review"},
            admin,
        ),
        (
            "POST cancel",
            "POST",
            lambda: f"/api/appointments/{answer('POST appointment', 'id')}/cancel",
            lambda: {"reason": "travel"},
            admin,
        ),
        ("GET control tower", "GET", fixed("/api/control-tower/summary"), None, admin),
        ("GET me", "GET", fixed("/api/me"), None, owner),
        ("POST venue", "POST", fixed("/api/venues"), lambda: {"name": "Globe"}, owner),
        ("POST department", "POST", fixed("/api/departments"), lambda: {"name": "Sound"}, owner),
        (
            "POST show",
            "POST",
            fixed("/api/shows"),
            lambda: {"name": "Lear", "venue_id": answer("POST venue", "id")},
            owner,
        ),
        ("GET shows", "GET", fixed("/api/shows"), None, owner),
        (
            "POST script",
            "POST",
            lambda: f"/api/shows/{answer('POST show', 'id')}/scripts",
            lambda: {"name": "A"},
            owner,
        ),
        (
            "POST element",
            "POST",
            lambda: f"/api/scripts/{answer('POST script', 'id')}/elements",
            lambda: {"element_type": "cue", "cue_id": "Q1", "department_id": answer("POST department", "id")},
            owner,
        ),
        ("GET elements", "GET", lambda: f"/api/scripts/{answer('POST script', 'id')}/elements", None, owner),
        (
            "PATCH elements",
            "PATCH",
            lambda: f"/api/scripts/{answer('POST script', 'id')}/elements",
            lambda: [{"id": answer("POST element", "id"), "time_offset_ms": 500}],
            owner,
        ),
        (
            "POST duplicate",
            "POST",
            lambda: f"/api/scripts/{answer('POST script', 'id')}/duplicate",
            None,
            owner,
        ),
        ("GET crew", "GET", fixed("/api/crew"), None, owner),
        ("GET shows as crew", "GET", fixed("/api/shows"), None, crew),
        ("GET elements as crew", "GET", fixed(f"/api/scripts/{crew_script}/elements"), None, crew),
    ]


# Reasons, one per kind of unkeyed path, with the (table, function running the statement) pairs they
# explain. Clinic and assistant paths are all keyed.
OWNER_OR_CREW = (
    "read through row-level security whose permissive policies are OR-ed, `owner_id = me OR show_id = "
    "ANY(assigned_show_ids())` (POLICY_EXCEPTIONS, CREW_READ), directly or in a policy's subquery: keyed "
    "for the owner's rows, by assignment for crew. Under Citus an owner's path adds `owner_id = me` to "
    "its statements (or crew endpoints read through their own functions), so it routes to one shard"
)
BY_ID_AFTER_CHECK = (
    "a SECURITY DEFINER function (no row-level security) locks or reads the show, script or elements by "
    "uuid (or the script's id) after checking the caller may write them; it holds the owner_id (from "
    "the checked row) and under Citus passes it in the same WHERE"
)
CREW_SIDE = (
    "the crew side of a relationship: assigned_show_ids() reads crew_assignments by the crew member "
    "(user_id), visible_user_ids() reads relationships, assignments and shows (owned or assigned) by "
    "either side; the rows belong to other owners by design. Under Citus a small multi-shard read (or a "
    "reference copy of the assignments)"
)
BY_SCRIPT = (
    "the live feed reaches its rows by script or element id (live_feed_heads and the log carry no "
    "owner_id: LIVE_FEED above); under Citus they gain the script's owner_id and co-locate with it"
)
_PATHS = {
    CREW_SIDE: [
        ("callmaster.crew_assignments", "assigned_show_ids"),
        ("callmaster.crew_assignments", "visible_user_ids"),
        ("callmaster.crew_relationships", "visible_user_ids"),
        ("callmaster.shows", "visible_user_ids"),
    ],
    OWNER_OR_CREW: [
        ("callmaster.script_elements", "callmaster.check_element_refs"),
        ("callmaster.script_elements", "callmaster.list_script_elements"),
        ("callmaster.script_elements", "element_documents"),
        ("callmaster.script_elements", "element_json"),
        ("callmaster.scripts", "callmaster.bulk_update_script_elements"),
        ("callmaster.scripts", "callmaster.check_element_refs"),
        ("callmaster.scripts", "callmaster.duplicate_script_json"),
        ("callmaster.scripts", "callmaster.insert_element"),
        ("callmaster.scripts", "callmaster.list_script_elements"),
        ("callmaster.scripts", "element_documents"),
        ("callmaster.scripts", "element_json"),
        ("callmaster.scripts", "script_json"),
        ("callmaster.scripts", "show_json"),
        ("callmaster.shows", "callmaster.check_element_refs"),
        ("callmaster.shows", "callmaster.check_show_venue"),
        ("callmaster.shows", "callmaster.create_venue"),
        ("callmaster.shows", "callmaster.list_shows"),
        ("callmaster.shows", "show_json"),
        ("callmaster.venues", "show_json"),
    ],
    BY_ID_AFTER_CHECK: [
        ("callmaster.script_elements", "duplicate_script"),
        ("callmaster.scripts", "duplicate_script"),
        ("callmaster.scripts", "writable_script"),
        ("callmaster.shows", "duplicate_script"),
        ("callmaster.shows", "writable_show"),
    ],
    BY_SCRIPT: [
        ("callmaster.script_elements", "live_feed_children"),
        ("callmaster.scripts", "live_claim_positions"),
    ],
}
PATH_EXCEPTIONS: dict[tuple[str, str], str] = {
    path: reason for reason, paths in _PATHS.items() for path in paths
}
PLANNER_DEPENDENT = {
    # The departments policy's subquery over shows: PostgreSQL 15 correlates it on owner_id (keyed),
    # 18 plans it as a hashed subplan without that predicate. Listed, but not stale when keyed.
    ("callmaster.shows", "callmaster.check_element_refs"),
}

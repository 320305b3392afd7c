"""Issue 13, "what it must show": a request-role session reads nothing of another tenant, in any table or
view of any schema. The relations come from the catalog, not from a list, so a table added later is
covered the day it lands.

Tenant A gets a row in every kind of table (clinic records, appointments and their outbox events, the
assistant's queue, a CallMaster crew with shows and a filled script, Idempotency-Key records, webhook
ids, the refresh log). Then sessions set up exactly as the API sets them up (api.db.CONTEXT_SQL: claims,
role keel_api) read every relation keel_api may select from (sequences included):
- with forged claims naming nobody (random clinic and subject): every relation is empty;
- with tenant B's own claims: no row of A's is visible.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg import sql

from api.auth import Principal
from api.db import CONTEXT_SQL, context_params
from tests.factories import (
    add_appointment,
    add_crew,
    add_department,
    add_lead,
    add_script,
    add_show,
    add_user,
    assign,
    create_clinic,
    fill_script,
)

RELATIONS = """
    SELECT n.nspname, c.relname, has_table_privilege('keel_api', c.oid, 'SELECT') AS whole, c.relkind
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')  -- sequences too: one row, every tenant's count
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%%'
      AND (has_table_privilege('keel_api', c.oid, 'SELECT')
           OR has_any_column_privilege('keel_api', c.oid, 'SELECT'))
    ORDER BY 1, 2
"""


def populate_tenant_a(dba: psycopg.Connection[Any]) -> dict[str, Any]:
    clinic = create_clinic(dba, "Alpha", doctors=1, patients=1)
    add_appointment(dba, clinic, date(2026, 6, 15), "09:00", "09:30")
    add_lead(dba, clinic.id, date_added=date(2026, 6, 1), name="Alpha lead")
    conversation = dba.execute(
        "INSERT INTO assistant.conversations (clinic_id, staff_id, title) VALUES (%s, %s, 'hi') RETURNING id",
        (clinic.id, clinic.admin_id),
    ).fetchone()[0]
    dba.execute(
        "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, content)"
        " VALUES (%s, %s, %s, 'user', 'how many leads?')",
        (clinic.id, clinic.admin_id, conversation),
    )
    dba.execute("CALL clinic.refresh_control_tower()")

    owner = add_user(dba, "user_alpha")
    crew = add_crew(dba, owner, "alpha-crew@example.com")
    performer = add_crew(dba, owner, "alpha-performer@example.com")
    invitee = add_user(dba, "user_alpha_invitee", "alpha-invitee@example.com")
    dba.execute(
        "INSERT INTO callmaster.crew_invitations (manager_user_id, invitee_user_id, email, first_name)"
        " VALUES (%s, %s, 'alpha-invitee@example.com', 'Invited')",
        (owner, invitee),
    )
    show = add_show(dba, owner)
    department = add_department(dba, owner)
    assign(dba, show, crew)
    dba.execute("INSERT INTO callmaster.venues (owner_id, name) VALUES (%s, 'Globe')", (owner,))
    fill_script(
        dba,
        add_script(dba, show),
        50,
        department_id=department,
        crew_ids=(crew, owner),
        performer_id=performer,
    )

    scope = f"{clinic.id}/{clinic.admin_id}"
    dba.execute(
        "INSERT INTO keel.idempotency_keys (principal, key, method, path, request_hash, status_code, response_body)"
        " VALUES (%s, 'k1', 'POST', '/api/leads', 'h', 201, '{\"secret\": \"alpha\"}'),"
        "        ('-/user_alpha', 'k2', 'POST', '/api/crew/guests', 'h', 201, '{}')",
        (scope,),
    )
    dba.execute(
        "INSERT INTO keel.webhook_events (source, event_id, event_type) VALUES ('clerk', 'msg_alpha', 'user.created')"
    )
    return {"clinic": clinic, "owner": owner}


def all_rows(conn: psycopg.Connection[Any]) -> dict[str, set[str]]:
    """Every row of every relation keel_api may read, as JSON text, seen by the connection's current role."""
    seen: dict[str, set[str]] = {}
    for schema, name, whole, kind in conn.execute(RELATIONS).fetchall():
        relation = sql.Identifier(schema, name)
        if kind == "S":  # a sequence has no row type
            query = sql.SQL("SELECT 'last_value ' || last_value FROM {}").format(relation)
        elif whole:
            query = sql.SQL("SELECT to_jsonb(t)::text FROM {} AS t").format(relation)
        else:  # column privileges only: count what is visible
            query = sql.SQL(
                "SELECT 'row ' || n FROM generate_series(1, (SELECT count(*) FROM {})) AS n"
            ).format(relation)
        seen[f"{schema}.{name}"] = {row[0] for row in conn.execute(query).fetchall()}
    return seen


def read_as(db_url: str, claims: dict[str, Any], *, checked: bool = True) -> dict[str, set[str]]:
    """What a session with these claims can read in every relation. `checked`: set up by the API's own
    context statement (which refuses a clinic token naming no active staff member, see
    clinic.request_claims); otherwise the claims are set raw, as a faulty API would: then row-level
    security alone must keep other tenants' rows out."""
    with psycopg.connect(db_url) as conn, conn.transaction():
        if checked:
            conn.execute(CONTEXT_SQL, context_params(Principal(claims=claims), 30_000))
        else:
            conn.execute(
                "SELECT set_config('request.jwt.claims', %s, true), set_config('role', 'keel_api', true)",
                (json.dumps(claims),),
            )
        assert conn.execute("SELECT current_user").fetchone() == ("keel_api",)
        return all_rows(conn)


def test_forged_claims_read_nothing_in_any_relation(db_url, dba):
    tenant = populate_tenant_a(dba)
    relations = dba.execute(RELATIONS).fetchall()
    assert len(relations) > 20  # the catalog walk finds the schema (not an empty list that proves nothing)
    forged = {"sub": str(uuid.uuid4()), "clinic_id": str(uuid.uuid4()), "role": "admin"}
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        read_as(db_url, forged)  # the API refuses to run it at all
    visible = {name: rows for name, rows in read_as(db_url, forged, checked=False).items() if rows}
    assert visible == {}
    # A's clinic with a subject who is nobody there: refused by the API; RLS alone shows A's clinic
    # (the clinic_id claim is the tenant key), which is why the API checks the subject.
    crossed = {"sub": str(uuid.uuid4()), "clinic_id": str(tenant["clinic"].id), "role": "admin"}
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        read_as(db_url, crossed)
    nobody = {"sub": "user_" + uuid.uuid4().hex}
    for checked in (True, False):
        visible = {name: rows for name, rows in read_as(db_url, nobody, checked=checked).items() if rows}
        assert visible == {}


def test_another_tenant_reads_none_of_a_tenants_rows(db_url, dba):
    populate_tenant_a(dba)
    with psycopg.connect(db_url) as conn, conn.transaction():
        conn.execute("SET LOCAL ROLE keel_owner")  # bypasses row-level security: every row there is
        everything = all_rows(conn)
    tenant_a = {name: rows for name, rows in everything.items() if rows}
    assert {
        "clinic.appointments",
        "callmaster.script_elements",
        "callmaster.crew_invitations_sent",
        "keel.idempotency_keys",
    } <= set(tenant_a)

    clinic_b = create_clinic(dba, "Beta", doctors=1, patients=1)
    owner_b = add_user(dba, "user_beta")
    add_show(dba, owner_b, "Macbeth")
    for claims in (
        {"sub": str(clinic_b.admin_id), "clinic_id": str(clinic_b.id), "role": "admin"},
        {"sub": "user_beta"},
    ):
        seen = read_as(db_url, claims)
        leaked = {name: rows & tenant_a.get(name, set()) for name, rows in seen.items()}
        assert {name: rows for name, rows in leaked.items() if rows} == {}, json.dumps(claims)
        assert any(seen.values())  # B does see its own rows: the sessions are not simply blind

"""A small world of both products for the contract suites: tenants, their tokens, one row of each kind.

`seed_world` builds two clinics and two CallMaster owners (each with a crew member), through the API
where the API owns the encoding (encrypted lead fields) and with the DBA's SQL elsewhere. Path ids of
the OpenAPI document map to the seeded rows by name (`World.ids`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import hypothesis
import hypothesis.strategies as st
import psycopg
from psycopg import sql

from tests.factories import (
    add_crew,
    add_department,
    add_script,
    add_show,
    add_user,
    assign,
    create_clinic,
    lead_body,
    patient_body,
)

Dba = psycopg.Connection[Any]

TABLES = """
SELECT n.nspname, c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname IN ('keel', 'clinic', 'assistant', 'callmaster')
ORDER BY 1, 2
"""
CHECKSUM = sql.SQL(
    "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) FROM {} AS t"
)


@dataclasses.dataclass
class World:
    headers: dict[
        str, dict[str, str]
    ]  # clinic_admin, clinic_front_desk, clinic_b, owner, crew, owner_b, crew_b
    ids: dict[str, str]  # path parameter name → a row of clinic A / owner A
    products: dict[str, str]  # identity → "clinic" | "callmaster"


def _created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def seed_world(dba: Dba, client: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]) -> World:
    alpha = create_clinic(dba, "Alpha", prefix="ALP", admin_email="admin@alpha.example")
    beta = create_clinic(dba, "Beta", prefix="BET", admin_email="admin@beta.example")
    clinic_a, admin_a = str(alpha.id), str(alpha.admin_id)
    clinic_b, admin_b = str(beta.id), str(beta.admin_id)
    admin = bearer(admin_a, clinic_id=clinic_a, role="admin")
    doctor = await client.post(
        "/api/staff", headers=admin, json={"name": "Dr Rao", "email": "rao@alpha.example", "role": "doctor"}
    )
    desk_id = _created(
        await client.post(
            "/api/staff",
            headers=admin,
            json={"name": "Desk", "email": "desk@alpha.example", "role": "front_desk"},
        )
    )
    lead_id = _created(await client.post("/api/leads", headers=admin, json=lead_body()))
    patient_id = _created(await client.post("/api/patients", headers=admin, json=patient_body()))
    appointment_id = _created(
        await client.post(
            "/api/appointments",
            headers=admin,
            json={
                "patient_id": patient_id,
                "doctor_id": _created(doctor),
                "appointment_date": "2031-01-15",
                "start_time": "10:00",
                "end_time": "10:30",
            },
        )
    )
    conversation_id, message_id = dba.execute(
        """WITH c AS (INSERT INTO assistant.conversations (clinic_id, staff_id, title)
                      VALUES (%(clinic)s, %(staff)s, 'Seeded') RETURNING id)
           INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, content, status)
           SELECT %(clinic)s, %(staff)s, id, 'assistant', 'hello', 'done' FROM c RETURNING conversation_id, id""",
        {"clinic": clinic_a, "staff": admin_a},
    ).fetchone()

    owner = add_user(dba, "user_owner_a")
    owner_b = add_user(dba, "user_owner_b")  # a stranger to owner A's rows
    # Owner B invited owner A into their crew: only A may accept or decline it (not even B).
    invitation_id = str(
        dba.execute(
            "INSERT INTO callmaster.crew_invitations (manager_user_id, invitee_user_id, email)"
            " VALUES (%s, %s, 'owner-a@example.com') RETURNING id",
            (owner_b, owner),
        ).fetchone()[0]
    )
    crew = add_crew(dba, owner, "crew-a@example.com")
    dba.execute(
        "UPDATE callmaster.users SET clerk_user_id = 'user_crew_a', status = 'verified' WHERE id = %s",
        (crew,),
    )
    crew_b = add_crew(dba, owner, "crew-b@example.com")  # owner A's crew, not on the show
    dba.execute(
        "UPDATE callmaster.users SET clerk_user_id = 'user_crew_b', status = 'verified' WHERE id = %s",
        (crew_b,),
    )
    show_id = add_show(dba, owner)
    assign(dba, show_id, crew)
    script_id = add_script(dba, show_id)
    department_id = add_department(dba, owner)
    owner_headers = bearer("user_owner_a")
    venue_id = _created(await client.post("/api/venues", headers=owner_headers, json={"name": "Globe"}))
    element_id = _created(
        await client.post(
            f"/api/scripts/{script_id}/elements", headers=owner_headers, json={"element_type": "cue"}
        )
    )
    link = await client.post(f"/api/shows/{show_id}/share-links", headers=owner_headers, json={})
    assignment_id = str(
        dba.execute("SELECT id FROM callmaster.crew_assignments WHERE show_id = %s", (show_id,)).fetchone()[0]
    )
    return World(
        headers={
            "clinic_admin": admin,
            "clinic_front_desk": bearer(desk_id, clinic_id=clinic_a, role="front_desk"),
            "clinic_b": bearer(admin_b, clinic_id=clinic_b, role="admin"),
            "owner": owner_headers,
            "crew": bearer("user_crew_a"),
            "owner_b": bearer("user_owner_b"),
            "crew_b": bearer("user_crew_b"),
        },
        ids={
            "staff_id": desk_id,
            "lead_id": lead_id,
            "patient_id": patient_id,
            "appointment_id": appointment_id,
            "conversation_id": str(conversation_id),
            "message_id": str(message_id),
            "user_id": crew,
            "venue_id": venue_id,
            "department_id": department_id,
            "show_id": show_id,
            "assignment_id": assignment_id,
            "script_id": script_id,
            "element_id": element_id,
            "link_id": _created(link),
            "event_id": str(dba.execute("SELECT id FROM keel.outbox ORDER BY id LIMIT 1").fetchone()[0]),
            "invitation_id": invitation_id,
        },
        products={
            "clinic_admin": "clinic",
            "clinic_front_desk": "clinic",
            "clinic_b": "clinic",
            "owner": "callmaster",
            "crew": "callmaster",
            "owner_b": "callmaster",
            "crew_b": "callmaster",
        },
    )


def table_checksums(dba: Dba) -> dict[str, str]:
    """md5 of every row of every table of Keel's schemas, per table (order-independent)."""
    out = {}
    for schema, table in dba.execute(TABLES).fetchall():
        row = dba.execute(CHECKSUM.format(sql.Identifier(schema, table))).fetchone()
        assert row is not None
        out[f"{schema}.{table}"] = f"{row[0]}:{row[1]}"
    return out


EXAMPLE_DATE = "2031-02-03"


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def example(doc: dict[str, Any], schema: dict[str, Any], ids: dict[str, str], name: str = "") -> Any:
    """A minimal value the schema accepts: required members only, first enum value, ids of the world."""
    schema = resolve(doc, schema)
    options = schema.get("oneOf") or schema.get("anyOf")
    if options:
        picked = next((o for o in options if resolve(doc, o).get("type") != "null"), options[0])
        return example(
            doc, {**{k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}, **picked}, ids, name
        )
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("examples"):
        return schema["examples"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {key: example(doc, props[key], ids, key) for key in schema.get("required", [])}
    if kind == "array":
        return [example(doc, schema.get("items", {}), ids, name) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    fmt = schema.get("format")
    if fmt == "uuid":
        return ids.get(name, str(uuid.uuid4()))
    if fmt == "date":
        return EXAMPLE_DATE
    if fmt == "date-time":
        return f"{EXAMPLE_DATE}T10:00:00Z"
    if "pattern" in schema:
        return _matching(schema["pattern"])
    return "x" * max(1, schema.get("minLength", 1))


def _matching(pattern: str) -> str:
    """The simplest string of a pattern: Hypothesis' minimal example (shrunk, so always the same)."""
    return hypothesis.find(st.from_regex(pattern, fullmatch=True), lambda value: True)


def id_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Operations taking a path id and a token (share-link URLs carry a capability, not a tenant id)."""
    return [
        (path, method, op)
        for path, method, op in operations(doc)
        if any(p["in"] == "path" for p in op.get("parameters", [])) and op.get("security") != [{}]
    ]


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method.upper(), op) for path, item in doc["paths"].items() for method, op in item.items()]


def product(op: dict[str, Any]) -> str:
    """Which product's tokens an operation takes."""
    return "callmaster" if any(tag.startswith("callmaster") for tag in op.get("tags", [])) else "clinic"


def build_request(doc: dict[str, Any], path: str, op: dict[str, Any], world: World) -> dict[str, Any]:
    url, params, headers = path, {}, {}
    for param in op.get("parameters", []):
        if param["in"] == "path":
            assert param["name"] in world.ids, f"{path}: no seeded row for path id {param['name']}"
            url = url.replace("{" + param["name"] + "}", world.ids[param["name"]])
        elif param.get("required"):
            value = example(doc, param["schema"], world.ids, param["name"])
            (params if param["in"] == "query" else headers)[param["name"]] = str(value)
    request: dict[str, Any] = {"url": url, "params": params, "headers": headers}
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        request["json"] = example(doc, body["schema"], world.ids)
    return request

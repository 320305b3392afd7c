"""Tenant sweep (issue 14): every operation of the OpenAPI document that takes a path id, called on
tenant A's rows with the token of someone who must not see them, answers 404 and changes nothing.

The operations come from the served document, not from a list here: an id-bearing operation added
later is swept too, and the test fails when it cannot build a request for one (an unknown path id).
Strangers: clinic operations get another clinic's admin; CallMaster operations get another owner and a
crew member of the same owner who is not assigned to the show.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import hypothesis
import hypothesis.strategies as st
import psycopg

from tests.clinic_support import settings_overrides  # noqa: F401 - an encryption key for leads
from tests.contract_support import World, seed_world, table_checksums

STRANGERS = {"clinic": ("clinic_b",), "callmaster": ("owner_b", "crew_b")}
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
        return example(doc, {**{k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}, **picked}, ids, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "examples" in schema and schema["examples"]:
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
    return [
        (path, method.upper(), op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if any(p["in"] == "path" for p in op.get("parameters", []))
    ]


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


def product(op: dict[str, Any]) -> str:
    return "callmaster" if "callmaster" in op.get("tags", []) else "clinic"


async def test_tenant_sweep_every_id_operation_answers_404_and_changes_nothing(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    world = await seed_world(dba, client, bearer)
    doc = (await client.get("/schema/openapi.json")).json()
    operations = id_operations(doc)
    assert len(operations) >= 40, "the document lost its id-bearing operations"
    before = table_checksums(dba)
    leaks, swept = [], 0
    for path, method, op in operations:
        request = build_request(doc, path, op, world)
        for stranger in STRANGERS[product(op)]:
            response = await client.request(
                method,
                request["url"],
                params=request["params"],
                json=request.get("json"),
                headers={**request["headers"], **world.headers[stranger]},
            )
            swept += 1
            if response.status_code != 404:
                leaks.append(f"{method} {path} as {stranger}: {response.status_code} {response.text[:200]}")
            else:
                assert response.headers["content-type"].startswith("application/problem+json")
    assert leaks == [], "\n".join(leaks)
    assert table_checksums(dba) == before
    # The owner's own calls reach the rows (the sweep's ids are real), e.g. every GET answers 200.
    for path, method, op in operations:
        if method == "GET" and "events" not in path:
            request = build_request(doc, path, op, world)
            owner = "clinic_admin" if product(op) == "clinic" else "owner"
            response = await client.get(request["url"], params=request["params"], headers=world.headers[owner])
            assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:200]}"
    assert swept >= 60

"""Issue 13, finding 1: no integer a client sends reaches SQL outside its type, so none is a 500.

Every integer input of the OpenAPI document (query and header parameters, and the integer members of
JSON bodies) documents a `maximum` that fits its SQL type (at most 2^63-1), and is sent at 2^31 and 2^63
on real rows with an otherwise valid request: above its maximum the answer is a 4xx problem, at or below
it (a `bigint` column takes 2^31) it is anything but a 5xx. The two reported cases are also named: `DELETE /api/elements/{id}?base_version=3000000000`
and `Last-Event-ID: 1:3000000000` (a resume id this stream never sent: ignored, not a 500).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from api.errors import problem_from_db_error
from tests.contract_support import build_request, operations, product, resolve, seed_world
from tests.factories import KEYS_ONE

HUGE = (2**31, 2**63)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


def integer_inputs(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str, str, Any]]:
    """(path, method, operation, where, name, maximum) of every integer input (`query`, `header`, `body`)."""
    found = []
    for path, method, op in operations(doc):
        for param in op.get("parameters", []):
            if param["in"] in ("query", "header") and '"integer"' in json.dumps(param["schema"]):
                found.append((path, method, op, param["in"], param["name"], param["schema"].get("maximum")))
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            schema = resolve(doc, body["schema"])
            for name, prop in schema.get("properties", {}).items():
                prop = resolve(doc, prop)
                if '"integer"' in json.dumps(prop):
                    found.append((path, method, op, "body", name, prop.get("maximum")))
    return found


async def test_finding_1_every_integer_input_at_2_31_and_2_63_is_a_4xx(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    world = await seed_world(dba, client, bearer)
    doc = (await client.get("/schema/openapi.json")).json()
    inputs = integer_inputs(doc)
    named = {(path, where, name) for path, _, _, where, name, _ in inputs}
    unbounded = [(path, where, name) for path, _, _, where, name, maximum in inputs if maximum is None]
    assert unbounded == []
    assert all(maximum <= 2**63 - 1 for *_, maximum in inputs)
    assert ("/api/elements/{element_id}", "query", "base_version") in named
    assert ("/api/control-tower/intervention-queue", "query", "min_days") in named
    assert ("/api/scripts/{script_id}/elements", "body", "sequence") in named
    wrong = []
    for path, method, op, where, name, maximum in inputs:
        for value in HUGE:
            request = build_request(doc, path, op, world)
            if where == "body":
                request["json"] = {**request["json"], name: value}
            else:
                request["params" if where == "query" else "headers"][name] = str(value)
            who = "clinic_admin" if product(op) == "clinic" else "owner"
            response = await client.request(
                method,
                request["url"],
                params=request["params"],
                json=request.get("json"),
                headers={**request["headers"], **world.headers[who]},
            )
            allowed = range(400, 500) if value > maximum else range(200, 500)
            if response.status_code not in allowed:
                wrong.append(
                    f"{method} {path} {where} {name}={value}: {response.status_code} {response.text[:200]}"
                )
            elif response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
    assert wrong == [], "\n".join(wrong)
    assert len(inputs) >= 10


async def test_finding_1_reported_cases(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    world = await seed_world(dba, client, bearer)
    element = world.ids["element_id"]
    response = await client.delete(
        f"/api/elements/{element}", params={"base_version": "3000000000"}, headers=world.headers["owner"]
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (
        dba.execute("SELECT count(*) FROM callmaster.script_elements WHERE id = %s", (element,)).fetchone()[0]
        == 1
    )
    events = f"/api/internal-assistant/messages/{world.ids['message_id']}/events"
    for last_id in ("1:3000000000", "3000000000:1", "1:9223372036854775808"):
        async with client.stream(
            "GET", events, headers={**world.headers["clinic_admin"], "Last-Event-ID": last_id}
        ) as stream:
            assert stream.status_code == 200, last_id
            body = (await stream.aread()).decode()
        assert "event: done" in body and "hello" in body  # ignored: the whole reply from the start


def test_finding_1_an_argument_outside_its_sql_type_is_a_422_not_a_500(dba: psycopg.Connection[Any]) -> None:
    """What the edge no longer lets through still maps to a 4xx: a bigint sent to an integer parameter."""
    with pytest.raises(psycopg.errors.UndefinedFunction) as caught:
        dba.execute("SELECT assistant.reply_progress(gen_random_uuid(), %s, 0)", (3_000_000_000,))
    problem = problem_from_db_error(caught.value)
    assert problem.status_code == 422
    assert problem.extra == {"code": "42883"}
    assert "reply_progress" not in problem.detail

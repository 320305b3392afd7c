"""Tenant sweep (issue 14): every operation of the OpenAPI document that takes a path id, called on
tenant A's rows with the token of someone who must not see them, answers 404 and changes nothing.

The operations come from the served document, not from a list here: an id-bearing operation added
later is swept too, and the test fails when it cannot build a request for one (an unknown path id).
Strangers: clinic operations get another clinic's admin; CallMaster operations get another owner and a
crew member of the same owner who is not assigned to the show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.contract_support import build_request, id_operations, product, seed_world, table_checksums
from tests.factories import KEYS_ONE

STRANGERS = {"clinic": ("clinic_b",), "callmaster": ("owner_b", "crew_b")}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


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
        streams = (
            "text/event-stream" in op["responses"]["200"].get("content", {})
            if "200" in op["responses"]
            else False
        )
        if method == "GET" and not streams:
            request = build_request(doc, path, op, world)
            owner = "clinic_admin" if product(op) == "clinic" else "owner"
            response = await client.get(
                request["url"], params=request["params"], headers=world.headers[owner]
            )
            assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:200]}"
    assert swept >= 60

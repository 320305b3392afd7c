"""Issue 13, finding 14: stale authority.

A staff member set `is_active = false`, or demoted, kept the token's full access until it expired. The
API's context statement now checks the claims against `clinic.staff` (clinic.request_claims) in the same
statement and round trip as every call: deactivation refuses the very next request (401), and a role
change applies to it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from psycopg import sql

from tests.appointments_support import add_doctor, make_clinic


async def test_finding14_deactivation_refuses_the_next_request(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    clinic = make_clinic(dba)
    desk = add_doctor(dba, clinic.clinic_id, "Dee Desk", role="front_desk")
    headers = bearer(str(desk), clinic_id=str(clinic.clinic_id), role="front_desk")
    assert (await client.get("/api/patients", headers=headers)).status_code == 200

    dba.execute("UPDATE clinic.staff SET is_active = false WHERE id = %s", (desk,))
    refused = await client.get("/api/patients", headers=headers)
    assert refused.status_code == 401, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers["www-authenticate"].startswith("Bearer")
    created = await client.post("/api/patients", json={"name": "X", "mobile": "+15550100"}, headers=headers)
    assert created.status_code == 401
    assert dba.execute("SELECT count(*) FROM clinic.patients WHERE name = 'X'").fetchone() == (0,)

    dba.execute("UPDATE clinic.staff SET is_active = true WHERE id = %s", (desk,))
    assert (await client.get("/api/patients", headers=headers)).status_code == 200


async def test_finding14_a_demoted_admin_loses_admin_rights_at_once(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    clinic = make_clinic(dba)
    second = add_doctor(dba, clinic.clinic_id, "Second Admin", role="admin")
    headers = bearer(str(second), clinic_id=str(clinic.clinic_id), role="admin")
    new_staff = {"name": "Cee Ro", "email": "cro@clinic.example", "role": "cro"}
    assert (await client.post("/api/staff", json=new_staff, headers=headers)).status_code == 201

    dba.execute("UPDATE clinic.staff SET role = 'front_desk' WHERE id = %s", (second,))
    other = {"name": "Cee Two", "email": "cro2@clinic.example", "role": "cro"}
    refused = await client.post("/api/staff", json=other, headers=headers)
    assert refused.status_code == 403, refused.text
    assert dba.execute(
        "SELECT count(*) FROM clinic.staff WHERE email = 'cro2@clinic.example'"
    ).fetchone() == (0,)


async def test_finding14_a_token_for_another_clinic_or_nobody_is_refused(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    alpha, beta = make_clinic(dba, "Alpha"), make_clinic(dba, "Beta")
    crossed = bearer(str(alpha.admin_id), clinic_id=str(beta.clinic_id), role="admin")
    assert (await client.get("/api/patients", headers=crossed)).status_code == 401
    nobody = bearer("00000000-0000-4000-8000-000000000000", clinic_id=str(alpha.clinic_id), role="admin")
    assert (await client.get("/api/patients", headers=nobody)).status_code == 401


def test_finding14_cost_of_the_check_per_request(dba: psycopg.Connection[Any]) -> None:
    """The check is one primary-key lookup; measured server-side against the same loop without it."""
    clinic = make_clinic(dba)
    claims = json.dumps({"sub": str(clinic.admin_id), "clinic_id": str(clinic.clinic_id), "role": "admin"})
    n = 5_000

    def loop(expression: str) -> float:
        started = time.perf_counter()
        dba.execute(
            sql.SQL("SELECT count({}) FROM generate_series(1, %(n)s), (SELECT %(c)s::text AS c) AS x").format(
                sql.SQL(expression)
            ),
            {"n": n, "c": claims},
        )
        return time.perf_counter() - started

    loop("clinic.request_claims(c)")  # warm the plan and the buffer cache
    with_check = min(loop("clinic.request_claims(c)") for _ in range(2))
    without = min(loop("c") for _ in range(2))
    per_call_us = (with_check - without) / n * 1e6
    print(f"\nclinic.request_claims: {per_call_us:.1f} µs per request ({n} calls, server-side)")
    assert per_call_us < 500  # a generous bound: a lookup, not a scan

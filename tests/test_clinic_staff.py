"""Staff and doctors: admin-only writes, unique e-mail per clinic, tenant isolation, bad input."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.factories import KEYS_ONE, assert_problem, count


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


async def test_admin_creates_lists_reads_and_updates_staff(client, clinic_a):
    r = await client.post(
        "/api/staff",
        json={
            "name": "Dr Lakshmi Iyer",
            "email": "lakshmi@alpha.example",
            "role": "doctor",
            "specialty": "Orthopaedics",
        },
        headers=clinic_a.headers,
    )
    assert r.status_code == 201, r.text
    doctor = r.json()
    assert doctor["role"] == "doctor" and doctor["clinic_id"] == clinic_a.id and doctor["is_active"] is True

    r = await client.post(
        "/api/staff",
        json={"name": "Ravi", "email": "ravi@alpha.example", "role": "cro"},
        headers=clinic_a.headers,
    )
    assert r.status_code == 201

    r = await client.get("/api/staff", headers=clinic_a.headers)
    body = r.json()
    assert r.status_code == 200 and body["total"] == 3 and body["limit"] == 50 and body["offset"] == 0
    assert [s["name"] for s in body["items"]] == ["Alpha Admin", "Dr Lakshmi Iyer", "Ravi"]

    r = await client.get("/api/staff", params={"role": "cro", "limit": 1}, headers=clinic_a.headers)
    assert r.json()["total"] == 1 and r.json()["items"][0]["name"] == "Ravi"

    r = await client.get("/api/doctors", headers=clinic_a.headers)
    assert [d["id"] for d in r.json()["items"]] == [doctor["id"]]

    r = await client.patch(
        f"/api/staff/{doctor['id']}", json={"specialty": None, "is_active": False}, headers=clinic_a.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["specialty"] is None and r.json()["is_active"] is False
    assert r.json()["updated_at"] >= doctor["updated_at"]

    r = await client.get("/api/doctors", headers=clinic_a.headers)
    assert r.json()["total"] == 0  # inactive doctors are not offered

    r = await client.get(f"/api/staff/{doctor['id']}", headers=clinic_a.headers)
    assert r.status_code == 200 and r.json()["email"] == "lakshmi@alpha.example"


async def test_email_unique_per_clinic_case_insensitive(client, clinic_a, clinic_b, dba):
    body = {"name": "Asha", "email": "asha@shared.example", "role": "front_desk"}
    assert (await client.post("/api/staff", json=body, headers=clinic_a.headers)).status_code == 201
    r = await client.post(
        "/api/staff", json={**body, "email": "ASHA@shared.example"}, headers=clinic_a.headers
    )
    problem = assert_problem(r, 409)
    assert problem["code"] == "23505"
    # Another clinic may use the same address.
    assert (await client.post("/api/staff", json=body, headers=clinic_b.headers)).status_code == 201
    assert count(dba, "staff") == 4


async def test_non_admins_cannot_write_staff(client, clinic_a, bearer, dba):
    before = count(dba, "staff")
    for role in ("doctor", "front_desk", "cro"):
        headers = clinic_a.as_role(bearer, role)
        r = await client.post(
            "/api/staff", json={"name": "X", "email": f"{role}@a.example", "role": "cro"}, headers=headers
        )
        assert_problem(r, 403)
        r = await client.patch(f"/api/staff/{clinic_a.admin_id}", json={"name": "Hacked"}, headers=headers)
        assert_problem(r, 403)
        assert (await client.get("/api/staff", headers=headers)).status_code == 200
    assert count(dba, "staff") == before
    row = dba.execute("SELECT name FROM clinic.staff WHERE id = %s", (clinic_a.admin_id,)).fetchone()
    assert row == ("Alpha Admin",)


async def test_rls_blocks_staff_writes_by_non_admins_even_in_sql(dba, clinic_a):
    """The policy, not only the handler, refuses: a keel_api transaction with role cro cannot insert."""
    import json

    import psycopg

    with dba.transaction():
        dba.execute(
            "SELECT set_config('request.jwt.claims', %s, true), set_config('role', 'keel_api', true)",
            (json.dumps({"sub": "x", "clinic_id": clinic_a.id, "role": "cro"}),),
        )
        try:
            with dba.transaction():
                dba.execute('SELECT clinic.create_staff(\'{"name":"N","email":"n@a.example","role":"cro"}\')')
            raise AssertionError("insert was allowed")
        except psycopg.errors.InsufficientPrivilege:
            pass


async def test_staff_isolation_between_clinics(client, clinic_a, clinic_b):
    r = await client.post(
        "/api/staff",
        json={"name": "Dr B", "email": "drb@beta.example", "role": "doctor"},
        headers=clinic_b.headers,
    )
    b_doctor = r.json()["id"]

    # A cannot read, update or list B's staff: 404, as if it did not exist.
    assert_problem(await client.get(f"/api/staff/{b_doctor}", headers=clinic_a.headers), 404)
    assert_problem(await client.get(f"/api/staff/{clinic_b.admin_id}", headers=clinic_a.headers), 404)
    assert_problem(
        await client.patch(f"/api/staff/{b_doctor}", json={"name": "Mine"}, headers=clinic_a.headers), 404
    )
    listed = (await client.get("/api/staff", headers=clinic_a.headers)).json()
    assert listed["total"] == 1 and all(s["clinic_id"] == clinic_a.id for s in listed["items"])
    assert (await client.get("/api/doctors", headers=clinic_a.headers)).json()["total"] == 0
    assert (await client.get(f"/api/staff/{b_doctor}", headers=clinic_b.headers)).json()["name"] == "Dr B"


async def test_staff_bad_input_is_a_problem_and_writes_nothing(client, clinic_a, dba, bearer):
    before = count(dba, "staff")
    bad_bodies = [
        {},
        {"email": "x@a.example", "role": "cro"},
        {"name": "", "email": "x@a.example", "role": "cro"},
        {"name": "   ", "email": "x@a.example", "role": "cro"},
        {"name": "X", "email": "not-an-email", "role": "cro"},
        {"name": "X", "email": "x@a.example", "role": "surgeon"},
        {"name": "X", "email": "x@a.example", "role": "cro", "is_active": "yes"},
        {"name": 5, "email": "x@a.example", "role": "cro"},
        {"name": "X", "email": "x@a.example", "role": "cro", "clinic_id": clinic_a.id},
    ]
    for body in bad_bodies:
        assert_problem(await client.post("/api/staff", json=body, headers=clinic_a.headers), (400, 422))
    assert_problem(
        await client.post("/api/staff", content=b"{not json", headers=clinic_a.headers), (400, 422)
    )
    assert_problem(await client.get("/api/staff/not-a-uuid", headers=clinic_a.headers), (400, 404))
    assert_problem(
        await client.patch("/api/staff/1234", json={"name": "x"}, headers=clinic_a.headers), (400, 404, 405)
    )
    assert_problem(await client.get(f"/api/staff/{uuid.uuid4()}", headers=clinic_a.headers), 404)
    assert_problem(
        await client.patch(
            f"/api/staff/{clinic_a.admin_id}", json={"role": "boss"}, headers=clinic_a.headers
        ),
        (400, 422),
    )
    assert_problem(
        await client.patch(f"/api/staff/{clinic_a.admin_id}", json={"name": None}, headers=clinic_a.headers),
        (400, 422),
    )
    assert_problem(await client.get("/api/staff", params={"role": "boss"}, headers=clinic_a.headers), 400)
    assert_problem(await client.get("/api/staff", params={"limit": 0}, headers=clinic_a.headers), 400)
    # No token, a token without a clinic: refused before any SQL.
    assert_problem(await client.get("/api/staff"), 401)
    assert_problem(await client.get("/api/staff", headers=bearer("user_123")), 403)
    assert count(dba, "staff") == before

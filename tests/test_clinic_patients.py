"""Patients: UHIDs from SQL (also under 50 concurrent registrations), search, isolation, idempotency."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.factories import KEYS_ONE, assert_problem, count, patient_body


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


async def test_register_read_search_and_update(client, clinic_a):
    r = await client.post("/api/patients", json=patient_body(), headers=clinic_a.headers)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["uhid"] == "ALP-000001"
    assert first["mobile"] == "+919895011111"  # stored normalised
    assert first["status"] == "active" and first["registration_date"] and first["lead_id"] is None

    second = (
        await client.post(
            "/api/patients",
            json=patient_body(name="Zoya Thomas", mobile="9446 222 333", gender="female"),
            headers=clinic_a.headers,
        )
    ).json()
    assert second["uhid"] == "ALP-000002"

    async def search(**params):
        r = await client.get("/api/patients", params=params, headers=clinic_a.headers)
        assert r.status_code == 200, r.text
        return [p["uhid"] for p in r.json()["items"]], r.json()["total"]

    assert await search() == (["ALP-000002", "ALP-000001"], 2)
    assert await search(q="arjun") == (["ALP-000001"], 1)
    assert await search(q="zoya th") == (["ALP-000002"], 1)
    assert await search(q="94462") == (["ALP-000002"], 1)  # mobile digits
    assert await search(q="alp-000001") == (["ALP-000001"], 1)
    assert await search(q="100%_") == ([], 0)  # LIKE wildcards are literal
    assert await search(limit=1, offset=1) == (["ALP-000001"], 2)

    r = await client.patch(
        f"/api/patients/{first['id']}",
        json={"city": "Kochi", "email": None, "blood_group": "B+"},
        headers=clinic_a.headers,
    )
    assert r.status_code == 200, r.text
    assert (
        r.json()["city"] == "Kochi" and r.json()["blood_group"] == "B+" and r.json()["uhid"] == "ALP-000001"
    )
    r = await client.get(f"/api/patients/{first['id']}", headers=clinic_a.headers)
    assert r.json()["city"] == "Kochi"


async def test_assigned_doctor_must_be_a_doctor_of_the_clinic(client, clinic_a, clinic_b, dba):
    doctor = (
        await client.post(
            "/api/staff",
            json={"name": "Dr A", "email": "dra@alpha.example", "role": "doctor"},
            headers=clinic_a.headers,
        )
    ).json()
    b_doctor = (
        await client.post(
            "/api/staff",
            json={"name": "Dr B", "email": "drb@beta.example", "role": "doctor"},
            headers=clinic_b.headers,
        )
    ).json()
    r = await client.post(
        "/api/patients", json=patient_body(assigned_doctor_id=doctor["id"]), headers=clinic_a.headers
    )
    assert r.status_code == 201 and r.json()["assigned_doctor_id"] == doctor["id"]

    # Another clinic's doctor: the request references something that (for A) does not exist.
    problem = assert_problem(
        await client.post(
            "/api/patients", json=patient_body(assigned_doctor_id=b_doctor["id"]), headers=clinic_a.headers
        ),
        422,
    )
    assert problem["code"] == "23503"
    # A staff member who is not a doctor.
    problem = assert_problem(
        await client.post(
            "/api/patients", json=patient_body(assigned_doctor_id=clinic_a.admin_id), headers=clinic_a.headers
        ),
        422,
    )
    assert problem["code"] == "23514"
    assert_problem(
        await client.patch(
            f"/api/patients/{r.json()['id']}",
            json={"assigned_doctor_id": b_doctor["id"]},
            headers=clinic_a.headers,
        ),
        422,
    )
    assert count(dba, "patients") == 1


async def test_fifty_concurrent_registrations_get_fifty_distinct_uhids(client, clinic_a, dba):
    async def register(i: int) -> str:
        r = await client.post(
            "/api/patients",
            json=patient_body(name=f"Patient {i}", mobile=f"98{i:08d}"),
            headers=clinic_a.headers,
        )
        assert r.status_code == 201, r.text
        return r.json()["uhid"]

    uhids = await asyncio.gather(*(register(i) for i in range(50)))
    assert len(set(uhids)) == 50
    assert sorted(uhids) == [f"ALP-{n:06d}" for n in range(1, 51)]
    assert dba.execute(
        "SELECT last_value FROM clinic.uhid_counters WHERE clinic_id = %s", (clinic_a.id,)
    ).fetchone() == (50,)


async def test_uhids_are_per_clinic_and_survive_dba_inserts(client, clinic_a, clinic_b, dba):
    a = (await client.post("/api/patients", json=patient_body(), headers=clinic_a.headers)).json()
    b = (await client.post("/api/patients", json=patient_body(), headers=clinic_b.headers)).json()
    assert (a["uhid"], b["uhid"]) == ("ALP-000001", "BET-000001")
    # A DBA's minimal INSERT gets the next number from the same counter.
    row = dba.execute(
        "INSERT INTO clinic.patients (clinic_id, name, mobile) VALUES (%s, 'Walk In', '9000000001') RETURNING uhid",
        (clinic_a.id,),
    ).fetchone()
    assert row == ("ALP-000002",)
    c = (await client.post("/api/patients", json=patient_body(), headers=clinic_a.headers)).json()
    assert c["uhid"] == "ALP-000003"


async def test_patient_isolation_between_clinics(client, clinic_a, clinic_b):
    b_patient = (
        await client.post("/api/patients", json=patient_body(name="Beta Person"), headers=clinic_b.headers)
    ).json()
    assert_problem(await client.get(f"/api/patients/{b_patient['id']}", headers=clinic_a.headers), 404)
    assert_problem(
        await client.patch(f"/api/patients/{b_patient['id']}", json={"city": "X"}, headers=clinic_a.headers),
        404,
    )
    listed = (await client.get("/api/patients", params={"q": "Beta"}, headers=clinic_a.headers)).json()
    assert listed == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert (await client.get("/api/patients", headers=clinic_a.headers)).json()["total"] == 0
    assert (await client.get(f"/api/patients/{b_patient['id']}", headers=clinic_b.headers)).json()[
        "city"
    ] is None


async def test_idempotency_key_replays_the_first_answer(client, clinic_a, clinic_b, dba):
    headers = {**clinic_a.headers, "Idempotency-Key": "reg-001"}
    first = await client.post("/api/patients", json=patient_body(), headers=headers)
    again = await client.post("/api/patients", json=patient_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert count(dba, "patients") == 1

    # Same key, different body: refused, nothing created.
    problem = assert_problem(
        await client.post("/api/patients", json=patient_body(name="Other"), headers=headers), 422
    )
    assert problem["code"] == "idempotency_key_reused"
    # Keys are per caller: clinic B's identical key is its own.
    r = await client.post(
        "/api/patients", json=patient_body(), headers={**clinic_b.headers, "Idempotency-Key": "reg-001"}
    )
    assert r.status_code == 201 and r.json()["uhid"] == "BET-000001"
    # Concurrent retries of one key create one patient.
    key = {**clinic_a.headers, "Idempotency-Key": "reg-002"}
    results = await asyncio.gather(
        *(client.post("/api/patients", json=patient_body(name="Race"), headers=key) for _ in range(8))
    )
    assert {r.status_code for r in results} == {201}
    assert len({r.json()["id"] for r in results}) == 1
    assert count(dba, "patients") == 3
    assert_problem(
        await client.post(
            "/api/patients", json=patient_body(), headers={**clinic_a.headers, "Idempotency-Key": ""}
        ),
        400,
    )
    # A failed request stores no key: the retry (fixed) goes through with it.
    bad = {**clinic_a.headers, "Idempotency-Key": "reg-003"}
    assert_problem(
        await client.post(
            "/api/patients", json=patient_body(assigned_doctor_id=str(uuid.uuid4())), headers=bad
        ),
        422,
    )
    assert (
        await client.post(
            "/api/patients", json=patient_body(assigned_doctor_id=str(uuid.uuid4())), headers=bad
        )
    ).status_code == 422
    assert count(dba, "keel.idempotency_keys") == 3


async def test_patient_bad_input_is_a_problem_and_writes_nothing(client, clinic_a, dba):
    p = (await client.post("/api/patients", json=patient_body(), headers=clinic_a.headers)).json()
    bad_bodies = [
        {},
        {"name": "No Mobile"},
        {"mobile": "9876543210"},
        {"name": "", "mobile": "9876543210"},
        {"name": "  ", "mobile": "9876543210"},
        {"name": "X", "mobile": ""},
        {"name": "X", "mobile": "call me"},
        {"name": "X", "mobile": "12"},
        {"name": "X", "mobile": "9876543210", "gender": "unknown"},
        {"name": "X", "mobile": "9876543210", "dob": "17/05/1980"},
        {"name": "X", "mobile": "9876543210", "dob": "2999-01-01"},
        {"name": "X", "mobile": "9876543210", "blood_group": "Z+"},
        {"name": "X", "mobile": "9876543210", "status": "gone"},
        {"name": "X", "mobile": "9876543210", "email": ""},
        {"name": "X", "mobile": "9876543210", "assigned_doctor_id": "not-a-uuid"},
        {"name": "X", "mobile": "9876543210", "uhid": "ALP-999999"},
        {"name": ["X"], "mobile": "9876543210"},
    ]
    for body in bad_bodies:
        assert_problem(await client.post("/api/patients", json=body, headers=clinic_a.headers), (400, 422))
    for body in (
        {"name": None},
        {"mobile": None},
        {"status": "gone"},
        {"uhid": "X-1"},
        {"lead_id": str(uuid.uuid4())},
        {"dob": "tomorrow"},
    ):
        assert_problem(
            await client.patch(f"/api/patients/{p['id']}", json=body, headers=clinic_a.headers), (400, 422)
        )
    assert_problem(await client.get("/api/patients/xyz", headers=clinic_a.headers), (400, 404))
    assert_problem(await client.get(f"/api/patients/{uuid.uuid4()}", headers=clinic_a.headers), 404)
    assert_problem(
        await client.patch(f"/api/patients/{uuid.uuid4()}", json={"city": "X"}, headers=clinic_a.headers), 404
    )
    assert_problem(
        await client.get("/api/patients", params={"status": "gone"}, headers=clinic_a.headers), 400
    )
    assert_problem(await client.get("/api/patients", params={"offset": -1}, headers=clinic_a.headers), 400)
    for path, params in (
        ("/api/patients", {"q": "a\x00b"}),
        ("/api/leads", {"q": "\x00"}),
        ("/api/leads", {"phone": "98470\x0012345"}),
        ("/api/staff", {"q": "\x00"}),
        ("/api/doctors", {"q": "\x00"}),
    ):
        assert_problem(await client.get(path, params=params, headers=clinic_a.headers), 400)
    huge = {"offset": 10**12}
    for path in ("/api/patients", "/api/leads", "/api/staff", "/api/doctors"):
        assert_problem(await client.get(path, params=huge, headers=clinic_a.headers), (400, 422))
    assert count(dba, "patients") == 1
    assert (await client.get(f"/api/patients/{p['id']}", headers=clinic_a.headers)).json() == p

# ruff: noqa: F811 - fixtures are imported from tests.clinic_support
"""Lead → patient conversion: atomic, once only, isolated, idempotent, callable by a DBA."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from tests.clinic_support import assert_problem, clinic_a, clinic_b, count, lead_body, settings_overrides  # noqa: F401


async def new_lead(client, clinic, **overrides):
    r = await client.post("/api/leads", json=lead_body(**overrides), headers=clinic.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_convert_creates_linked_patient_and_marks_lead(client, clinic_a, dba):
    lead = await new_lead(client, clinic_a)
    r = await client.post(
        f"/api/leads/{lead['id']}/convert",
        json={"mobile": "+91 98470 12345", "city": "Kochi"},
        headers=clinic_a.headers,
    )
    assert r.status_code == 201, r.text
    patient = r.json()
    assert patient["lead_id"] == lead["id"] and patient["uhid"] == "ALP-000001"
    assert patient["name"] == "Meera Nair" and patient["gender"] == "female"  # defaults from the lead
    assert patient["mobile"] == "+919847012345" and patient["city"] == "Kochi"
    assert (await client.get(f"/api/leads/{lead['id']}", headers=clinic_a.headers)).json()[
        "status"
    ] == "converted"
    assert (await client.get(f"/api/patients/{patient['id']}", headers=clinic_a.headers)).json() == patient

    # Twice → 409, nothing new.
    again = assert_problem(
        await client.post(
            f"/api/leads/{lead['id']}/convert", json={"mobile": "9847012345"}, headers=clinic_a.headers
        ),
        409,
    )
    assert again["code"] == "23505" and patient["id"] in again["db_detail"]
    assert count(dba, "patients") == 1
    # A converted lead keeps its status.
    assert_problem(
        await client.patch(f"/api/leads/{lead['id']}", json={"status": "lost"}, headers=clinic_a.headers), 422
    )


async def test_failed_patient_insert_leaves_the_lead_unchanged(client, clinic_a, clinic_b, dba):
    lead = await new_lead(client, clinic_a)
    b_doctor = (
        await client.post(
            "/api/staff",
            json={"name": "Dr B", "email": "b@beta.example", "role": "doctor"},
            headers=clinic_b.headers,
        )
    ).json()
    # Another clinic's doctor (foreign key) and a non-doctor (trigger) both fail inside the patient insert.
    for doctor_id, code in ((b_doctor["id"], "23503"), (clinic_a.admin_id, "23514")):
        problem = assert_problem(
            await client.post(
                f"/api/leads/{lead['id']}/convert",
                json={"mobile": "9847012345", "assigned_doctor_id": doctor_id},
                headers=clinic_a.headers,
            ),
            422,
        )
        assert problem["code"] == code
    assert dba.execute("SELECT status FROM clinic.leads WHERE id = %s", (lead["id"],)).fetchone() == (
        "new_inquiry",
    )
    assert count(dba, "patients") == 0
    # The same through the DBA's door: a bad mobile aborts the whole call.
    with pytest.raises(psycopg.errors.CheckViolation):
        dba.execute("SELECT clinic.convert_lead(%s, mobile => 'call me')", (lead["id"],))
    assert dba.execute("SELECT status FROM clinic.leads WHERE id = %s", (lead["id"],)).fetchone() == (
        "new_inquiry",
    )
    assert count(dba, "patients") == 0
    # Nothing was consumed: the lead still converts.
    r = await client.post(
        f"/api/leads/{lead['id']}/convert", json={"mobile": "9847012345"}, headers=clinic_a.headers
    )
    assert r.status_code == 201


async def test_concurrent_conversions_of_one_lead_create_one_patient(client, clinic_a, dba):
    lead = await new_lead(client, clinic_a)
    results = await asyncio.gather(
        *(
            client.post(
                f"/api/leads/{lead['id']}/convert", json={"mobile": "9847012345"}, headers=clinic_a.headers
            )
            for _ in range(6)
        )
    )
    assert sorted(r.status_code for r in results) == [201] + [409] * 5
    assert count(dba, "patients") == 1


async def test_conversion_idempotency_key_replays(client, clinic_a, dba):
    lead = await new_lead(client, clinic_a)
    headers = {**clinic_a.headers, "Idempotency-Key": "convert-1"}
    first = await client.post(
        f"/api/leads/{lead['id']}/convert", json={"mobile": "9847012345"}, headers=headers
    )
    again = await client.post(
        f"/api/leads/{lead['id']}/convert", json={"mobile": "9847012345"}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    # Concurrent retries with a fresh key on a fresh lead: one patient, same answer for all.
    other = await new_lead(client, clinic_a, phone="9000000002")
    key = {**clinic_a.headers, "Idempotency-Key": "convert-2"}
    results = await asyncio.gather(
        *(
            client.post(f"/api/leads/{other['id']}/convert", json={"mobile": "9000000002"}, headers=key)
            for _ in range(5)
        )
    )
    assert {r.status_code for r in results} == {201} and len({r.json()["id"] for r in results}) == 1
    assert count(dba, "patients") == 2


async def test_conversion_isolation_and_bad_input(client, clinic_a, clinic_b, dba):
    lead = await new_lead(client, clinic_a)
    b_lead = await new_lead(client, clinic_b)
    assert_problem(
        await client.post(
            f"/api/leads/{b_lead['id']}/convert", json={"mobile": "9847012345"}, headers=clinic_a.headers
        ),
        404,
    )
    for body in (
        {"mobile": 9847012345},
        {"mobile": ""},
        {"mobile": "abc"},
        {"mobile": "9847012345", "name": ""},
        {"mobile": "9847012345", "lead_id": lead["id"]},
        {"mobile": "9847012345", "dob": "1990-13-40"},
        {"mobile": "9847012345", "blood_group": "Q"},
        {"mobile": "9847012345", "dob": "2999-01-01"},
    ):
        assert_problem(
            await client.post(f"/api/leads/{lead['id']}/convert", json=body, headers=clinic_a.headers),
            (400, 422),
        )
    assert_problem(
        await client.post("/api/leads/nope/convert", json={"mobile": "9847012345"}, headers=clinic_a.headers),
        (400, 404, 405),
    )
    assert count(dba, "patients") == 0
    statuses = {row[0] for row in dba.execute("SELECT status FROM clinic.leads")}
    assert statuses == {"new_inquiry"}


def test_dba_converts_in_psql(dba, clinic_a):
    """The DESIGN §5 call: a DBA (no request claims) converts with named patient fields."""
    lead_id = dba.execute(
        "INSERT INTO clinic.leads (clinic_id, name, phone, gender) VALUES (%s, 'Walk In', %s, 'male') RETURNING id",
        (clinic_a.id, "v1:k1:" + "A" * 40),
    ).fetchone()[0]
    patient_id = dba.execute(
        "SELECT clinic.convert_lead(%s, mobile => '9847012345', city => 'Kochi')", (lead_id,)
    ).fetchone()[0]
    row = dba.execute(
        "SELECT p.uhid, p.name, p.gender, p.city, p.lead_id, l.status FROM clinic.patients p "
        "JOIN clinic.leads l ON l.id = p.lead_id WHERE p.id = %s",
        (patient_id,),
    ).fetchone()
    assert row == ("ALP-000001", "Walk In", "male", "Kochi", lead_id, "converted")
    with pytest.raises(psycopg.errors.UniqueViolation):
        dba.execute("SELECT clinic.convert_lead(%s, mobile => '9847012345')", (lead_id,))
    with pytest.raises(psycopg.errors.NoDataFound):
        dba.execute("SELECT clinic.convert_lead(gen_random_uuid(), mobile => '9847012345')")
    other = dba.execute(
        "INSERT INTO clinic.leads (clinic_id, name, phone) VALUES (%s, 'Y', %s) RETURNING id",
        (clinic_a.id, "v1:k1:" + "A" * 40),
    ).fetchone()[0]
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute("SELECT clinic.convert_lead(%s)", (other,))

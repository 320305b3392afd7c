# ruff: noqa: F811 - fixtures are imported from tests.clinic_support
"""Leads: encrypted at rest, decrypted on read, blind-index phone search, duplicate hint, isolation."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

from tests.clinic_support import (  # noqa: F401
    assert_problem,
    clinic_a,
    clinic_b,
    count,
    lead_body,
    pg_dump_binary,
    settings_overrides,
)

SECRETS = ("98470 12345", "9847012345", "2345678", "osteoarthritis", "Raghavan", "knee replacement")


async def test_create_read_list_and_update_a_lead(client, clinic_a):
    r = await client.post("/api/leads", json=lead_body(), headers=clinic_a.headers)
    assert r.status_code == 201, r.text
    lead = r.json()
    for name, value in lead_body().items():
        assert lead[name] == value, name
    assert lead["status"] == "new_inquiry" and lead["possible_duplicate_of"] is None
    assert "phone_bidx" not in lead and "key_ids" not in lead

    r = await client.get(f"/api/leads/{lead['id']}", headers=clinic_a.headers)
    assert r.status_code == 200 and r.json()["problem"] == "Chronic osteoarthritis left knee"

    r = await client.patch(
        f"/api/leads/{lead['id']}",
        json={
            "status": "cro_queue",
            "problem": "Both knees",
            "alternate_phone": None,
            "assigned_to_id": clinic_a.admin_id,
        },
        headers=clinic_a.headers,
    )
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["status"] == "cro_queue" and updated["problem"] == "Both knees"
    assert updated["alternate_phone"] is None and updated["phone"] == "+91 98470 12345"

    # A new phone gets a new blind index: found by the new number, no longer by the old one.
    r = await client.patch(
        f"/api/leads/{lead['id']}", json={"phone": "+91 99999 00000"}, headers=clinic_a.headers
    )
    assert r.status_code == 200 and r.json()["phone"] == "+91 99999 00000"
    by_new = (await client.get("/api/leads", params={"phone": "9999900000"}, headers=clinic_a.headers)).json()
    assert [item["id"] for item in by_new["items"]] == [lead["id"]]
    by_old = (await client.get("/api/leads", params={"phone": "9847012345"}, headers=clinic_a.headers)).json()
    assert by_old["total"] == 0

    await client.post(
        "/api/leads", json=lead_body(name="Other Person", phone="9000011111"), headers=clinic_a.headers
    )
    listed = (await client.get("/api/leads", headers=clinic_a.headers)).json()
    assert listed["total"] == 2 and listed["items"][0]["name"] == "Other Person"
    assert listed["items"][1]["treatment_doctor"] == "Dr Raghavan"
    by_status = (
        await client.get("/api/leads", params={"status": "cro_queue"}, headers=clinic_a.headers)
    ).json()
    assert [item["id"] for item in by_status["items"]] == [lead["id"]]
    by_name = (await client.get("/api/leads", params={"q": "meera"}, headers=clinic_a.headers)).json()
    assert [item["id"] for item in by_name["items"]] == [lead["id"]]
    by_owner = (
        await client.get("/api/leads", params={"assigned_to_id": clinic_a.admin_id}, headers=clinic_a.headers)
    ).json()
    assert [item["id"] for item in by_owner["items"]] == [lead["id"]]


async def test_sensitive_fields_are_never_stored_in_clear(client, clinic_a, dba, db_url):
    headers = {**clinic_a.headers, "Idempotency-Key": "lead-1"}
    assert (await client.post("/api/leads", json=lead_body(), headers=headers)).status_code == 201
    assert (await client.post("/api/leads", json=lead_body(), headers=headers)).status_code == 201  # replay

    row = dba.execute(
        "SELECT phone, alternate_phone, problem, treatment_doctor, treatment_suggested, phone_bidx FROM clinic.leads"
    ).fetchone()
    assert row is not None
    assert all(value.startswith("v2:k1:") for value in row[:5]), row
    assert row[5].startswith("v2:k1:")

    dump = (
        await asyncio.to_thread(
            subprocess.run,
            [pg_dump_binary(dba), "--dbname", db_url, "--no-owner"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    ).stdout
    assert "Meera Nair" in dump  # the dump has the data; names are not secret
    for secret in SECRETS:
        assert secret not in dump, secret


async def test_clear_text_cannot_be_written_into_encrypted_columns(dba, clinic_a):
    import psycopg
    import pytest

    with pytest.raises(psycopg.errors.CheckViolation):
        dba.execute(
            "INSERT INTO clinic.leads (clinic_id, name, phone) VALUES (%s, 'X', '9847012345')", (clinic_a.id,)
        )


async def test_phone_search_and_duplicate_hint_use_the_blind_index(client, clinic_a, clinic_b, dba):
    first = (
        await client.post("/api/leads", json=lead_body(phone="+91 98470 12345"), headers=clinic_a.headers)
    ).json()
    assert first["possible_duplicate_of"] is None
    # The same number written differently is flagged.
    second = (
        await client.post(
            "/api/leads", json=lead_body(name="Meera N", phone="098470-12345"), headers=clinic_a.headers
        )
    ).json()
    assert second["possible_duplicate_of"] == first["id"]
    third = (
        await client.post(
            "/api/leads", json=lead_body(name="Meera", phone="9847012345"), headers=clinic_a.headers
        )
    ).json()
    assert third["possible_duplicate_of"] == second["id"]  # the newest earlier one
    # Another clinic's lead with that number is not a duplicate, nor found.
    b_lead = (await client.post("/api/leads", json=lead_body(), headers=clinic_b.headers)).json()
    assert b_lead["possible_duplicate_of"] is None
    other = (
        await client.post("/api/leads", json=lead_body(phone="9847000000"), headers=clinic_a.headers)
    ).json()
    assert other["possible_duplicate_of"] is None

    found = (await client.get("/api/leads", params={"phone": "98470 12345"}, headers=clinic_a.headers)).json()
    assert {item["id"] for item in found["items"]} == {first["id"], second["id"], third["id"]}
    assert found["total"] == 3
    none = (await client.get("/api/leads", params={"phone": "1111111111"}, headers=clinic_a.headers)).json()
    assert none["total"] == 0

    # The lookup is an index scan on (clinic_id, phone_bidx), also with many leads.
    dba.execute(
        """
        INSERT INTO clinic.leads (clinic_id, name, phone, phone_bidx)
        SELECT %s, 'Filler ' || i, 'v1:k1:' || repeat('A', 40), 'k1:filler' || i FROM generate_series(1, 3000) AS i
        """,
        (clinic_a.id,),
    )
    dba.execute("ANALYZE clinic.leads")
    plan = "\n".join(
        r[0]
        for r in dba.execute(
            "EXPLAIN SELECT * FROM clinic.leads WHERE clinic_id = %s AND phone_bidx = ANY (%s)",
            (clinic_a.id, ["k1:x", "k2:y"]),
        )
    )
    assert "leads_clinic_id_phone_bidx_idx" in plan, plan


async def test_lead_isolation_between_clinics(client, clinic_a, clinic_b, dba):
    b_lead = (
        await client.post("/api/leads", json=lead_body(name="Beta Lead"), headers=clinic_b.headers)
    ).json()
    assert_problem(await client.get(f"/api/leads/{b_lead['id']}", headers=clinic_a.headers), 404)
    assert_problem(
        await client.patch(f"/api/leads/{b_lead['id']}", json={"status": "lost"}, headers=clinic_a.headers),
        404,
    )
    assert_problem(
        await client.post(
            f"/api/leads/{b_lead['id']}/convert", json={"mobile": "9847012345"}, headers=clinic_a.headers
        ),
        404,
    )
    assert (await client.get("/api/leads", headers=clinic_a.headers)).json()["total"] == 0
    assert (await client.get("/api/leads", params={"q": "Beta"}, headers=clinic_a.headers)).json()[
        "total"
    ] == 0
    # Referencing B's staff from A's request body: 422, nothing written.
    problem = assert_problem(
        await client.post(
            "/api/leads", json=lead_body(assigned_to_id=clinic_b.admin_id), headers=clinic_a.headers
        ),
        422,
    )
    assert problem["code"] == "23503"
    a_lead = (await client.post("/api/leads", json=lead_body(), headers=clinic_a.headers)).json()
    assert_problem(
        await client.patch(
            f"/api/leads/{a_lead['id']}", json={"assigned_to_id": clinic_b.admin_id}, headers=clinic_a.headers
        ),
        422,
    )
    assert dba.execute("SELECT status FROM clinic.leads WHERE id = %s", (b_lead["id"],)).fetchone() == (
        "new_inquiry",
    )
    assert count(dba, "leads") == 2


async def test_status_rules(client, clinic_a):
    lead = (await client.post("/api/leads", json=lead_body(), headers=clinic_a.headers)).json()
    for status in ("cro_queue", "first_consult", "follow_up", "lost", "not_interested", "new_inquiry"):
        r = await client.patch(f"/api/leads/{lead['id']}", json={"status": status}, headers=clinic_a.headers)
        assert r.status_code == 200 and r.json()["status"] == status
    assert_problem(
        await client.patch(f"/api/leads/{lead['id']}", json={"status": "won"}, headers=clinic_a.headers), 400
    )
    problem = assert_problem(
        await client.patch(
            f"/api/leads/{lead['id']}", json={"status": "converted"}, headers=clinic_a.headers
        ),
        422,
    )
    assert problem["code"] == "22023" and "convert" in problem["hint"]
    assert_problem(
        await client.post("/api/leads", json=lead_body(status="converted"), headers=clinic_a.headers), 400
    )
    assert_problem(await client.get("/api/leads", params={"status": "won"}, headers=clinic_a.headers), 400)


async def test_lead_idempotency(client, clinic_a, dba):
    headers = {**clinic_a.headers, "Idempotency-Key": "lead-key-1"}
    first = await client.post("/api/leads", json=lead_body(), headers=headers)
    again = await client.post("/api/leads", json=lead_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.json()["phone"] == "+91 98470 12345"
    assert count(dba, "leads") == 1
    stored = dba.execute("SELECT response_body::text, request_hash FROM keel.idempotency_keys").fetchone()
    assert stored is not None
    assert not any(secret in stored[0] for secret in SECRETS)
    changed = await client.post("/api/leads", json=lead_body(problem="Something else"), headers=headers)
    assert_problem(changed, 422)
    assert count(dba, "leads") == 1


async def test_lead_bad_input_is_a_problem_and_writes_nothing(client, clinic_a, dba):
    lead = (await client.post("/api/leads", json=lead_body(), headers=clinic_a.headers)).json()
    bad_bodies = [
        {},
        {"name": "No Phone"},
        {"phone": "9847012345"},
        {"name": "", "phone": "9847012345"},
        {"name": "X", "phone": ""},
        {"name": "X", "phone": "not a phone"},
        {"name": "X", "phone": 9847012345},
        {"name": "X", "phone": "9847012345", "age": -1},
        {"name": "X", "phone": "9847012345", "age": "thirty"},
        {"name": "X", "phone": "9847012345", "gender": "M"},
        {"name": "X", "phone": "9847012345", "status": "won"},
        {"name": "X", "phone": "9847012345", "assigned_to_id": "123"},
        {"name": "X", "phone": "9847012345", "problem": ""},
        {"name": "X", "phone": "9847012345", "referral_required": "maybe"},
        {"name": "X", "phone": "9847012345", "date_added": "yesterday"},
        {"name": "X", "phone": "9847012345", "phone_bidx": "k1:forged"},
        {"name": "X", "phone": "9847012345", "clinic_id": str(uuid.uuid4())},
    ]
    for body in bad_bodies:
        assert_problem(await client.post("/api/leads", json=body, headers=clinic_a.headers), (400, 422))
    assert_problem(await client.post("/api/leads", json=[lead_body()], headers=clinic_a.headers), (400, 422))
    for body in (
        {"name": None},
        {"phone": None},
        {"phone": "x"},
        {"status": None},
        {"key_ids": []},
        {"age": 200},
    ):
        assert_problem(
            await client.patch(f"/api/leads/{lead['id']}", json=body, headers=clinic_a.headers), (400, 422)
        )
    assert_problem(await client.get("/api/leads/not-a-uuid", headers=clinic_a.headers), (400, 404))
    assert_problem(await client.get(f"/api/leads/{uuid.uuid4()}", headers=clinic_a.headers), 404)
    assert_problem(await client.get("/api/leads", params={"phone": "12"}, headers=clinic_a.headers), 400)
    assert_problem(
        await client.get("/api/leads", params={"assigned_to_id": "x"}, headers=clinic_a.headers), 400
    )
    assert count(dba, "leads") == 1
    assert (await client.get(f"/api/leads/{lead['id']}", headers=clinic_a.headers)).json()[
        "name"
    ] == "Meera Nair"

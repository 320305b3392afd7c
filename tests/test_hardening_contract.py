# ruff: noqa: F811 - fixtures are imported from tests.clinic_support
"""Issue 13, finding 12: contract gaps a newcomer hits — conversion defaults the patient fields the lead
holds, cancelling needs no body, and the lead import honours Idempotency-Key."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import psycopg

from tests.clinic_support import (  # noqa: F401
    assert_problem,
    clinic_a,
    count,
    lead_body,
    settings_overrides,
)

Dba = psycopg.Connection[Any]


async def test_hardening_convert_defaults_the_leads_fields(client: Any, clinic_a, dba: Dba) -> None:
    lead = (
        await client.post(
            "/api/leads",
            json=lead_body(name="Anil Kumar", phone="+91 98470-12345", gender="male"),
            headers=clinic_a.headers,
        )
    ).json()
    r = await client.post(f"/api/leads/{lead['id']}/convert", json={}, headers=clinic_a.headers)
    assert r.status_code == 201, r.text
    patient = r.json()
    assert (patient["name"], patient["mobile"], patient["gender"], patient["lead_id"]) == (
        "Anil Kumar",
        "+919847012345",
        "male",
        lead["id"],
    )
    # What is sent still wins over the lead's values.
    other = (await client.post("/api/leads", json=lead_body(name="Devi"), headers=clinic_a.headers)).json()
    r = await client.post(
        f"/api/leads/{other['id']}/convert",
        json={"mobile": "9847000999", "name": "Devi R"},
        headers=clinic_a.headers,
    )
    assert r.status_code == 201 and (r.json()["mobile"], r.json()["name"]) == ("9847000999", "Devi R")

    # A lead phone that cannot be a mobile (17 digits): a clear 422 naming the field, nothing echoed,
    # nothing changed.
    odd = (
        await client.post(
            "/api/leads", json=lead_body(phone="1234 5678 9012 3456 7"), headers=clinic_a.headers
        )
    ).json()
    body = assert_problem(
        await client.post(f"/api/leads/{odd['id']}/convert", json={}, headers=clinic_a.headers), 422
    )
    assert body["field"] == "mobile" and "12345678901234567" not in body["detail"]
    assert dba.execute("SELECT status FROM clinic.leads WHERE id = %s", (odd["id"],)).fetchone() == (
        "new_inquiry",
    )
    assert count(dba, "patients") == 2
    # A missing (or another clinic's) lead: 404, as before.
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(await client.post(f"/api/leads/{missing}/convert", json={}, headers=clinic_a.headers), 404)


async def test_hardening_cancel_without_a_body(client: Any, clinic_a, dba: Dba) -> None:
    doctor = dba.execute(
        "INSERT INTO clinic.staff (clinic_id, name, email, role) VALUES (%s, 'Dr A', 'a@alpha.example', 'doctor')"
        " RETURNING id",
        (clinic_a.id,),
    ).fetchone()[0]
    patient = (
        await client.post(
            "/api/patients", json={"name": "P", "mobile": "9847000001"}, headers=clinic_a.headers
        )
    ).json()
    day = (date.today() + timedelta(days=3)).isoformat()
    ids = []
    for start, end in (("09:00", "09:30"), ("10:00", "10:30"), ("11:00", "11:30")):
        booked = await client.post(
            "/api/appointments",
            json={
                "patient_id": patient["id"],
                "doctor_id": str(doctor),
                "appointment_date": day,
                "start_time": start,
                "end_time": end,
            },
            headers=clinic_a.headers,
        )
        assert booked.status_code == 201, booked.text
        ids.append(booked.json()["id"])

    no_body = await client.post(f"/api/appointments/{ids[0]}/cancel", headers=clinic_a.headers)
    assert no_body.status_code == 200, no_body.text
    assert no_body.json()["status"] == "cancelled" and no_body.json()["cancel_reason"] is None
    empty = await client.post(f"/api/appointments/{ids[1]}/cancel", json={}, headers=clinic_a.headers)
    assert empty.status_code == 200 and empty.json()["cancel_reason"] is None
    with_reason = await client.post(
        f"/api/appointments/{ids[2]}/cancel", json={"reason": " Doctor away "}, headers=clinic_a.headers
    )
    assert with_reason.status_code == 200 and with_reason.json()["cancel_reason"] == "Doctor away"
    # Bad bodies are still refused, and a second cancel explains itself.
    assert_problem(
        await client.post(f"/api/appointments/{ids[0]}/cancel", json={"why": "x"}, headers=clinic_a.headers),
        400,
    )
    assert_problem(await client.post(f"/api/appointments/{ids[0]}/cancel", headers=clinic_a.headers), 409)


async def test_hardening_lead_import_honours_idempotency_key(client: Any, clinic_a, dba: Dba) -> None:
    rows = [lead_body(name=f"Imported {i}", phone=f"98473{i:05d}") for i in range(200)]
    headers = {**clinic_a.headers, "Idempotency-Key": "import-2026-03-01"}
    first = await client.post("/api/leads/import", json=rows, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["imported"] == 200 and "idempotent-replayed" not in first.headers
    again = await client.post("/api/leads/import", json=rows, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert count(dba, "leads") == 200
    # The stored answer carries counts and row positions, no lead data.
    stored = dba.execute("SELECT response_body::text FROM keel.idempotency_keys").fetchall()
    assert len(stored) == 1 and "Imported" not in stored[0][0] and "98473" not in stored[0][0]

    # The same key with another upload is refused; nothing is inserted.
    body = assert_problem(await client.post("/api/leads/import", json=rows[:10], headers=headers), 422)
    assert body["code"] == "idempotency_key_reused"
    # CSV with a key: a retry replays too.
    csv = "name,phone\nCsv One,9847400001\nCsv Two,9847400002\n"
    csv_headers = {**clinic_a.headers, "Idempotency-Key": "csv-1", "Content-Type": "text/csv"}
    assert (await client.post("/api/leads/import", content=csv, headers=csv_headers)).status_code == 201
    replay = await client.post("/api/leads/import", content=csv, headers=csv_headers)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert count(dba, "leads") == 202

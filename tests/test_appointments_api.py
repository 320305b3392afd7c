"""/api/appointments over real HTTP: booking, double-booking races, lifecycle, cancel, tenancy, idempotency."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.appointments_support import ClinicSetup, add_doctor, add_patient, book_raw, make_clinic

DAY = "2026-06-15"


@pytest.fixture
def setup(dba: psycopg.Connection[Any]) -> ClinicSetup:
    return make_clinic(dba)


@pytest.fixture
def headers(setup: ClinicSetup, bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(setup.admin_id, clinic_id=setup.clinic_id, role="front_desk")


def booking(setup: ClinicSetup, start: str = "10:00", end: str = "10:30", **extra: Any) -> dict[str, Any]:
    return {
        "patient_id": str(setup.patient_id),
        "doctor_id": str(setup.doctor_id),
        "appointment_date": DAY,
        "start_time": start,
        "end_time": end,
        **extra,
    }


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


async def test_book_returns_201_with_snapshots_and_reads_back(client, setup, headers):
    r = await client.post(
        "/api/appointments", json=booking(setup, visit_reason="knee pain", type="follow_up"), headers=headers
    )
    assert r.status_code == 201, r.text
    a = r.json()
    assert r.headers["location"] == f"/api/appointments/{a['id']}"
    assert a["clinic_id"] == str(setup.clinic_id)
    assert a["status"] == "scheduled" and a["type"] == "follow_up" and a["visit_reason"] == "knee pain"
    assert a["appointment_date"] == DAY and a["start_time"] == "10:00:00" and a["end_time"] == "10:30:00"
    assert a["patient_name_snapshot"] == "Asha Kulkarni"
    assert a["patient_phone_snapshot"] == "+919800000001"
    assert a["patient_age_snapshot"] == 36
    assert a["patient_sex_snapshot"] == "female"
    assert a["doctor_name_snapshot"] == "Dr. Meera Rao"
    assert "slot" not in a
    got = await client.get(f"/api/appointments/{a['id']}", headers=headers)
    assert got.status_code == 200 and got.json() == a


async def test_hundred_concurrent_bookings_of_one_slot_give_one_201_and_99_409(client, setup, headers):
    async def attempt(i: int) -> httpx.Response:
        # All slots share 10:00-10:01; starts differ so the bodies differ.
        return await client.post(
            "/api/appointments", json=booking(setup, f"09:{i % 60:02d}", "10:01"), headers=headers
        )

    responses = await asyncio.gather(*(attempt(i) for i in range(100)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: 99}, statuses
    winner = next(r.json() for r in responses if r.status_code == 201)
    for r in responses:
        if r.status_code == 409:
            body = problem(r, 409)
            assert body["code"] == "23P01"
            assert body["constraint"] == "appointments_no_overlap"
            assert winner["id"] in body["db_detail"]
    page = (await client.get("/api/appointments", params={"date": DAY}, headers=headers)).json()
    assert page["total"] == 1


async def test_overlap_409_names_the_conflicting_slot(client, setup, headers):
    first = (await client.post("/api/appointments", json=booking(setup), headers=headers)).json()
    body = problem(
        await client.post("/api/appointments", json=booking(setup, "10:15", "10:45"), headers=headers), 409
    )
    assert body["code"] == "23P01"
    assert body["detail"] == f"Dr. Meera Rao is already booked on {DAY} from 10:00 to 10:30"
    assert body["db_detail"] == f"Conflicting appointment {first['id']} ({DAY} 10:00-10:30)."
    assert "back-to-back" in body["hint"]
    # Back-to-back on both sides is fine.
    assert (
        await client.post("/api/appointments", json=booking(setup, "09:30", "10:00"), headers=headers)
    ).status_code == 201
    assert (
        await client.post("/api/appointments", json=booking(setup, "10:30", "11:00"), headers=headers)
    ).status_code == 201


async def test_bad_input_is_a_4xx_problem_and_writes_nothing(client, dba, setup, headers):
    other = make_clinic(dba, "Elsewhere", "Europe/Berlin")
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        (booking(setup, "25:00", "26:00"), 400, None),
        (booking(setup, "10:00", "10:00"), 422, "23514"),
        (booking(setup, "11:00", "10:00"), 422, "23514"),
        (booking(setup, "10:00:00", "10:30:00", appointment_date="2026-02-30"), 400, None),
        (booking(setup, unknown_field=1), 400, None),
        (booking(setup, type="Not Snake"), 400, None),
        ({k: v for k, v in booking(setup).items() if k != "doctor_id"}, 400, None),
        (booking(setup, patient_id="not-a-uuid"), 400, None),
        (booking(setup, visit_reason=""), 400, None),
        (booking(setup, patient_id=str(other.patient_id)), 422, "23503"),
        (booking(setup, doctor_id=str(other.doctor_id)), 422, "23503"),
        (booking(setup, patient_id="00000000-0000-4000-8000-000000000000"), 422, "23503"),
        (booking(setup, doctor_id=str(setup.admin_id)), 422, "22023"),
        (booking(setup, lead_id="00000000-0000-4000-8000-000000000000"), 422, "23503"),
        (booking(setup, visit_reason="nul \u0000 inside"), 422, None),
        (booking(setup, appointment_date="0026-06-15"), 422, "23514"),
    ]
    for body, status, code in cases:
        r = await client.post("/api/appointments", json=body, headers=headers)
        p = problem(r, status)
        if code:
            assert p["code"] == code, (body, p)
    assert dba.execute("SELECT count(*) FROM clinic.appointments").fetchone() == (0,)
    # No token, or a token without a clinic.
    assert (await client.post("/api/appointments", json=booking(setup))).status_code == 401
    assert (
        await client.get("/api/appointments", headers={"Authorization": "Bearer nope"})
    ).status_code == 401


async def test_lifecycle_over_http(client, setup, headers):
    async def book(start: str, end: str) -> str:
        r = await client.post("/api/appointments", json=booking(setup, start, end), headers=headers)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    a = await book("09:00", "09:30")
    r = await client.patch(f"/api/appointments/{a}", json={"status": "checked_in"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "checked_in" and r.json()["checked_in_at"]
    r = await client.patch(f"/api/appointments/{a}", json={"status": "completed"}, headers=headers)
    assert r.status_code == 200 and r.json()["completed_at"]
    for refused in ("scheduled", "checked_in", "cancelled", "no_show"):
        body = problem(
            await client.patch(f"/api/appointments/{a}", json={"status": refused}, headers=headers), 409
        )
        assert body["code"] == "55000" and f"from completed to {refused}" in body["detail"]
    problem(await client.post(f"/api/appointments/{a}/cancel", json={"reason": "late"}, headers=headers), 409)
    body = problem(
        await client.patch(f"/api/appointments/{a}", json={"start_time": "08:00"}, headers=headers), 409
    )
    assert "cannot be rescheduled" in body["detail"]

    b = await book("10:00", "10:30")
    r = await client.patch(f"/api/appointments/{b}", json={"status": "no_show"}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "no_show"
    problem(await client.patch(f"/api/appointments/{b}", json={"status": "checked_in"}, headers=headers), 409)

    c = await book("11:00", "11:30")
    problem(await client.patch(f"/api/appointments/{c}", json={"status": "completed"}, headers=headers), 409)
    problem(await client.patch(f"/api/appointments/{c}", json={"status": "done"}, headers=headers), 400)
    r = await client.patch(f"/api/appointments/{c}", json={"status": "checked_in"}, headers=headers)
    assert r.status_code == 200
    r = await client.post(
        f"/api/appointments/{c}/cancel", json={"reason": "Patient felt unwell"}, headers=headers
    )
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled" and r.json()["cancel_reason"] == "Patient felt unwell"
    assert r.json()["cancelled_at"]


async def test_cancel_frees_the_slot(client, setup, headers):
    first = (await client.post("/api/appointments", json=booking(setup), headers=headers)).json()
    problem(await client.post("/api/appointments", json=booking(setup), headers=headers), 409)
    problem(
        await client.post(f"/api/appointments/{first['id']}/cancel", json={"reason": 7}, headers=headers), 400
    )
    problem(
        await client.post(f"/api/appointments/{first['id']}/cancel", json={"reason": " "}, headers=headers),
        400,
    )
    r = await client.post(
        f"/api/appointments/{first['id']}/cancel", json={"reason": "Doctor on leave"}, headers=headers
    )
    assert r.status_code == 200, r.text
    second = await client.post("/api/appointments", json=booking(setup), headers=headers)
    assert second.status_code == 201
    body = problem(
        await client.post(
            f"/api/appointments/{first['id']}/cancel", json={"reason": "again"}, headers=headers
        ),
        409,
    )
    assert "already cancelled" in body["detail"]
    missing = "00000000-0000-4000-8000-000000000000"
    problem(
        await client.post(f"/api/appointments/{missing}/cancel", json={"reason": "x"}, headers=headers), 404
    )


async def test_patch_reschedules_and_reassigns(client, dba, setup, headers):
    a = (
        await client.post("/api/appointments", json=booking(setup, "10:00", "10:30"), headers=headers)
    ).json()
    b = (
        await client.post("/api/appointments", json=booking(setup, "11:00", "11:30"), headers=headers)
    ).json()
    body = problem(
        await client.patch(
            f"/api/appointments/{b['id']}", json={"start_time": "10:15", "end_time": "10:45"}, headers=headers
        ),
        409,
    )
    assert body["code"] == "23P01" and a["id"] in body["db_detail"]
    # Moving within its own slot does not conflict with itself.
    r = await client.patch(
        f"/api/appointments/{b['id']}", json={"start_time": "11:15", "end_time": "11:45"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["start_time"] == "11:15:00"
    problem(
        await client.patch(f"/api/appointments/{b['id']}", json={"end_time": "11:00"}, headers=headers), 422
    )
    other_doctor = add_doctor(dba, setup.clinic_id, "Dr. Iqbal Khan")
    other_patient = add_patient(dba, setup.clinic_id, "Ravi Menon", dob=date(2000, 1, 1))
    r = await client.patch(
        f"/api/appointments/{b['id']}",
        json={
            "doctor_id": str(other_doctor),
            "patient_id": str(other_patient),
            "start_time": "10:00",
            "end_time": "10:30",
            "visit_reason": None,
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (
        moved["doctor_name_snapshot"] == "Dr. Iqbal Khan" and moved["patient_name_snapshot"] == "Ravi Menon"
    )
    assert moved["patient_age_snapshot"] == 26
    problem(await client.patch(f"/api/appointments/{b['id']}", json={"bogus": 1}, headers=headers), 400)
    problem(
        await client.patch(f"/api/appointments/{b['id']}", json={"patient_id": None}, headers=headers), 400
    )


async def test_list_filters_and_pages(client, dba, setup, headers):
    second_doctor = add_doctor(dba, setup.clinic_id, "Dr. Two")
    second_patient = add_patient(dba, setup.clinic_id, "Ravi Menon")
    book_raw(dba, setup, date(2026, 6, 15), "09:00", "09:30")
    book_raw(dba, setup, date(2026, 6, 15), "09:30", "10:00", patient_id=second_patient)
    book_raw(dba, setup, date(2026, 6, 15), "09:00", "09:30", doctor_id=second_doctor)
    cancelled = book_raw(dba, setup, date(2026, 6, 16), "09:00", "09:30")
    dba.execute("UPDATE clinic.appointments SET status = 'cancelled' WHERE id = %s", (cancelled,))
    book_raw(dba, setup, date(2026, 6, 17), "09:00", "09:30")

    async def page(**params: Any) -> dict[str, Any]:
        r = await client.get("/api/appointments", params=params, headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    everything = await page()
    assert everything["total"] == 5 and everything["limit"] == 50 and everything["offset"] == 0
    keys = [(a["appointment_date"], a["start_time"]) for a in everything["items"]]
    assert keys == sorted(keys)
    assert (await page(date="2026-06-15"))["total"] == 3
    assert (await page(doctor_id=str(second_doctor)))["total"] == 1
    assert (await page(status="cancelled"))["items"][0]["id"] == str(cancelled)
    assert (await page(patient_id=str(second_patient)))["total"] == 1
    assert (await page(date="2026-06-15", doctor_id=str(setup.doctor_id)))["total"] == 2
    assert (await page(**{"from": "2026-06-16", "to": "2026-06-17"}))["total"] == 2
    second = await page(limit=2, offset=2)
    assert second["total"] == 5 and [a["id"] for a in second["items"]] == [
        a["id"] for a in everything["items"][2:4]
    ]
    assert (await page(offset=10))["items"] == []
    for bad in ({"status": "done"}, {"date": "15/06/2026"}, {"doctor_id": "x"}, {"limit": 0}, {"limit": 501}):
        problem(await client.get("/api/appointments", params=bad, headers=headers), 400)


def test_each_list_filter_is_index_backed(dba, setup):
    """The list query for each filter is answered from an index leading with clinic_id."""
    doctors = [setup.doctor_id, *(add_doctor(dba, setup.clinic_id, f"Dr. {i}") for i in range(9))]
    patients = [setup.patient_id, *(add_patient(dba, setup.clinic_id, f"Patient {i}") for i in range(19))]
    # 6,000 appointments over 200 days, 10 doctors, 20 patients, 3 slots a day each.
    dba.execute(
        "INSERT INTO clinic.appointments (patient_id, doctor_id, appointment_date, start_time, end_time, status)"
        " SELECT (%(patients)s::uuid[])[1 + (d * 3 + s + doc) %% 20], (%(doctors)s::uuid[])[1 + doc],"
        "        date '2026-01-01' + d, time '09:00' + s * interval '1 hour', time '09:30' + s * interval '1 hour',"
        "        CASE WHEN d < 180 THEN 'completed' ELSE 'scheduled' END"
        " FROM generate_series(0, 199) AS d, generate_series(0, 2) AS s, generate_series(0, 9) AS doc",
        {"patients": patients, "doctors": doctors},
    )
    dba.execute("ANALYZE clinic.appointments")
    expected = {
        "appointment_date": ("appointments_clinic_id_date_idx", date(2026, 6, 15)),
        "doctor_id": ("appointments_clinic_id_doctor_id_date_idx", setup.doctor_id),
        "patient_id": ("appointments_clinic_id_patient_id_date_idx", setup.patient_id),
        "status": ("appointments_clinic_id_status_date_idx", "scheduled"),
    }
    for column, (index, value) in expected.items():
        query = sql.SQL(
            "EXPLAIN SELECT id FROM clinic.appointments WHERE clinic_id = %s AND {} = %s"
            " ORDER BY appointment_date, start_time, id LIMIT 50"
        ).format(sql.Identifier(column))
        plan = "\n".join(row[0] for row in dba.execute(query, (setup.clinic_id, value)))
        assert index in plan and "Seq Scan" not in plan, plan


async def test_other_clinics_appointments_are_invisible(client, dba, setup, headers, bearer):
    other = make_clinic(dba, "Elsewhere")
    theirs = book_raw(dba, other, date(2026, 6, 15), "10:00", "10:30")
    mine = book_raw(dba, setup, date(2026, 6, 15), "10:00", "10:30")
    page = (await client.get("/api/appointments", headers=headers)).json()
    assert [a["id"] for a in page["items"]] == [str(mine)] and page["total"] == 1
    problem(await client.get(f"/api/appointments/{theirs}", headers=headers), 404)
    problem(
        await client.patch(f"/api/appointments/{theirs}", json={"status": "checked_in"}, headers=headers), 404
    )
    problem(
        await client.post(f"/api/appointments/{theirs}/cancel", json={"reason": "x"}, headers=headers), 404
    )
    assert dba.execute("SELECT status FROM clinic.appointments WHERE id = %s", (theirs,)).fetchone() == (
        "scheduled",
    )
    # Moving my appointment onto their doctor or patient is a reference to something missing.
    problem(
        await client.patch(
            f"/api/appointments/{mine}", json={"doctor_id": str(other.doctor_id)}, headers=headers
        ),
        422,
    )
    no_clinic = bearer("someone")
    problem(await client.get("/api/appointments", headers=no_clinic), 403)
    problem(await client.post("/api/appointments", json=booking(setup), headers=no_clinic), 403)


async def test_idempotency_key_replays_the_first_answer(client, dba, setup, headers):
    keyed = {**headers, "Idempotency-Key": "book-asha-0615-1000"}
    first = await client.post("/api/appointments", json=booking(setup), headers=keyed)
    again = await client.post("/api/appointments", json=booking(setup), headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert dba.execute("SELECT count(*) FROM clinic.appointments").fetchone() == (1,)
    assert dba.execute("SELECT count(*) FROM keel.outbox WHERE topic = 'appointment.booked'").fetchone() == (
        1,
    )
    problem(await client.post("/api/appointments", json=booking(setup, "12:00", "12:30"), headers=keyed), 422)
    # Concurrent retries with one key: one booking, every answer the same.
    racing = {**headers, "Idempotency-Key": "book-asha-0615-1400"}
    responses = await asyncio.gather(
        *(
            client.post("/api/appointments", json=booking(setup, "14:00", "14:30"), headers=racing)
            for _ in range(10)
        )
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert dba.execute("SELECT count(*) FROM clinic.appointments").fetchone() == (2,)

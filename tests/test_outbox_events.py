"""Outbox events are written by triggers in the changing transaction, and wake dispatchers by NOTIFY."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
import pytest

from tests.appointments_support import ClinicSetup, book_raw, make_clinic

KEYS = "k1:" + "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
DAY = "2026-06-15"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS}


@pytest.fixture
def setup(dba: psycopg.Connection[Any]) -> ClinicSetup:
    return make_clinic(dba, timezone="Asia/Kolkata")


@pytest.fixture
def headers(setup: ClinicSetup, bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(setup.admin_id, clinic_id=setup.clinic_id, role="admin")


def events(dba: psycopg.Connection[Any], topic: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    rows = dba.execute(
        "SELECT topic, payload FROM keel.outbox WHERE %(topic)s::text IS NULL OR topic = %(topic)s"
        " ORDER BY created_at, id",
        {"topic": topic},
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


async def test_booking_cancel_and_reschedule_each_append_one_event(client, dba, setup, headers):
    r = await client.post(
        "/api/appointments",
        json={
            "patient_id": str(setup.patient_id),
            "doctor_id": str(setup.doctor_id),
            "appointment_date": DAY,
            "start_time": "10:00",
            "end_time": "10:30",
            "visit_reason": "recurring migraine",
        },
        headers=headers,
    )
    assert r.status_code == 201
    appointment = r.json()
    [(topic, payload)] = events(dba)
    assert topic == "appointment.booked"
    assert payload == {
        "appointment_id": appointment["id"],
        "clinic_id": str(setup.clinic_id),
        "patient_id": str(setup.patient_id),
        "doctor_id": str(setup.doctor_id),
        "lead_id": None,
        "status": "scheduled",
        "type": "consultation",
        "appointment_date": DAY,
        "start_time": "10:00:00",
        "end_time": "10:30:00",
        "timezone": "Asia/Kolkata",
        "starts_at": "2026-06-15T04:30:00+00:00",
        "ends_at": "2026-06-15T05:00:00+00:00",
        "doctor_name": "Dr. Meera Rao",
        "clinic_name": "Sunrise",
    }
    assert "migraine" not in str(payload) and "Asha" not in str(payload) and "9800000001" not in str(payload)

    # A lifecycle step that is not a booking or cancellation announces nothing.
    await client.patch(f"/api/appointments/{appointment['id']}", json={"visit_reason": "x"}, headers=headers)
    assert len(events(dba)) == 1

    r = await client.patch(
        f"/api/appointments/{appointment['id']}",
        json={"start_time": "11:00", "end_time": "11:30"},
        headers=headers,
    )
    assert r.status_code == 200
    [(_, moved)] = events(dba, "appointment.rescheduled")
    assert moved["start_time"] == "11:00:00" and moved["previous"]["start_time"] == "10:00:00"
    assert moved["previous"]["starts_at"] == "2026-06-15T04:30:00+00:00"

    r = await client.post(
        f"/api/appointments/{appointment['id']}/cancel", json={"reason": "diagnosis changed"}, headers=headers
    )
    assert r.status_code == 200
    [(_, cancelled)] = events(dba, "appointment.cancelled")
    assert cancelled["appointment_id"] == appointment["id"] and cancelled["status"] == "cancelled"
    assert "diagnosis" not in str(cancelled)
    assert [topic for topic, _ in events(dba)] == [
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.cancelled",
    ]


async def test_refused_booking_appends_nothing(client, dba, setup, headers):
    book_raw(dba, setup, date(2026, 6, 15), "10:00", "10:30")
    body = {
        "patient_id": str(setup.patient_id),
        "doctor_id": str(setup.doctor_id),
        "appointment_date": DAY,
        "start_time": "10:15",
        "end_time": "10:45",
    }
    assert (await client.post("/api/appointments", json=body, headers=headers)).status_code == 409
    assert len(events(dba, "appointment.booked")) == 1


def test_rolled_back_booking_leaves_no_event(db_url, setup):
    with psycopg.connect(db_url) as conn:
        with conn.transaction(force_rollback=True):
            conn.execute(
                "INSERT INTO clinic.appointments (patient_id, doctor_id, appointment_date, start_time, end_time)"
                " VALUES (%s, %s, '2026-06-15', '10:00', '10:30')",
                (setup.patient_id, setup.doctor_id),
            )
            # Written in the same transaction as the booking...
            assert conn.execute("SELECT count(*) FROM keel.outbox").fetchone() == (1,)
        # ...so the rollback takes it with it.
        assert conn.execute("SELECT count(*) FROM clinic.appointments").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM keel.outbox").fetchone() == (0,)


def test_historical_rows_do_not_announce_bookings(dba, setup):
    book_raw(dba, setup, date(2025, 1, 1), "10:00", "10:30", status="completed")
    book_raw(dba, setup, date(2025, 1, 2), "10:00", "10:30", status="cancelled")
    assert events(dba) == []


async def test_lead_created_event_carries_no_protected_field(client, dba, setup, headers):
    r = await client.post(
        "/api/leads",
        json={
            "name": "Kiran Shah",
            "phone": "+91 98765 43210",
            "problem": "chronic back pain",
            "source": "website",
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    lead = r.json()
    [(topic, payload)] = events(dba, "lead.created")
    assert topic == "lead.created"
    assert payload["lead_id"] == lead["id"] and payload["clinic_id"] == str(setup.clinic_id)
    assert payload["status"] == "new_inquiry" and payload["source"] == "website"
    text = str(payload)
    assert "back pain" not in text and "98765" not in text and "v2:" not in text and "Kiran" not in text


async def test_bulk_lead_import_appends_one_event_per_lead_and_one_notification(
    client, db_url, dba, setup, headers
):
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN keel_outbox")
        rows = [{"name": f"Lead {i}", "phone": f"+9198000{i:05d}"} for i in range(200)]
        r = await client.post("/api/leads/import", json=rows, headers=headers)
        assert r.status_code in (200, 201), r.text
        assert len(events(dba, "lead.created")) == 200
        notifications = list(listener.notifies(timeout=1.0))
    assert len(notifications) == 1
    event_id = uuid.UUID(notifications[0].payload)  # ids only
    assert dba.execute("SELECT topic FROM keel.outbox WHERE id = %s", (event_id,)).fetchone() == (
        "lead.created",
    )


def test_every_committed_insert_notifies_with_an_event_id(db_url, dba, setup):
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN keel_outbox")
        with psycopg.connect(db_url) as conn:
            with conn.transaction(force_rollback=True):
                book_raw(conn, setup, date(2026, 6, 15), "08:00", "08:30")
            assert list(listener.notifies(timeout=0.5)) == []  # rolled back: no wake-up
            book_raw(conn, setup, date(2026, 6, 15), "09:00", "09:30")
            conn.commit()
        [note] = list(listener.notifies(timeout=1.0))
    assert note.channel == "keel_outbox"
    assert dba.execute(
        "SELECT topic FROM keel.outbox WHERE id = %s", (uuid.UUID(note.payload),)
    ).fetchone() == ("appointment.booked",)


def test_api_role_cannot_touch_the_outbox_directly(dba, setup):
    book_raw(dba, setup, date(2026, 6, 15), "08:00", "08:30")
    for statement in ("DELETE FROM keel.outbox", "INSERT INTO keel.outbox (topic, payload) VALUES ('a.b', '{}')"):
        dba.execute("BEGIN")
        try:
            dba.execute("SET LOCAL ROLE keel_api")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                dba.execute(statement)
        finally:
            dba.execute("ROLLBACK")
    # Reading is only for the console's operations page, under RLS: a clinic admin's own events only
    # (sql/keel/400_console_operations.sql); without such claims keel_api sees nothing.
    for claims in ("", f'{{"clinic_id": "{setup.clinic_id}", "role": "doctor"}}'):
        dba.execute("BEGIN")
        try:
            dba.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
            dba.execute("SET LOCAL ROLE keel_api")
            assert dba.execute("SELECT count(*) FROM keel.outbox").fetchone() == (0,)
        finally:
            dba.execute("ROLLBACK")


def test_no_notify_while_a_dispatcher_is_awake_and_going_to_sleep_waits_for_those_writers(db_url, setup):
    """The doorbell (sql/keel/200_outbox.sql): writers skip NOTIFY, which serialises commits, while a
    dispatcher announces it is polling; withdrawing the announcement waits for the writers that saw it."""
    with (
        psycopg.connect(db_url, autocommit=True) as listener,
        psycopg.connect(db_url, autocommit=True) as awake,
        psycopg.connect(db_url) as writer,
    ):
        listener.execute("LISTEN keel_outbox")
        awake.execute("SET ROLE keel_worker")
        assert awake.execute("SELECT keel.outbox_awake()").fetchone() == (True,)
        # A second dispatcher cannot take the announcement over.
        with psycopg.connect(db_url, autocommit=True) as other:
            assert other.execute("SELECT keel.outbox_awake()").fetchone() == (False,)

        book_raw(writer, setup, date(2026, 6, 15), "08:00", "08:30")
        writer.commit()
        assert list(listener.notifies(timeout=0.5)) == []  # skipped: the dispatcher polls

        book_raw(writer, setup, date(2026, 6, 15), "09:00", "09:30")  # saw it awake; still open
        assert awake.execute("SELECT keel.outbox_asleep(interval '0.3 s')").fetchone() == (False,)
        writer.commit()
        assert list(listener.notifies(timeout=0.5)) == []
        # Asleep now: nothing left to wait for, and the next writer rings.
        assert awake.execute("SELECT keel.outbox_asleep(interval '5 s')").fetchone() == (True,)
        book_raw(writer, setup, date(2026, 6, 15), "10:00", "10:30")
        writer.commit()
        [note] = list(listener.notifies(timeout=1.0))
    assert note.channel == "keel_outbox"


def test_a_dispatcher_session_that_ends_withdraws_its_announcement(db_url, setup):
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN keel_outbox")
        with psycopg.connect(db_url, autocommit=True) as awake:
            assert awake.execute("SELECT keel.outbox_awake()").fetchone() == (True,)
        with psycopg.connect(db_url) as writer:
            book_raw(writer, setup, date(2026, 6, 15), "08:00", "08:30")
            writer.commit()
        assert len(list(listener.notifies(timeout=1.0))) == 1

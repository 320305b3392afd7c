"""Appointment rules in PostgreSQL, seen from the DBA's psql: snapshots, overlap, lifecycle, tenancy."""

from __future__ import annotations

import json
import threading
from datetime import date
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.database import explained_plans
from tests.factories import Clinic, add_appointment, add_patient, add_staff, create_clinic

DAY = date(2026, 6, 15)
STATUSES = ("scheduled", "checked_in", "completed", "cancelled", "no_show")
ALLOWED = {
    ("scheduled", "checked_in"),
    ("checked_in", "completed"),
    ("scheduled", "no_show"),
    ("scheduled", "cancelled"),
    ("checked_in", "cancelled"),
}


def appointment(dba: psycopg.Connection[Any], appointment_id: Any) -> dict[str, Any]:
    cur = dba.execute("SELECT * FROM clinic.appointments WHERE id = %s", (appointment_id,))
    assert cur.description is not None
    names = [c.name for c in cur.description]
    row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def test_raw_insert_fills_clinic_and_every_snapshot(dba, clinic_setup):
    appointment_id = add_appointment(dba, clinic_setup, DAY, "10:00", "10:30")
    a = appointment(dba, appointment_id)
    assert a["clinic_id"] == clinic_setup.id
    assert a["status"] == "scheduled" and a["type"] == "consultation"
    assert a["patient_name_snapshot"] == "Asha Kulkarni"
    assert a["patient_phone_snapshot"] == "+919800000001"
    assert a["patient_email_snapshot"] == "asha@example.org"
    assert a["patient_dob_snapshot"] == date(1990, 6, 15)
    assert a["patient_sex_snapshot"] == "female"
    assert a["patient_address_snapshot"] == "12 MG Road, Pune, MH, 411001"
    assert a["doctor_name_snapshot"] == "Dr. Meera Rao"
    # Age at the appointment date: the birthday is that very day.
    assert a["patient_age_snapshot"] == 36
    a2 = appointment(dba, add_appointment(dba, clinic_setup, date(2026, 6, 14), "10:00", "10:30"))
    assert a2["patient_age_snapshot"] == 35


def test_snapshot_is_frozen_when_patient_or_doctor_change_later(dba, clinic_setup):
    appointment_id = add_appointment(dba, clinic_setup, DAY, "10:00", "10:30")
    before = appointment(dba, appointment_id)
    dba.execute(
        "UPDATE clinic.patients SET name = 'Asha Deshmukh', mobile = '+919811111111', email = 'new@example.org',"
        " dob = '1985-01-01', gender = 'other', address = 'elsewhere' WHERE id = %s",
        (clinic_setup.patient_id,),
    )
    dba.execute(
        "UPDATE clinic.staff SET name = 'Dr. Meera Rao-Iyer' WHERE id = %s", (clinic_setup.doctor_id,)
    )
    # Unrelated edits of the appointment itself do not refresh them either.
    dba.execute("UPDATE clinic.appointments SET visit_reason = 'knee pain' WHERE id = %s", (appointment_id,))
    after = appointment(dba, appointment_id)
    snapshot_columns = [name for name in before if name.endswith("_snapshot")]
    assert len(snapshot_columns) == 8
    assert {k: after[k] for k in snapshot_columns} == {k: before[k] for k in snapshot_columns}


def test_changing_patient_or_doctor_or_date_refreshes_what_depends_on_it(dba, clinic_setup):
    appointment_id = add_appointment(dba, clinic_setup, DAY, "10:00", "10:30")
    other_patient = add_patient(
        dba, clinic_setup.id, "Ravi Menon", dob=date(2000, 1, 1), mobile="+919822222222"
    )
    other_doctor = add_staff(dba, clinic_setup.id, "Dr. Iqbal Khan")
    dba.execute(
        "UPDATE clinic.appointments SET patient_id = %s, doctor_id = %s WHERE id = %s",
        (other_patient, other_doctor, appointment_id),
    )
    a = appointment(dba, appointment_id)
    assert a["patient_name_snapshot"] == "Ravi Menon" and a["patient_phone_snapshot"] == "+919822222222"
    assert a["doctor_name_snapshot"] == "Dr. Iqbal Khan"
    assert a["patient_age_snapshot"] == 26
    dba.execute(
        "UPDATE clinic.appointments SET appointment_date = '2035-06-15' WHERE id = %s", (appointment_id,)
    )
    assert appointment(dba, appointment_id)["patient_age_snapshot"] == 35


def test_unknown_or_foreign_patient_and_doctor_are_refused_clearly(dba, clinic_setup):
    other = create_clinic(dba, "Elsewhere", "Europe/Berlin", doctors=1, patients=1)
    cases = [
        (other.patient_id, clinic_setup.doctor_id, errors.ForeignKeyViolation, "patient"),
        (clinic_setup.patient_id, other.doctor_id, errors.ForeignKeyViolation, "doctor"),
        (
            "00000000-0000-4000-8000-000000000000",
            clinic_setup.doctor_id,
            errors.ForeignKeyViolation,
            "patient",
        ),
        (clinic_setup.patient_id, clinic_setup.admin_id, errors.InvalidParameterValue, "is not a doctor"),
    ]
    for patient_id, doctor_id, error, words in cases:
        with pytest.raises(error) as info:
            dba.execute(
                "INSERT INTO clinic.appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time,"
                " end_time) VALUES (%s, %s, %s, %s, '10:00', '10:30')",
                (clinic_setup.id, patient_id, doctor_id, DAY),
            )
        assert words in str(info.value)
        if error is errors.ForeignKeyViolation:
            assert "is not present" in (info.value.diag.message_detail or "")
    dba.execute("UPDATE clinic.staff SET is_active = false WHERE id = %s", (clinic_setup.doctor_id,))
    with pytest.raises(errors.InvalidParameterValue, match="inactive"):
        add_appointment(dba, clinic_setup, DAY, "10:00", "10:30")
    assert dba.execute("SELECT count(*) FROM clinic.appointments").fetchone() == (0,)


def test_composite_foreign_keys_hold_even_without_the_trigger(dba, clinic_setup):
    """RLS does not apply to FK checks: the (clinic_id, id) keys are what keep tenants apart."""
    other = create_clinic(dba, "Elsewhere", "Europe/Berlin", doctors=1, patients=1)
    dba.execute("ALTER TABLE clinic.appointments DISABLE TRIGGER appointments_10_snapshots")
    try:
        for patient_id, doctor_id in (
            (other.patient_id, clinic_setup.doctor_id),
            (clinic_setup.patient_id, other.doctor_id),
        ):
            with pytest.raises(errors.ForeignKeyViolation):
                dba.execute(
                    "INSERT INTO clinic.appointments (clinic_id, patient_id, doctor_id, appointment_date,"
                    " start_time, end_time) VALUES (%s, %s, %s, %s, '10:00', '10:30')",
                    (clinic_setup.id, patient_id, doctor_id, DAY),
                )
    finally:
        dba.execute("ALTER TABLE clinic.appointments ENABLE TRIGGER appointments_10_snapshots")


def test_end_must_be_after_start(dba, clinic_setup):
    for start, end in (("10:30", "10:00"), ("10:00", "10:00")):
        with pytest.raises(errors.CheckViolation, match="appointments_time_order_check"):
            add_appointment(dba, clinic_setup, DAY, start, end)


def test_overlap_is_refused_back_to_back_and_cancelled_are_not(dba, clinic_setup):
    first = add_appointment(dba, clinic_setup, DAY, "10:00", "10:30")
    for start, end in (
        ("10:00", "10:30"),
        ("09:45", "10:01"),
        ("10:29", "11:00"),
        ("10:10", "10:20"),
        ("09:00", "12:00"),
    ):
        with pytest.raises(errors.ExclusionViolation) as info:
            add_appointment(dba, clinic_setup, DAY, start, end)
        assert info.value.diag.constraint_name == "appointments_no_overlap"
        assert info.value.sqlstate == "23P01"
    add_appointment(dba, clinic_setup, DAY, "09:30", "10:00")  # back-to-back before
    add_appointment(dba, clinic_setup, DAY, "10:30", "11:00")  # back-to-back after
    add_appointment(dba, clinic_setup, date(2026, 6, 16), "10:00", "10:30")  # another day
    add_appointment(
        dba, clinic_setup, DAY, "10:00", "10:30", doctor_id=add_staff(dba, clinic_setup.id, "Dr. Two")
    )
    # A cancelled appointment holds no slot.
    dba.execute("UPDATE clinic.appointments SET status = 'cancelled' WHERE id = %s", (first,))
    add_appointment(dba, clinic_setup, DAY, "10:00", "10:30")
    # A reschedule into a taken slot is refused too.
    late = add_appointment(dba, clinic_setup, DAY, "15:00", "15:30")
    with pytest.raises(errors.ExclusionViolation):
        dba.execute("UPDATE clinic.appointments SET start_time = '10:15' WHERE id = %s", (late,))
    # Reviving the cancelled one would double-book: refused by the lifecycle before the constraint.
    with pytest.raises(errors.ObjectNotInPrerequisiteState):
        dba.execute("UPDATE clinic.appointments SET status = 'scheduled' WHERE id = %s", (first,))


def test_parallel_raw_inserts_for_one_slot_book_exactly_one(db_url, dba, clinic_setup):
    """40 DBA sessions insert overlapping slots for one doctor at the same instant: one wins."""
    workers = 40
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        start = f"09:{30 + (i % 30):02d}"  # every slot contains 10:00-10:01
        with psycopg.connect(db_url, autocommit=True) as conn:
            barrier.wait(timeout=30)
            try:
                conn.execute(
                    "INSERT INTO clinic.appointments (patient_id, doctor_id, appointment_date, start_time, end_time)"
                    " VALUES (%s, %s, %s, %s, '10:01')",
                    (clinic_setup.patient_id, clinic_setup.doctor_id, DAY, start),
                )
                result = "booked"
            except errors.ExclusionViolation:
                result = "23P01"
            except psycopg.Error as exc:  # anything else is a failure of the rule
                result = f"unexpected {exc.sqlstate}: {exc}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["23P01"] * (workers - 1) + ["booked"]
    assert dba.execute("SELECT count(*) FROM clinic.appointments").fetchone() == (1,)


def _in_status(dba: psycopg.Connection[Any], clinic_setup: Clinic, status: str, slot: int) -> Any:
    start = f"{8 + slot // 2:02d}:{(slot % 2) * 30:02d}"
    end = f"{8 + slot // 2:02d}:{(slot % 2) * 30 + 29:02d}"
    return add_appointment(dba, clinic_setup, DAY, start, end, status=status)


def test_every_status_transition_allowed_or_refused(dba, clinic_setup):
    slot = 0
    for old in STATUSES:
        for new in STATUSES:
            if old == new:
                continue
            appointment_id = _in_status(dba, clinic_setup, old, slot)
            slot += 1
            if (old, new) in ALLOWED:
                dba.execute("UPDATE clinic.appointments SET status = %s WHERE id = %s", (new, appointment_id))
                a = appointment(dba, appointment_id)
                assert a["status"] == new
                stamp = {
                    "checked_in": "checked_in_at",
                    "completed": "completed_at",
                    "cancelled": "cancelled_at",
                }
                if new in stamp:
                    assert a[stamp[new]] is not None
            else:
                with pytest.raises(errors.ObjectNotInPrerequisiteState) as info:
                    dba.execute(
                        "UPDATE clinic.appointments SET status = %s WHERE id = %s", (new, appointment_id)
                    )
                assert f"cannot go from {old} to {new}" in str(info.value)
                assert appointment(dba, appointment_id)["status"] == old
    assert slot == 20


def test_only_scheduled_appointments_move(dba, clinic_setup):
    for i, status in enumerate(("checked_in", "completed", "cancelled", "no_show")):
        appointment_id = _in_status(dba, clinic_setup, status, i)
        with pytest.raises(errors.ObjectNotInPrerequisiteState, match="cannot be rescheduled"):
            dba.execute(
                "UPDATE clinic.appointments SET appointment_date = appointment_date + 1 WHERE id = %s",
                (appointment_id,),
            )
    scheduled = _in_status(dba, clinic_setup, "scheduled", 10)
    dba.execute(
        "UPDATE clinic.appointments SET appointment_date = appointment_date + 1 WHERE id = %s", (scheduled,)
    )
    with pytest.raises(errors.InvalidParameterValue, match="another clinic"):
        other = create_clinic(dba, "Elsewhere", doctors=1, patients=1)
        dba.execute("UPDATE clinic.appointments SET clinic_id = %s WHERE id = %s", (other.id, scheduled))


def test_api_role_sees_and_writes_only_its_clinic(dba, clinic_setup):
    other = create_clinic(dba, "Elsewhere", doctors=1, patients=1)
    mine = add_appointment(dba, clinic_setup, DAY, "10:00", "10:30")
    theirs = add_appointment(dba, other, DAY, "10:00", "10:30")
    dba.execute("BEGIN")
    try:
        dba.execute(
            "SELECT set_config('request.jwt.claims', %s, true), set_config('role', 'keel_api', true)",
            (f'{{"sub": "x", "clinic_id": "{clinic_setup.id}"}}',),
        )
        assert dba.execute("SELECT id FROM clinic.appointments").fetchall() == [(mine,)]
        assert (
            dba.execute("UPDATE clinic.appointments SET visit_reason = 'x' WHERE id = %s", (theirs,)).rowcount
            == 0
        )
        # The outbox is readable only by a clinic admin (the console's operations page, under RLS): this
        # caller has no role claim, so even its own clinic's booking events stay out of sight.
        assert dba.execute("SELECT count(*) FROM keel.outbox").fetchone() == (0,)
        with pytest.raises(errors.InsufficientPrivilege):
            dba.execute("DELETE FROM keel.outbox")
    finally:
        dba.execute("ROLLBACK")


def test_the_slot_probe_is_planned_once_not_on_every_booking(dba, clinic_setup):
    """`clinic.assert_slot_free` (every booking, every reschedule) runs on a generic plan. With a clinic's
    appointments spread over many days, a custom plan looked cheaper, so the plan cache planned the probe
    afresh on every call: ~0.2-0.8 ms, a sixth of a booking's database CPU (bench/README.md)."""
    dba.execute(
        """
        INSERT INTO clinic.appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time, end_time)
        SELECT %(clinic)s, %(patient)s, %(doctor)s, date '2030-01-01' + d, time '09:00' + make_interval(mins => 20 * s),
               time '09:15' + make_interval(mins => 20 * s)
        FROM generate_series(0, 39) AS d, generate_series(0, 9) AS s
        """,
        {"clinic": clinic_setup.id, "patient": clinic_setup.patients[0], "doctor": clinic_setup.doctor_id},
    )
    dba.execute("ANALYZE clinic.appointments")
    with explained_plans(dba) as explained:
        for minute in range(0, 40, 5):  # more calls than the plan cache's five custom plans
            dba.execute(
                "SELECT clinic.assert_slot_free(%s, %s, %s, %s, %s)",
                (clinic_setup.id, clinic_setup.doctor_id, DAY, f"07:{minute:02d}", f"07:{minute + 5:02d}"),
            )
    probes = [json.dumps(e["Plan"]) for e in explained if "FROM clinic.appointments" in e["Query Text"]]
    assert len(probes) == 8
    # A generic plan refers to the function's arguments ($1 …); a custom plan has the values written in.
    assert all("$1" in probe and str(clinic_setup.id) not in probe for probe in probes), probes[-1]

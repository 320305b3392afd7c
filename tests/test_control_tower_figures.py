"""After clinic.refresh_control_tower(), every control-tower figure equals the same aggregate computed
directly over the base tables — on randomized data across several clinics, timezones and months."""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.control_tower_support import (
    APPOINTMENT_STATUSES,
    SeededClinic,
    as_api,
    create_clinic,
    expected_daily,
    expected_doctors,
    expected_summary,
    insert_lead,
    insert_patient,
    rate,
    read_base_tables,
    refresh,
    seed_clinic,
)

SEED = int(os.environ.get("KEEL_TEST_SEED", random.randrange(1 << 30)))


@pytest.fixture
def clinics(dba: psycopg.Connection[Any]) -> list[SeededClinic]:
    rng = random.Random(SEED)
    print(f"control tower data seed: KEEL_TEST_SEED={SEED}")
    return [
        seed_clinic(dba, rng, "Alpha", "Asia/Kolkata"),
        seed_clinic(dba, rng, "Beta", "America/Los_Angeles", leads=180, appointments=220),
        seed_clinic(dba, rng, "Gamma", "Pacific/Kiritimati", leads=120, appointments=150),
    ]


def read_as_clinic(dba_url: str, clinic_id: uuid.UUID, query: str, params: tuple[Any, ...] = ()) -> Any:
    """Call a read function the way the API does: keel_api with the clinic's claims."""
    with psycopg.connect(dba_url) as conn:
        as_api(conn, clinic_id)
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return row


def todays_statuses(dba: psycopg.Connection[Any], clinic: SeededClinic, today: date) -> Counter[str]:
    rows = dba.execute(
        "SELECT status, count(*) FROM clinic.appointments WHERE clinic_id = %s AND appointment_date = %s"
        " GROUP BY status",
        (clinic.id, today),
    ).fetchall()
    return Counter({status: n for status, n in rows})


def strip_freshness(document: dict[str, Any]) -> dict[str, Any]:
    assert document["refreshed_at"] is not None
    assert isinstance(document["stale_seconds"], int) and document["stale_seconds"] >= 0
    return {k: v for k, v in document.items() if k not in ("refreshed_at", "stale_seconds")}


def test_every_figure_equals_the_base_tables_after_refresh(
    dba: psycopg.Connection[Any], db_url: str, clinics: list[SeededClinic]
) -> None:
    outcome, _duration, detail = refresh(dba)
    assert outcome == "ok", detail

    for clinic in clinics:
        base = read_base_tables(dba, clinic.id)
        # Summary and "today" in one statement, so both see the same now().
        document, today = read_as_clinic(
            db_url,
            clinic.id,
            "SELECT clinic.control_tower_summary(), (now() AT TIME ZONE %s)::date",
            (clinic.timezone,),
        )
        summary = strip_freshness(document)
        assert summary.pop("clinic_id") == str(clinic.id)
        assert summary.pop("timezone") == clinic.timezone
        assert summary == expected_summary(base, today, todays_statuses(dba, clinic, today)), clinic.timezone
        assert summary["month"]["leads"] > 0 and summary["appointments_today"]["total"] > 0

        # Daily over all the data (< 366 days) and over a sub-range; zero days included.
        for first, last in (
            (today - timedelta(days=125), today + timedelta(days=12)),
            (today - timedelta(days=40), today),
        ):
            (daily,) = read_as_clinic(
                db_url, clinic.id, "SELECT clinic.control_tower_daily(%s, %s)", (first, last)
            )
            daily = strip_freshness(daily)
            expected = expected_daily(base, first, last)
            assert daily["days"] == expected
            assert (daily["from"], daily["to"]) == (first.isoformat(), last.isoformat())
            assert daily["totals"] == {
                key: sum(row[key] for row in expected) for key in expected[0] if key != "day"
            }

            expected_load = expected_doctors(base, first, last)
            (by_day,) = read_as_clinic(
                db_url, clinic.id, "SELECT clinic.control_tower_doctors_by_day(%s, %s)", (first, last)
            )
            got = strip_freshness(by_day)["doctors"]
            for item in got:
                item.pop("specialty")
                minutes, worked = item.pop("avg_booked_minutes_per_day_worked"), item["days_worked"]
                assert minutes == (
                    rate(round(item["booked_minutes"] * 100), worked * 100, "0.01") if worked else 0
                )
            assert got == expected_load
            (totals,) = read_as_clinic(
                db_url, clinic.id, "SELECT clinic.control_tower_doctors(%s, %s)", (first, last)
            )
            assert [
                {k: v for k, v in item.items() if k not in ("specialty", "avg_booked_minutes_per_day_worked")}
                for item in strip_freshness(totals)["doctors"]
            ] == [{k: v for k, v in item.items() if k != "days"} for item in expected_load]


def test_refresh_follows_changes_and_nothing_else_moves(
    dba: psycopg.Connection[Any], db_url: str, clinics: list[SeededClinic]
) -> None:
    """Data changed after a refresh shows only after the next one; other clinics' figures stay put."""
    refresh(dba)
    alpha, beta = clinics[0], clinics[1]
    today = dba.execute("SELECT (now() AT TIME ZONE %s)::date", (alpha.timezone,)).fetchone()[0]
    query = "SELECT clinic.control_tower_daily(%s, %s)"
    before_alpha = read_as_clinic(db_url, alpha.id, query, (today, today))[0]["days"]
    before_beta = read_as_clinic(db_url, beta.id, query, (today - timedelta(days=120), today))[0]["days"]

    lead = insert_lead(dba, alpha.id, date_added=today, status="first_consult", source="google")
    insert_patient(dba, alpha.id, registration_date=today, lead_id=lead)
    dba.execute("UPDATE clinic.leads SET status = 'converted' WHERE id = %s", (lead,))
    assert read_as_clinic(db_url, alpha.id, query, (today, today))[0]["days"] == before_alpha

    refresh(dba)
    after = read_as_clinic(db_url, alpha.id, query, (today, today))[0]["days"][0]
    assert after["leads_created"] == before_alpha[0]["leads_created"] + 1
    assert after["leads_converted"] == before_alpha[0]["leads_converted"] + 1
    assert after["patients_registered"] == before_alpha[0]["patients_registered"] + 1
    assert after["patients_from_leads"] == before_alpha[0]["patients_from_leads"] + 1
    assert (
        read_as_clinic(db_url, beta.id, query, (today - timedelta(days=120), today))[0]["days"] == before_beta
    )


def test_a_new_clinic_reads_zeros(
    dba: psycopg.Connection[Any], db_url: str, clinics: list[SeededClinic]
) -> None:
    refresh(dba)
    empty = create_clinic(dba, "Empty")  # created after the refresh: no rows in any view
    (summary,) = read_as_clinic(db_url, empty.id, "SELECT clinic.control_tower_summary()")
    assert set(summary["kpis"].values()) == {0}
    assert set(summary["month"].values()) == {0}
    assert [stage["count"] for stage in summary["funnel"]] == [0, 0, 0, 0]
    assert [s["count"] for s in summary["lead_status_counts"]] == [0] * 7
    assert summary["leads_by_source"] == []
    assert summary["appointments_today"]["total"] == 0
    assert [s["status"] for s in summary["appointments_today"]["by_status"]] == list(APPOINTMENT_STATUSES)

    (daily,) = read_as_clinic(db_url, empty.id, "SELECT clinic.control_tower_daily()")
    assert len(daily["days"]) == 30  # default: the 30 days up to today
    assert all(value == 0 for row in daily["days"] for key, value in row.items() if key != "day")
    (doctors,) = read_as_clinic(db_url, empty.id, "SELECT clinic.control_tower_doctors()")
    assert doctors["doctors"] == []
    (queue,) = read_as_clinic(db_url, empty.id, "SELECT clinic.control_tower_intervention_queue()")
    assert (queue["items"], queue["total"]) == ([], 0)


def test_reads_are_isolated_per_clinic(
    dba: psycopg.Connection[Any], db_url: str, clinics: list[SeededClinic]
) -> None:
    refresh(dba)
    alpha, beta = clinics[0], clinics[1]
    with psycopg.connect(db_url) as conn:
        as_api(conn, alpha.id)
        # The views themselves are out of the API role's reach (no row-level security on them).
        for view in (
            "control_tower_leads_daily",
            "control_tower_lead_status",
            "control_tower_appointments_daily",
            "control_tower_doctor_load_daily",
            "control_tower_patients_daily",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(sql.SQL("SELECT * FROM clinic.{}").format(sql.Identifier(view)))
        # Asking for another clinic by argument is refused.
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SELECT clinic.control_tower_summary(%s)", (beta.id,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CALL clinic.refresh_control_tower()")
    # Without a clinic claim the API role gets nothing, even naming a clinic.
    with psycopg.connect(db_url) as conn:
        conn.execute("SELECT set_config('role', 'keel_api', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT clinic.control_tower_daily(clinic_id => %s)", (alpha.id,))

    first, last = date.today() - timedelta(days=130), date.today() + timedelta(days=12)
    for clinic in (alpha, beta):
        (doctors,) = read_as_clinic(
            db_url, clinic.id, "SELECT clinic.control_tower_doctors(%s, %s)", (first, last)
        )
        assert {d["doctor_id"] for d in doctors["doctors"]} == {str(d) for d in clinic.doctors}
        (summary,) = read_as_clinic(db_url, clinic.id, "SELECT clinic.control_tower_summary()")
        total = dba.execute(
            "SELECT count(*) FROM clinic.leads WHERE clinic_id = %s", (clinic.id,)
        ).fetchone()[0]
        assert sum(s["count"] for s in summary["lead_status_counts"]) == total


def test_dba_reads_any_clinic_by_argument(dba: psycopg.Connection[Any], clinics: list[SeededClinic]) -> None:
    refresh(dba)
    beta = clinics[1]
    summary = dba.execute("SELECT clinic.control_tower_summary(%s)", (beta.id,)).fetchone()[0]
    assert summary["clinic_id"] == str(beta.id)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute("SELECT clinic.control_tower_summary()")  # no claim, no argument
    with pytest.raises(psycopg.errors.NoDataFound):
        dba.execute("SELECT clinic.control_tower_summary(%s)", (uuid.uuid4(),))


def test_date_range_rules_in_sql(dba: psycopg.Connection[Any], clinics: list[SeededClinic]) -> None:
    clinic = clinics[0].id
    day = date(2025, 3, 1)
    one = dba.execute("SELECT clinic.control_tower_daily(%s, %s, %s)", (day, day, clinic)).fetchone()[0]
    assert [row["day"] for row in one["days"]] == ["2025-03-01"]
    year = dba.execute(
        "SELECT clinic.control_tower_daily(%s, %s, %s)", (date(2024, 1, 1), date(2024, 12, 31), clinic)
    ).fetchone()[0]
    assert len(year["days"]) == 366  # a leap year: the longest range allowed
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="366"):
        dba.execute(
            "SELECT clinic.control_tower_daily(%s, %s, %s)", (date(2024, 1, 1), date(2025, 1, 1), clinic)
        )
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="after"):
        dba.execute("SELECT clinic.control_tower_doctors(%s, %s, %s)", (day, day - timedelta(days=1), clinic))
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute(
            "SELECT clinic.control_tower_intervention_queue(min_days => -1, clinic_id => %s)", (clinic,)
        )

"""Shared pieces of the tests/test_control_tower_*.py modules: clinics filled with randomized leads,
patients and appointments the way a DBA would in psql, and the same figures recomputed in Python straight
from the base tables, to hold the materialized views against."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import psycopg

# A well-formed AES-GCM envelope (the CHECK constraints want one); its content is irrelevant here.
CIPHERTEXT = "v1:k1:" + "A" * 43
LEAD_STATUSES = (
    "new_inquiry",
    "cro_queue",
    "first_consult",
    "follow_up",
    "converted",
    "lost",
    "not_interested",
)
APPOINTMENT_STATUSES = ("scheduled", "checked_in", "completed", "cancelled", "no_show")
SOURCES = ("google", "facebook", "referral", "walk_in", None)
# The refresh procedure's advisory lock (sql/clinic/300_control_tower_refresh.sql).
REFRESH_LOCK = (1801807212, 300)


@dataclass
class SeededClinic:
    id: uuid.UUID
    admin_id: uuid.UUID
    timezone: str
    doctors: list[uuid.UUID] = field(default_factory=list)


def create_clinic(dba: psycopg.Connection[Any], name: str, tz: str = "Asia/Kolkata") -> SeededClinic:
    prefix = "T" + uuid.uuid4().hex[:6].upper()
    row = dba.execute(
        "SELECT clinic_id, admin_id FROM clinic.create_clinic(%s, %s, %s, %s, %s)",
        (name, tz, prefix, f"{name} Admin", f"admin-{prefix.lower()}@clinic.example"),
    ).fetchone()
    assert row is not None
    return SeededClinic(row[0], row[1], tz)


def add_staff(dba: psycopg.Connection[Any], clinic_id: uuid.UUID, name: str, role: str) -> uuid.UUID:
    row = dba.execute(
        "INSERT INTO clinic.staff (clinic_id, name, email, role, specialty) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id",
        (
            clinic_id,
            name,
            f"{uuid.uuid4().hex[:12]}@clinic.example",
            role,
            "general" if role == "doctor" else None,
        ),
    ).fetchone()
    assert row is not None
    return row[0]


def insert_lead(
    dba: psycopg.Connection[Any],
    clinic_id: uuid.UUID,
    *,
    date_added: date,
    status: str = "new_inquiry",
    source: str | None = None,
    updated_at: datetime | None = None,
    assigned_to_id: uuid.UUID | None = None,
    name: str = "Lead",
) -> uuid.UUID:
    lead_id = uuid.uuid4()
    with dba.transaction():
        if status == "converted":
            # Only conversion makes a lead converted (clinic.check_lead_conversion); these figures
            # need converted leads whose patient comes later in the test or was since deleted, so
            # the row is written as a restore writes it, with triggers off.
            dba.execute("SET LOCAL session_replication_role = replica")
        dba.execute(
            "INSERT INTO clinic.leads (id, clinic_id, date_added, name, phone, status, source, assigned_to_id,"
            " created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), coalesce(%s, now()))",
            (
                lead_id,
                clinic_id,
                date_added,
                name,
                CIPHERTEXT,
                status,
                source,
                assigned_to_id,
                updated_at,
                updated_at,
            ),
        )
    return lead_id


def insert_patient(
    dba: psycopg.Connection[Any],
    clinic_id: uuid.UUID,
    *,
    registration_date: date,
    lead_id: uuid.UUID | None = None,
    name: str = "Patient",
) -> uuid.UUID:
    row = dba.execute(
        "INSERT INTO clinic.patients (clinic_id, name, mobile, lead_id, registration_date)"
        " VALUES (%s, %s, '+919800000001', %s, %s) RETURNING id",
        (clinic_id, name, lead_id, registration_date),
    ).fetchone()
    assert row is not None
    return row[0]


def local_today(dba: psycopg.Connection[Any], tz: str) -> date:
    row = dba.execute("SELECT (now() AT TIME ZONE %s)::date", (tz,)).fetchone()
    assert row is not None
    return row[0]


def seed_clinic(
    dba: psycopg.Connection[Any],
    rng: random.Random,
    name: str,
    tz: str,
    *,
    leads: int = 250,
    walk_ins: int = 30,
    appointments: int = 300,
    days_back: int = 120,
) -> SeededClinic:
    """A clinic with doctors, leads over ~4 months in every status, conversions, walk-in patients and
    appointments in every status (some today, some ahead, one doctor deactivated after booking)."""
    clinic = create_clinic(dba, name, tz)
    today = local_today(dba, tz)
    now = datetime.now(UTC)
    cro = add_staff(dba, clinic.id, f"{name} CRO", "cro")
    clinic.doctors = [add_staff(dba, clinic.id, f"{name} Dr {n}", "doctor") for n in range(4)]

    lead_rows: list[tuple[Any, ...]] = []
    converted: list[tuple[uuid.UUID, date]] = []
    for n in range(leads):
        status = rng.choices(LEAD_STATUSES, weights=(3, 3, 2, 2, 3, 2, 1))[0]
        added = today - timedelta(days=rng.randint(0, days_back))
        lead_id = uuid.uuid4()
        updated = now - timedelta(hours=rng.uniform(0, 24 * 15))
        lead_rows.append(
            (
                lead_id,
                clinic.id,
                added,
                f"Lead {n}",
                CIPHERTEXT,
                # Converted once its patient exists (clinic.check_lead_conversion), below.
                "follow_up" if status == "converted" else status,
                rng.choice(SOURCES),
                cro if rng.random() < 0.5 else None,
                updated,
                updated,
            )
        )
        if status == "converted":
            converted.append((lead_id, added))
    with dba.cursor() as cur:
        cur.executemany(
            "INSERT INTO clinic.leads (id, clinic_id, date_added, name, phone, status, source, assigned_to_id,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            lead_rows,
        )
        # Most conversions register the patient some days after the lead came in; a few leads are
        # converted but their patient was since deleted (lead_id set null) — still converted leads.
        patient_rows, unlinked = [], []
        for n, (lead_id, added) in enumerate(converted):
            if rng.random() < 0.9:
                patient_rows.append(
                    (clinic.id, f"Converted {n}", lead_id, added + timedelta(days=rng.randint(0, 30)))
                )
            else:
                patient_rows.append((clinic.id, f"Deleted {n}", lead_id, added))
                unlinked.append(lead_id)
        patient_rows += [
            (clinic.id, f"Walk-in {n}", None, today - timedelta(days=rng.randint(0, days_back)))
            for n in range(walk_ins)
        ]
        cur.executemany(
            "INSERT INTO clinic.patients (clinic_id, name, mobile, lead_id, registration_date)"
            " VALUES (%s, %s, '+919800000001', %s, %s)",
            patient_rows,
        )
    with dba.transaction():
        # The status change is bookkeeping of the seed, not activity: updated_at stays as seeded.
        dba.execute("SELECT set_config('keel.keep_updated_at', 'on', true)")
        dba.execute(
            "UPDATE clinic.leads SET status = 'converted' WHERE id = ANY(%s)", ([c[0] for c in converted],)
        )
        dba.execute("DELETE FROM clinic.patients WHERE lead_id = ANY(%s)", (unlinked,))
    patients = [
        row[0] for row in dba.execute("SELECT id FROM clinic.patients WHERE clinic_id = %s", (clinic.id,))
    ]

    # Appointments: non-overlapping slots per doctor and day (08:00 + 20 min steps, 10-20 min long).
    next_slot: Counter[tuple[uuid.UUID, date]] = Counter()
    appointment_rows: list[tuple[Any, ...]] = []
    for n in range(appointments):
        doctor = rng.choice(clinic.doctors)
        day = today if n % 15 == 0 else today + timedelta(days=rng.randint(-days_back, 10))
        slot = next_slot[(doctor, day)]
        next_slot[(doctor, day)] += 1
        start = datetime.combine(day, time(8, 0)) + timedelta(minutes=20 * slot)
        length = rng.choice((10, 15, 20))
        status = rng.choices(APPOINTMENT_STATUSES, weights=(4, 1, 4, 2, 1))[0]
        appointment_rows.append(
            (
                clinic.id,
                rng.choice(patients),
                doctor,
                day,
                start.time(),
                (start + timedelta(minutes=length)).time(),
                status,
            )
        )
    with dba.cursor() as cur:
        cur.executemany(
            "INSERT INTO clinic.appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time,"
            " end_time, status) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            appointment_rows,
        )
    # A doctor who left: still in the figures of the days they worked.
    dba.execute("UPDATE clinic.staff SET is_active = false WHERE id = %s", (clinic.doctors[-1],))
    return clinic


def refresh(dba: psycopg.Connection[Any]) -> tuple[str, Any, str]:
    row = dba.execute("CALL clinic.refresh_control_tower()").fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def as_api(conn: psycopg.Connection[Any], clinic_id: uuid.UUID) -> None:
    """Make `conn` (in a transaction) act as an API request of `clinic_id`, as api/db.py does."""
    conn.execute(
        "SELECT set_config('request.jwt.claims', %s, true), set_config('role', 'keel_api', true)",
        (f'{{"clinic_id": "{clinic_id}", "sub": "test", "role": "admin"}}',),
    )


def rate(numerator: int, denominator: int, places: str = "0.0001") -> float:
    """PostgreSQL's round(numerator::numeric / denominator, n) (half away from zero); 0 when undefined."""
    if denominator == 0:
        return 0
    return float(
        (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(places), rounding=ROUND_HALF_UP)
    )


def minutes(start: time, end: time) -> Decimal:
    seconds = (datetime.combine(date.min, end) - datetime.combine(date.min, start)).total_seconds()
    return Decimal(int(seconds)) / 60


@dataclass
class BaseTables:
    """One clinic's rows, read straight from the base tables."""

    leads: list[tuple[date, str | None, str]]  # date_added, source, status
    patients: list[tuple[date, date | None]]  # registration_date, lead's date_added (None: no lead)
    appointments: list[tuple[date, uuid.UUID, str, Decimal]]  # day, doctor, status, minutes
    staff: dict[uuid.UUID, tuple[str, str, bool]]  # id → name, role, is_active


def read_base_tables(dba: psycopg.Connection[Any], clinic_id: uuid.UUID) -> BaseTables:
    leads = dba.execute(
        "SELECT date_added, source, status FROM clinic.leads WHERE clinic_id = %s", (clinic_id,)
    ).fetchall()
    patients = dba.execute(
        "SELECT p.registration_date, l.date_added FROM clinic.patients AS p"
        " LEFT JOIN clinic.leads AS l ON l.id = p.lead_id WHERE p.clinic_id = %s",
        (clinic_id,),
    ).fetchall()
    appointments = dba.execute(
        "SELECT appointment_date, doctor_id, status, start_time, end_time FROM clinic.appointments"
        " WHERE clinic_id = %s",
        (clinic_id,),
    ).fetchall()
    staff = dba.execute(
        "SELECT id, name, role, is_active FROM clinic.staff WHERE clinic_id = %s", (clinic_id,)
    )
    return BaseTables(
        leads=[(r[0], r[1], r[2]) for r in leads],
        patients=[(r[0], r[1]) for r in patients],
        appointments=[(r[0], r[1], r[2], minutes(r[3], r[4])) for r in appointments],
        staff={r[0]: (r[1], r[2], r[3]) for r in staff},
    )


def expected_daily(base: BaseTables, first: date, last: date) -> list[dict[str, Any]]:
    rows: dict[date, Counter[str]] = {
        first + timedelta(days=n): Counter() for n in range((last - first).days + 1)
    }
    for day, _source, status in base.leads:
        if day in rows:
            rows[day]["leads_created"] += 1
            if status == "converted":
                rows[day]["leads_converted"] += 1
            elif status == "lost":
                rows[day]["leads_lost"] += 1
            elif status == "not_interested":
                rows[day]["leads_not_interested"] += 1
    for day, _doctor, status, _minutes in base.appointments:
        if day in rows:
            rows[day]["appointments_booked"] += 1
            if status in ("completed", "cancelled", "no_show"):
                rows[day][f"appointments_{status}"] += 1
    for day, lead_day in base.patients:
        if day in rows:
            rows[day]["patients_registered"] += 1
            if lead_day is not None:
                rows[day]["patients_from_leads"] += 1
    keys = (
        "leads_created",
        "leads_converted",
        "leads_lost",
        "leads_not_interested",
        "appointments_booked",
        "appointments_completed",
        "appointments_cancelled",
        "appointments_no_show",
        "patients_registered",
        "patients_from_leads",
    )
    return [
        {"day": day.isoformat(), **{key: counts[key] for key in keys}} for day, counts in sorted(rows.items())
    ]


def expected_summary(base: BaseTables, today: date, todays_status: Counter[str]) -> dict[str, Any]:
    first = today.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    month = Counter(status for day, _source, status in base.leads if first <= day <= last)
    leads = sum(month.values())
    reached_consult = month["first_consult"] + month["follow_up"] + month["converted"]
    handled = leads - month["new_inquiry"]
    conversions = [
        (day - lead_day).days for day, lead_day in base.patients if lead_day and first <= day <= last
    ]
    by_source: dict[str | None, Counter[str]] = defaultdict(Counter)
    for day, source, status in base.leads:
        if first <= day <= last:
            key = source or None
            by_source[key]["leads"] += 1
            by_source[key]["converted"] += status == "converted"
    appointments = Counter(status for day, _d, status, _m in base.appointments if first <= day <= last)
    all_status = Counter(status for _day, _source, status in base.leads)
    return {
        "today": today.isoformat(),
        "period": {"from": first.isoformat(), "to": last.isoformat()},
        "kpis": {
            "conversion_rate": rate(month["converted"], leads),
            "cro_success_rate": rate(reached_consult, handled),
            "churn_rate": rate(month["lost"] + month["not_interested"], leads),
            "avg_days_to_convert": rate(sum(conversions), len(conversions), "0.01"),
        },
        "month": {
            "leads": leads,
            **{status: month[status] for status in LEAD_STATUSES},
            "cro_handled": handled,
            "cro_success": reached_consult,
            "patients_registered": sum(1 for day, _l in base.patients if first <= day <= last),
            "patients_from_leads": len(conversions),
            "appointments_booked": sum(appointments.values()),
            "appointments_completed": appointments["completed"],
            "appointments_cancelled": appointments["cancelled"],
            "appointments_no_show": appointments["no_show"],
        },
        "funnel": [
            {"stage": "new", "count": leads},
            {"stage": "first_consult", "count": reached_consult},
            {"stage": "follow_up", "count": month["follow_up"] + month["converted"]},
            {"stage": "converted", "count": month["converted"]},
        ],
        "lead_status_counts": [{"status": s, "count": all_status[s]} for s in LEAD_STATUSES],
        "leads_by_source": sorted(
            ({"source": s, "leads": c["leads"], "converted": c["converted"]} for s, c in by_source.items()),
            key=lambda item: (-item["leads"], item["source"] or ""),
        ),
        "appointments_today": {
            "date": today.isoformat(),
            "total": sum(todays_status.values()),
            "by_status": [{"status": s, "count": todays_status[s]} for s in APPOINTMENT_STATUSES],
        },
    }


def expected_doctors(base: BaseTables, first: date, last: date) -> list[dict[str, Any]]:
    load: dict[uuid.UUID, dict[str, Any]] = {}
    for day, doctor, status, length in base.appointments:
        if not first <= day <= last:
            continue
        entry = load.setdefault(
            doctor, {"counts": Counter(), "minutes": Decimal(0), "days": defaultdict(list)}
        )
        entry["counts"][status] += 1
        if status != "cancelled":
            entry["minutes"] += length
            entry["days"][day].append(length)
    doctors = [
        staff_id
        for staff_id, (_name, role, active) in base.staff.items()
        if (role == "doctor" and active) or staff_id in load
    ]
    out = []
    for doctor in doctors:
        name, _role, active = base.staff[doctor]
        entry = load.get(doctor, {"counts": Counter(), "minutes": Decimal(0), "days": {}})
        counts = entry["counts"]
        worked = len(entry["days"])
        out.append(
            {
                "doctor_id": str(doctor),
                "name": name,
                "is_active": active,
                "appointments": sum(counts.values()) - counts["cancelled"],
                "completed": counts["completed"],
                "no_show": counts["no_show"],
                "cancelled": counts["cancelled"],
                "booked_minutes": float(entry["minutes"].quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
                "days_worked": worked,
                "days": [
                    {
                        "day": day.isoformat(),
                        "appointments": len(lengths),
                        "booked_minutes": float(sum(lengths, Decimal(0)).quantize(Decimal("0.01"))),
                    }
                    for day, lengths in sorted(entry["days"].items())
                ],
                "_sort": (-entry["minutes"], name, str(doctor)),
            }
        )
    out.sort(key=lambda item: item["_sort"])
    for item in out:
        del item["_sort"]
    return out

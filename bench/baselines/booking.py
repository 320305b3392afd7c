"""The "before" booking at the SQL level: read patient, read doctor, insert with copied fields.

Three round trips, each its own transaction with the request's claims (as the original's three
Supabase calls were), each sent the way Keel sends its one call (`api.db.call`: context statement and
query pipelined, one round trip), `concurrency` connections at once. Runs in the load-generator process.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from api.db import API_ROLE, call
from bench.loadgen import LoadResult, per_connection

PATIENT_SQL = (
    "SELECT id, clinic_id, lead_id, name, mobile, email, dob, gender, address, city, state, postal_code"
    " FROM clinic.patients WHERE id = %(id)s"
)
DOCTOR_SQL = "SELECT id, clinic_id, name, role, is_active FROM clinic.staff WHERE id = %(id)s"
INSERT_APPOINTMENT_SQL = """
INSERT INTO clinic.appointments (
    clinic_id, patient_id, lead_id, doctor_id, appointment_date, start_time, end_time, type, visit_reason, source,
    patient_name_snapshot, patient_phone_snapshot, patient_email_snapshot, patient_dob_snapshot,
    patient_sex_snapshot, patient_age_snapshot, patient_address_snapshot, doctor_name_snapshot)
VALUES (
    %(clinic_id)s, %(patient_id)s, %(lead_id)s, %(doctor_id)s, %(appointment_date)s, %(start_time)s, %(end_time)s,
    %(type)s, %(visit_reason)s, %(source)s, %(name)s, %(mobile)s, %(email)s, %(dob)s, %(gender)s, %(age)s,
    %(address)s, %(doctor_name)s)
RETURNING *
"""


def age_at(dob: dt.date | None, on: dt.date) -> int | None:
    """Whole years from `dob` to `on` (None when unknown)."""
    if dob is None or dob > on:
        return None
    return on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))


async def _book(conn: Any, context: dict[str, str], item: dict[str, Any]) -> None:
    patient = await call(conn, context, PATIENT_SQL, {"id": item["patient_id"]})
    doctor = await call(conn, context, DOCTOR_SQL, {"id": item["doctor_id"]})
    if patient is None or doctor is None:
        raise RuntimeError("patient or doctor not found")
    day = dt.date.fromisoformat(item["appointment_date"])
    address = ", ".join(
        part
        for part in (patient["address"], patient["city"], patient["state"], patient["postal_code"])
        if part
    )
    await call(conn, context, INSERT_APPOINTMENT_SQL, {
        "clinic_id": patient["clinic_id"], "patient_id": patient["id"], "lead_id": patient["lead_id"],
        "doctor_id": doctor["id"], "appointment_date": day, "start_time": item["start_time"],
        "end_time": item["end_time"], "type": "consultation", "visit_reason": None, "source": None,
        "name": patient["name"], "mobile": patient["mobile"], "email": patient["email"], "dob": patient["dob"],
        "gender": patient["gender"], "age": age_at(patient["dob"], day), "address": address or None,
        "doctor_name": doctor["name"],
    })  # fmt: skip


async def _run(
    url: str, claims: dict[str, Any], items: Sequence[dict[str, Any]], concurrency: int
) -> LoadResult:
    from psycopg.rows import dict_row

    context = {"claims": json.dumps(claims), "role": API_ROLE, "timeout": "5000"}
    return await per_connection(
        url,
        items,
        concurrency,
        lambda conn, item: _book(conn, context, item),
        status=201,
        row_factory=dict_row,
    )


def three_round_trips(
    url: str, claims: dict[str, Any], items: Sequence[dict[str, Any]], concurrency: int
) -> LoadResult:
    """Book every item the "before" way; latencies and wall time."""
    return asyncio.run(_run(url, claims, items, concurrency))

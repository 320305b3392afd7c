"""The "before" request handlers of `../shared/seeds/`, served beside Keel's own routes.

Each is an honest port of what the seed notes describe, using Keel's own plumbing (the same pool,
claims, role and row-level security) so that only the *pattern* differs from Keel's way:

- booking: read the patient, read the doctor, insert with the copied fields — three round trips, each
  its own call as the original's three Supabase requests were (clinic-sync-async-analysis §2.1);
- control tower: download every lead, patient and appointment of the clinic and aggregate in Python
  (§2.2, "fetch-all-and-aggregate");
- bulk update: per element, query it then set its fields, one commit at the end
  (callmaster-sync-architecture, "Batch Processing");
- chat: the handler awaits the LLM's whole reply inline, then stores both messages (§1.1);
- lead import: parse, validate and encrypt on the event loop, then insert (§3.2).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

import msgspec
from litestar import Litestar, Request, get, patch, post
from litestar.params import FromPath
from psycopg import sql

from api.app import create_app
from api.clinic import lead_import
from api.clinic.common import keyring
from api.deps import AppSettings, CurrentPrincipal, Db
from api.errors import Problem
from api.settings import Settings
from bench.baselines.booking import DOCTOR_SQL, INSERT_APPOINTMENT_SQL, PATIENT_SQL, age_at
from bench.baselines.summary import aggregate_summary

PREFIX = "/bench/baseline"
SLOW_TIMEOUT_MS = 600_000  # the fetch-everything baselines must not be cut short by the API's 5 s

# --- booking ------------------------------------------------------------------------------------


@post(f"{PREFIX}/appointments", status_code=201, include_in_schema=False)
async def book_appointment_3rt(db: Db, principal: CurrentPrincipal, data: dict[str, Any]) -> dict[str, Any]:
    """Read patient, read doctor, insert with the copied snapshot fields: three round trips."""
    patient = await db.fetch_one(principal, PATIENT_SQL, {"id": data["patient_id"]})
    if patient is None:
        raise Problem(422, "patient not found", code="23503")
    doctor = await db.fetch_one(principal, DOCTOR_SQL, {"id": data["doctor_id"]})
    if doctor is None or doctor["role"] != "doctor" or not doctor["is_active"]:
        raise Problem(422, "doctor not found", code="23503")
    day = dt.date.fromisoformat(data["appointment_date"])
    address = ", ".join(
        part.strip()
        for part in (patient[k] for k in ("address", "city", "state", "postal_code"))
        if part and part.strip()
    )
    row = await db.fetch_one(
        principal,
        INSERT_APPOINTMENT_SQL,
        {
            "clinic_id": patient["clinic_id"],
            "patient_id": patient["id"],
            "lead_id": data.get("lead_id") or patient["lead_id"],
            "doctor_id": doctor["id"],
            "appointment_date": day,
            "start_time": data["start_time"],
            "end_time": data["end_time"],
            "type": data.get("type") or "consultation",
            "visit_reason": data.get("visit_reason"),
            "source": data.get("source"),
            "name": patient["name"],
            "mobile": patient["mobile"],
            "email": patient["email"],
            "dob": patient["dob"],
            "gender": patient["gender"],
            "age": age_at(patient["dob"], day),
            "address": address or None,
            "doctor_name": doctor["name"],
        },
    )
    assert row is not None
    row.pop("slot", None)
    return row


# --- control tower -------------------------------------------------------------------------------


@get(f"{PREFIX}/control-tower/summary", include_in_schema=False)
async def control_tower_fetch_all(db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    """Download every lead, patient and appointment of the clinic (RLS scopes them), aggregate here."""
    async with db.transaction(principal, timeout_ms=SLOW_TIMEOUT_MS) as conn:
        leads = await (await conn.execute("SELECT * FROM clinic.leads")).fetchall()
        patients = await (await conn.execute("SELECT * FROM clinic.patients")).fetchall()
        appointments = await (await conn.execute("SELECT * FROM clinic.appointments")).fetchall()
        today = (await (await conn.execute("SELECT current_date AS d")).fetchone() or {})["d"]
    return aggregate_summary(leads, patients, appointments, today)


# --- bulk update ---------------------------------------------------------------------------------

ELEMENT_FIELDS = (
    "description", "cue_notes", "cue_id", "sequence", "time_offset_ms", "duration_ms", "priority", "trigger_type",
    "location", "custom_color", "is_safety_critical", "safety_notes", "is_active",
)  # fmt: skip


@patch(f"{PREFIX}/scripts/{{script_id:uuid}}/elements", include_in_schema=False)
async def bulk_update_loop(
    db: Db, principal: CurrentPrincipal, script_id: FromPath[UUID], data: list[dict[str, Any]]
) -> dict[str, Any]:
    """Per element: SELECT it, then UPDATE the fields it was sent; one commit for all (the ORM loop).

    The original ran without row-level security (one application login, owner filters in the ORM), so
    after resolving the caller this runs as the owner role: a baseline spared RLS is the stronger one.
    """
    updated = 0
    async with db.transaction(principal, timeout_ms=SLOW_TIMEOUT_MS) as conn:
        me = await (await conn.execute("SELECT callmaster.acting_user_id() AS id")).fetchone()
        await conn.execute("SET LOCAL ROLE keel_owner")
        for item in data:
            cur = await conn.execute(
                "SELECT * FROM callmaster.script_elements WHERE id = %(id)s AND script_id = %(script)s",
                {"id": item["id"], "script": script_id},
            )
            element = await cur.fetchone()
            if element is None:
                raise Problem(422, f"element {item['id']} is not in the script", code="23503")
            fields = [name for name in ELEMENT_FIELDS if name in item]
            if not fields:
                continue
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in fields
            )
            query = sql.SQL(
                "UPDATE callmaster.script_elements SET {}, version = version + 1, updated_by = %(me)s WHERE id = %(id)s"
            ).format(assignments)
            params = {
                **{name: item[name] for name in fields},
                "id": element["id"],
                "me": me["id"] if me else None,
            }
            await conn.execute(query, params)
            updated += 1
    return {"updated": updated}


# --- chat ----------------------------------------------------------------------------------------


class ChatIn(msgspec.Struct, forbid_unknown_fields=True):
    message: str


@post(f"{PREFIX}/chat", status_code=200, include_in_schema=False)
async def chat_inline(
    request: Request[Any, Any, Any], db: Db, principal: CurrentPrincipal, settings: AppSettings, data: ChatIn
) -> dict[str, Any]:
    """Await the LLM's whole (streamed) reply inside the request, then store the exchange."""
    client = request.app.state.get("bench_openai")
    if client is None:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url, timeout=120)
        request.app.state["bench_openai"] = client
    stream = await client.chat.completions.create(
        model=settings.assistant_model,
        messages=[
            {"role": "system", "content": "You are the clinic's internal assistant."},
            {"role": "user", "content": data.message},
        ],
        stream=True,
    )
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    reply = "".join(parts)
    async with db.transaction(principal) as conn:
        conv = await (
            await conn.execute(
                "INSERT INTO assistant.conversations (clinic_id, staff_id, title)"
                " VALUES (keel.current_clinic_id(), %(sub)s, %(title)s) RETURNING id",
                {"sub": principal.claims["sub"], "title": data.message[:80]},
            )
        ).fetchone()
        assert conv is not None
        cur = await conn.execute(
            "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, content, status, model)"
            " VALUES (keel.current_clinic_id(), %(sub)s, %(conv)s, 'user', %(q)s, 'done', NULL),"
            "        (keel.current_clinic_id(), %(sub)s, %(conv)s, 'assistant', %(a)s, 'done', %(model)s)"
            " RETURNING id",
            {"sub": principal.claims["sub"], "conv": conv["id"], "q": data.message, "a": reply,
             "model": settings.assistant_model},
        )  # fmt: skip
        ids = await cur.fetchall()
    return {"conversation_id": conv["id"], "message_id": ids[-1]["id"], "status": "done", "content": reply}


# --- lead import ---------------------------------------------------------------------------------


@post(f"{PREFIX}/leads/import", status_code=201, include_in_schema=False)
async def import_leads_on_loop(
    request: Request[Any, Any, Any], db: Db, principal: CurrentPrincipal, settings: AppSettings
) -> dict[str, Any]:
    """Validate and encrypt every row right here on the event loop, then the same one-statement insert."""
    ring = keyring(settings)
    rows = lead_import.parse_json(await request.body())
    prepared = lead_import.prepare_sync(ring, str(principal.clinic_id), rows, from_csv=False)
    if prepared.rejected:
        raise Problem(422, f"{len(prepared.rejected)} rows are invalid", code="22023")
    async with db.transaction(principal, timeout_ms=SLOW_TIMEOUT_MS) as conn:
        cur = await conn.execute(
            lead_import.IMPORT_SQL, {"rows": lead_import.encode_rows(prepared.rows), "partial": False}
        )
        row = await cur.fetchone()
    result = row["import_leads"] if row else {"imported": 0}
    return {"imported": result["imported"]}


ROUTES = [book_appointment_3rt, control_tower_fetch_all, bulk_update_loop, chat_inline, import_leads_on_loop]


def create_bench_app(settings: Settings, *, run_workers: bool = False) -> Litestar:
    """Keel's app exactly as `keel serve` builds it, plus the baseline routes."""
    app = create_app(settings, run_workers=run_workers)
    for handler in ROUTES:
        app.register(handler)
    return app

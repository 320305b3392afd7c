"""Issue 13, finding 10: after a full clinic flow, no log line, error message, outbox payload or
Idempotency-Key record carries a patient's or lead's personal or medical data in clear; nor do the problem
documents and log lines of database errors whose DETAIL quotes a row (constraint violations, an unmapped
SQLSTATE)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest
from litestar import post
from litestar.params import FromPath, JSONBody

from api.app import create_app
from api.db import Database
from api.deps import Db
from api.errors import problem_from_db_error, raised_by_keel
from api.outbox import Dispatcher
from api.settings import Settings
from tests.conftest import live_server
from tests.factories import KEYS_ONE, add_script, add_show, add_user, assert_problem

Dba = psycopg.Connection[Any]

# Values distinctive enough that finding any of them anywhere means it leaked.
PII = {
    "lead_name": "Zubeida Quintero",
    "lead_phone": "9811122334",
    "alternate_phone": "4842999888",
    "problem": "Recurrent migraine aura",
    "treatment": "Occipital nerve block",
    "email": "zubeida.q@example.org",
    "address": "12 Lilac Lane",
    "walk_in": "Ravindra Okonkwo",
    "walk_in_mobile": "9822233445",
    "visit_reason": "Persistent tinnitus",
    "cancel_reason": "Feeling dizzy",
    "import_name": "Imported Xiomara",
}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


def leaks(text: str) -> list[str]:
    return [name for name, value in PII.items() if value.lower() in text.lower()]


async def test_hardening_no_pii_in_logs_outbox_or_idempotency_records(
    client: Any, clinic_a, dba: Dba, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = clinic_a.headers
    doctor = (
        await client.post(
            "/api/staff",
            json={"name": "Dr Ilse Brandt", "email": "ilse@alpha.example", "role": "doctor"},
            headers=h,
        )
    ).json()
    lead_in = {
        "name": PII["lead_name"],
        "phone": "+91 98111 22334",
        "alternate_phone": PII["alternate_phone"],
        "problem": PII["problem"],
        "treatment_suggested": PII["treatment"],
        "source": "website",
    }
    lead = await client.post("/api/leads", json=lead_in, headers={**h, "Idempotency-Key": "lead-1"})
    assert lead.status_code == 201, lead.text
    lead_id = lead.json()["id"]
    # A retry replays the answer in full, from a record that holds none of it.
    replayed = await client.post("/api/leads", json=lead_in, headers={**h, "Idempotency-Key": "lead-1"})
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json() == lead.json() and replayed.json()["problem"] == PII["problem"]
    assert (
        await client.get("/api/leads", params={"phone": PII["lead_phone"], "q": "Zubeida"}, headers=h)
    ).json()["total"] == 1
    patched = await client.patch(f"/api/leads/{lead_id}", json={"status": "first_consult"}, headers=h)
    assert patched.status_code == 200

    convert_body = {"mobile": PII["lead_phone"], "email": PII["email"], "address": PII["address"]}
    patient = await client.post(
        f"/api/leads/{lead_id}/convert", json=convert_body, headers={**h, "Idempotency-Key": "convert-1"}
    )
    assert patient.status_code == 201, patient.text
    again = await client.post(
        f"/api/leads/{lead_id}/convert", json=convert_body, headers={**h, "Idempotency-Key": "convert-1"}
    )
    assert again.status_code == 201 and again.json() == patient.json()
    walk_in_body = {"name": PII["walk_in"], "mobile": PII["walk_in_mobile"]}
    walk_in = await client.post(
        "/api/patients", json=walk_in_body, headers={**h, "Idempotency-Key": "walk-1"}
    )
    assert walk_in.status_code == 201
    replay = await client.post("/api/patients", json=walk_in_body, headers={**h, "Idempotency-Key": "walk-1"})
    assert replay.json() == walk_in.json()

    day = (date.today() + timedelta(days=2)).isoformat()
    booking = {
        "patient_id": patient.json()["id"],
        "doctor_id": doctor["id"],
        "appointment_date": day,
        "start_time": "09:00",
        "end_time": "09:30",
        "visit_reason": PII["visit_reason"],
    }
    booked = await client.post("/api/appointments", json=booking, headers={**h, "Idempotency-Key": "book-1"})
    assert booked.status_code == 201, booked.text
    assert booked.json()["patient_name_snapshot"] == PII["lead_name"]
    rebooked = await client.post(
        "/api/appointments", json=booking, headers={**h, "Idempotency-Key": "book-1"}
    )
    assert rebooked.json() == booked.json()
    # Failures on the way: a double booking, a bad body, a cancel, a cancel twice.
    clash = await client.post(
        "/api/appointments", json={**booking, "patient_id": walk_in.json()["id"]}, headers=h
    )
    assert_problem(clash, 409)
    assert not leaks(clash.text)
    bad = await client.post(
        "/api/patients", json={"name": PII["walk_in"], "mobile": "not a phone"}, headers=h
    )
    assert_problem(bad, (400, 422))
    cancel = {"reason": PII["cancel_reason"]}
    assert (
        await client.post(f"/api/appointments/{booked.json()['id']}/cancel", json=cancel, headers=h)
    ).status_code == 200
    twice = await client.post(f"/api/appointments/{booked.json()['id']}/cancel", json=cancel, headers=h)
    assert_problem(twice, 409)
    assert not leaks(twice.text)
    imported = await client.post(
        "/api/leads/import",
        json=[{"name": PII["import_name"], "phone": "9833344556", "problem": PII["problem"]}],
        headers={**h, "Idempotency-Key": "import-1"},
    )
    assert imported.status_code == 201, imported.text

    # The dispatcher with no receiver configured logs every event.
    quiet = replace(settings, notify_webhook_url=None, outbox_poll_interval=0.1, outbox_linger=0.1)
    assert quiet.database_url is not None
    db = Database(quiet, quiet.database_url, name="test-pii-outbox")
    await db.open()
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(quiet, db).run(stop))
    try:
        deadline = time.monotonic() + 15
        while dba.execute("SELECT count(*) FROM keel.outbox WHERE delivered_at IS NULL").fetchone()[0]:
            assert time.monotonic() < deadline, "the dispatcher did not log the events"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        await db.close()

    topics = {row[0] for row in dba.execute("SELECT topic FROM keel.outbox")}
    assert topics >= {"lead.created", "appointment.booked", "appointment.cancelled"}
    logged = [r for r in caplog.records if "not sent: no KEEL_NOTIFY_WEBHOOK_URL" in r.getMessage()]
    assert len(logged) == len(list(dba.execute("SELECT 1 FROM keel.outbox")))

    # Everything a log reader, a DBA or a webhook receiver gets to see. (Not the lines of this test's
    # own HTTP client: keel logs httpx and httpcore at WARNING only, see api.observability.configure_logging.)
    server_records = [r for r in caplog.records if r.name.split(".")[0] not in ("httpx", "httpcore")]
    assert any(r.name == "uvicorn.access" and "/api/leads?" in r.getMessage() for r in server_records)
    log_text = "\n".join(f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in server_records)
    stored = {
        "logs": log_text,
        "outbox": json.dumps(
            dba.execute("SELECT payload, last_error FROM keel.outbox").fetchall(), default=str
        ),
        "idempotency": json.dumps(
            dba.execute("SELECT response_body FROM keel.idempotency_keys").fetchall(), default=str
        ),
    }
    assert {where: leaks(text) for where, text in stored.items()} == {where: [] for where in stored}
    assert len(list(dba.execute("SELECT 1 FROM keel.idempotency_keys"))) == 5  # every keyed request


# A table whose constraints PostgreSQL reports with the failing row in the DETAIL, and a function raising a
# SQLSTATE that api.errors does not map, with a value in its DETAIL.
ROW_ERRORS_SQL = """
CREATE TABLE public.keel_test_people (
    name  text NOT NULL,
    phone text UNIQUE CONSTRAINT keel_test_people_phone_check CHECK (phone ~ '^[0-9]+$'),
    born  date
);
CREATE FUNCTION public.keel_test_unmapped(value text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'XX001', MESSAGE = 'corrupt row', DETAIL = 'the row holds ' || value;
END $$;
GRANT SELECT, INSERT ON public.keel_test_people TO keel_api;
"""
INSERT_PERSON = "INSERT INTO public.keel_test_people (name, phone, born) VALUES (%(name)s, %(phone)s, %(born)s)"
UNMAPPED = "SELECT public.keel_test_unmapped(%(value)s)"


@post("/test/people")
async def add_person(data: JSONBody[dict[str, Any]], db: Db) -> None:
    await db.execute(None, INSERT_PERSON, {"name": None, "phone": None, "born": None, **data})


@post("/test/unmapped/{value:str}")
async def unmapped(value: FromPath[str], db: Db) -> None:
    await db.execute(None, UNMAPPED, {"value": value})


async def test_hardening_no_row_values_in_database_error_problems_or_logs(
    dba: Dba, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dba.execute(ROW_ERRORS_SQL)
    dba.execute(
        "INSERT INTO public.keel_test_people (name, phone) VALUES (%s, %s)",
        (PII["walk_in"], PII["walk_in_mobile"]),
    )
    app = create_app(settings)
    for handler in (add_person, unmapped):
        app.register(handler)
    # Each request fails on a constraint; PostgreSQL's DETAIL quotes the whole row or the key.
    cases = [
        ({"phone": PII["lead_phone"], "born": "2001-02-03"}, 422, "23502", "name"),  # not null
        ({"name": PII["lead_name"], "phone": PII["address"]}, 422, "23514", "keel_test_people_phone_check"),
        ({"name": PII["lead_name"], "phone": PII["walk_in_mobile"]}, 409, "23505", "keel_test_people_phone_key"),
        ({"name": PII["lead_name"], "born": PII["visit_reason"]}, 422, "22007", None),  # bad date literal
    ]
    answers = []
    async with live_server(app) as client:
        for body, status, code, named in cases:
            response = await client.post("/test/people", json=body)
            problem = assert_problem(response, status)
            assert problem["code"] == code and "db_detail" not in problem
            if named:  # the names stay: what failed is still clear
                assert named in (problem["detail"], problem.get("constraint"), problem.get("column"))
            answers.append(response.text)
        response = await client.post(f"/test/unmapped/{PII['problem']}")
        assert_problem(response, 500)
        answers.append(response.text)

    assert dba.execute("SELECT count(*) FROM public.keel_test_people").fetchone() == (1,)
    unmapped_lines = [r for r in caplog.records if "unmapped database error XX001" in r.getMessage()]
    assert len(unmapped_lines) == 1 and "keel_test_unmapped" in unmapped_lines[0].getMessage()
    server_records = [r for r in caplog.records if r.name.split(".")[0] not in ("httpx", "httpcore")]
    formatter = logging.Formatter()  # with the traceback of any exception logged
    log_text = "\n".join(
        f"{formatter.format(r)} {json.dumps(r.__dict__, default=str)}" for r in server_records
    )
    assert {"logs": leaks(log_text), "problems": leaks("\n".join(answers))} == {"logs": [], "problems": []}


def test_hardening_an_edit_batch_passes_on_no_row_values_of_postgresql(dba: Dba) -> None:
    """apply_script_edits re-raises a failed operation's error with its index; re-raised, the error looks
    like Keel's own RAISE to the API, which sends own DETAILs (db_detail). PostgreSQL's own DETAIL quotes
    the stored row, so it must not pass; a DETAIL that Keel's SQL wrote still does."""
    script = add_script(dba, add_show(dba, add_user(dba, "user_pii")))
    element = dba.execute(
        "INSERT INTO callmaster.script_elements (script_id, element_type, description)"
        " VALUES (%s, 'cue', %s) RETURNING id::text",
        (script, PII["problem"]),
    ).fetchone()[0]
    cases = [  # (operation, what PostgreSQL or Keel found, whether Keel wrote the DETAIL)
        ({"op": "update", "id": element, "data": {"custom_color": "red"}}, "23514", False),
        ({"op": "delete", "id": "00000000-0000-4000-8000-000000000000"}, "23503", True),
    ]
    for operation, code, own_detail in cases:
        with pytest.raises(psycopg.Error) as failed:
            dba.execute(
                "SELECT callmaster.apply_script_edits(%s, %s)", (script, json.dumps([operation]))
            )
        error = failed.value
        assert error.sqlstate == code and raised_by_keel(error), (error.sqlstate, str(error))
        detail = problem_from_db_error(error).extra.get("db_detail")
        assert bool(detail) is own_detail, detail
        assert leaks(f"{error.diag.message_primary} {error.diag.message_detail}") == []

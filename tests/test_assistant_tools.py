"""Tools: the model calls read-only SQL functions that run under the asking staff member's claims."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.assistant_api import (
    StaffMember,
    add_staff_member,
    assistant_settings,
    chat,
    create_clinic_staff,
    wait_final,
)
from tests.llm_server import Behavior, LLMServer


@pytest.fixture
def settings_overrides(llm: LLMServer) -> dict[str, Any]:
    return assistant_settings(llm)


def add_patient(dba: psycopg.Connection[Any], clinic: StaffMember, name: str, mobile: str) -> tuple[str, str]:
    row = dba.execute(
        "INSERT INTO clinic.patients (clinic_id, name, mobile, gender, city) VALUES (%s, %s, %s, 'female', 'Kochi')"
        " RETURNING id, uhid",
        (clinic.clinic_id, name, mobile),
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


@pytest.fixture
def two_clinics(
    dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> tuple[StaffMember, StaffMember]:
    return create_clinic_staff(dba, bearer, "Alpha", "ALP"), create_clinic_staff(dba, bearer, "Beta", "BET")


def tool_messages(llm: LLMServer) -> list[dict[str, Any]]:
    """The tool results of the latest reply, as the LLM was sent them (its last request carries them all)."""
    last = llm.completions()[-1]["body"]["messages"]
    return [json.loads(m["content"]) for m in last if m["role"] == "tool"]


async def test_tool_call_answered_with_real_data_of_the_callers_clinic(
    client: httpx.AsyncClient,
    llm: LLMServer,
    worker: Any,
    dba: psycopg.Connection[Any],
    two_clinics: tuple[StaffMember, StaffMember],
) -> None:
    alpha, beta = two_clinics
    _, uhid = add_patient(dba, alpha, "Meera Nair", "+919847012345")
    add_patient(dba, beta, "Someone Else", "+919847099999")
    assert uhid.startswith("ALP-")

    llm.plan(Behavior(tool_call=("find_patient", {"uhid": uhid})))
    body = await chat(client, alpha, f"Who is patient {uhid}?")
    reply = await wait_final(client, alpha, body["message_id"])

    assert reply["status"] == "done", reply
    assert "Meera Nair" in reply["content"] and reply["content"].startswith("From the clinic records:")
    assert reply["tool_calls"] == [
        {"name": "find_patient", "arguments": json.dumps({"uhid": uhid}), "ok": True}
    ]
    requests = llm.completions()
    assert len(requests) == 2
    follow_up = requests[1]["body"]["messages"]
    assert (
        follow_up[-2]["role"] == "assistant"
        and follow_up[-2]["tool_calls"][0]["function"]["name"] == "find_patient"
    )
    assert (
        follow_up[-1]["role"] == "tool"
        and follow_up[-1]["tool_call_id"] == follow_up[-2]["tool_calls"][0]["id"]
    )
    result = json.loads(follow_up[-1]["content"])
    assert result["found"] is True and result["name"] == "Meera Nair" and result["uhid"] == uhid


async def test_tools_never_see_another_clinic(
    client: httpx.AsyncClient,
    llm: LLMServer,
    worker: Any,
    dba: psycopg.Connection[Any],
    two_clinics: tuple[StaffMember, StaffMember],
) -> None:
    alpha, beta = two_clinics
    _, beta_uhid = add_patient(dba, beta, "Beta Patient", "+919847011111")
    # Even asked for the other clinic's UHID (with its prefix stripped or not), the tool answers from Alpha only.
    llm.plan(
        Behavior(tool_call=("find_patient", {"uhid": beta_uhid})),
        Behavior(tool_call=("clinic_overview", {"days": 30})),
        Behavior(tool_call=("list_doctors", {})),
    )
    body = await chat(client, alpha, "Tell me about the other clinic's patient")
    reply = await wait_final(client, alpha, body["message_id"])
    assert reply["status"] == "done"
    assert "Beta Patient" not in reply["content"]
    found, overview, doctors = tool_messages(llm)
    assert found == {"found": False, "uhid": beta_uhid}
    assert overview["clinic"] == "Alpha" and overview["patients_total"] == 0
    assert overview["active_staff_by_role"] == {"admin": 1}
    assert doctors == {"doctors": []}
    assert [c["name"] for c in reply["tool_calls"]] == ["find_patient", "clinic_overview", "list_doctors"]


async def test_how_many_no_shows_this_week(
    client: httpx.AsyncClient,
    llm: LLMServer,
    worker: Any,
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    two_clinics: tuple[StaffMember, StaffMember],
) -> None:
    alpha, beta = two_clinics
    for clinic, no_shows in ((alpha, 2), (beta, 5)):
        doctor = add_staff_member(dba, bearer, clinic, f"Dr {clinic.clinic_id[:6]}", "doctor")
        patient_id, _ = add_patient(dba, clinic, "Visiting Patient", "+919800000001")
        for hour in range(9, 9 + no_shows + 1):  # one completed-to-be, the rest no-shows
            row = dba.execute(
                "INSERT INTO clinic.appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time, end_time)"
                " SELECT %s, %s, %s, (now() AT TIME ZONE c.timezone)::date, make_time(%s, 0, 0), make_time(%s, 30, 0)"
                " FROM clinic.clinics AS c WHERE c.id = %s RETURNING id",
                (clinic.clinic_id, patient_id, doctor.staff_id, hour, hour, clinic.clinic_id),
            ).fetchone()
            assert row is not None
            if hour > 9:
                dba.execute("UPDATE clinic.appointments SET status = 'no_show' WHERE id = %s", (row[0],))

    llm.plan(Behavior(tool_call=("appointment_stats", {})))
    body = await chat(client, alpha, "How many no-shows this week?")
    reply = await wait_final(client, alpha, body["message_id"])
    assert reply["status"] == "done"
    (stats,) = tool_messages(llm)
    assert stats["by_status"]["no_show"] == 2 and stats["by_status"]["scheduled"] == 1 and stats["total"] == 3
    assert stats["by_doctor"][0]["no_show"] == 2
    assert '"no_show": 2' in reply["content"]

    llm.plan(Behavior(tool_call=("appointments", {"status": "no_show"})))
    body = await chat(client, alpha, "Which ones?", conversation_id=body["conversation_id"])
    await wait_final(client, alpha, body["message_id"])
    listing = tool_messages(llm)[-1]
    assert listing["total"] == 2 and [a["start"] for a in listing["appointments"]] == ["10:00", "11:00"]
    assert all(a["patient"] == "Visiting Patient" for a in listing["appointments"])


async def test_control_tower_tool(
    client: httpx.AsyncClient, llm: LLMServer, worker: Any, two_clinics: tuple[StaffMember, StaffMember]
) -> None:
    alpha, _ = two_clinics
    llm.plan(Behavior(tool_call=("control_tower", {})))
    body = await chat(client, alpha, "How are we doing?")
    reply = await wait_final(client, alpha, body["message_id"])
    assert reply["status"] == "done"
    (summary,) = tool_messages(llm)
    assert "error" not in summary, summary
    assert "kpis" in summary and "appointments_today" in summary
    assert reply["tool_calls"][0] == {"name": "control_tower", "arguments": "{}", "ok": True}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (("find_patient", {}), "uhid is required"),
        (("appointments", {"date": "yesterday"}), "date must be a date"),
        (("appointment_stats", {"from": "2026-02-30"}), "out of range"),
        (("drop_everything", {}), "unknown tool"),
    ],
)
async def test_a_failing_tool_call_is_reported_to_the_model(
    client: httpx.AsyncClient,
    llm: LLMServer,
    worker: Any,
    two_clinics: tuple[StaffMember, StaffMember],
    call: tuple[str, dict[str, Any]],
    error: str,
) -> None:
    alpha, _ = two_clinics
    llm.plan(Behavior(tool_call=call))
    body = await chat(client, alpha, "Try a tool")
    reply = await wait_final(client, alpha, body["message_id"])
    assert reply["status"] == "done" and reply["attempts"] == 1
    (result,) = tool_messages(llm)
    assert error in result["error"]
    assert reply["tool_calls"][0]["ok"] is False


async def test_tool_rounds_are_bounded(
    client: httpx.AsyncClient, llm: LLMServer, worker: Any, two_clinics: tuple[StaffMember, StaffMember]
) -> None:
    from api.assistant.worker import MAX_TOOL_ROUNDS

    alpha, _ = two_clinics
    llm.plan(*[Behavior(tool_call=("list_doctors", {}))] * (MAX_TOOL_ROUNDS + 3))
    body = await chat(client, alpha, "Loop forever")
    reply = await wait_final(client, alpha, body["message_id"])
    requests = llm.completions()
    assert len(requests) == MAX_TOOL_ROUNDS + 1
    assert "tools" not in requests[-1]["body"]  # the last round may only answer
    assert reply["status"] == "failed" and reply["attempts"] == 1
    assert "kept calling tools" in reply["error"]

"""Chat: 202 Accepted with the reply queued, replies answered by the worker, reading and isolation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from api.settings import Settings
from tests.assistant_support import (
    StaffMember,
    add_staff,
    chat,
    create_clinic_staff,
    llm,
    read_sse,
    settings_overrides,
    staff,
    wait_final,
    worker,
)
from tests.llm_server import Behavior, LLMServer

__all__ = ["llm", "settings_overrides", "staff", "worker"]  # fixtures used here


async def test_chat_is_accepted_and_answered(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any, dba: psycopg.Connection[Any]
) -> None:
    response = await client.post(
        "/api/internal-assistant/chat", json={"message": "Hello there"}, headers=staff.headers
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert set(body) >= {"message_id", "conversation_id", "status"}
    assert response.headers["location"] == f"/api/internal-assistant/messages/{body['message_id']}"

    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done", reply
    assert reply["content"] == "You asked: Hello there Here is a streamed answer in several small pieces."
    assert reply["attempts"] == 1 and reply["error"] is None
    assert reply["model"] == "test-model"
    assert reply["started_at"] and reply["completed_at"] and reply["lease_until"] is None

    sent = llm.completions()[-1]
    assert sent["headers"]["authorization"] == "Bearer test-key"
    assert sent["body"]["model"] == "test-model" and sent["body"]["stream"] is True
    assert sent["body"]["messages"][0]["role"] == "system"
    assert "clinic" in sent["body"]["messages"][0]["content"]
    assert sent["body"]["messages"][-1] == {"role": "user", "content": "Hello there"}
    assert {t["function"]["name"] for t in sent["body"]["tools"]} >= {"find_patient", "clinic_overview"}

    # the DBA sees the job row as the contract names it
    row = dba.execute(
        "SELECT role, status, attempts, lease_until FROM assistant.messages WHERE id = %s",
        (body["message_id"],),
    ).fetchone()
    assert row == ("assistant", "done", 1, None)


async def test_conversation_keeps_context_and_lists_messages(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    first = await chat(client, staff, "My name is Asha.")
    await wait_final(client, staff, first["message_id"])
    second = await chat(client, staff, "What is my name?", conversation_id=first["conversation_id"])
    assert second["conversation_id"] == first["conversation_id"]
    await wait_final(client, staff, second["message_id"])

    history = llm.completions()[-1]["body"]["messages"][1:]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[0]["content"] == "My name is Asha."
    assert history[1]["content"].startswith("You asked: My name is Asha.")
    assert history[2]["content"] == "What is my name?"

    response = await client.get(
        f"/api/internal-assistant/conversations/{first['conversation_id']}", headers=staff.headers
    )
    assert response.status_code == 200, response.text
    conversation = response.json()
    assert conversation["title"] == "My name is Asha."
    assert conversation["total"] == 4 and conversation["limit"] == 50 and conversation["offset"] == 0
    assert [(m["role"], m["status"]) for m in conversation["items"]] == [
        ("user", "done"),
        ("assistant", "done"),
        ("user", "done"),
        ("assistant", "done"),
    ]
    page = await client.get(
        f"/api/internal-assistant/conversations/{first['conversation_id']}?limit=1&offset=3",
        headers=staff.headers,
    )
    assert [m["id"] for m in page.json()["items"]] == [second["message_id"]]


async def test_idempotency_key_replays_the_first_answer(
    client: httpx.AsyncClient, staff: StaffMember, dba: psycopg.Connection[Any]
) -> None:
    headers = {**staff.headers, "Idempotency-Key": "chat-1"}
    first = await client.post("/api/internal-assistant/chat", json={"message": "Once"}, headers=headers)
    again = await client.post("/api/internal-assistant/chat", json={"message": "Once"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert dba.execute("SELECT count(*) FROM assistant.messages").fetchone() == (2,)

    other = await client.post("/api/internal-assistant/chat", json={"message": "Different"}, headers=headers)
    assert other.status_code == 422, other.text


async def test_no_llm_configured_answers_503_naming_the_settings(
    settings: Settings, staff: StaffMember, dba: psycopg.Connection[Any]
) -> None:
    from dataclasses import replace

    from api.app import create_app
    from tests.conftest import live_server

    bare = replace(settings, openai_api_key=None, openai_base_url=None)
    async with live_server(create_app(bare)) as client:
        response = await client.post(
            "/api/internal-assistant/chat", json={"message": "Hi"}, headers=staff.headers
        )
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "KEEL_ASSISTANT_MODEL"):
            assert name in problem["detail"]
        # everything else still works
        assert (await client.get("/api/health")).status_code == 200
    assert dba.execute("SELECT count(*) FROM assistant.messages").fetchone() == (0,)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"message": ""},
        {"message": "x" * 20001},
        {"message": "hi", "extra": 1},
        {"message": 5},
        {"message": "hi", "conversation_id": "not-a-uuid"},
    ],
)
async def test_bad_bodies_are_rejected(
    client: httpx.AsyncClient, staff: StaffMember, body: dict[str, Any]
) -> None:
    response = await client.post("/api/internal-assistant/chat", json=body, headers=staff.headers)
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_blank_message_and_unknown_conversation(client: httpx.AsyncClient, staff: StaffMember) -> None:
    blank = await client.post("/api/internal-assistant/chat", json={"message": "   "}, headers=staff.headers)
    assert blank.status_code == 422, blank.text
    missing = await client.post(
        "/api/internal-assistant/chat",
        json={"message": "hi", "conversation_id": str(uuid.uuid4())},
        headers=staff.headers,
    )
    assert missing.status_code == 404, missing.text


async def test_tokens_without_staff_claims(
    client: httpx.AsyncClient, staff: StaffMember, bearer: Callable[..., dict[str, str]]
) -> None:
    assert (await client.post("/api/internal-assistant/chat", json={"message": "hi"})).status_code == 401
    no_clinic = await client.post(
        "/api/internal-assistant/chat", json={"message": "hi"}, headers=bearer(staff.staff_id)
    )
    assert no_clinic.status_code == 403, no_clinic.text
    stranger = bearer(str(uuid.uuid4()), clinic_id=staff.clinic_id, role="admin")
    not_staff = await client.post("/api/internal-assistant/chat", json={"message": "hi"}, headers=stranger)
    assert not_staff.status_code == 401, not_staff.text  # names no staff member (clinic.request_claims)


async def test_other_clinics_and_other_staff_see_404(
    client: httpx.AsyncClient,
    staff: StaffMember,
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
) -> None:
    colleague = add_staff(dba, bearer, staff, "Ravi Kumar", "front_desk")
    other_clinic = create_clinic_staff(dba, bearer, "Beta", "BET")
    # a token claiming the other clinic with our staff id
    impostor = StaffMember(
        other_clinic.clinic_id,
        staff.staff_id,
        bearer(staff.staff_id, clinic_id=other_clinic.clinic_id, role="admin"),
    )
    mine = await chat(client, staff, "Private question")
    paths = [
        f"/api/internal-assistant/messages/{mine['message_id']}",
        f"/api/internal-assistant/messages/{mine['user_message_id']}",
        f"/api/internal-assistant/messages/{mine['message_id']}/events",
        f"/api/internal-assistant/conversations/{mine['conversation_id']}",
    ]
    for who, refused in ((colleague, 404), (other_clinic, 404), (impostor, 401)):
        # The impostor's token names a staff member of another clinic: refused before anything runs.
        for path in paths:
            response = await client.get(path, headers=who.headers)
            assert response.status_code == refused, (path, response.text)
        follow_up = await client.post(
            "/api/internal-assistant/chat",
            json={"message": "let me in", "conversation_id": mine["conversation_id"]},
            headers=who.headers,
        )
        assert follow_up.status_code == refused, follow_up.text
    for path in paths[:2] + paths[3:]:
        assert (await client.get(path, headers=staff.headers)).status_code == 200
    unknown = await client.get(f"/api/internal-assistant/messages/{uuid.uuid4()}", headers=staff.headers)
    assert unknown.status_code == 404
    assert dba.execute("SELECT count(*) FROM assistant.messages").fetchone() == (2,)


async def test_worker_functions_refuse_api_callers(
    db_url: str, staff: StaffMember, settings: Settings
) -> None:
    from api.auth import Principal
    from api.db import Database

    db = Database(settings, db_url)
    await db.open()
    try:
        principal = Principal({"sub": staff.staff_id, "clinic_id": staff.clinic_id, "role": "admin"})
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await db.fetch(principal, "SELECT * FROM assistant.claim_replies('x', 10, 30, 5)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await db.fetch(principal, "UPDATE assistant.messages SET status = 'done'")
    finally:
        await db.close()


async def test_sse_of_a_finished_reply(client: httpx.AsyncClient, staff: StaffMember, worker: Any) -> None:
    body = await chat(client, staff, "Stream me")
    reply = await wait_final(client, staff, body["message_id"])
    stream = await read_sse(client, staff, body["message_id"])
    assert stream.text == reply["content"]
    assert [e.event for e in stream.events][-1] == "done"
    assert stream.of("done")[0].data == {"message_id": body["message_id"], "status": "done"}


async def test_a_dba_insert_is_answered_too(
    client: httpx.AsyncClient, staff: StaffMember, worker: Any, dba: psycopg.Connection[Any], llm: LLMServer
) -> None:
    llm.default = Behavior(text="Answer for the DBA.")
    conversation = dba.execute(
        "INSERT INTO assistant.conversations (clinic_id, staff_id) VALUES (%s, %s) RETURNING id",
        (staff.clinic_id, staff.staff_id),
    ).fetchone()
    assert conversation is not None
    dba.execute(
        "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, content)"
        " VALUES (%s, %s, %s, 'user', 'from psql')",
        (staff.clinic_id, staff.staff_id, conversation[0]),
    )
    reply = dba.execute(
        "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, status)"
        " VALUES (%s, %s, %s, 'assistant', 'queued') RETURNING id",
        (staff.clinic_id, staff.staff_id, conversation[0]),
    ).fetchone()
    assert reply is not None
    done = await wait_final(client, staff, str(reply[0]))
    assert done["content"] == "Answer for the DBA."


async def test_keel_serve_answers_with_its_in_process_worker(
    settings: Settings, staff: StaffMember, llm: LLMServer
) -> None:
    """`keel serve` (create_app with run_workers) runs the assistant worker in the same process."""
    from api.app import create_app
    from tests.conftest import live_server

    async with live_server(create_app(settings, run_workers=True)) as client:
        body = await chat(client, staff, "Anyone in there?")
        reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done" and reply["content"].startswith("You asked: Anyone in there?")


async def test_list_my_conversations(
    client: httpx.AsyncClient,
    staff: StaffMember,
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
) -> None:
    colleague = add_staff(dba, bearer, staff, "Ravi Kumar", "front_desk")
    first = await chat(client, staff, "First topic")
    await chat(client, staff, "More on it", conversation_id=first["conversation_id"])
    second = await chat(client, staff, "Second topic")
    await chat(client, colleague, "Colleague's topic")

    response = await client.get("/api/internal-assistant/conversations", headers=staff.headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    assert [c["id"] for c in page["items"]] == [second["conversation_id"], first["conversation_id"]]
    assert [c["messages"] for c in page["items"]] == [2, 4]
    assert page["items"][1]["title"] == "First topic"
    one = await client.get("/api/internal-assistant/conversations?limit=1&offset=1", headers=staff.headers)
    assert [c["id"] for c in one.json()["items"]] == [first["conversation_id"]]
    theirs = await client.get("/api/internal-assistant/conversations", headers=colleague.headers)
    assert [c["title"] for c in theirs.json()["items"]] == ["Colleague's topic"]

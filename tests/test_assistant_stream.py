"""Server-Sent Events of a reply: live deltas, late readers, Last-Event-ID resume, done/error, keep-alive."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

from tests.assistant_api import SSEEvent, StaffMember, assistant_settings, chat, read_sse, wait_final
from tests.llm_server import Behavior, LLMServer

LONG_TEXT = "One two three four five six seven eight nine ten eleven twelve."


@pytest.fixture
def settings_overrides(llm: LLMServer) -> dict[str, Any]:
    return assistant_settings(llm, assistant_sse_keepalive=0.3)


async def test_deltas_arrive_before_the_reply_is_complete(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any, dba: psycopg.Connection[Any]
) -> None:
    llm.default = Behavior(text=LONG_TEXT, chunk_delay=0.1)
    body = await chat(client, staff, "Tell me slowly")
    statuses_at_delta: list[str] = []

    def seen(event: SSEEvent) -> None:
        if event.event == "delta":
            row = dba.execute(
                "SELECT status FROM assistant.messages WHERE id = %s", (body["message_id"],)
            ).fetchone()
            assert row is not None
            statuses_at_delta.append(row[0])

    stream = await read_sse(client, staff, body["message_id"], on_event=seen)
    deltas = stream.of("delta")
    assert len(deltas) >= 4, stream.events  # the text came in pieces, as it was generated
    assert (
        statuses_at_delta[0] == "running"
    )  # the first piece arrived while the reply was still being written
    assert stream.events[-1].event == "done"
    assert stream.text == LONG_TEXT
    assert deltas[-1].at < stream.events[-1].at or deltas[-1].at == stream.events[-1].at
    # ids are attempt:offset, strictly increasing
    offsets = [int(e.id.split(":")[1]) for e in deltas if e.id]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets) and offsets[-1] == len(LONG_TEXT)
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["content"] == LONG_TEXT


async def test_late_subscriber_gets_what_was_written_then_the_rest(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any, dba: psycopg.Connection[Any]
) -> None:
    llm.default = Behavior(text=LONG_TEXT, chunk_delay=0.1)
    body = await chat(client, staff, "Start without me")
    while True:  # join once a good part of the text exists
        row = dba.execute(
            "SELECT length(content) FROM assistant.messages WHERE id = %s", (body["message_id"],)
        ).fetchone()
        assert row is not None
        if row[0] >= 20:
            break
        await asyncio.sleep(0.02)
    stream = await read_sse(client, staff, body["message_id"])
    assert len(stream.of("delta")[0].data["text"]) >= 20  # the backlog comes first, in one event
    assert stream.text == LONG_TEXT
    assert stream.events[-1].event == "done"


async def test_last_event_id_resumes_without_duplicates(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.default = Behavior(text=LONG_TEXT, chunk_delay=0.08)
    body = await chat(client, staff, "Resume me")
    first = await read_sse(client, staff, body["message_id"], max_events=2)
    assert [e.event for e in first.events] == ["delta", "delta"]
    last_id = first.events[-1].id
    assert last_id is not None
    rest = await read_sse(client, staff, body["message_id"], last_event_id=last_id)
    assert rest.events[-1].event == "done"
    assert first.text + rest.text == LONG_TEXT

    # resuming a finished reply from its last id gives no text, only the end
    again = await read_sse(client, staff, body["message_id"], last_event_id=rest.events[-1].id)
    assert [e.event for e in again.events] == ["done"]
    # an id that is not ours is ignored: everything from the start
    odd = await read_sse(client, staff, body["message_id"], last_event_id="garbage")
    assert odd.text == LONG_TEXT


async def test_error_event_when_the_reply_fails(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.default = Behavior(status=401)
    body = await chat(client, staff, "This will fail")
    stream = await read_sse(client, staff, body["message_id"])
    assert [e.event for e in stream.events] == ["error"]
    error = stream.events[0].data
    assert error["status"] == "failed" and error["message_id"] == body["message_id"]
    assert "401" in error["error"]


async def test_keep_alive_comments_while_waiting(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.default = Behavior(text="Finally.", delay=1.0)
    body = await chat(client, staff, "Take your time")
    stream = await read_sse(client, staff, body["message_id"])
    assert stream.comments.count("keep-alive") >= 2
    assert stream.text == "Finally." and stream.events[-1].event == "done"


async def test_reader_is_told_of_a_retry_before_any_text(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.plan(Behavior(status=500))
    llm.default = Behavior(text="Second time lucky.", delay=1.0)
    body = await chat(client, staff, "Fail once, then answer")
    stream = await read_sse(client, staff, body["message_id"])
    retries = stream.of("status")
    assert retries, [e.event for e in stream.events]
    assert retries[0].data["status"] == "retrying" and retries[0].data["attempt"] >= 1
    events = [e.event for e in stream.events]
    assert events.index("status") < events.index("delta") and events[-1] == "done"
    assert stream.text == "Second time lucky."


async def test_reader_is_told_to_reset_when_the_reply_restarts(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.plan(Behavior(text=LONG_TEXT, chunk_delay=0.1, drop_after=5))
    llm.default = Behavior(text=LONG_TEXT, chunk_delay=0.05)
    body = await chat(client, staff, "Drop then retry")
    stream = await read_sse(client, staff, body["message_id"])
    assert stream.of("reset"), [e.event for e in stream.events]
    assert stream.text == LONG_TEXT  # what a client shows: never the dropped attempt's text twice
    done = stream.events[-1]
    assert done.event == "done" and done.id is not None and done.id.startswith("2:")


async def test_resume_from_an_abandoned_attempt(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.plan(Behavior(text=LONG_TEXT, chunk_delay=0.1, drop_after=5))
    llm.default = Behavior(text="A different second answer.")
    body = await chat(client, staff, "Drop, and reconnect later")
    first = await read_sse(client, staff, body["message_id"], max_events=2)
    assert first.events[-1].id is not None and first.events[-1].id.startswith("1:")
    await wait_final(client, staff, body["message_id"])
    rest = await read_sse(client, staff, body["message_id"], last_event_id=first.events[-1].id)
    assert next(e.event for e in rest.events) == "reset"
    assert rest.text == "A different second answer."

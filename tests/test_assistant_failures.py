"""Provider failures and dying workers: transient errors retried with backoff, permanent ones fail at once,
a restarted reply never duplicates text, and a reply is stored once however many workers race."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
import psycopg
import pytest

from api.settings import Settings
from tests.assistant_support import (
    StaffMember,
    chat,
    llm,
    running_worker,
    settings_overrides,
    staff,
    wait_final,
    worker,
    worker_process,
)
from tests.llm_server import Behavior, LLMServer

__all__ = ["llm", "settings_overrides", "staff", "worker"]  # fixtures used here

TEXT = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu."


async def test_server_error_then_success(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.plan(Behavior(status=500))
    llm.default = Behavior(text=TEXT)
    body = await chat(client, staff, "Retry me")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done" and reply["content"] == TEXT
    assert reply["attempts"] == 2 and reply["error"] is None
    assert len(llm.completions()) == 2


async def test_rate_limit_and_overload_are_retried(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.plan(Behavior(status=429, retry_after="0.1"), Behavior(status=503), Behavior(status=502))
    llm.default = Behavior(text=TEXT)
    body = await chat(client, staff, "Busy provider")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done" and reply["content"] == TEXT and reply["attempts"] == 4


async def test_unauthorized_fails_at_once(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.default = Behavior(status=401)
    body = await chat(client, staff, "Bad key")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "failed" and reply["attempts"] == 1
    assert "401" in reply["error"] and "Incorrect API key" in reply["error"]
    assert reply["completed_at"] is not None
    await asyncio.sleep(0.3)  # nothing retries it
    assert len(llm.completions()) == 1


async def test_bad_request_fails_at_once(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.default = Behavior(status=400)
    body = await chat(client, staff, "Malformed")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "failed" and reply["attempts"] == 1 and "400" in reply["error"]


async def test_dropped_stream_is_retried_from_the_start_without_duplicated_text(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    llm.plan(Behavior(text=TEXT, drop_after=4), Behavior(text=TEXT, drop_after=7))
    llm.default = Behavior(text=TEXT)
    body = await chat(client, staff, "Flaky network")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done" and reply["attempts"] == 3
    assert reply["content"] == TEXT  # exactly once


async def test_garbage_in_the_stream_is_retried_then_given_up_readably(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, settings: Settings, worker: Any
) -> None:
    llm.plan(Behavior(text=TEXT, garbage_after=3))
    llm.default = Behavior(text=TEXT)
    body = await chat(client, staff, "Garbled line")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done" and reply["attempts"] == 2
    assert reply["content"] == TEXT  # the text before the garbage is not kept twice

    llm.default = Behavior(text=TEXT, garbage_after=0)
    body = await chat(client, staff, "Always garbled")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "failed" and reply["attempts"] == settings.assistant_max_attempts
    assert "the LLM sent a malformed stream" in reply["error"], reply["error"]


async def test_hang_times_out_and_is_retried(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, settings: Settings, worker: Any
) -> None:
    llm.plan(Behavior(hang=True))
    llm.default = Behavior(text=TEXT)
    started = time.monotonic()
    body = await chat(client, staff, "Are you there?")
    reply = await wait_final(client, staff, body["message_id"])
    elapsed = time.monotonic() - started
    assert reply["status"] == "done" and reply["content"] == TEXT and reply["attempts"] == 2
    assert elapsed >= settings.assistant_timeout  # the first attempt was abandoned on its timeout
    print(f"\nhang: abandoned after the {settings.assistant_timeout} s timeout, done after {elapsed:.2f} s")


async def test_gives_up_after_the_last_attempt(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, settings: Settings, worker: Any
) -> None:
    llm.default = Behavior(status=503)
    body = await chat(client, staff, "Never works")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "failed"
    assert reply["attempts"] == settings.assistant_max_attempts
    assert reply["error"].startswith(f"gave up after {settings.assistant_max_attempts} attempts")
    assert "503" in reply["error"]
    assert len(llm.completions()) == settings.assistant_max_attempts


async def test_connection_refused_is_retried_then_given_up(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, settings: Settings
) -> None:
    from dataclasses import replace

    # A port nobody listens on: every attempt is refused, each retried until the last.
    dead = replace(settings, openai_base_url="http://127.0.0.1:9/v1", assistant_max_attempts=2)
    body = await chat(client, staff, "Anyone home?")
    async with running_worker(dead):
        reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "failed" and reply["attempts"] == 2
    assert "could not reach the LLM" in reply["error"]


async def test_worker_killed_mid_reply_another_worker_completes_it(
    client: httpx.AsyncClient,
    staff: StaffMember,
    llm: LLMServer,
    settings: Settings,
    dba: psycopg.Connection[Any],
) -> None:
    llm.default = Behavior(text=TEXT, chunk_delay=0.3)  # slow enough to be killed in the middle
    body = await chat(client, staff, "Survive a crash")
    process = worker_process(settings, llm)
    try:
        deadline = time.monotonic() + 20
        while True:  # the separate `keel worker` process is streaming the reply
            row = dba.execute(
                "SELECT status, length(content), attempts FROM assistant.messages WHERE id = %s",
                (body["message_id"],),
            ).fetchone()
            assert row is not None
            if row[0] == "running" and row[1] > 0:
                break
            assert process.poll() is None, process.stderr.read() if process.stderr else b""
            assert time.monotonic() < deadline, row
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # no chance to hand the reply back
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    partial = dba.execute(
        "SELECT content, attempts FROM assistant.messages WHERE id = %s", (body["message_id"],)
    ).fetchone()
    assert partial is not None and 0 < len(partial[0]) < len(TEXT)
    attempts_before = partial[1]  # 1, unless a very busy machine let the dead worker's own lease lapse once

    llm.default = Behavior(text=TEXT)
    killed_at = time.monotonic()
    async with running_worker(settings, name="survivor"):
        reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done" and reply["attempts"] == attempts_before + 1
    assert reply["content"] == TEXT  # one final reply, the partial text of the dead worker gone
    assert time.monotonic() - killed_at < 10
    count = dba.execute(
        "SELECT count(*) FROM assistant.messages WHERE conversation_id = %s AND role = 'assistant'",
        (body["conversation_id"],),
    ).fetchone()
    assert count == (1,)


async def test_racing_workers_store_each_reply_once(
    client: httpx.AsyncClient,
    staff: StaffMember,
    llm: LLMServer,
    settings: Settings,
    dba: psycopg.Connection[Any],
) -> None:
    from dataclasses import replace

    llm.default = Behavior(chunk_delay=0.01)
    bodies = await asyncio.gather(*(chat(client, staff, f"Question {n}") for n in range(30)))
    patient = replace(settings, assistant_lease_seconds=15.0)  # only SKIP LOCKED keeps them apart here
    async with running_worker(patient, "w1"), running_worker(patient, "w2"), running_worker(patient, "w3"):
        replies = await asyncio.gather(*(wait_final(client, staff, b["message_id"]) for b in bodies))
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in replies)
    for body, reply in zip(bodies, replies, strict=True):
        n = body["message_id"]
        assert reply["content"].startswith("You asked: Question "), n
        assert reply["content"].count("You asked") == 1
    assert len(llm.completions()) == 30  # no reply was generated twice


def test_a_stale_attempt_cannot_store_its_reply(dba: psycopg.Connection[Any], staff: StaffMember) -> None:
    """The SQL guard itself: after a takeover, the old attempt's writes are refused."""
    conversation = dba.execute(
        "INSERT INTO assistant.conversations (clinic_id, staff_id) VALUES (%s, %s) RETURNING id",
        (staff.clinic_id, staff.staff_id),
    ).fetchone()
    assert conversation is not None
    dba.execute(
        "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, status)"
        " VALUES (%s, %s, %s, 'assistant', 'queued')",
        (staff.clinic_id, staff.staff_id, conversation[0]),
    )
    first = dba.execute("SELECT id, attempt FROM assistant.claim_replies('a', 10, 0.01, 5)").fetchall()
    assert len(first) == 1 and first[0][1] == 1
    message_id = first[0][0]
    time.sleep(0.05)  # the lease runs out
    second = dba.execute("SELECT id, attempt FROM assistant.claim_replies('b', 10, 30, 5)").fetchall()
    assert second == [(message_id, 2)]
    assert dba.execute("SELECT assistant.append_reply(%s, 1, 0, 'stale', 30)", (message_id,)).fetchone() == (
        False,
    )
    assert dba.execute("SELECT assistant.complete_reply(%s, 1, 'stale', NULL)", (message_id,)).fetchone() == (
        False,
    )
    assert dba.execute("SELECT assistant.append_reply(%s, 2, 0, 'fresh', 30)", (message_id,)).fetchone() == (
        True,
    )
    assert dba.execute(
        "SELECT assistant.complete_reply(%s, 2, 'fresh!', NULL)", (message_id,)
    ).fetchone() == (True,)
    assert dba.execute("SELECT assistant.complete_reply(%s, 2, 'twice', NULL)", (message_id,)).fetchone() == (
        False,
    )
    row = dba.execute(
        "SELECT status, content, attempts FROM assistant.messages WHERE id = %s", (message_id,)
    ).fetchone()
    assert row == ("done", "fresh!", 2)


@pytest.mark.parametrize("attempts_left", [True, False])
def test_an_abandoned_reply_is_given_up_after_the_last_attempt(
    dba: psycopg.Connection[Any], staff: StaffMember, attempts_left: bool
) -> None:
    conversation = dba.execute(
        "INSERT INTO assistant.conversations (clinic_id, staff_id) VALUES (%s, %s) RETURNING id",
        (staff.clinic_id, staff.staff_id),
    ).fetchone()
    assert conversation is not None
    dba.execute(
        "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, status, attempts, lease_until)"
        " VALUES (%s, %s, %s, 'assistant', 'running', %s, now() - interval '1 second')",
        (staff.clinic_id, staff.staff_id, conversation[0], 1 if attempts_left else 3),
    )
    claimed = dba.execute("SELECT attempt FROM assistant.claim_replies('a', 10, 30, 3)").fetchall()
    row = dba.execute("SELECT status, error FROM assistant.messages WHERE role = 'assistant'").fetchone()
    assert row is not None
    if attempts_left:
        assert claimed == [(2,)] and row[0] == "running"
    else:
        assert claimed == [] and row[0] == "failed" and "abandoned after 3 attempts" in row[1]


async def _wait_for_backend(
    dba: psycopg.Connection[Any], application_name: str, other_than: int | None
) -> int:
    deadline = time.monotonic() + 15
    while True:
        row = dba.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()"
            " AND pid IS DISTINCT FROM %s ORDER BY backend_start DESC LIMIT 1",
            (application_name, other_than),
        ).fetchone()
        if row is not None:
            return int(row[0])
        assert time.monotonic() < deadline, f"no {application_name} connection"
        await asyncio.sleep(0.05)


async def test_worker_listen_connection_is_reopened_when_lost(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any, dba: psycopg.Connection[Any]
) -> None:
    pid = await _wait_for_backend(dba, "keel-assistant-listen", None)
    dba.execute("SELECT pg_terminate_backend(%s)", (pid,))
    new_pid = await _wait_for_backend(dba, "keel-assistant-listen", pid)
    assert new_pid != pid
    body = await chat(client, staff, "Still listening?")
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done"


async def test_sse_survives_losing_its_listen_connection(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any, dba: psycopg.Connection[Any]
) -> None:
    from tests.assistant_support import read_sse

    llm.default = Behavior(text=TEXT, chunk_delay=0.1)
    body = await chat(client, staff, "Keep streaming")
    reader = asyncio.create_task(read_sse(client, staff, body["message_id"]))
    pid = await _wait_for_backend(dba, "keel-assistant-sse", None)
    dba.execute("SELECT pg_terminate_backend(%s)", (pid,))
    stream = await asyncio.wait_for(reader, timeout=20)
    assert stream.text == TEXT and stream.events[-1].event == "done"
    assert len(stream.of("delta")) >= 2


async def test_a_reply_longer_than_its_lease_keeps_it(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, settings: Settings
) -> None:
    """The lease is renewed while text streams and while the model is silent (slow first token)."""
    from dataclasses import replace

    short = replace(settings, assistant_lease_seconds=1.5, assistant_timeout=5.0)
    llm.default = Behavior(text=TEXT, delay=2.0, chunk_delay=0.15)  # ~4 s in all, silent for the first 2
    started = time.monotonic()
    body = await chat(client, staff, "Take longer than the lease")
    async with running_worker(short):
        reply = await wait_final(client, staff, body["message_id"])
    assert time.monotonic() - started > 2 * short.assistant_lease_seconds
    assert reply["status"] == "done" and reply["attempts"] == 1 and reply["content"] == TEXT
    assert len(llm.completions()) == 1


async def test_a_dba_can_queue_a_failed_reply_again(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any, dba: psycopg.Connection[Any]
) -> None:
    llm.plan(Behavior(status=401))
    llm.default = Behavior(text=TEXT)
    body = await chat(client, staff, "Fix the key, then retry")
    failed = await wait_final(client, staff, body["message_id"])
    assert failed["status"] == "failed"
    dba.execute(
        "UPDATE assistant.messages SET status = 'queued', available_at = now() WHERE id = %s",
        (body["message_id"],),
    )
    reply = await wait_final(client, staff, body["message_id"])
    assert reply["status"] == "done" and reply["content"] == TEXT and reply["attempts"] == 2
    assert reply["error"] is None and reply["completed_at"] is not None


def test_writes_at_an_offset_can_be_repeated(dba: psycopg.Connection[Any], staff: StaffMember) -> None:
    """A worker that does not know whether its last write committed simply writes it again."""
    conversation = dba.execute(
        "INSERT INTO assistant.conversations (clinic_id, staff_id) VALUES (%s, %s) RETURNING id",
        (staff.clinic_id, staff.staff_id),
    ).fetchone()
    assert conversation is not None
    dba.execute(
        "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, status)"
        " VALUES (%s, %s, %s, 'assistant', 'queued')",
        (staff.clinic_id, staff.staff_id, conversation[0]),
    )
    ((message_id, attempt),) = dba.execute(
        "SELECT id, attempt FROM assistant.claim_replies('a', 1, 30, 5)"
    ).fetchall()

    def write(offset: int, delta: str) -> bool:
        row = dba.execute(
            "SELECT assistant.append_reply(%s, %s, %s, %s, 30)", (message_id, attempt, offset, delta)
        ).fetchone()
        assert row is not None
        return bool(row[0])

    assert write(0, "Hello, ")
    assert write(0, "Hello, ")  # repeated: no duplicate
    assert write(7, "world")
    assert not write(20, "!")  # a gap is refused
    row = dba.execute("SELECT content FROM assistant.messages WHERE id = %s", (message_id,)).fetchone()
    assert row == ("Hello, world",)

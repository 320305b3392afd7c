"""A worker fleet (DESIGN §7, §11): 3 `keel worker` processes and 3 API processes (`keel serve --workers 3
--no-workers`). Every chat's reply is finished once, every outbox event is delivered (at least once, with
a stable `webhook-id` to deduplicate on), the work is spread over the workers, and a worker SIGKILLed
midway changes none of that.

CI runs 100 chats and 500 events; `KEEL_TEST_FLEET_FULL=1` runs the full 1,000 chats and 5,000 events
(docs/scaling.md has the counts of such a run). The split is printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.settings import Settings
from tests.assistant_api import assistant_settings, create_clinic_staff
from tests.conftest import TEST_JWT_SECRET
from tests.llm_server import Behavior, LLMServer
from tests.pg_servers import free_port, stop_process, wait_healthy
from tests.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

pytestmark = pytest.mark.multiprocess


FULL = os.environ.get("KEEL_TEST_FLEET_FULL") == "1"
CHATS, EVENTS = (1_000, 5_000) if FULL else (100, 500)
WORKERS, API_PROCESSES = 3, 3
DEADLINE = 600 if FULL else 240
LLM_DELAY = 0.2  # each reply takes a while, so replies are in flight on every worker when one dies


@pytest.fixture
def settings_overrides(llm: LLMServer) -> dict[str, Any]:
    return assistant_settings(llm)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


def fleet_env(settings: Settings, llm: LLMServer, receiver: WebhookReceiver) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KEEL_", "DATABASE_"))}
    env.update(
        DATABASE_URL=str(settings.database_url),
        KEEL_JWT_SECRET=TEST_JWT_SECRET,
        KEEL_LOG_FORMAT="json",
        KEEL_LOG_LEVEL="WARNING",
        OPENAI_BASE_URL=llm.url,
        OPENAI_API_KEY="test-key",
        KEEL_ASSISTANT_MODEL="test-model",
        KEEL_ASSISTANT_TIMEOUT="5",
        KEEL_ASSISTANT_LEASE_SECONDS="3",
        KEEL_ASSISTANT_RETRY_BASE="0.05",
        KEEL_ASSISTANT_POLL_INTERVAL="0.3",
        KEEL_ASSISTANT_CONCURRENCY="16",
        KEEL_NOTIFY_WEBHOOK_URL=receiver.url,
        KEEL_NOTIFY_WEBHOOK_SECRET=WEBHOOK_SECRET,
        KEEL_NOTIFY_TIMEOUT="2",
        KEEL_OUTBOX_LEASE_SECONDS="3",
        KEEL_OUTBOX_POLL_INTERVAL="0.2",
        KEEL_OUTBOX_BACKOFF_BASE="0.2",
        KEEL_POOL_MAX_SIZE="8",
    )
    if settings.database_direct_url:  # CI's PgBouncer leg: the API through it, sessions direct
        env.update(DATABASE_DIRECT_URL=settings.database_direct_url)
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "keel"), *args],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


async def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.2)
    return value


async def test_a_fleet_of_workers_finishes_every_reply_once_and_delivers_every_event(
    settings: Settings,
    llm: LLMServer,
    receiver: WebhookReceiver,
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    tmp_path: Path,
) -> None:
    llm.default = Behavior(delay=LLM_DELAY)
    staff = create_clinic_staff(dba, bearer, "Fleet", "FLT")
    env = fleet_env(settings, llm, receiver)
    port = free_port()
    api = start(
        ["serve", "--port", str(port), "--workers", str(API_PROCESSES), "--no-workers"],
        env,
        tmp_path / "api.log",
    )
    workers = [start(["worker"], env, tmp_path / f"worker-{n}.log") for n in range(WORKERS)]
    killed = workers[0]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            wait_healthy(f"http://127.0.0.1:{port}", api, 120, tmp_path / "api.log")

            gate = asyncio.Semaphore(24)

            async def post_chat(n: int) -> str:
                async with gate:
                    response = await http.post(
                        "/api/internal-assistant/chat",
                        json={"message": f"question {n}"},
                        headers=staff.headers,
                    )
                assert response.status_code == 202, response.text
                return str(response.json()["message_id"])

            # Who holds each reply, sampled while it runs (the row forgets its worker once done).
            holders: dict[str, str] = {}

            async def sample_holders() -> None:
                while True:
                    for message_id, worker in dba.execute(
                        "SELECT id::text, worker FROM assistant.messages WHERE status = 'running' AND worker IS NOT NULL"
                    ).fetchall():
                        holders[message_id] = worker.split(":")[1]
                    await asyncio.sleep(0.1)

            sampler = asyncio.create_task(sample_holders())
            chats = asyncio.gather(*(post_chat(n) for n in range(CHATS)))
            per_batch = EVENTS // 5
            for batch in range(5):  # events arrive in bursts while the chats are being answered
                dba.execute(
                    "INSERT INTO keel.outbox (topic, payload)"
                    " SELECT 'fleet.test', jsonb_build_object('n', g) FROM generate_series(%s::int, %s::int) AS g",
                    (batch * per_batch, (batch + 1) * per_batch - 1),
                )
                await asyncio.sleep(0.3)
            message_ids = await chats

            def progress() -> tuple[int, int]:
                done = dba.execute(
                    "SELECT count(*) FROM assistant.messages WHERE id = ANY(%s::uuid[]) AND status = 'done'",
                    (message_ids,),
                ).fetchone()[0]
                delivered = dba.execute(
                    "SELECT count(*) FROM keel.outbox WHERE delivered_at IS NOT NULL"
                ).fetchone()[0]
                return done, delivered

            # Kill a worker midway, with replies and events in its hands.
            await wait_until(
                lambda: progress()[0] >= CHATS // 3 and progress()[1] >= EVENTS // 5,
                DEADLINE,
                "a third of the work",
            )
            holding = dba.execute(
                "SELECT (SELECT count(*) FROM assistant.messages WHERE status = 'running'),"
                " (SELECT count(*) FROM keel.outbox WHERE delivered_at IS NULL)"
            ).fetchone()
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=10)
            at_kill = progress()

            await wait_until(
                lambda: progress() == (CHATS, EVENTS), DEADLINE, "every reply done, every event delivered"
            )
            sampler.cancel()

        # Every reply finished once: done, with the whole text exactly once (a second writer would have
        # appended to it or replaced a finished reply).
        replies = dba.execute(
            "SELECT a.content, u.content FROM assistant.messages AS a"
            " JOIN assistant.messages AS u ON u.conversation_id = a.conversation_id AND u.role = 'user'"
            " WHERE a.id = ANY(%s::uuid[])",
            (message_ids,),
        ).fetchall()
        assert len(replies) == CHATS
        for reply, question in replies:
            assert reply == f"You asked: {question} Here is a streamed answer in several small pieces."
        per_conversation = dba.execute(
            "SELECT count(*) FROM assistant.messages WHERE role = 'assistant'"
            " GROUP BY conversation_id HAVING count(*) <> 1"
        ).fetchall()
        assert per_conversation == []

        # Every event delivered at least once; duplicates (a killed worker's claimed events) share the id.
        deliveries = collections.Counter(d.headers["webhook-id"] for d in receiver.snapshot())
        outbox = dba.execute("SELECT id::text, claimed_by FROM keel.outbox").fetchall()
        assert set(deliveries) == {event_id for event_id, _ in outbox}
        assert len(outbox) == EVENTS

        events_by_worker = collections.Counter(str(claimed).split(":")[1] for _, claimed in outbox)
        replies_seen = collections.Counter(holders.values())
        retried = dba.execute(
            "SELECT count(*) FROM assistant.messages WHERE id = ANY(%s::uuid[]) AND attempts > 1",
            (message_ids,),
        ).fetchone()[0]
        pids = {str(worker.pid) for worker in workers}
        report = {
            "chats": CHATS,
            "events": EVENTS,
            "deliveries": sum(deliveries.values()),
            "duplicate_deliveries": sum(count - 1 for count in deliveries.values()),
            "held_at_kill (running replies, undelivered events)": holding,
            "done_and_delivered_at_kill": at_kill,
            "events_by_worker_pid": dict(events_by_worker),
            "replies_by_worker_pid (sampled while running)": dict(replies_seen),
            "replies_claimed_again": retried,
            "killed_pid": killed.pid,
        }
        print(f"\nfleet: {report}")
        assert set(events_by_worker) <= pids
        survivors = pids - {str(killed.pid)}
        assert all(events_by_worker[pid] > 0 for pid in survivors), report
        assert all(replies_seen[pid] > 0 for pid in survivors), report
    finally:
        for process in [*workers, api]:
            stop_process(process)

"""Fault injection: `keel worker` processes killed with SIGKILL, again and again, while they stream
assistant replies and deliver outbox events.

Two real worker processes run; each time a reply is half streamed both are killed without warning
and two new ones started, while chats and bookings keep arriving. Afterwards: every message has exactly one
final reply (its text whole, never doubled), every outbox event was delivered at least once, repeats
carry the same `webhook-id` (so a receiver can drop them), and nothing is left claimed or failed.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from api.settings import Settings
from tests.appointments_support import WEBHOOK_SECRET, WebhookReceiver, make_clinic
from tests.assistant_support import (
    StaffMember,
    chat,
    llm,
    settings_overrides,
    staff,
    wait_final,
    worker_process,
)
from tests.llm_server import Behavior, LLMServer
from tests.reliability_support import budget

__all__ = ["llm", "settings_overrides", "staff"]  # fixtures used here

pytestmark = pytest.mark.reliability

TEXT = "One two three four five six seven eight nine ten eleven twelve thirteen fourteen."


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(delay=0.4).start()  # slow enough that kills land mid-delivery
    yield server
    server.stop()


def start_worker(settings: Settings, llm: LLMServer, receiver: WebhookReceiver) -> subprocess.Popen[bytes]:
    env = {
        "KEEL_ASSISTANT_POLL_INTERVAL": "0.3",
        "KEEL_ASSISTANT_RETRY_BASE": "0.1",
        "KEEL_ASSISTANT_MAX_ATTEMPTS": "50",  # each kill costs an attempt; the test kills often
        "KEEL_NOTIFY_WEBHOOK_URL": receiver.url,
        "KEEL_NOTIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "KEEL_NOTIFY_TIMEOUT": "1",
        "KEEL_OUTBOX_LEASE_SECONDS": "2",
        "KEEL_OUTBOX_POLL_INTERVAL": "0.3",
        "KEEL_OUTBOX_BATCH_SIZE": "5",
        "KEEL_LOG_LEVEL": "WARNING",
    }
    return worker_process(settings, llm, env, stderr=subprocess.DEVNULL)


def book(dba: psycopg.Connection[Any], setup: Any, n: int, count: int) -> None:
    """`count` bookings in one statement, each in a slot of its own (slot numbers from `n`)."""
    dba.execute(
        "INSERT INTO clinic.appointments (patient_id, doctor_id, appointment_date, start_time, end_time)"
        " SELECT %s, %s, %s::date + (i / 40), time '08:00' + (i %% 40) * interval '15 minutes',"
        "        time '08:15' + (i %% 40) * interval '15 minutes'"
        " FROM generate_series(%s::int, %s::int) AS i",
        (setup.patient_id, setup.doctor_id, date(2027, 3, 1), n, n + count - 1),
    )


async def until_streaming(dba: psycopg.Connection[Any], since: float, timeout: float = 20.0) -> None:
    """Until a reply claimed after `since` (a time.monotonic() value) has streamed some text."""
    deadline = time.monotonic() + timeout
    query = (
        "SELECT count(*) FROM assistant.messages WHERE status = 'running' AND length(content) > 0"
        " AND started_at > now() - make_interval(secs => %s)"
    )
    while dba.execute(query, (time.monotonic() - since,)).fetchone() == (0,):
        assert time.monotonic() < deadline, "no reply started streaming"
        await asyncio.sleep(0.05)


async def test_workers_killed_repeatedly_finish_every_job_once(
    client: httpx.AsyncClient,
    settings: Settings,
    dba: psycopg.Connection[Any],
    staff: StaffMember,
    llm: LLMServer,
    receiver: WebhookReceiver,
    bearer: Callable[..., dict[str, str]],
) -> None:
    setup = make_clinic(dba)
    llm.default = Behavior(text=TEXT, chunk_delay=0.08)  # a reply streams for ~1.2 s
    workers = [start_worker(settings, llm, receiver) for _ in range(2)]
    since = time.monotonic()
    kills, messages, booked = 0, [], 0
    try:
        for _ in range(int(budget(ci=2, full=15))):
            messages += [await chat(client, staff, f"Question {len(messages) + i}") for i in range(2)]
            book(dba, setup, booked, 4)
            booked += 4
            # Wait until a reply is half streamed (deliveries, 0.4 s each, are in flight too), then
            # kill every worker at once: no one hands anything back.
            await until_streaming(dba, since)
            for victim in workers:
                victim.send_signal(signal.SIGKILL)
            for victim in workers:
                await asyncio.to_thread(victim.wait, 10)
            kills += len(workers)
            workers = [start_worker(settings, llm, receiver) for _ in range(2)]
            since = time.monotonic()
        # The survivors finish the work (the last kill's leases lapse first).
        replies = [await wait_final(client, staff, m["message_id"], timeout=60) for m in messages]
        settle = time.monotonic() + 60
        while dba.execute("SELECT count(*) FROM keel.outbox WHERE delivered_at IS NULL").fetchone() != (0,):
            assert time.monotonic() < settle, "outbox events left undelivered"
            assert all(w.poll() is None for w in workers), "a worker died on its own"
            await asyncio.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGKILL)
            w.wait(10)

    # Exactly one final reply per message, whole.
    assert all(r["status"] == "done" and r["content"] == TEXT for r in replies), [
        r for r in replies if r["status"] != "done" or r["content"] != TEXT
    ]
    per_conversation = dba.execute(
        "SELECT count(*) FROM assistant.messages WHERE role = 'assistant' GROUP BY conversation_id"
    ).fetchall()
    assert per_conversation and all(n == 1 for (n,) in per_conversation)
    restarted = sum(1 for r in replies if r["attempts"] > 1)

    # Every event delivered at least once; repeats are the same event under the same webhook-id.
    events = {str(e) for (e,) in dba.execute("SELECT id FROM keel.outbox WHERE failed_at IS NULL").fetchall()}
    assert dba.execute("SELECT count(*) FROM keel.outbox WHERE failed_at IS NOT NULL").fetchone() == (0,)
    assert len(events) == booked
    deliveries = receiver.snapshot()
    verifier = Webhook(WEBHOOK_SECRET)
    for d in deliveries:
        verifier.verify(d.body, d.headers)
    by_id = Counter(d.headers["webhook-id"] for d in deliveries)
    assert set(by_id) == events
    print(
        f"[reliability] workers: kills={kills} messages={len(messages)} replies_done_once={len(replies)}"
        f" replies_restarted={restarted} events={len(events)} deliveries={len(deliveries)}"
        f" redelivered={sum(n - 1 for n in by_id.values())} stuck=0"
    )
    assert restarted >= 1  # kills did land mid-reply

"""Fault injection: the network between Keel and PostgreSQL goes bad (tests/tcp_proxy.py in between).

Keel's pool, its outbox dispatcher and its assistant worker all connect through the proxy, which adds
latency, resets every connection mid-transaction, then stalls (a partition: connections open, silent).
A closed-loop booking load runs as a careful client would (Idempotency-Key, repeated after a 503/504).
Invariants: never a 500, never an answer slower than the statement timeout plus the pool timeout; every
booking ends 201 and is stored exactly once; the LISTEN connections come back; every outbox event is
delivered and every chat message gets exactly one reply.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import psycopg
import pytest

from api.app import create_app
from api.db import ANSWER_GRACE
from api.settings import Settings
from tests.assistant_api import StaffMember, assistant_settings, wait_final
from tests.conftest import live_server
from tests.factories import create_clinic
from tests.llm_server import Behavior, LLMServer
from tests.reliability_support import BookingLoad, budget, load_report, proxy_target, stored_markers, through
from tests.tcp_proxy import TcpProxy
from tests.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver


@pytest.fixture
def settings_overrides(llm: LLMServer) -> dict[str, Any]:
    return assistant_settings(llm)


pytestmark = pytest.mark.reliability

POOL_TIMEOUT = 1.5
STATEMENT_TIMEOUT_MS = 2000


async def chat(http: httpx.AsyncClient, who: StaffMember, message: str) -> dict[str, Any]:
    """Ask the assistant as a careful client: repeat after a 503, with the same Idempotency-Key."""
    key = uuid.uuid4().hex
    for _ in range(50):
        r = await http.post(
            "/api/internal-assistant/chat",
            json={"message": message},
            headers={**who.headers, "Idempotency-Key": key},
        )
        if r.status_code != 503:
            break
        await asyncio.sleep(0.2)
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_latency_resets_and_a_stall_lose_nothing(
    settings: Settings,
    dba: psycopg.Connection[Any],
    staff: StaffMember,
    llm: LLMServer,
    bearer: Callable[..., dict[str, str]],
) -> None:
    setup, other = (
        create_clinic(dba, doctors=1, patients=1),
        create_clinic(dba, "Elsewhere", doctors=1, patients=1),
    )
    receiver = WebhookReceiver().start()
    proxy = TcpProxy(proxy_target(settings.database_url or "")).start()
    llm.default = Behavior(text="Noted, all fine.", chunk_delay=0.05)
    keel = replace(
        settings,
        database_url=through(settings.database_url or "", proxy),
        pool_min_size=2,
        pool_max_size=6,
        pool_timeout=POOL_TIMEOUT,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS,
        notify_webhook_url=receiver.url,
        notify_webhook_secret=WEBHOOK_SECRET,
        # Short leases and backoff, so an event whose delivery or bookkeeping a reset interrupted is due
        # again within the test.
        notify_timeout=2.0,
        outbox_lease_seconds=5.0,
        outbox_backoff_base=0.5,
        outbox_backoff_max=2.0,
        outbox_poll_interval=1.0,
        assistant_lease_seconds=3.0,
        assistant_retry_base=0.2,
        assistant_poll_interval=1.0,
    )
    phase = budget(ci=2.5, full=10.0)
    faults: list[str] = []
    try:
        async with live_server(create_app(keel, run_workers=True)) as http:
            load = BookingLoad.of_clinic(http, bearer, setup, other, clients=4, retry_with_key=100)
            stop = asyncio.Event()
            running = asyncio.create_task(load.run(stop))
            messages = [await chat(http, staff, "Before the faults")]

            proxy.latency = 0.02
            faults.append("latency 20 ms each way")
            await asyncio.sleep(phase)
            proxy.latency = 0.0

            resets_before, resets_started = proxy.resets, time.monotonic()
            deadline = time.monotonic() + phase
            while time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                proxy.reset_all()
            faults.append(f"{proxy.resets - resets_before} connections reset")
            messages.append(await chat(http, staff, "Between resets and the stall"))

            # Longer than the statement timeout plus api.db.ANSWER_GRACE: without that bound, every
            # request in flight hung for the whole stall.
            stall = budget(ci=6.0, full=15.0)
            proxy.stall()
            stalled = time.monotonic()
            await asyncio.sleep(stall)
            proxy.resume()
            healed = time.monotonic()
            faults.append(f"stall {stall:.1f} s")
            await asyncio.sleep(budget(ci=3.0, full=8.0))
            messages.append(await chat(http, staff, "After the faults"))
            stop.set()
            await asyncio.wait_for(running, 60)

            replies = [await wait_final(http, staff, m["message_id"], timeout=30) for m in messages]
            assert all(r["status"] == "done" and r["content"] == "Noted, all fine." for r in replies), replies

            # Every event the bookings wrote is delivered (within the dispatcher's retry schedule).
            deadline = time.monotonic() + 30
            while dba.execute("SELECT count(*) FROM keel.outbox WHERE delivered_at IS NULL").fetchone() != (
                0,
            ):
                assert time.monotonic() < deadline, "outbox events left undelivered"
                await asyncio.sleep(0.2)
            listeners = dba.execute(
                "SELECT application_name FROM pg_stat_activity"
                " WHERE application_name IN ('keel-outbox-listener', 'keel-assistant-listen')"
                "   AND backend_start > now() - make_interval(secs => %s)",
                (time.monotonic() - resets_started,),
            ).fetchall()
    finally:
        proxy.stop()
        receiver.stop()

    stored = stored_markers(dba)
    print(load_report("network", load, stored, ", ".join(faults)))
    load.check_answers(max_seconds=STATEMENT_TIMEOUT_MS / 1000 + ANSWER_GRACE + POOL_TIMEOUT + 1.0)
    during_stall = [o for o in load.outcomes if stalled + 0.5 <= o.started and o.started + o.elapsed < healed]
    assert during_stall and all(o.status in (503, 504) for o in during_stall)
    assert all(o.status in (200, 201) for o in load.served_after(healed + 5.0))

    # Each booking was answered 201 in the end (repeats replayed by its key) and stored exactly once.
    assert not load.refused()
    assert load.cross_tenant_reads() == 0  # the other clinic never saw a booking, faults or not
    assert sorted(stored) == sorted(load.booked())
    # Each booking's event reached the receiver at least once; duplicates share their webhook-id.
    ids = {d.headers["webhook-id"] for d in receiver.snapshot()}
    events = dba.execute("SELECT id::text FROM keel.outbox WHERE topic = 'appointment.booked'").fetchall()
    assert len(events) == len(stored) and {e[0] for e in events} <= ids
    # Both LISTEN connections are up again on connections opened after the resets began.
    assert sorted({name for (name,) in listeners}) == ["keel-assistant-listen", "keel-outbox-listener"]

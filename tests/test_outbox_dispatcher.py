"""The outbox dispatcher against a real webhook receiver on loopback, signatures checked by the library."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import socket
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import psycopg
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api.db import Database
from api.outbox import Dispatcher, DispatcherConfig
from api.settings import Settings
from tests.appointments_support import WEBHOOK_SECRET, ClinicSetup, WebhookReceiver, book_raw, make_clinic

SECRET = WEBHOOK_SECRET
DAY = "2026-06-15"
FAST = DispatcherConfig(
    batch_size=20,
    concurrency=8,
    poll_interval=30.0,  # long: deliveries in these tests are woken by NOTIFY
    lease_seconds=10.0,
    http_timeout=3.0,
    connect_timeout=1.0,
    max_attempts=5,
    backoff_base=0.2,
    backoff_max=2.0,
    retention_seconds=7 * 86400.0,
    prune_interval=3600.0,
    listen_keepalive=5.0,
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def settings_overrides(receiver: WebhookReceiver) -> dict[str, Any]:
    return {"notify_webhook_url": receiver.url, "notify_webhook_secret": SECRET}


@pytest.fixture
def setup(dba: psycopg.Connection[Any]) -> ClinicSetup:
    return make_clinic(dba)


@pytest.fixture
def headers(setup: ClinicSetup, bearer: Callable[..., dict[str, str]]) -> dict[str, str]:
    return bearer(setup.admin_id, clinic_id=setup.clinic_id, role="front_desk")


@contextlib.asynccontextmanager
async def dispatching(
    settings: Settings, config: DispatcherConfig = FAST, *, name: str = "d1"
) -> AsyncIterator[Dispatcher]:
    """A dispatcher with its own pool, as `keel worker` runs it, until the block ends."""
    assert settings.database_url is not None
    db = Database(settings, settings.database_url, name=f"test-outbox-{name}")
    await db.open()
    stop = asyncio.Event()
    dispatcher = Dispatcher(settings, db, config, name=name)
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(dispatcher.listening.wait(), timeout=10)
        yield dispatcher
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        await db.close()


async def until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def book_many(dba: psycopg.Connection[Any], setup: ClinicSetup, count: int) -> None:
    """`count` bookings in one statement (one NOTIFY), 10-minute slots from 08:00."""
    dba.execute(
        "INSERT INTO clinic.appointments (patient_id, doctor_id, appointment_date, start_time, end_time)"
        " SELECT %s, %s, %s::date + (i / 60), time '08:00' + (i %% 60) * interval '10 minutes',"
        "        time '08:10' + (i %% 60) * interval '10 minutes'"
        " FROM generate_series(0, %s - 1) AS i",
        (setup.patient_id, setup.doctor_id, DAY, count),
    )


def outbox(dba: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    cur = dba.execute("SELECT * FROM keel.outbox ORDER BY created_at, id")
    assert cur.description is not None
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def booking(setup: ClinicSetup, start: str, end: str) -> dict[str, Any]:
    return {
        "patient_id": str(setup.patient_id),
        "doctor_id": str(setup.doctor_id),
        "appointment_date": DAY,
        "start_time": start,
        "end_time": end,
    }


async def test_booking_is_delivered_signed_within_moments_of_commit(
    client, dba, settings, receiver, setup, headers
):
    async with dispatching(settings):
        started = time.monotonic()
        r = await client.post("/api/appointments", json=booking(setup, "10:00", "10:30"), headers=headers)
        assert r.status_code == 201
        [delivery] = await until(receiver.snapshot, timeout=5)
        latency = delivery.received_at - started
        await until(lambda: outbox(dba)[0]["delivered_at"] is not None)
    # Woken by NOTIFY: the poll interval is 30 s.
    assert latency < 2.0, latency
    verified = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert verified["type"] == "appointment.booked"
    assert verified["data"]["appointment_id"] == r.json()["id"]
    assert verified["data"]["patient_id"] == r.json()["patient_id"]
    [row] = outbox(dba)
    assert delivery.headers["webhook-id"] == str(row["id"])
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 30
    assert delivery.headers["content-type"] == "application/json"
    assert row["attempts"] == 1 and row["last_status"] == 204 and row["last_error"] is None
    # A forged or tampered delivery would not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(delivery.body.replace(b"scheduled", b"cancelled"), delivery.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another-secret-another-secret-!!").decode()).verify(
            delivery.body, delivery.headers
        )


async def test_receiver_errors_are_retried_with_backoff_then_delivered(dba, settings, receiver, setup):
    receiver.respond = lambda n: 500 if n < 3 else 200
    async with dispatching(settings):
        book_many(dba, setup, 1)
        deliveries = await until(lambda: len(receiver.snapshot()) >= 4 and receiver.snapshot(), timeout=15)
        await until(lambda: outbox(dba)[0]["delivered_at"] is not None)
    assert [d.status for d in deliveries] == [500, 500, 500, 200]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1  # one event, one id, every attempt
    for d in deliveries:
        Webhook(SECRET).verify(d.body, d.headers)
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(deliveries)]
    # 0.2 s, 0.4 s, 0.8 s (±20 % jitter): growing, never immediate.
    assert gaps[0] >= 0.15 and gaps[1] >= 0.3 and gaps[2] >= 0.6, gaps
    assert gaps[2] > gaps[0]
    [row] = outbox(dba)
    assert row["attempts"] == 4 and row["last_status"] == 200
    assert row["last_error"] == "attempt 3: HTTP 500: receiver says no"  # the last failure stays readable


async def test_receiver_resetting_the_connection_is_retried_then_delivered(dba, settings, receiver, setup):
    receiver.respond = lambda n: 0 if n < 2 else 204
    async with dispatching(settings):
        book_many(dba, setup, 1)
        await until(lambda: outbox(dba)[0]["delivered_at"] is not None, timeout=15)
    deliveries = receiver.snapshot()
    assert [d.status for d in deliveries] == [0, 0, 204]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    [row] = outbox(dba)
    assert row["attempts"] == 3 and row["last_status"] == 204
    assert row["last_error"].startswith("attempt 2: ") and "Error" in row["last_error"], row["last_error"]


async def test_after_the_last_attempt_the_event_is_failed_and_can_be_requeued(dba, settings, receiver, setup):
    receiver.respond = lambda n: 503
    config = replace(FAST, max_attempts=3)
    async with dispatching(settings, config):
        book_many(dba, setup, 1)
        await until(lambda: outbox(dba)[0]["failed_at"] is not None, timeout=10)
        await asyncio.sleep(0.5)
        assert len(receiver.snapshot()) == 3  # no attempt after the last
        [row] = outbox(dba)
        assert row["attempts"] == 3 and row["delivered_at"] is None
        assert row["last_error"] == "attempt 3: HTTP 503: receiver says no" and row["last_status"] == 503
        assert dba.execute("SELECT failed FROM keel.outbox_stats()").fetchone() == (1,)
        # The receiver is fixed; a DBA requeues the event.
        receiver.respond = lambda n: 200
        assert dba.execute("SELECT keel.retry_outbox(%s)", (row["id"],)).fetchone() == (True,)
        await until(lambda: outbox(dba)[0]["delivered_at"] is not None, timeout=5)
    assert len(receiver.snapshot()) == 4


async def test_dead_receiver_is_a_readable_error_and_bookings_stay_fast(
    client, dba, settings, setup, headers
):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    dead = replace(settings, notify_webhook_url=dead_url)
    async with dispatching(dead):
        latencies = []
        for i in range(10):
            started = time.monotonic()
            r = await client.post(
                "/api/appointments",
                json=booking(setup, f"{8 + i:02d}:00", f"{8 + i:02d}:30"),
                headers=headers,
            )
            latencies.append(time.monotonic() - started)
            assert r.status_code == 201
        await until(lambda: all(row["attempts"] >= 2 for row in outbox(dba)), timeout=10)
    assert max(latencies) < 0.5, latencies
    for row in outbox(dba):
        assert row["delivered_at"] is None and row["last_error"].startswith("attempt ")
        assert "ConnectError" in row["last_error"]


async def test_slow_receiver_does_not_slow_bookings(client, dba, settings, receiver, setup, headers):
    async def book_all(offset: int) -> list[float]:
        latencies = []
        for i in range(10):
            slot = offset + i
            start, end = (
                f"{8 + slot // 4:02d}:{(slot % 4) * 15:02d}",
                f"{8 + slot // 4:02d}:{(slot % 4) * 15 + 14:02d}",
            )
            started = time.monotonic()
            r = await client.post("/api/appointments", json=booking(setup, start, end), headers=headers)
            latencies.append(time.monotonic() - started)
            assert r.status_code == 201, r.text
        return latencies

    baseline = await book_all(0)  # no dispatcher running
    receiver.delay = 1.5  # every delivery hangs 1.5 s
    async with dispatching(settings):
        await until(receiver.snapshot, timeout=5)  # deliveries of the baseline bookings are now hanging
        during = await book_all(10)
        assert [row for row in outbox(dba) if row["delivered_at"] is None], (
            "the receiver should still be busy"
        )
    assert max(during) < 0.5, during
    assert statistics.median(during) < max(3 * statistics.median(baseline), 0.05), (baseline, during)


async def test_two_dispatchers_deliver_each_event_exactly_once(dba, settings, receiver, setup):
    receiver.delay = 0.01
    async with dispatching(settings, name="d1") as one, dispatching(settings, name="d2") as two:
        assert one.name != two.name
        book_many(dba, setup, 120)
        await until(lambda: len(receiver.snapshot()) >= 120, timeout=20)
        await until(lambda: all(row["delivered_at"] for row in outbox(dba)), timeout=10)
        await asyncio.sleep(0.3)  # would-be duplicates have time to arrive
    ids = Counter(d.headers["webhook-id"] for d in receiver.snapshot())
    assert len(ids) == 120 and set(ids.values()) == {1}
    assert {str(row["id"]) for row in outbox(dba)} == set(ids)
    claimed_by = Counter(row["claimed_by"] for row in outbox(dba))
    assert set(claimed_by) <= {"d1", "d2"} and sum(claimed_by.values()) == 120


async def test_an_abandoned_claim_is_delivered_after_its_lease(dba, settings, receiver, setup):
    """A dispatcher that dies mid-delivery loses its lease; another one delivers the event."""
    book_many(dba, setup, 1)
    [claimed] = dba.execute("SELECT id FROM keel.claim_outbox(10, interval '1 second', 'crashed')").fetchall()
    async with dispatching(settings):
        await asyncio.sleep(0.5)
        assert receiver.snapshot() == []  # still leased
        [delivery] = await until(receiver.snapshot, timeout=5)
    assert delivery.headers["webhook-id"] == str(claimed[0])
    [row] = outbox(dba)
    assert row["attempts"] == 2 and row["claimed_by"] == "d1" and row["delivered_at"] is not None


async def test_listener_reconnects_after_losing_its_connection(dba, settings, receiver, setup):
    async with dispatching(settings) as dispatcher:
        killed = dba.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'keel-outbox-listener' AND datname = current_database()"
        ).fetchone()
        assert killed == (1,)
        await until(lambda: not dispatcher.listening.is_set(), timeout=5)
        await asyncio.wait_for(dispatcher.listening.wait(), timeout=10)
        started = time.monotonic()
        book_many(dba, setup, 1)
        [delivery] = await until(receiver.snapshot, timeout=5)
    assert delivery.received_at - started < 2.0  # by NOTIFY again, not by the 30 s poll


async def test_without_url_events_are_logged_and_marked_delivered(dba, settings, setup, caplog):
    quiet = replace(settings, notify_webhook_url=None)
    caplog.set_level(logging.INFO, logger="api.outbox")
    async with dispatching(quiet):
        book_many(dba, setup, 3)
        await until(lambda: all(row["delivered_at"] for row in outbox(dba)), timeout=5)
    assert all(row["last_status"] is None and row["attempts"] == 1 for row in outbox(dba))
    logged = [r for r in caplog.records if "not sent: no KEEL_NOTIFY_WEBHOOK_URL" in r.getMessage()]
    assert len(logged) == 3


async def test_url_without_secret_keeps_events_queued(dba, settings, setup, caplog):
    unsigned = replace(settings, notify_webhook_secret=None)
    db = Database(unsigned, str(unsigned.database_url))
    await db.open()
    stop = asyncio.Event()
    task = asyncio.create_task(Dispatcher(unsigned, db, FAST).run(stop))
    try:
        book_many(dba, setup, 1)
        await until(
            lambda: any("KEEL_NOTIFY_WEBHOOK_SECRET" in r.getMessage() for r in caplog.records), timeout=5
        )
        [row] = outbox(dba)
        assert row["attempts"] == 0 and row["delivered_at"] is None
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await db.close()


async def test_delivered_events_are_pruned_after_retention(dba, settings, receiver, setup):
    receiver.respond = lambda n: 200 if n < 2 else 500
    config = replace(FAST, retention_seconds=0.5, prune_interval=0.2, poll_interval=0.3, max_attempts=1)
    async with dispatching(settings, config):
        book_many(dba, setup, 3)
        await until(lambda: len(receiver.snapshot()) == 3, timeout=5)
        await until(lambda: len(outbox(dba)) == 1, timeout=5)
    [kept] = outbox(dba)
    assert kept["failed_at"] is not None  # failures are kept for inspection, not pruned
    deliveries = receiver.snapshot()
    assert json.loads(deliveries[0].body)["type"] == "appointment.booked"


def test_config_from_environment(monkeypatch):
    monkeypatch.setenv("KEEL_OUTBOX_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("KEEL_OUTBOX_BACKOFF_BASE", "1.5")
    monkeypatch.setenv("KEEL_OUTBOX_RETENTION_HOURS", "2")
    monkeypatch.setenv("KEEL_NOTIFY_TIMEOUT", "30")
    config = DispatcherConfig.from_env()
    assert config.max_attempts == 4 and config.backoff_base == 1.5 and config.retention_seconds == 7200
    assert config.lease_seconds > config.http_timeout == 30


def test_dispatcher_is_a_registered_worker():
    from api.workers import WORKERS

    assert "api.outbox:run" in WORKERS


def awake_announcements(dba: psycopg.Connection[Any]) -> int:
    """Sessions holding the dispatcher's awake announcement (sql/keel/200_outbox.sql)."""
    return dba.execute(
        "SELECT count(*) FROM pg_locks"
        " WHERE locktype = 'advisory' AND classid = 1262831183 AND objid = 2 AND granted"
    ).fetchone()[0]


async def test_an_awake_dispatcher_polls_without_notify_then_sleeps_and_is_woken_again(
    dba, settings, receiver, setup
):
    """A burst keeps the dispatcher awake (writers skip NOTIFY meanwhile); once quiet for `linger` it
    withdraws the announcement and the next event is delivered by a NOTIFY, not the 30 s poll."""
    config = replace(FAST, busy_poll_interval=0.02, linger=1.0)
    async with dispatching(settings, config):
        book_many(dba, setup, 1)
        await until(lambda: len(receiver.snapshot()) == 1)
        await until(lambda: awake_announcements(dba) == 1)  # awake after a delivery
        for hour in range(9, 14):  # no NOTIFY now: the awake dispatcher's polls find them
            book_raw(dba, setup, date(2026, 6, 16), f"{hour}:00", f"{hour}:30")
        await until(lambda: len(receiver.snapshot()) == 6, timeout=5)
        await until(lambda: awake_announcements(dba) == 0, timeout=5)  # quiet for `linger`: asleep
        started = time.monotonic()
        book_raw(dba, setup, date(2026, 6, 17), "08:00", "08:30")  # asleep again: this one rings
        await until(lambda: len(receiver.snapshot()) == 7, timeout=5)
        assert time.monotonic() - started < 2.0
    assert all(row["delivered_at"] is not None for row in outbox(dba))

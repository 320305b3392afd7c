"""The dispatcher as users run it: in-process with `keel serve` (unless --no-workers), alone with `keel worker`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest
from standardwebhooks.webhooks import Webhook

from api.app import create_app
from tests.conftest import live_server
from tests.factories import add_appointment, create_clinic
from tests.pg_servers import free_port
from tests.webhook_receiver import WEBHOOK_SECRET as SECRET
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


async def wait_for(predicate: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
    return value


async def test_serve_runs_the_dispatcher_in_process_unless_told_not_to(settings, dba, receiver):
    setup = create_clinic(dba, doctors=1, patients=1)
    configured = replace(settings, notify_webhook_url=receiver.url, notify_webhook_secret=SECRET)
    async with live_server(create_app(configured, run_workers=False)) as http:
        assert (await http.get("/api/health")).status_code == 200
        add_appointment(dba, setup, date(2026, 6, 15), "09:00", "09:30")
        await asyncio.sleep(1.0)
        assert receiver.snapshot() == []  # --no-workers: nobody delivers
    async with live_server(create_app(configured, run_workers=True)):
        [delivery] = await wait_for(receiver.snapshot, timeout=10)
    assert Webhook(SECRET).verify(delivery.body, delivery.headers)["type"] == "appointment.booked"


def test_keel_worker_delivers_alone_serves_its_metrics_and_stops_on_sigterm(db_url, dba, receiver):
    setup = create_clinic(dba, doctors=1, patients=1)
    metrics_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "KEEL_NOTIFY_WEBHOOK_URL": receiver.url,
        "KEEL_NOTIFY_WEBHOOK_SECRET": SECRET,
        "KEEL_LOG_FORMAT": "text",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker", "--metrics-port", str(metrics_port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        add_appointment(dba, setup, date(2026, 6, 15), "09:00", "09:30")
        deadline = time.monotonic() + 30
        while not receiver.snapshot():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "keel worker delivered nothing"
            time.sleep(0.1)
        [delivery] = receiver.snapshot()
        assert Webhook(SECRET).verify(delivery.body, delivery.headers)["type"] == "appointment.booked"
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT delivered_at IS NOT NULL FROM keel.outbox").fetchone()
            deadline = time.monotonic() + 5
            while row != (True,) and time.monotonic() < deadline:
                time.sleep(0.05)
                row = conn.execute("SELECT delivered_at IS NOT NULL FROM keel.outbox").fetchone()
        assert row == (True,)
        # A worker has no API of its own: --metrics-port serves its counters and its pool.
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'keel_outbox_deliveries_total{outcome="delivered"} 1.0' in metrics, metrics
        assert 'keel_db_pool_size{pool="worker"}' in metrics, metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, stderr

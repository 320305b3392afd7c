"""Fault injection: PostgreSQL restarted (fast, then immediate stop) under a closed-loop booking load.

Keel keeps running throughout. During each outage every request answers quickly with a 503 problem and
`Retry-After` (never a 500, never a hang beyond the pool timeout); within 5 s of the server being back,
every request succeeds again; and the client's log matches the table: each booking answered 201 is
stored, none answered otherwise is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest

from api.app import create_app
from api.settings import Settings
from tests.appointments_support import make_clinic
from tests.conftest import live_server
from tests.reliability_support import BookingLoad, PrivateCluster, budget, load_report, stored_markers

pytestmark = pytest.mark.reliability

POOL_TIMEOUT = 2.0
RECOVERY = 5.0  # seconds after the server is back within which every request must succeed


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster().init()
    try:
        yield cluster
    finally:
        cluster.destroy()


async def test_bookings_survive_fast_and_immediate_restarts(
    cluster: PrivateCluster, settings: Settings, bearer: Callable[..., dict[str, str]]
) -> None:
    url = await asyncio.to_thread(cluster.create_keel_database)
    with psycopg.connect(url, autocommit=True) as dba:
        setup, other = make_clinic(dba), make_clinic(dba, "Elsewhere")
    keel = replace(settings, database_url=url, pool_min_size=2, pool_max_size=4, pool_timeout=POOL_TIMEOUT)
    # The fast stop's outage outlasts psycopg_pool's uncapped reconnection backoff (attempts 1, 3, 7, 15 s
    # after the first failure): without api.db.Pool's cap, service came back only ~7 s after the server.
    outages = {"fast": 8.0, "immediate": budget(ci=2 * POOL_TIMEOUT + 1.0, full=8.0)}
    settle = budget(ci=RECOVERY + 2.0, full=RECOVERY + 10.0)
    back: list[tuple[str, float, float, float]] = []  # (mode, stop called, stopped at, started again at)
    recovery: dict[str, float] = {}

    async with live_server(create_app(keel)) as http:
        load = BookingLoad.of_clinic(http, bearer, setup, other)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop))
        await asyncio.sleep(budget(ci=1.0, full=5.0))
        for mode in ("fast", "immediate"):
            stopping = time.monotonic()
            await asyncio.to_thread(cluster.stop, mode)
            stopped = time.monotonic()
            await asyncio.sleep(outages[mode])
            await asyncio.to_thread(cluster.start)
            back.append((mode, stopping, stopped, time.monotonic()))
            await asyncio.sleep(settle)
        stop.set()
        await asyncio.wait_for(running, 60)

    with psycopg.connect(url, autocommit=True) as dba:
        stored = stored_markers(dba)
    print(load_report("restart", load, stored, "pg_ctl stop -m fast, -m immediate"))

    # Never a 500 or a dropped connection; 503s carry Retry-After; nothing waits much past the pool timeout.
    load.check_answers(max_seconds=POOL_TIMEOUT + 3.0)
    for (mode, _, stopped, started), next_stop in zip(back, [b[1] for b in back[1:]] + [float("inf")]):
        # Sent and answered while the server was down: all 503 (the pool timed out, or a dead connection).
        during = [o for o in load.outcomes if stopped <= o.started and o.started + o.elapsed < started]
        assert during and all(o.status == 503 for o in during), (mode, [o.status for o in during])
        after = [o for o in load.served_after(started + RECOVERY) if o.started + o.elapsed < next_stop]
        assert len(after) >= 10, (mode, len(after))  # the load really ran after the recovery window
        assert all(o.status in (200, 201) for o in after), (mode, [o for o in after if o.status >= 300])
        answered = [o.started + o.elapsed for o in load.outcomes if o.status >= 300]
        recovery[mode] = round(max([started, *(t for t in answered if t < next_stop)]) - started, 2)
    print(f"[reliability] restart: last failure after the server was back (s): {recovery}")
    # In fact far sooner than RECOVERY: with psycopg_pool's own backoff the fast stop's last 503 came
    # 3.9 s after the server was back (and up to ~7 s, by its schedule); with api.db.Pool's cap, < 1 s.
    assert all(seconds < 3.0 for seconds in recovery.values()), recovery

    # The client's log and the table agree: no acknowledged booking lost, none refused yet stored.
    assert len(stored) == len(set(stored)), "a booking was stored twice"
    assert set(stored) == load.booked(), load.booked() ^ set(stored)
    assert len(load.booked()) >= 20
    assert load.cross_tenant_reads() == 0  # the other clinic never saw a booking, outage or not


def test_private_cluster_stops_and_starts_on_its_own_port(cluster: PrivateCluster) -> None:
    """The harness itself: a stopped cluster refuses connections; started again it answers."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    cluster.stop("immediate")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url(), connect_timeout=2)
    cluster.start()
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        row: Any = conn.execute("SELECT current_setting('port')").fetchone()
        assert int(row[0]) == cluster.port

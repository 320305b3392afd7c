"""A network hop between an app and PostgreSQL: the tests' TCP proxy (`tests/tcp_proxy.py`) with a fixed
added delay, in a process of its own on uvloop.

Its own process, so neither the bench runner's Python (the duplication workload runs there) nor a load
process competes with it for a GIL; uvloop, so a forwarded chunk costs less of the two cores. The delay
is timed to ~0.1 ms (`tests.tcp_proxy._Timer`) but waking the loop costs time too, more on a busy machine,
so the delay is **calibrated**: starting from `rtt / 2` each way, it is corrected until a `SELECT 1`
round trip through the hop takes `rtt` longer than one direct (median of 300; within 0.05 ms, at most
four tries). On a loaded machine the timer's own wake-up (~0.1 ms a hop at load 7) can exceed a small
`rtt`: the hop then adds more than asked, and the workloads report the round trip they really measured. `rtt_ms=None` is no proxy at all (the direct path); `0.0` is the proxy adding nothing, which
measures the proxy's own cost.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from bench.loadgen import SPAWN


def _serve(target: Any, control: Any) -> None:
    """Child process: proxy to `target`; each float received on `control` is the new one-way delay (s);
    None (or the parent gone) stops it."""
    import asyncio

    import uvloop

    from tests.tcp_proxy import TcpProxy

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with TcpProxy(target) as proxy:
        control.send(proxy.port)
        while True:
            try:
                latency = control.recv()
            except EOFError:
                return
            if latency is None:
                return
            proxy.latency = latency


def round_trip(url: str, count: int = 300) -> float:
    """Median seconds of a `SELECT 1` round trip on one connection to `url` (after a warm-up)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(20):
            conn.execute("SELECT 1")
        samples = []
        for _ in range(count):
            t0 = time.perf_counter()
            conn.execute("SELECT 1")
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@contextlib.contextmanager
def network_hop(url: str, rtt_ms: float | None) -> Iterator[str]:
    """`url`, or (with `rtt_ms`) the same database reached through a proxy adding `rtt_ms` per round trip."""
    if rtt_ms is None:
        yield url
        return
    from tests.reliability_support import proxy_target, through_port

    control, child_end = SPAWN.Pipe()
    process = SPAWN.Process(target=_serve, args=(proxy_target(url), child_end), daemon=True)
    process.start()
    try:
        if not control.poll(30):
            raise RuntimeError("the network-hop proxy did not start")
        proxied = through_port(url, control.recv())
        if rtt_ms > 0:
            calibrate(control, url, proxied, rtt_ms / 1000)
        yield proxied
    finally:
        with contextlib.suppress(OSError):
            control.send(None)
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)


def calibrate(control: Any, direct: str, proxied: str, rtt: float) -> None:
    """Set the proxy's one-way delay so a round trip through it takes `rtt` longer than a direct one."""
    base = round_trip(direct)
    latency = rtt / 2
    for _ in range(4):
        control.send(latency)
        error = round_trip(proxied) - base - rtt
        if abs(error) < 0.00005:
            return
        # Never 0: the proxy forwards a chunk due now without the timer, a step the correction cannot follow.
        latency = max(0.00001, latency - error / 2)
    control.send(latency)

"""A network hop between an app and PostgreSQL: the tests' TCP proxy (`tests/tcp_proxy.py`) with a fixed
added delay, in a process of its own on uvloop.

Its own process, so neither the bench runner's Python (the duplication workload runs there) nor a load
process competes with it for a GIL; uvloop, so a forwarded chunk costs less of the two cores. The delay
is `rtt / 2` in each direction, timed to ~0.1 ms (see `tests.tcp_proxy._Timer`). `rtt_ms=None` is no
proxy at all (the direct path); `0.0` is the proxy adding nothing, which measures the proxy's own cost.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

from bench.loadgen import SPAWN


def _serve(target: Any, latency: float, port_out: Any) -> None:
    """Child process: proxy to `target` with `latency` seconds each way until SIGTERM."""
    import asyncio
    import threading

    import uvloop

    from tests.tcp_proxy import TcpProxy

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with TcpProxy(target) as proxy:
        proxy.latency = latency
        port_out.send(proxy.port)
        stop.wait()


@contextlib.contextmanager
def network_hop(url: str, rtt_ms: float | None) -> Iterator[str]:
    """`url`, or (with `rtt_ms`) the same database reached through a proxy adding `rtt_ms` per round trip."""
    if rtt_ms is None:
        yield url
        return
    from tests.reliability_support import proxy_target, through_port

    receive, send = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(target=_serve, args=(proxy_target(url), rtt_ms / 2000, send), daemon=True)
    process.start()
    try:
        if not receive.poll(30):
            raise RuntimeError("the network-hop proxy did not start")
        yield through_port(url, receive.recv())
    finally:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)

"""Load generation, always from a process of its own (never inside the server under test).

The HTTP client is a minimal keep-alive HTTP/1.1 client on asyncio streams: cheaper per request than
httpx, so on a small machine more of the CPU goes to the server being measured. Every entry point
here is a plain function taking picklable arguments, run by `in_process` / `Background` / `Prober` in
one of two spawned load processes that live for the whole run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

SPAWN = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class Req:
    """One HTTP request to send: method, path, headers, body."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass
class LoadResult:
    """What a load run saw: per-request latencies (s), status counts, wall time, the load process's
    own CPU time (s), and a few bodies."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed: float = 0.0
    cpu: float = 0.0
    sample_bodies: list[bytes] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def ok(self, *codes: int) -> int:
        return sum(n for code, n in self.statuses.items() if code in codes)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (Content-Length or chunked responses)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def request(self, req: Req) -> tuple[int, bytes]:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        body = req.body or b""
        head = [
            f"{req.method} {req.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Content-Length: {len(body)}",
        ]
        head.extend(f"{name}: {value}" for name, value in req.headers)
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            payload = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            payload = b"".join(parts)
        else:
            payload = await self.reader.read()
            await self.close()
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, payload


def _host_port(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


async def _closed_loop(
    base_url: str, requests: Sequence[Req], concurrency: int, keep_bodies: int
) -> LoadResult:
    host, port = _host_port(base_url)
    result = LoadResult()
    queue = iter(range(len(requests)))

    async def worker() -> None:
        conn = HttpConnection(host, port)
        try:
            for index in queue:
                started = time.perf_counter()
                status, body = await conn.request(requests[index])
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if len(result.sample_bodies) < keep_bodies:
                    result.sample_bodies.append(body)
        finally:
            await conn.close()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed, result.cpu = time.perf_counter() - started, time.process_time() - cpu
    return result


def closed_loop(base_url: str, requests: Sequence[Req], concurrency: int, keep_bodies: int = 0) -> LoadResult:
    """Send every request once, `concurrency` at a time over keep-alive connections."""
    return asyncio.run(_closed_loop(base_url, requests, concurrency, keep_bodies))


async def _probe(base_url: str, req: Req, interval: float, stop: Any, ready: Any) -> LoadResult:
    host, port = _host_port(base_url)
    result = LoadResult()
    idle: list[HttpConnection] = []
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        conn = idle.pop() if idle else HttpConnection(host, port)
        t0 = time.perf_counter()
        status, _ = await conn.request(req)
        result.latencies.append(time.perf_counter() - t0)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        idle.append(conn)

    await one()  # connect and warm up
    result.latencies.clear()
    result.statuses.clear()
    ready.set()
    started = next_at = time.perf_counter()
    while not stop.is_set():
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    if pending:
        await asyncio.wait(pending, timeout=120)
    for conn in idle:
        await conn.close()
    result.elapsed = time.perf_counter() - started
    return result


def probe(base_url: str, req: Req, interval: float, stop: Any, ready: Any) -> LoadResult:
    """Send `req` every `interval` seconds until `stop` is set; the latencies.

    Open loop: requests go out on schedule whether or not earlier ones have answered (each on an idle
    connection, or a new one), so a server that stalls for a second shows a second's worth of slow
    requests — not one slow sample among many fast ones (no coordinated omission).
    """
    return asyncio.run(_probe(base_url, req, interval, stop, ready))


async def per_connection(
    url: str,
    items: Sequence[Any],
    concurrency: int,
    each: Callable[[Any, Any], Awaitable[Any]],
    status: int = 200,
    **connect: Any,
) -> LoadResult:
    """`await each(conn, item)` for every item, on `concurrency` autocommit psycopg connections at once
    (`connect`: more connection arguments); each item's latency, counted under `status`."""
    from psycopg import AsyncConnection

    result = LoadResult()
    queue = iter(items)

    async def worker() -> None:
        async with await AsyncConnection.connect(url, autocommit=True, **connect) as conn:
            for item in queue:
                t0 = time.perf_counter()
                await each(conn, item)
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] = result.statuses.get(status, 0) + 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed, result.cpu = time.perf_counter() - started, time.process_time() - cpu
    return result


async def _direct_sql(
    url: str, context: Mapping[str, Any], query: str, params: Sequence[Sequence[Any]], concurrency: int
) -> LoadResult:
    from api.db import call

    return await per_connection(url, params, concurrency, lambda conn, item: call(conn, context, query, item))


def direct_sql(
    url: str, context: Mapping[str, Any], query: str, params: Sequence[Sequence[Any]], concurrency: int
) -> LoadResult:
    """Per item: the API's transaction (`api.db.call`: context statement and query, one round trip) on
    psycopg directly, `concurrency` connections at once."""
    return asyncio.run(_direct_sql(url, context, query, params, concurrency))


_pool: ProcessPoolExecutor | None = None
_manager: Any = None


def _executor() -> ProcessPoolExecutor:
    """Two spawned load processes, reused by every job (one can probe while the other loads)."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=2, mp_context=SPAWN)
    return _pool


def _events() -> Any:
    global _manager
    if _manager is None:
        _manager = SPAWN.Manager()
    return _manager


def shutdown() -> None:
    """Stop the load processes (the runner calls this once at the end)."""
    global _pool, _manager
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
    if _manager is not None:
        _manager.shutdown()
        _manager = None


class Background:
    """Run `fn(*args)` in a load process; `result()` waits for its return value."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.future: Future[Any] = _executor().submit(fn, *args)

    def result(self, timeout: float = 1800) -> Any:
        return self.future.result(timeout=timeout)


def in_process(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in a load process (not this one, not the server's); its return value."""
    return Background(fn, *args).result()


class Prober:
    """A load process sending one request at a fixed interval until stopped."""

    def __init__(self, base_url: str, req: Req, interval: float) -> None:
        self.stop_event = _events().Event()
        ready = _events().Event()
        self.job = Background(probe, base_url, req, interval, self.stop_event, ready)
        if not ready.wait(60):
            raise RuntimeError("the probe process did not start")

    def stop(self) -> LoadResult:
        self.stop_event.set()
        result: LoadResult = self.job.result()
        return result

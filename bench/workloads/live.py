"""Live show (issue 16): SSE subscribers over two API processes receiving every GO, and what the change
feed costs the writers.

- Fan-out: `subscribers` SSE streams (`GET /api/scripts/{id}/live`, as assigned crew) split over the
  bench server and a second API process; the caller POSTs a GO every 100 ms for `seconds`, alternating
  between the two processes. Every subscriber must receive every GO; latency is from the GO's feed
  event timestamp (`at`: the start of the GO's transaction, so it also counts the command itself and
  its commit) to receipt by the subscriber, on the same clock.
- Feed cost: `callmaster.bulk_update_script_elements` of 1,000 elements, called directly (as a DBA),
  with the feed triggers enabled vs. disabled (`ALTER TABLE … DISABLE TRIGGER`), and with a sleeping
  relay (so the writer also NOTIFYs); medians of interleaved repetitions.
- Commit serialisation: 8 writers updating single elements of 8 scripts concurrently, with every relay
  awake (no NOTIFY) vs. one asleep (every commit NOTIFYs): throughput ratio.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Any

import httpx
import psycopg
import uvloop
from psycopg import sql
from psycopg.types.json import Jsonb

from bench import datagen
from bench.loadgen import Background, _events, _host_port, in_process
from bench.runner import Context, Result
from bench.server import served
from bench.stats import median, percentile
from bench.workloads.common import ms, per_s, ratio_result

# (subscribers, seconds of GOs, bulk-update repetitions, single-element writes per writer)
SIZES = {"full": (500, 60.0, 7, 300), "quick": (100, 10.0, 3, 100), "tiny": (10, 1.0, 1, 10)}
GO_INTERVAL = 0.1
FEED_TRIGGERS = (
    "script_elements_live_feed_insert",
    "script_elements_live_feed_update",
    "script_elements_live_feed_delete",
)


# The load process parses 5,000 events a second on the cores Keel uses, so it parses as little as it can:
# one regular-expression scan per read for the GOs (position and feed timestamp), and `state` counted.
COMMAND = re.compile(rb'id: (\d+)\r\nevent: command\r\ndata: [^\r]*?"at": "([^"]+)"')
STATE = b"event: state\r\n"
EVENT_END = b"\r\n\r\n"


class _Subscriber(asyncio.Protocol):
    """One SSE stream read by a bare protocol (no stream reader, no task): {GO position: latency s}."""

    def __init__(self, request: bytes, states: list[int], connected: asyncio.Event, n: int) -> None:
        self.request, self.states, self.connected, self.n = request, states, connected, n
        self.received: dict[int, float] = {}
        self.buffer = b""
        self.status = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]  # a TCP transport (uvloop's)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.status:
            self.status = data.split(b"\r\n", 1)[0]
        if b" 200 " not in self.status:
            return
        end = (self.buffer + data).rfind(EVENT_END)
        if end < 0:
            self.buffer += data
            return
        text, self.buffer = (self.buffer + data)[: end + 4], (self.buffer + data)[end + 4 :]
        if STATE in text:
            self.states[0] += 1
            if self.states[0] == self.n:
                self.connected.set()
        for position, at in COMMAND.findall(text):
            self.received[int(position)] = now - dt.datetime.fromisoformat(at.decode()).timestamp()


async def _follow(
    urls: list[str], path: str, headers: list[tuple[str, str]], n: int, ready: Any, stop: Any
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    connected = asyncio.Event()
    states = [0]
    subscribers, transports = [], []
    for i in range(n):
        host, port = _host_port(urls[i % len(urls)])
        head = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        head += [f"{k}: {v}" for k, v in headers]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        transport, subscriber = await loop.create_connection(
            lambda r=request: _Subscriber(r, states, connected, n), host, port
        )
        subscribers.append(subscriber)
        transports.append(transport)
    failures = []
    try:
        await asyncio.wait_for(connected.wait(), 120)
    except TimeoutError:
        failures.append(f"only {states[0]} of {n} subscribers got their state within 120 s")
        failures += sorted({s.status.decode("latin-1") for s in subscribers if b" 200 " not in s.status})
    ready.set()
    started = time.process_time(), time.monotonic()
    await loop.run_in_executor(None, stop.wait)
    busy = time.process_time() - started[0], time.monotonic() - started[1]
    for transport in transports:
        transport.close()
    return {
        "received": [s.received for s in subscribers],
        "failures": failures,
        "cpu_s": busy[0],
        "wall_s": busy[1],
    }


def follow(
    urls: list[str], path: str, headers: list[tuple[str, str]], n: int, ready: Any, stop: Any
) -> dict[str, Any]:
    """Load process: `n` SSE subscribers over `urls`; per subscriber {GO position: latency s}, and the CPU
    this process used while the GOs ran."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_follow(urls, path, headers, n, ready, stop))


async def _write(url: str, element_ids: list[str], rounds: int) -> float:
    async def writer(element_id: str) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for i in range(rounds):
                await conn.execute(
                    "UPDATE callmaster.script_elements SET description = %s WHERE id = %s",
                    (f"take {i}", element_id),
                )

    started = time.perf_counter()
    await asyncio.gather(*(writer(e) for e in element_ids))
    return len(element_ids) * rounds / (time.perf_counter() - started)


def write(url: str, element_ids: list[str], rounds: int) -> float:
    """Load process: one writer per element, `rounds` single-row updates each; updates per second."""
    return asyncio.run(_write(url, element_ids, rounds))


def fan_out(ctx: Context, subscribers: int, seconds: float) -> list[Result]:
    gos = int(seconds / GO_INTERVAL)
    with ctx.connect() as conn:
        owner = datagen.create_owner(conn, crew=1)
        crew_sub = f"crew_{owner.clerk_id}"
        conn.execute("UPDATE callmaster.users SET clerk_user_id = %s, status = 'verified' WHERE id = %s",
                     (crew_sub, owner.crew_ids[0]))  # fmt: skip
        conn.execute("INSERT INTO callmaster.crew_assignments (show_id, user_id) VALUES (%s, %s)",
                     (owner.show_id, owner.crew_ids[0]))  # fmt: skip
        script = str(conn.execute(
            "INSERT INTO callmaster.scripts (show_id, name) VALUES (%s, 'Live') RETURNING id", (owner.show_id,)
        ).fetchone()[0])  # fmt: skip
        conn.execute(
            "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, sequence)"
            " SELECT %s, 'cue', 'Q' || g, g FROM generate_series(1, %s) AS g",
            (script, gos + 10),
        )
    crew_auth = [(k, v) for k, v in ctx.headers({"sub": crew_sub}, json_body=False)]
    caller = dict(ctx.headers(owner.claims()))
    with served(ctx.overrides, workers_in_process=True) as second:
        urls = [ctx.base_url, second]
        ready, stop = _events().Event(), _events().Event()
        job = Background(follow, urls, f"/api/scripts/{script}/live", crew_auth, subscribers, ready, stop)
        if not ready.wait(180):
            raise RuntimeError("the subscribers did not connect")
        positions: list[int] = []
        refused: dict[int, int] = {}
        clients = [httpx.Client(base_url=u, timeout=30) for u in urls]
        try:
            next_at = time.perf_counter()
            for k in range(gos):
                r = clients[k % 2].post(
                    f"/api/scripts/{script}/live/commands", json={"command": "go"}, headers=caller
                )
                if r.status_code == 200:
                    positions.append(r.json()["script"]["version"])
                else:
                    refused[r.status_code] = refused.get(r.status_code, 0) + 1
                next_at += GO_INTERVAL
                time.sleep(max(0.0, next_at - time.perf_counter()))
            time.sleep(min(3.0, seconds))  # let the last GO arrive everywhere
        finally:
            stop.set()
            for c in clients:
                c.close()
        seen = job.result()
    received: list[dict[int, float]] = seen["received"]
    expected = set(positions)
    complete = sum(1 for r in received if expected <= set(r))
    latencies = [lat for r in received for pos, lat in r.items() if pos in expected]
    p50, p99 = median(latencies), percentile(latencies, 99)
    missing = sum(len(expected - set(r)) for r in received)
    client = seen["cpu_s"] / seen["wall_s"]
    note = (f"{len(positions)} GOs; {complete}/{subscribers} subscribers got every GO; {missing} deliveries "
            f"missing; GOs refused: {refused}; the subscribers' load process used {seen['cpu_s']:.1f} s of CPU "
            f"in {seen['wall_s']:.0f} s ({client:.0%} of a core); {'; '.join(seen['failures'][:3])}")  # fmt: skip
    return [
        Result(f"live: {subscribers} SSE subscribers / 2 API processes, GO every 100 ms for {seconds:.0f} s",
               f"p50 {ms(p50)}, p99 {ms(p99)}", "target 100 ms", 0.1 / p99 if p99 else None,
               "p99 ≤ 100 ms (ratio ≥ 1); every GO everywhere",
               p99 <= 0.1 and complete == subscribers and len(positions) == gos, note,
               {"p50_s": p50, "p99_s": p99, "gos": len(positions), "complete": complete, "missing": missing,
                "client_cpu_s": seen["cpu_s"], "client_wall_s": seen["wall_s"]}),
    ]  # fmt: skip


def feed_cost(ctx: Context, repeats: int, writes: int) -> list[Result]:
    n = ctx.sizes.bulk_elements  # 1,000 (tiny: 50)
    with ctx.connect() as conn:
        owner = datagen.create_owner(conn)
        script = datagen.create_script(conn, owner, n)
        datagen.analyze(conn, "callmaster.script_elements")
        ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM callmaster.script_elements WHERE script_id = %s ORDER BY sequence", (script,))]  # fmt: skip
        relay = psycopg.connect(ctx.admin_url, autocommit=True)

        def bulk(rep: int) -> float:
            updates = [{"id": e, "description": f"Rev {rep} of {i}", "time_offset_ms": 1000 * i + rep}
                       for i, e in enumerate(ids)]  # fmt: skip
            t0 = time.perf_counter()
            conn.execute("SELECT callmaster.bulk_update_script_elements(%s, %s)", (script, Jsonb(updates)))
            return time.perf_counter() - t0

        def triggers(enabled: bool) -> None:
            for name in FEED_TRIGGERS:
                conn.execute(
                    sql.SQL("ALTER TABLE callmaster.script_elements {} TRIGGER {}").format(
                        sql.SQL("ENABLE" if enabled else "DISABLE"), sql.Identifier(name)
                    )
                )

        bulk(0)  # warm-up
        with_feed, without, notifying = [], [], []
        for rep in range(repeats):
            with_feed.append(bulk(3 * rep + 1))
            relay.execute("SELECT callmaster.live_relay_asleep('50 ms')")
            notifying.append(bulk(3 * rep + 2))
            relay.execute("SELECT callmaster.live_relay_awake()")
            triggers(False)
            try:
                without.append(bulk(3 * rep + 3))
            finally:
                triggers(True)

        # Commit serialisation: concurrent single-element writers, relays awake vs. one asleep.
        # (50 elements each: the shared fill_script builds scripts in groups of fifty)
        others = [datagen.create_script(conn, owner, 50) for _ in range(7)]
        targets = [ids[0]] + [str(conn.execute(
            "SELECT id FROM callmaster.script_elements WHERE script_id = %s LIMIT 1", (s,)).fetchone()[0]) for s in others]  # fmt: skip
        awake = in_process(write, ctx.admin_url, targets, writes)
        relay.execute("SELECT callmaster.live_relay_asleep('50 ms')")
        try:
            asleep = in_process(write, ctx.admin_url, targets, writes)
        finally:
            relay.execute("SELECT callmaster.live_relay_awake()")
            relay.close()
    w, wo, nt = median(with_feed), median(without), median(notifying)
    return [
        ratio_result(f"live feed: bulk update of {n:,} elements, with the feed vs. without", w, wo, fmt=ms,
                     target="feed ≤ 1.5× (ratio ≥ 0.67)", minimum=1 / 1.5, higher_is_better=False,
                     note=f"with a sleeping relay (NOTIFY too): {ms(nt)} ({nt / wo:.2f}× without)",
                     data={"with_s": with_feed, "without_s": without, "notifying_s": notifying}),
        ratio_result("live feed: 8 concurrent single-element writers, relays asleep (NOTIFY) vs. awake", asleep,
                     awake, fmt=per_s, target="— (measured)", note="updates per second; a NOTIFY serialises commits",
                     data={"asleep_per_s": asleep, "awake_per_s": awake}),
    ]  # fmt: skip


def run(ctx: Context) -> list[Result]:
    subscribers, seconds, repeats, writes = SIZES.get(ctx.mode, SIZES["quick"])
    return [*fan_out(ctx, subscribers, seconds), *feed_cost(ctx, repeats, writes)]

"""Bench v2 (issue 17): every workload against three references, at several network round trips.

For each round trip (RTT) of the run — loopback (no proxy), then 0.5 ms and 2 ms through the network-hop
proxy (`bench/hop.py`; quick and tiny runs take a subset) — the database-facing side of everything goes
through the same hop: Keel's API and its workers, the peer (`bench/peers/seeds_app.py`, the seeds' own
FastAPI + SQLAlchemy stack), the strong "before" (the raw-psycopg baselines of `bench/baselines/`) and
the floor (`bench/baselines/floor.py`). Measured at each RTT:

- booking: throughput at concurrency 16 (every request a distinct slot) for Keel, peer, strong before
  and the bare `INSERT` (triggers off); p50 latency at concurrency 1 for Keel and peer;
- GET by id (`GET /api/appointments/{id}`) throughput, Keel vs peer (the floor of this row, psycopg
  directly, is the HTTP-overhead workload's);
- dashboard: the control-tower summary at the small clinic (and at the large one at the target RTT
  only: the peer's fetch-all of a million rows takes a minute), Keel vs peer vs strong before;
- duplication of the large script over HTTP, Keel vs peer, the strong before on psycopg, the floor;
- bulk update of 1,000 elements over HTTP, Keel vs peer vs strong before, and the floor.

Before all that, the hop's own cost: `SELECT 1` round trips direct and through the proxy adding 0 ms
(latency at concurrency 1, throughput at 16), and the round trip each RTT setting really gives.
Verdicts (DESIGN §10 / issue 17's targets) are judged at the target RTT, 0.5 ms; rows at the other RTTs
are informational. Everything runs in one process tree, Keel and the references interleaved.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from bench import datagen
from bench.baselines import floor
from bench.baselines.duplicate import duplicate_script as before_duplicate
from bench.hop import network_hop
from bench.loadgen import LoadResult, Req, closed_loop, in_process
from bench.peers.seeds_app import served_peer
from bench.runner import JWT_SECRET, Context, Result
from bench.server import served
from bench.stats import median
from bench.workloads import control_tower
from bench.workloads.common import delete_copies, json_req, live_feed_off, med, ms, per_s, slots

TARGET_RTT = 0.5
DOCTORS = 16
PATIENTS = 500


@dataclass(frozen=True)
class RefSizes:
    rtts: tuple[float | None, ...]  # None: loopback, no proxy
    booking: int  # bookings per side and repetition, at the run's concurrency
    latency_bookings: int  # bookings per side at concurrency 1
    gets: int
    duplicate: int  # elements of the duplicated script
    bulk: int
    repeats: int
    slow_repeats: int  # the peer's and the strong before's duplication
    dashboard_reads: int
    probes: int  # SELECT 1 round trips per probe


SIZES = {
    "full": RefSizes((None, 0.5, 2.0), 1200, 200, 2000, 10_000, 1000, 2, 1, 10, 2000),
    "quick": RefSizes((0.5,), 200, 40, 400, 1000, 1000, 1, 1, 3, 600),
    "tiny": RefSizes((0.5,), 24, 6, 40, 50, 50, 1, 1, 1, 100),
}


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def rtt_label(rtt: float | None) -> str:
    return "loopback" if rtt is None else f"{rtt:g} ms RTT"


@contextlib.contextmanager
def user_triggers_off(ctx: Context, table: str) -> Iterator[None]:
    """The table's own triggers off for the duration (foreign-key checks stay): the floor's bare rows."""
    schema, name = table.split(".")
    with ctx.connect() as conn:
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER USER").format(sql.Identifier(schema, name)))
    try:
        yield
    finally:
        with ctx.connect() as conn:
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER USER").format(sql.Identifier(schema, name)))


def snapshot_trigger_off(ctx: Context) -> contextlib.AbstractContextManager[None]:
    """The peer and the strong before copy the snapshot themselves (as the "before" did)."""
    from bench.workloads.booking import snapshot_trigger_disabled

    return snapshot_trigger_disabled(ctx)


class Checker:
    """Collects unexpected answers (the workload fails on any)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, result: LoadResult, what: str, *ok: int) -> LoadResult:
        bad = {code: k for code, k in result.statuses.items() if code not in ok}
        if bad:
            self.errors.append(f"{what}: statuses {bad}")
        return result


def interleaved(repeats: int, sides: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each side's figure, sides taken in turn `repeats` times (drift hits all alike); the medians."""
    series: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            series[name].append(fn())
    return {name: med(values) for name, values in series.items()}


def hop_cost(ctx: Context, probes: int, concurrency: int) -> list[Result]:
    """`SELECT 1` direct vs through the proxy adding 0 ms: the proxy's own cost."""
    figures: dict[str, LoadResult] = {}
    for label, rtt in (("direct", None), ("proxy", 0.0)):
        with network_hop(ctx.admin_url, rtt) as url:
            in_process(floor.select_ones, url, probes // 4, 1)  # warm-up
            figures[f"{label}@1"] = in_process(floor.select_ones, url, probes, 1)
            figures[f"{label}@c"] = in_process(floor.select_ones, url, probes * 4, concurrency)
    d1, p1 = median(figures["direct@1"].latencies), median(figures["proxy@1"].latencies)
    dc, pc = figures["direct@c"].throughput, figures["proxy@c"].throughput
    return [
        Result("network hop: SELECT 1 p50, c=1, proxy adding 0 ms vs direct", us(p1), us(d1), p1 / d1,
               "(the proxy's own cost per round trip)", None, f"+{(p1 - d1) * 1e6:,.0f} µs per round trip",
               {"proxy_s": p1, "direct_s": d1, "rtt": "hop"}),
        Result(f"network hop: SELECT 1 throughput, c={concurrency}, proxy adding 0 ms vs direct", per_s(pc),
               per_s(dc), pc / dc, "(the proxy's own cost)", None, "", {"proxy": pc, "direct": dc, "rtt": "hop"}),
    ]  # fmt: skip


@dataclass
class Fixture:
    """The data every RTT works on (made once, directly)."""

    clinic: datagen.Clinic
    appointment_ids: list[str]
    owner: datagen.Owner
    dup_script: str
    bulk_script: str
    bulk_ids: list[str]
    dashboard: dict[str, datagen.Clinic]
    slots: Iterator[dict[str, Any]]


def make_fixture(ctx: Context, sizes: RefSizes) -> Fixture:
    with ctx.connect() as conn:
        clinic = datagen.create_clinic(conn, "references")
        datagen.add_doctors(conn, clinic, DOCTORS)
        datagen.add_patients(conn, clinic, PATIENTS, keep_ids=PATIENTS)
        datagen.add_appointments(conn, clinic, 400)
        appointment_ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM clinic.appointments WHERE clinic_id = %s", (clinic.id,))]  # fmt: skip
        owner = datagen.create_owner(conn)
        dup_script = datagen.create_script(conn, owner, sizes.duplicate)
        bulk_script = datagen.create_script(conn, owner, sizes.bulk)
        bulk_ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM callmaster.script_elements WHERE script_id = %s ORDER BY sequence", (bulk_script,))]  # fmt: skip
        floor.create_copy_tables(conn)
        datagen.analyze(conn, "clinic.staff", "clinic.patients", "clinic.appointments", "callmaster.script_elements",
                        "callmaster.script_element_groups", "callmaster.script_element_equipment")  # fmt: skip
    dashboard = control_tower.build(ctx)
    # Every booking of the run its own slot: per RTT, warm-ups (4 sides × 2 × c), the repetitions, c=1.
    per_rtt = 8 * ctx.sizes.concurrency + 4 * sizes.repeats * sizes.booking + 2 * sizes.latency_bookings
    items = slots(
        clinic.doctor_ids, per_rtt * len(sizes.rtts), start_day=dt.date.today() + dt.timedelta(days=400)
    )
    for i, item in enumerate(items):
        item["patient_id"] = clinic.patient_ids[(i * 7) % len(clinic.patient_ids)]
        item["clinic_id"] = clinic.id
    return Fixture(clinic, appointment_ids, owner, dup_script, bulk_script, bulk_ids, dashboard, iter(items))


def run(ctx: Context) -> list[Result]:
    sizes = SIZES[ctx.mode]
    fx = make_fixture(ctx, sizes)
    rows = hop_cost(ctx, sizes.probes, ctx.sizes.concurrency)
    for rtt in sizes.rtts:
        with network_hop(ctx.admin_url, rtt) as db_url:
            probe = in_process(floor.select_ones, db_url, sizes.probes // 2, 1)
            measured = median(probe.latencies)
            with (
                served({**ctx.overrides, "database_url": db_url}) as keel,
                served_peer(db_url, JWT_SECRET) as peer,
            ):
                rows.extend(AtRtt(ctx, sizes, fx, rtt, measured, db_url, keel, peer).measure())
    return rows


class AtRtt:
    """Every comparison at one RTT: Keel and the peer served through the hop at `db_url`."""

    def __init__(self, ctx: Context, sizes: RefSizes, fx: Fixture, rtt: float | None, measured: float,
                 db_url: str, keel: str, peer: str) -> None:  # fmt: skip
        self.ctx, self.sizes, self.fx, self.rtt = ctx, sizes, fx, rtt
        self.db_url, self.keel, self.peer = db_url, keel, peer
        self.label = rtt_label(rtt)
        self.judged = rtt == TARGET_RTT
        self.check = Checker()
        self.common = {"rtt": self.label, "rtt_measured_ms": round(measured * 1000, 3)}
        clinic = fx.clinic
        self.clinic_headers = ctx.headers(clinic.claims("front_desk"))
        self.owner_headers = ctx.headers(fx.owner.claims())

    def take(self, k: int) -> list[dict[str, Any]]:
        return [next(self.fx.slots) for _ in range(k)]

    def post_all(self, base: str, path: str, items: list[dict[str, Any]], conc: int) -> LoadResult:
        body = [{k: v for k, v in x.items() if k != "clinic_id"} for x in items]
        reqs = [json_req("POST", path, self.clinic_headers, x) for x in body]
        return self.check(in_process(closed_loop, base, reqs, conc), f"POST {path}", 200, 201)

    def row(self, what: str, keel: float, peer: float, *, fmt: Callable[[float], str], target: str,
            minimum: float | None, rate: bool, extra: dict[str, float | None]) -> Result:  # fmt: skip
        """Keel vs peer: the ratio is Keel's advantage (rates keel/peer, times peer/keel)."""
        ratio = (keel / peer if rate else peer / keel) if keel and peer else None
        passed = None if not self.judged or minimum is None or ratio is None else ratio >= minimum
        data = {**self.common, "unit": "/s" if rate else "s", "keel": keel, "peer": peer, **extra}
        return Result(f"v2 {what} @ {self.label}: Keel vs peer", fmt(keel), fmt(peer), ratio,
                      target if self.judged else "(informational)", passed, "", data)  # fmt: skip

    def floor_row(self, what: str, keel: float, bare: float, *, fmt: Callable[[float], str], target: str,
                  bound: float, rate: bool) -> Result:  # fmt: skip
        """Keel vs floor: Keel's share of the floor's rate, or Keel's time as a multiple of the floor's."""
        ratio = keel / bare if bare else None
        ok = None if ratio is None else (ratio >= bound if rate else ratio <= bound)
        return Result(f"v2 {what} @ {self.label}: Keel vs floor", fmt(keel), fmt(bare), ratio,
                      target if self.judged else "(informational)", ok if self.judged else None, "",
                      {**self.common, "unit": "/s" if rate else "s", "keel": keel, "floor": bare})  # fmt: skip

    def pair(self, what: str, m: dict[str, float], *, fmt: Callable[[float], str], rate: bool, target: str,
             minimum: float, floor_target: str, bound: float) -> list[Result]:  # fmt: skip
        """The Keel-vs-peer row (with the strong before and the floor in its data) and the Keel-vs-floor row."""
        return [
            self.row(what, m["keel"], m["peer"], fmt=fmt, target=target, minimum=minimum, rate=rate,
                     extra={"before": m["before"], "floor": m["floor"]}),
            self.floor_row(what, m["keel"], m["floor"], fmt=fmt, target=floor_target, bound=bound, rate=rate),
        ]  # fmt: skip

    def measure(self) -> list[Result]:
        rows = [
            *self.booking(),
            self.get_by_id(),
            *self.dashboard(),
            *self.duplication(),
            *self.bulk_update(),
        ]
        if self.check.errors:  # a figure of a side that answered wrongly is no figure
            raise RuntimeError(f"at {self.label}: " + "; ".join(self.check.errors))
        return rows

    def booking(self) -> list[Result]:
        ctx, n, conc, reps = self.ctx, self.sizes.booking, self.ctx.sizes.concurrency, self.sizes.repeats

        def keel(k: int, c: int) -> LoadResult:
            return self.post_all(self.keel, "/api/appointments", self.take(k), c)

        def peer(k: int, c: int) -> LoadResult:
            with snapshot_trigger_off(ctx):
                return self.post_all(self.peer, "/appointments", self.take(k), c)

        def before(k: int) -> LoadResult:
            with snapshot_trigger_off(ctx):
                return self.post_all(self.keel, "/bench/baseline/appointments", self.take(k), conc)

        def bare(k: int) -> LoadResult:
            with user_triggers_off(ctx, "clinic.appointments"):
                return in_process(floor.bare_inserts, self.db_url, self.take(k), conc)

        for fn in (keel, peer):
            fn(conc * 2, conc)  # warm-up
        before(conc * 2)
        bare(conc * 2)
        m = interleaved(reps, {"keel": lambda: keel(n, conc).throughput, "peer": lambda: peer(n, conc).throughput,
                               "before": lambda: before(n).throughput, "floor": lambda: bare(n).throughput})  # fmt: skip
        k1 = median(keel(self.sizes.latency_bookings, 1).latencies)
        p1 = median(peer(self.sizes.latency_bookings, 1).latencies)
        return [
            *self.pair(f"booking c={conc}", m, fmt=per_s, rate=True, target="≥ 2× throughput", minimum=2.0,
                       floor_target="≥ 0.6× the bare INSERT's throughput", bound=0.6),
            self.row("booking p50 latency c=1", k1, p1, fmt=ms, target="≥ 3× lower p50", minimum=3.0, rate=False,
                     extra={}),
        ]  # fmt: skip

    def get_by_id(self) -> Result:
        ctx, n, conc = self.ctx, self.sizes.gets, self.ctx.sizes.concurrency
        headers = ctx.headers(self.fx.clinic.claims("front_desk"), json_body=False)
        ids = self.fx.appointment_ids

        def run(base: str, prefix: str) -> float:
            reqs = [Req("GET", f"{prefix}/{ids[i % len(ids)]}", headers) for i in range(n)]
            return self.check(in_process(closed_loop, base, reqs, conc), f"GET {prefix}", 200).throughput

        sides = {
            "keel": lambda: run(self.keel, "/api/appointments"),
            "peer": lambda: run(self.peer, "/appointments"),
        }
        interleaved(1, sides)  # warm-up
        m = interleaved(self.sizes.repeats, sides)
        return self.row(f"GET by id c={conc}", m["keel"], m["peer"], fmt=per_s, target="≥ 2× throughput",
                        minimum=2.0, rate=True, extra={})  # fmt: skip

    def dashboard(self) -> list[Result]:
        ctx, reads = self.ctx, self.sizes.dashboard_reads
        sized = [("small", ctx.sizes.ct_small)]
        if self.judged:
            sized.append(("large", ctx.sizes.ct_large))
        rows = []
        for label, count in sized:
            headers = ctx.headers(self.fx.dashboard[label].claims("admin"), json_body=False)

            def read(base: str, path: str, times: int, headers: Any = headers) -> list[float]:
                result = in_process(closed_loop, base, [Req("GET", path, headers)] * times, 1)
                return list(self.check(result, f"GET {path}", 200).latencies)

            read(self.keel, control_tower.SUMMARY, 2)  # warm-up
            keel = read(self.keel, control_tower.SUMMARY, reads)
            peer = read(self.peer, "/control-tower/summary", reads if label == "small" else 1)
            before = read(self.keel, control_tower.BASELINE, reads) if label == "small" else []
            big = label == "large"
            rows.append(self.row(
                f"dashboard {count:,} rows", median(keel), median(peer), fmt=ms,
                target="≥ 1,000× faster" if big else "(informational)", minimum=1000.0 if big else None,
                rate=False, extra={"before": median(before) if before else None},
            ))  # fmt: skip
        return rows

    def timed_http(self, base: str, method: str, path: str, headers: Any, body: Any, ok: int) -> float:
        result = in_process(closed_loop, base, [json_req(method, path, headers, body)], 1)
        return float(self.check(result, f"{method} {path}", ok).latencies[0])

    def duplication(self) -> list[Result]:
        ctx, fx, n = self.ctx, self.fx, self.sizes.duplicate

        def cleared(took: float) -> float:
            """Delete the copy (outside the timing); each repetition copies into the same table sizes."""
            with ctx.connect() as conn:
                gone = delete_copies(
                    conn,
                    "show_id = %(show)s AND id <> ALL(%(keep)s)",
                    {"show": fx.owner.show_id, "keep": [fx.dup_script, fx.bulk_script]},
                )
                floor.empty_copy_tables(conn)
            if gone != 1:
                self.check.errors.append(f"duplication: {gone} copies made")
            return took

        def keel() -> float:
            path = f"/api/scripts/{fx.dup_script}/duplicate"
            return cleared(self.timed_http(self.keel, "POST", path, self.owner_headers, {}, 201))

        def peer() -> float:
            path = f"/scripts/{fx.dup_script}/duplicate"
            with live_feed_off(ctx):
                return cleared(self.timed_http(self.peer, "POST", path, self.owner_headers, None, 201))

        def before() -> float:
            with live_feed_off(ctx), psycopg.connect(self.db_url) as conn:
                t0 = time.perf_counter()
                before_duplicate(conn, fx.dup_script)
                return cleared(time.perf_counter() - t0)

        def bare() -> float:
            with psycopg.connect(self.db_url) as conn:
                t0 = time.perf_counter()
                floor.copy_script(conn, fx.dup_script)
                took = time.perf_counter() - t0
            with ctx.connect() as conn:
                floor.empty_copy_tables(conn)
            return took

        interleaved(1, {"keel": keel, "floor": bare})  # warm-up
        m = interleaved(self.sizes.repeats, {"keel": keel, "floor": bare})
        m |= interleaved(self.sizes.slow_repeats, {"peer": peer, "before": before})
        return self.pair(f"duplication {n:,} elements", m, fmt=ms, rate=False, target="≥ 30× faster", minimum=30.0,
                         floor_target="Keel ≤ 2.5× the unconstrained copy", bound=2.5)  # fmt: skip

    def bulk_update(self) -> list[Result]:
        ctx, fx = self.ctx, self.fx
        rep = iter(range(1_000_000))

        def body() -> list[dict[str, Any]]:
            r = next(rep)
            return [
                {"id": eid, "description": f"Rev {r} of element {i}", "time_offset_ms": 1000 * i + r,
                 "priority": ("critical", "high", "normal", "low", "optional")[(i + r) % 5]}
                for i, eid in enumerate(fx.bulk_ids)
            ]  # fmt: skip

        def keel() -> float:
            path = f"/api/scripts/{fx.bulk_script}/elements"
            return self.timed_http(self.keel, "PATCH", path, self.owner_headers, body(), 200)

        def peer() -> float:
            with live_feed_off(ctx):
                return self.timed_http(self.peer, "PATCH", f"/scripts/{fx.bulk_script}/elements",
                                       self.owner_headers, body(), 200)  # fmt: skip

        def before() -> float:
            path = f"/bench/baseline/scripts/{fx.bulk_script}/elements"
            with live_feed_off(ctx):
                return self.timed_http(self.keel, "PATCH", path, self.owner_headers, body(), 200)

        def bare() -> float:
            items = body()
            with user_triggers_off(ctx, "callmaster.script_elements"), psycopg.connect(self.db_url) as conn:
                t0 = time.perf_counter()
                changed = floor.update_elements(conn, items)
                took = time.perf_counter() - t0
            if changed != len(items):
                self.check.errors.append(f"bulk update floor: {changed} rows changed")
            return took

        # Warm-up of Keel and the floor: one statement each. The peer and the strong before warm up within
        # their own first rows of a thousand (as in the duplication).
        interleaved(1, {"keel": keel, "floor": bare})
        m = interleaved(self.sizes.repeats, {"keel": keel, "peer": peer, "before": before, "floor": bare})
        return self.pair(f"bulk update {len(fx.bulk_ids):,} elements", m, fmt=ms, rate=False, target="≥ 30× faster",
                         minimum=30.0, floor_target="Keel ≤ 3× the single UPDATE", bound=3.0)  # fmt: skip


def references_table(results: list[Result]) -> Any:
    """Keel against its three references, one line per workload and RTT: Keel ÷ floor beside Keel ÷ peer."""
    from rich.table import Table

    table = Table(title="Keel against the peer (seeds' stack), the strong before and the floor")
    for name in ("workload", "RTT (measured round trip)", "Keel", "peer", "strong before", "floor",
                 "Keel's advantage over peer", "Keel ÷ floor"):  # fmt: skip
        table.add_column(name, overflow="fold")
    for r in results:
        if not r.workload.endswith(": Keel vs peer"):
            continue
        d = r.data
        fmt = per_s if d["unit"] == "/s" else ms
        what = r.workload.removeprefix("v2 ").split(" @ ")[0]
        before, bare = d.get("before"), d.get("floor")
        table.add_row(
            what, f"{d['rtt']} ({d['rtt_measured_ms']:.2f} ms)", fmt(d["keel"]), fmt(d["peer"]),
            fmt(before) if before else "—", fmt(bare) if bare else "—",
            "—" if r.ratio is None else f"{r.ratio:,.2f}×", f"{d['keel'] / bare:,.2f}×" if bare else "—",
        )  # fmt: skip
    return table

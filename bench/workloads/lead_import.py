"""Lead import: `/api/health` p99 while 10,000 leads are imported, vs. idle.

Keel's `POST /api/leads/import` validates and encrypts in a process pool; the baseline route (seed
§3.2) does the same work on the event loop. A probe process sends `GET /api/health` every 10 ms,
open loop (on schedule, whether or not earlier probes have answered), while each import runs; the
figure is the probe's p99 during the import over its p99 when the server is idle (DESIGN §10: ≤ 3×).
"""

from __future__ import annotations

import time
from typing import Any

from bench import datagen
from bench.loadgen import Prober, Req, closed_loop, in_process
from bench.runner import Context, Result
from bench.stats import median, p99
from bench.workloads.common import json_req, ms

PROBE_INTERVAL = 0.01
IDLE_SECONDS = 2.0


def leads(count: int, batch: int) -> list[dict[str, object]]:
    """Valid import rows, every encrypted field present so the import does all its crypto work."""
    return [
        {
            "name": f"Imported Lead {batch}-{i}",
            "phone": f"+91 98{batch:02d}{i:06d}",
            "alternate_phone": f"+91 97{batch:02d}{i:06d}",
            "age": 20 + i % 50,
            "gender": ("male", "female", "other")[i % 3],
            "source": "campaign",
            "problem": f"Recurring back pain, case {i}",
            "treatment_doctor": "Dr. Bench",
            "treatment_suggested": f"Physiotherapy, {i % 10 + 1} sessions",
            "notes": "imported by the bench",
        }
        for i in range(count)
    ]


def wait_outbox_drained(ctx: Context, timeout: float = 300) -> None:
    """Wait until the dispatcher has delivered every event (each import queues one per lead), so one
    phase's leftover dispatching does not load the next phase's measurement."""
    deadline = time.monotonic() + timeout
    with ctx.connect() as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM keel.outbox WHERE delivered_at IS NULL").fetchone()
            if row is None or row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{row[0]} outbox events still undelivered after {timeout:.0f} s")
            time.sleep(0.2)


def measure(ctx: Context, base_url: str, headers: tuple[tuple[str, str], ...], batch0: int) -> dict[str, Any]:
    """Idle probe, then each import (Keel, baseline) under the probe, `repeats` times."""
    n = ctx.sizes.import_rows
    repeats = 2 if ctx.mode == "full" else 1
    health = Req("GET", "/api/health")

    def during(path: str, batch: int) -> tuple[list[float], float, int]:
        body = json_req("POST", path, headers, leads(n, batch))
        wait_outbox_drained(ctx)
        prober = Prober(base_url, health, PROBE_INTERVAL)
        result = in_process(closed_loop, base_url, [body], 1)
        probed = prober.stop()
        return probed.latencies, result.latencies[0], next(iter(result.statuses))

    # Warm-up: the import pool's processes start on first use; one small import each way.
    in_process(closed_loop, base_url, [json_req("POST", "/api/leads/import", headers, leads(50, batch0))], 1)
    in_process(
        closed_loop,
        base_url,
        [json_req("POST", "/bench/baseline/leads/import", headers, leads(50, batch0 + 1))],
        1,
    )
    wait_outbox_drained(ctx)
    prober = Prober(base_url, health, PROBE_INTERVAL)
    time.sleep(IDLE_SECONDS)
    idle = prober.stop().latencies
    out: dict[str, Any] = {"idle_p99": max(p99(idle), 1e-6), "keel_p99": [], "baseline_p99": [], "keel_s": [],
                           "baseline_s": [], "statuses": []}  # fmt: skip
    for rep in range(repeats):
        for who, path in (("keel", "/api/leads/import"), ("baseline", "/bench/baseline/leads/import")):
            lat, took, status = during(path, batch0 + 2 + 2 * rep + (who == "baseline"))
            out[f"{who}_p99"].append(p99(lat))
            out[f"{who}_s"].append(took)
            out["statuses"].append(status)
    return out


def row(label: str, m: dict[str, Any], n: int) -> Result:
    idle, k, b = m["idle_p99"], median(m["keel_p99"]), median(m["baseline_p99"])
    bad = [s for s in m["statuses"] if s != 201]
    return Result(
        f"lead import ({n:,} rows): /api/health p99 during ÷ idle{label}",
        f"{ms(k)} (idle {ms(idle)}) = {k / idle:,.1f}×",
        f"{ms(b)} = {b / idle:,.1f}×",
        k / idle,
        "Keel ≤ 3× idle",
        k / idle <= 3.0,
        (f"non-201 imports: {bad}; " if bad else "")
        + f"import took {ms(median(m['keel_s']))} (Keel) vs {ms(median(m['baseline_s']))} (baseline)",
        {k: v for k, v in m.items() if k != "statuses"},
    )


def run(ctx: Context) -> list[Result]:
    from bench.server import served

    with ctx.connect() as conn:
        clinic = datagen.create_clinic(conn, "import")
    headers = ctx.headers(clinic.claims("admin"))
    n = ctx.sizes.import_rows
    rows = [row("", measure(ctx, ctx.base_url, headers, 0), n)]
    if ctx.mode != "full":
        return rows
    # The same on plain `keel serve` (full runs only): the outbox dispatcher shares the API's event loop.
    wait_outbox_drained(ctx)
    with served(ctx.overrides, workers_in_process=True) as base_url:
        rows.append(row(" — workers in the API process", measure(ctx, base_url, headers, 50), n))
    return rows

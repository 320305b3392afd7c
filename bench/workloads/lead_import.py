"""Lead import: `/api/health` p99 while 10,000 leads are imported, vs. idle.

Keel's `POST /api/leads/import` validates and encrypts in a process pool; the baseline route (seed
§3.2) does the same work on the event loop. A probe process sends `GET /api/health` every 10 ms,
open loop (on schedule, whether or not earlier probes have answered), while each import runs; the
figure is the probe's p99 during the import over its p99 when the server is idle (DESIGN §10: ≤ 3×).
"""

from __future__ import annotations

import time

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


def run(ctx: Context) -> list[Result]:
    n = ctx.sizes.import_rows
    repeats = 2 if ctx.mode == "full" else 1
    with ctx.connect() as conn:
        clinic = datagen.create_clinic(conn, "import")
    headers = ctx.headers(clinic.claims("admin"))
    health = Req("GET", "/api/health")

    def probe_idle() -> list[float]:
        prober = Prober(ctx.base_url, health, PROBE_INTERVAL)
        time.sleep(IDLE_SECONDS)
        return prober.stop().latencies

    def during(path: str, batch: int) -> tuple[list[float], float, int]:
        body = json_req("POST", path, headers, leads(n, batch))
        prober = Prober(ctx.base_url, health, PROBE_INTERVAL)
        result = in_process(closed_loop, ctx.base_url, [body], 1)
        probed = prober.stop()
        status = next(iter(result.statuses))
        return probed.latencies, result.latencies[0], status

    # Warm-up: the import pool's processes start on first use; one small import each way.
    in_process(closed_loop, ctx.base_url, [json_req("POST", "/api/leads/import", headers, leads(50, 90))], 1)
    in_process(closed_loop, ctx.base_url, [json_req("POST", "/bench/baseline/leads/import", headers, leads(50, 91))], 1)

    idle = probe_idle()
    keel_p99, base_p99, keel_took, base_took, statuses = [], [], [], [], []
    for rep in range(repeats):
        lat, took, status = during("/api/leads/import", 2 * rep)
        keel_p99.append(p99(lat))
        keel_took.append(took)
        statuses.append(status)
        lat, took, status = during("/bench/baseline/leads/import", 2 * rep + 1)
        base_p99.append(p99(lat))
        base_took.append(took)
        statuses.append(status)
    idle_p99 = max(p99(idle), 1e-6)
    k, b = median(keel_p99), median(base_p99)
    bad = [s for s in statuses if s != 201]
    return [
        Result(
            f"lead import ({n:,} rows): /api/health p99 during ÷ idle",
            f"{ms(k)} (idle {ms(idle_p99)}) = {k / idle_p99:,.1f}×",
            f"{ms(b)} = {b / idle_p99:,.1f}×",
            k / idle_p99,
            "Keel ≤ 3× idle",
            k / idle_p99 <= 3.0,
            (f"non-201 imports: {bad}; " if bad else "")
            + f"import took {ms(median(keel_took))} (Keel) vs {ms(median(base_took))} (baseline)",
            {"idle_p99": idle_p99, "keel_p99": keel_p99, "baseline_p99": base_p99,
             "keel_import_s": keel_took, "baseline_import_s": base_took},
        )  # fmt: skip
    ]

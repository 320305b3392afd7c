"""Refresh while reading: summary p99 during `CALL clinic.refresh_control_tower()` vs. idle.

The large control-tower clinic's summary is read by a probe process every 20 ms (open loop); the figure is the
p99 while the refresh runs over its p99 idle (DESIGN §10: ≤ 3×). The baseline is the plain,
non-concurrent refresh of the same views (`bench/baselines/refresh.py`), during which reads queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.baselines.refresh import plain_refresh
from bench.loadgen import Prober, Req
from bench.runner import Context, Result
from bench.stats import median, p99
from bench.workloads.common import ms
from bench.workloads.control_tower import SUMMARY, build

PROBE_INTERVAL = 0.02
IDLE_SECONDS = 3.0


def run(ctx: Context) -> list[Result]:
    clinic = build(ctx)["large"]
    req = Req("GET", SUMMARY, ctx.headers(clinic.claims("admin"), json_body=False))
    repeats = 2 if ctx.mode == "full" else 1

    def idle() -> list[float]:
        prober = Prober(ctx.base_url, req, PROBE_INTERVAL)
        time.sleep(IDLE_SECONDS)
        return prober.stop().latencies

    def during(refresh: Callable[[Any], None]) -> tuple[list[float], float]:
        with ctx.connect() as conn:
            prober = Prober(ctx.base_url, req, PROBE_INTERVAL)
            time.sleep(0.2)
            t0 = time.perf_counter()
            refresh(conn)
            took = time.perf_counter() - t0
            time.sleep(0.1)
            result = prober.stop()
        bad = {code: k for code, k in result.statuses.items() if code != 200}
        if bad:
            raise RuntimeError(f"summary reads answered {bad} during a refresh")
        return result.latencies, took

    def concurrent(conn: Any) -> None:
        conn.execute("CALL clinic.refresh_control_tower()")

    idle_lat = idle()
    keel_p99, base_p99, keel_took, base_took = [], [], [], []
    for _ in range(repeats):
        lat, took = during(concurrent)
        keel_p99.append(p99(lat))
        keel_took.append(took)
        lat, took = during(plain_refresh)
        base_p99.append(p99(lat))
        base_took.append(took)
    base = max(p99(idle_lat), 1e-6)
    k, b = median(keel_p99), median(base_p99)
    return [
        Result(
            f"refresh ({ctx.sizes.ct_large:,} rows): summary p99 during ÷ idle",
            f"{ms(k)} (idle {ms(base)}) = {k / base:,.1f}×",
            f"{ms(b)} = {b / base:,.1f}×",
            k / base,
            "Keel ≤ 3× idle",
            k / base <= 3.0,
            f"refresh took {median(keel_took):,.2f} s concurrently vs {median(base_took):,.2f} s plain",
            {
                "idle_p99": base,
                "keel_p99": keel_p99,
                "baseline_p99": base_p99,
                "keel_refresh_s": keel_took,
                "baseline_refresh_s": base_took,
            },
        )
    ]

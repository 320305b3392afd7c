"""Control-tower read: `GET /api/control-tower/summary` at 1k and 1M appointments+leads vs. fetch-all.

Keel reads the materialized views (refreshed once after loading). The baseline route (seed §2.2)
downloads every lead, patient and appointment of the clinic and aggregates in Python. Both clinics
live in one database, so the 1k clinic is read with the 1M rows present. One request at a time;
median latency (p99 in the data).
"""

from __future__ import annotations

from typing import Any

from bench import datagen
from bench.loadgen import Req, closed_loop, in_process
from bench.runner import Context, Result
from bench.stats import median, p99
from bench.workloads.common import ms, ratio_result

SUMMARY = "/api/control-tower/summary"
BASELINE = "/bench/baseline/control-tower/summary"


def build(ctx: Context) -> dict[str, datagen.Clinic]:
    """Both clinics (half leads, half appointments each), refreshed views; built once per run."""
    if "control_tower" in ctx.cache:
        return ctx.cache["control_tower"]  # type: ignore[no-any-return]
    clinics = {}
    with ctx.connect() as conn:
        for label, total, doctors, patients in (
            ("small", ctx.sizes.ct_small, 4, max(50, ctx.sizes.ct_small // 10)),
            ("large", ctx.sizes.ct_large, 40, max(50, ctx.sizes.ct_large // 50)),
        ):
            clinic = datagen.create_clinic(conn, f"control tower {label}")
            datagen.add_doctors(conn, clinic, doctors)
            datagen.add_leads(conn, clinic, total // 2, days=3 * 365)
            datagen.add_patients(conn, clinic, patients)
            datagen.add_appointments(conn, clinic, total - total // 2)
            clinics[label] = clinic
        conn.execute("VACUUM ANALYZE clinic.leads")
        conn.execute("VACUUM ANALYZE clinic.patients")
        conn.execute("VACUUM ANALYZE clinic.appointments")
        conn.execute("CALL clinic.refresh_control_tower()")
    ctx.cache["control_tower"] = clinics
    return clinics


def read(ctx: Context, path: str, clinic: datagen.Clinic, count: int) -> list[float]:
    headers = ctx.headers(clinic.claims("admin"), json_body=False)
    result = in_process(closed_loop, ctx.base_url, [Req("GET", path, headers)] * count, 1)
    bad = {code: k for code, k in result.statuses.items() if code != 200}
    if bad:
        raise RuntimeError(f"{path}: non-200 answers {bad}")
    return list(result.latencies)


def run(ctx: Context) -> list[Result]:
    clinics = build(ctx)
    reps = ctx.sizes.read_repeats
    slow_reps = 2  # the fetch-everything read of the large clinic
    lat: dict[tuple[str, str], list[float]] = {}
    for label in ("small", "large"):
        read(ctx, SUMMARY, clinics[label], 5)  # warm-up
    read(ctx, BASELINE, clinics["small"], 2)
    for label in ("small", "large"):
        lat[("keel", label)] = read(ctx, SUMMARY, clinics[label], reps)
        lat[("base", label)] = read(ctx, BASELINE, clinics[label], reps if label == "small" else slow_reps)
    small, large = f"{ctx.sizes.ct_small:,}", f"{ctx.sizes.ct_large:,}"
    data: dict[str, Any] = {f"{who}@{label}": v for (who, label), v in lat.items()}
    k_small, k_large = median(lat[("keel", "small")]), median(lat[("keel", "large")])
    return [
        ratio_result(f"control tower read, {small} rows", k_small, median(lat[("base", "small")]), fmt=ms,
                     target="(informational)", higher_is_better=False,
                     note=f"Keel p99 {ms(p99(lat[('keel', 'small')]))}"),
        ratio_result(f"control tower read, {large} rows", k_large, median(lat[("base", "large")]), fmt=ms,
                     target="≥ 100× faster", minimum=100.0, higher_is_better=False,
                     note=f"Keel p99 {ms(p99(lat[('keel', 'large')]))}", data=data),
        Result(f"control tower read time at {large} ÷ at {small}", f"{k_large / k_small:,.2f}×",
               f"{median(lat[('base', 'large')]) / median(lat[('base', 'small')]):,.0f}×", k_large / k_small,
               "Keel ≤ 1.2×", k_large / k_small <= 1.2),
    ]  # fmt: skip

"""Booking: `POST /api/appointments` (and `clinic.book_appointment` alone) vs. three round trips.

Keel: one call; the snapshot trigger copies patient and doctor in. Baseline (seed §2.1): read the
patient, read the doctor, insert with the copied fields — with the snapshot trigger disabled while it
runs, so the baseline does not pay for Keel's trigger on top of its own copying. Throughput at
concurrency 16 (closed loop), median of interleaved repetitions; every request books a distinct slot.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import AbstractContextManager
from typing import Any

from api.db import API_ROLE
from bench import datagen
from bench.baselines.booking import three_round_trips
from bench.loadgen import closed_loop, direct_sql, in_process
from bench.runner import Context, Result
from bench.workloads.common import alternate, json_req, med, per_s, ratio_result, slots, triggers_off

DOCTORS = 16
PATIENTS = 500


def snapshot_trigger_disabled(ctx: Context) -> AbstractContextManager[None]:
    """The "before" world had no snapshot trigger: switch it off for the baseline's runs only."""
    return triggers_off(ctx, [("clinic.appointments", "appointments_10_snapshots")])


def run(ctx: Context) -> list[Result]:
    n, conc = ctx.sizes.booking_requests, ctx.sizes.concurrency
    with ctx.connect() as conn:
        clinic = datagen.create_clinic(conn, "booking")
        datagen.add_doctors(conn, clinic, DOCTORS)
        datagen.add_patients(conn, clinic, PATIENTS, keep_ids=PATIENTS)
        datagen.analyze(conn, "clinic.staff", "clinic.patients", "clinic.appointments")
    claims = clinic.claims("front_desk")
    headers = ctx.headers(claims)
    per_rep = max(conc, n // ctx.sizes.repeats)
    # Disjoint ranges of days: HTTP Keel and baseline, SQL Keel and baseline (twice), plus warm-up.
    all_slots = slots(
        clinic.doctor_ids,
        per_rep * ctx.sizes.repeats * 6 + 4 * conc * 2,
        start_day=dt.date.today() + dt.timedelta(days=30),
    )
    for i, item in enumerate(all_slots):
        item["patient_id"] = clinic.patient_ids[(i * 7) % len(clinic.patient_ids)]
    it = iter(all_slots)

    def take(k: int) -> list[dict[str, Any]]:
        return [next(it) for _ in range(k)]

    def http(path: str, items: list[dict[str, Any]]) -> Any:
        return in_process(
            closed_loop, ctx.base_url, [json_req("POST", path, headers, x) for x in items], conc
        )

    def sql_keel(items: list[dict[str, Any]]) -> Any:
        return in_process(
            direct_sql, ctx.admin_url, {"claims": json.dumps(claims), "role": API_ROLE, "timeout": "5000"},
            "SELECT clinic.book_appointment(%s::jsonb)", [(json.dumps(x),) for x in items], conc,
        )  # fmt: skip

    def sql_base(items: list[dict[str, Any]]) -> Any:
        return in_process(three_round_trips, ctx.admin_url, claims, items, conc)

    errors: list[str] = []

    def checked(result: Any, what: str) -> float:
        bad = {code: k for code, k in result.statuses.items() if code not in (200, 201)}
        if bad:
            errors.append(f"{what}: statuses {bad}")
        return float(result.throughput)

    # Warm-up: both paths, both routes.
    http("/api/appointments", take(conc * 2))
    sql_keel(take(conc * 2))
    with snapshot_trigger_disabled(ctx):
        http("/bench/baseline/appointments", take(conc * 2))
        sql_base(take(conc * 2))

    def keel_http(_: int) -> float:
        return checked(http("/api/appointments", take(per_rep)), "keel http")

    def base_http(_: int) -> float:
        with snapshot_trigger_disabled(ctx):
            return checked(http("/bench/baseline/appointments", take(per_rep)), "baseline http")

    def keel_sql(_: int) -> float:
        return checked(sql_keel(take(per_rep)), "keel sql")

    def base_sql(_: int) -> float:
        with snapshot_trigger_disabled(ctx):
            return checked(sql_base(take(per_rep)), "baseline sql")

    kh, bh = alternate(ctx.sizes.repeats, keel_http, base_http)
    ks, bs = alternate(ctx.sizes.repeats, keel_sql, base_sql)
    # Diagnostic (bench/README.md): the same SQL comparison with the outbox trigger (event row, and the
    # NOTIFY when no dispatcher is awake) switched off on both sides.
    with triggers_off(ctx, [("clinic.appointments", "appointments_outbox_booked")]):
        ko, bo = alternate(ctx.sizes.repeats, keel_sql, base_sql)
    note = "; ".join(errors)
    return [
        ratio_result(f"booking: POST /api/appointments, c={conc}", med(kh), med(bh), fmt=per_s,
                     target="≥ 2× throughput", minimum=2.0, note=note, data={"keel": kh, "baseline": bh}),
        ratio_result(f"booking: SQL call alone, c={conc}", med(ks), med(bs), fmt=per_s,
                     target="≥ 2× throughput", minimum=2.0, data={"keel": ks, "baseline": bs}),
        ratio_result(f"booking: SQL alone, outbox trigger off (diagnostic), c={conc}", med(ko), med(bo),
                     fmt=per_s, target="(shows the outbox's cost)", data={"keel": ko, "baseline": bo}),
    ]  # fmt: skip

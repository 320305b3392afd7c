"""Scale: `GET /api/appointments/{id}` and booking throughput with 1, 2 and 4 API processes behind one
port (`keel serve --workers N --no-workers`), and the most processes through PgBouncer (transaction
mode) vs direct — ratios over the one-process figure, in one run (DESIGN §11).

Each configuration is a real `keel serve` on the bench database, each process with a pool of
`POOL_PER_PROCESS`; the closed-loop load (concurrency 2× the bench's) comes from the bench's load
process. PgBouncer is Debian's (`pgbouncer` on PATH or /usr/sbin), started for the run in front of the
bench's server (tests/pg_servers.py). The quick and tiny sizes stop at 2 processes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator

from psycopg.conninfo import conninfo_to_dict

from bench import datagen
from bench.loadgen import Req, closed_loop, in_process
from bench.runner import Context, Result
from bench.server import free_port
from bench.workloads.common import json_req, med, per_s, ratio_result, slots
from tests.database import url_for_database
from tests.pg_servers import pgbouncer, stop_process, wait_healthy

# 4 processes × 12 connections stay under the embedded server's 100, beside the bench's own app and worker.
POOL_PER_PROCESS = 12
DOCTORS = 16


@contextlib.contextmanager
def keel_serve(
    ctx: Context, processes: int, database_url: str, direct_url: str | None = None
) -> Iterator[str]:
    """`keel serve --workers N --no-workers` on the bench database; yields its base URL."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KEEL_", "DATABASE_"))}
    env.update(
        DATABASE_URL=database_url,
        KEEL_JWT_SECRET=str(ctx.settings.jwt_secret),
        KEEL_ENCRYPTION_KEYS=str(ctx.settings.encryption_keys),
        KEEL_LOG_LEVEL="WARNING",
        KEEL_POOL_MAX_SIZE=str(POOL_PER_PROCESS),
    )
    if direct_url:
        env["DATABASE_DIRECT_URL"] = direct_url
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(processes),
            "--no-workers",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base_url, server, 120)
        yield base_url
    finally:
        stop_process(server, 30)


def run(ctx: Context) -> list[Result]:
    conc = ctx.sizes.concurrency * 2
    n_get, n_book = ctx.sizes.overhead_requests, ctx.sizes.booking_requests
    # A fourth process bought nothing over two on the 2-core box (bench/README.md, Scale): the quick
    # and tiny runs stop at 2, which also puts PgBouncer in front of 2 processes.
    counts = (1, 2, 4) if ctx.mode == "full" else (1, 2)
    repeats = ctx.sizes.repeats if ctx.mode == "full" else min(ctx.sizes.repeats, 2)
    with ctx.connect() as conn:
        clinic = datagen.create_clinic(conn, "scale")
        datagen.add_doctors(conn, clinic, DOCTORS)
        datagen.add_patients(conn, clinic, 200, keep_ids=200)
        datagen.add_appointments(conn, clinic, 400)
        datagen.analyze(conn, "clinic.staff", "clinic.patients", "clinic.appointments")
        ids = [
            str(r[0])
            for r in conn.execute("SELECT id FROM clinic.appointments WHERE clinic_id = %s", (clinic.id,))
        ]
    claims = clinic.claims("front_desk")
    get_headers, post_headers = ctx.headers(claims, json_body=False), ctx.headers(claims)
    gets = [Req("GET", f"/api/appointments/{ids[i % len(ids)]}", get_headers) for i in range(n_get)]
    configs = len(counts) + 1
    booked = slots(
        clinic.doctor_ids,
        configs * repeats * (n_book + conc),
        start_day=dt.date.today() + dt.timedelta(days=400),
    )
    for i, item in enumerate(booked):
        item["patient_id"] = clinic.patient_ids[(i * 7) % len(clinic.patient_ids)]
    free = iter(booked)
    errors: list[str] = []

    def measure(base_url: str, what: str) -> tuple[float, float]:
        """(GET/s, bookings/s): medians of the repetitions, after a warm-up of each."""
        get_rates, book_rates = [], []
        in_process(closed_loop, base_url, gets[: conc * 5], conc)
        for _ in range(repeats):
            result = in_process(closed_loop, base_url, gets, conc)
            get_rates.append(result.throughput)
            bookings = [
                json_req("POST", "/api/appointments", post_headers, next(free)) for _ in range(n_book)
            ]
            booked_result = in_process(closed_loop, base_url, bookings, conc)
            book_rates.append(booked_result.throughput)
            for label, outcome, good in (("GET", result, 200), ("booking", booked_result, 201)):
                bad = {code: k for code, k in outcome.statuses.items() if code != good}
                if bad:
                    errors.append(f"{what} {label}: statuses {bad}")
        return med(get_rates), med(book_rates)

    figures: dict[str, tuple[float, float]] = {}
    for processes in counts:
        with keel_serve(ctx, processes, ctx.admin_url) as base_url:
            figures[f"{processes}"] = measure(base_url, f"{processes} processes")
    most = counts[-1]
    with pgbouncer(ctx.admin_url) as pooler:
        dbname = str(conninfo_to_dict(ctx.admin_url)["dbname"])
        with keel_serve(ctx, most, url_for_database(pooler, dbname), direct_url=ctx.admin_url) as base_url:
            figures["pgbouncer"] = measure(base_url, f"{most} processes via PgBouncer")

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    note = "; ".join(errors) or f"load average after: {load}"
    rows: list[Result] = []
    for index, label in ((0, "GET /api/appointments/{id}"), (1, "booking POST /api/appointments")):
        one = figures["1"][index]
        for processes in counts[1:]:
            rows.append(
                ratio_result(
                    f"scale: {label}, {processes} vs 1 API processes, c={conc}",
                    figures[str(processes)][index],
                    one,
                    fmt=per_s,
                    target="info: 2 cores shared with PostgreSQL and the load",
                    note=note,
                    data={"figures": figures},
                )
            )
        rows.append(
            ratio_result(
                f"scale: {label}, {most} processes, PgBouncer vs direct, c={conc}",
                figures["pgbouncer"][index],
                figures[str(most)][index],
                fmt=per_s,
                target="info: the pooler's extra hop",
                note=note,
            )
        )
    return rows

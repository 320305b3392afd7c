"""HTTP overhead: `GET /api/appointments/{id}` vs. the same transaction through psycopg directly.

Both run the statement Keel's `Database` runs — the claims/role/timeout context, then
`SELECT clinic.get_appointment(id)` — at the same concurrency from the load process. Two ratios:
API throughput over direct throughput (DESIGN §10: ≥ 0.5), and direct's CPU per call over the API's
CPU per request, which does not depend on how the machine's cores were shared. CPU per request is,
for the API, the server process's (HTTP, Litestar, psycopg); for direct, the load process's (psycopg);
on both sides plus every PostgreSQL process's (when `/proc` shows the server: a local one). The HTTP
load generator's own CPU is on neither side (it is the client; direct has none).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from api.db import API_ROLE
from bench import datagen
from bench.cpu import postmaster_pid, tree_cpu
from bench.loadgen import Req, closed_loop, direct_sql, in_process
from bench.runner import Context, Result
from bench.workloads.common import alternate, med, per_s, ratio_result


def run(ctx: Context) -> list[Result]:
    n, conc = ctx.sizes.overhead_requests, ctx.sizes.concurrency
    with ctx.connect() as conn:
        clinic = datagen.create_clinic(conn, "overhead")
        datagen.add_doctors(conn, clinic, 4)
        datagen.add_patients(conn, clinic, 100)
        datagen.add_appointments(conn, clinic, 400)
        datagen.analyze(conn, "clinic.appointments")
        ids = [
            str(r[0])
            for r in conn.execute("SELECT id FROM clinic.appointments WHERE clinic_id = %s", (clinic.id,))
        ]
        postgres = postmaster_pid(conn)
    claims = clinic.claims("front_desk")
    headers = ctx.headers(claims, json_body=False)
    reqs = [Req("GET", f"/api/appointments/{ids[i % len(ids)]}", headers) for i in range(n)]
    params = [(ids[i % len(ids)],) for i in range(n)]
    context = {"claims": json.dumps(claims), "role": API_ROLE, "timeout": "5000"}
    statuses: dict[int, int] = {}
    server = ctx.base_url.pid
    cpu: dict[str, list[dict[str, float]]] = {"keel": [], "direct": []}

    def measured(side: str, run: Callable[[], Any], client: bool) -> float:
        """Run the load; record its CPU µs per request (the client's own for direct, the server's for
        the API; PostgreSQL's on both); its throughput."""
        before = (tree_cpu(server) if server else 0.0, tree_cpu(postgres) if postgres else 0.0)
        result = run()
        app = result.cpu if client else (tree_cpu(server) - before[0] if server else 0.0)
        database = tree_cpu(postgres) - before[1] if postgres else 0.0
        cpu[side].append({"app_us": 1e6 * app / result.count, "db_us": 1e6 * database / result.count})
        return float(result.throughput)

    def api(_: int) -> float:
        def run() -> Any:
            result = in_process(closed_loop, ctx.base_url, reqs, conc)
            for code, k in result.statuses.items():
                statuses[code] = statuses.get(code, 0) + k
            return result

        return measured("keel", run, client=False)

    def direct(_: int) -> float:
        return measured(
            "direct",
            lambda: in_process(
                direct_sql, ctx.admin_url, context, "SELECT clinic.get_appointment(%s)", params, conc
            ),
            client=True,
        )

    in_process(closed_loop, ctx.base_url, reqs[: conc * 10], conc)  # warm-up
    keel, base = alternate(ctx.sizes.repeats, api, direct)
    bad = {code: k for code, k in statuses.items() if code != 200}
    per_request = {
        side: {key: med([run[key] for run in runs]) for key in ("app_us", "db_us")}
        for side, runs in cpu.items()
    }
    keel_us, direct_us = (sum(per_request[side].values()) for side in ("keel", "direct"))
    database = "incl. PostgreSQL's" if postgres else "PostgreSQL's not visible here: excluded on both sides"
    return [
        ratio_result(
            f"HTTP overhead: GET /api/appointments/{{id}} vs psycopg, c={conc}",
            med(keel),
            med(base),
            fmt=per_s,
            target="API ≥ 0.5× direct",
            minimum=0.5,
            note=f"non-200 answers: {bad}" if bad else "",
            data={"keel": keel, "direct": base},
        ),
        ratio_result(
            f"HTTP overhead: CPU per request, direct ÷ API ({database})",
            keel_us,
            direct_us,
            fmt=lambda us: f"{us:,.0f} µs",
            target="(info: throughput on equal CPU)",
            higher_is_better=False,
            note=(
                f"API: server {per_request['keel']['app_us']:,.0f} µs + PostgreSQL "
                f"{per_request['keel']['db_us']:,.0f} µs; direct: psycopg client "
                f"{per_request['direct']['app_us']:,.0f} µs + PostgreSQL {per_request['direct']['db_us']:,.0f} µs"
            ),
            data={"per_request_us": per_request, "runs": cpu},
        ),
    ]

"""HTTP overhead: `GET /api/appointments/{id}` vs. the same transaction through psycopg directly.

Both run the statement Keel's `Database` runs — the claims/role/timeout context, then
`SELECT clinic.get_appointment(id)` — at the same concurrency from the load process; the ratio is
API throughput over direct throughput (DESIGN §10: ≥ 0.5).
"""

from __future__ import annotations

import json

from api.db import API_ROLE
from bench import datagen
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
    claims = clinic.claims("front_desk")
    headers = ctx.headers(claims, json_body=False)
    reqs = [Req("GET", f"/api/appointments/{ids[i % len(ids)]}", headers) for i in range(n)]
    params = [(ids[i % len(ids)],) for i in range(n)]
    context = (json.dumps(claims), API_ROLE, "5000")
    statuses: dict[int, int] = {}

    def api(_: int) -> float:
        result = in_process(closed_loop, ctx.base_url, reqs, conc)
        for code, k in result.statuses.items():
            statuses[code] = statuses.get(code, 0) + k
        return float(result.throughput)

    def direct(_: int) -> float:
        result = in_process(
            direct_sql, ctx.admin_url, context, "SELECT clinic.get_appointment(%s)", params, conc
        )
        return float(result.throughput)

    in_process(closed_loop, ctx.base_url, reqs[: conc * 10], conc)  # warm-up
    keel, base = alternate(ctx.sizes.repeats, api, direct)
    bad = {code: k for code, k in statuses.items() if code != 200}
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
        )
    ]

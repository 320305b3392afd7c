"""Bulk update: 1,000 elements in one `PATCH /api/scripts/{id}/elements` vs. a per-element loop.

Keel: `callmaster.bulk_update_script_elements`, one statement. Baseline (callmaster seed, "Batch
Processing"): per element, query it, then set its fields; one commit. Both over HTTP on the same
server, one request at a time; median request time of interleaved repetitions.
"""

from __future__ import annotations

from bench import datagen
from bench.loadgen import closed_loop, in_process
from bench.runner import Context, Result
from bench.workloads.common import alternate, json_req, live_feed_off, med, ms, ratio_result


def run(ctx: Context) -> list[Result]:
    n, repeats = ctx.sizes.bulk_elements, ctx.sizes.bulk_repeats
    with ctx.connect() as conn:
        owner = datagen.create_owner(conn)
        script_id = datagen.create_script(conn, owner, n)
        datagen.analyze(conn, "callmaster.script_elements")
        ids = [str(r[0]) for r in conn.execute(
            "SELECT id FROM callmaster.script_elements WHERE script_id = %s ORDER BY sequence", (script_id,))]  # fmt: skip
    headers = ctx.headers(owner.claims())
    statuses: dict[int, int] = {}

    def body(rep: int) -> list[dict[str, object]]:
        return [
            {"id": eid, "description": f"Rev {rep} of element {i}", "time_offset_ms": 1000 * i + rep,
             "priority": ("critical", "high", "normal", "low", "optional")[(i + rep) % 5]}
            for i, eid in enumerate(ids)
        ]  # fmt: skip

    def send(path: str, rep: int) -> float:
        result = in_process(closed_loop, ctx.base_url, [json_req("PATCH", path, headers, body(rep))], 1)
        for code, k in result.statuses.items():
            statuses[code] = statuses.get(code, 0) + k
        return float(result.latencies[0])

    def send_before(rep: int) -> float:
        with live_feed_off(ctx):  # the "before" had no change feed; Keel's update pays for its own
            return send(base_path, rep)

    keel_path = f"/api/scripts/{script_id}/elements"
    base_path = f"/bench/baseline/scripts/{script_id}/elements"
    send(keel_path, 100)  # warm-up
    send_before(101)
    keel, base = alternate(repeats, lambda r: send(keel_path, 2 * r), lambda r: send_before(2 * r + 1))
    bad = {code: k for code, k in statuses.items() if code != 200}
    return [
        ratio_result(f"bulk update: {n:,} elements, one request", med(keel), med(base), fmt=ms,
                     target="≥ 20× faster", minimum=20.0, higher_is_better=False,
                     note=f"non-200 answers: {bad}" if bad else "", data={"keel_s": keel, "baseline_s": base}),
    ]  # fmt: skip

"""Duplication: `callmaster.duplicate_script` at 1k and 10k elements vs. the per-row copy with an id map.

Both through psycopg on the DBA's server connection: Keel's call in a transaction set up as the API
sets it (owner's claims, role keel_api); the baseline as `bench/baselines/duplicate.py` describes.
Scripts carry every supporting row (equipment, crew, performers, rules, groups; nested parents).
Each copy is deleted again after it is timed, so every repetition copies into the same table sizes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg

from api.db import API_ROLE, CONTEXT_SQL
from bench import datagen
from bench.baselines.duplicate import duplicate_script as baseline_duplicate
from bench.runner import Context, Result
from bench.workloads.common import alternate, delete_copies, live_feed_off, med, ms, ratio_result


def keel_duplicate(conn: psycopg.Connection[Any], claims: dict[str, Any], script_id: str) -> str:
    with conn.transaction():
        conn.execute(CONTEXT_SQL, {"claims": json.dumps(claims), "role": API_ROLE, "timeout": "600000"})
        row = conn.execute("SELECT callmaster.duplicate_script(%s)", (script_id,)).fetchone()
    assert row is not None
    return str(row[0])


def run(ctx: Context) -> list[Result]:
    sizes = (ctx.sizes.dup_small, ctx.sizes.dup_large)
    repeats = ctx.sizes.dup_repeats
    with ctx.connect() as conn:
        owner = datagen.create_owner(conn)
        scripts = {n: datagen.create_script(conn, owner, n) for n in sizes}
        datagen.analyze(conn, "callmaster.script_elements", "callmaster.script_element_groups",
                        "callmaster.script_element_equipment")  # fmt: skip
    claims = owner.claims()
    medians: dict[int, tuple[float, float]] = {}
    with psycopg.connect(ctx.admin_url) as work, ctx.connect() as dba:

        def timed(fn: Any, n: int) -> float:
            t0 = time.perf_counter()
            copy = fn(n)
            took = time.perf_counter() - t0
            count = dba.execute(
                "SELECT count(*) FROM callmaster.script_elements WHERE script_id = %s", (copy,)
            ).fetchone()
            if count is None or count[0] != n:
                raise RuntimeError(f"copy of {n} elements has {count and count[0]}")
            delete_copies(dba, "id = %(copy)s", {"copy": copy})
            return took

        def keel_copy(n: int) -> str:
            return keel_duplicate(work, claims, scripts[n])

        def base_copy(n: int) -> str:
            return baseline_duplicate(work, scripts[n])

        def base_timed(n: int) -> float:
            with live_feed_off(ctx):  # the "before" had no change feed; Keel's copies pay for theirs
                return timed(base_copy, n)

        for n in sizes:
            # Warm-up of Keel's one call; the baseline's per-row copy warms up within its first rows.
            timed(keel_copy, n)
            keel, base = alternate(repeats, lambda _, n=n: timed(keel_copy, n), lambda _, n=n: base_timed(n))
            medians[n] = (med(keel), med(base))
    small, large = sizes
    rows = [
        ratio_result(f"duplication: {n:,} elements", medians[n][0], medians[n][1], fmt=ms,
                     target="≥ 30× faster" if n == large else "(informational)",
                     minimum=30.0 if n == large else None, higher_is_better=False)
        for n in sizes
    ]  # fmt: skip
    k_scale = medians[large][0] / medians[small][0]
    b_scale = medians[large][1] / medians[small][1]
    factor = large // small
    rows.append(
        Result(
            f"duplication: time at {large:,} ÷ at {small:,} ({factor}× elements)",
            f"{k_scale:,.2f}×",
            f"{b_scale:,.2f}×",
            k_scale,
            f"Keel ≤ {factor * 1.2:g}×",
            k_scale <= factor * 1.2,
        )
    )
    return rows

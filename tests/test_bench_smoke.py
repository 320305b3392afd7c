"""The bench cannot rot: every workload runs once at tiny size and produces its figures.

No timing is asserted — on a shared two-core machine a timing assertion would only measure the
neighbours. What is asserted: each workload ran to the end, Keel and baseline each produced a figure,
and every row carries a target.
"""

from __future__ import annotations

import os

from bench.runner import WORKLOADS, Sizes, run_workloads


def test_every_workload_produces_figures() -> None:
    server = os.environ.get("KEEL_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    results, info = run_workloads(list(WORKLOADS), Sizes.tiny(), "tiny", lambda _msg: None, server)

    assert info["postgresql"] and info["nproc"]
    errors = {r.workload: r.note for r in results if r.keel == "error"}
    assert not errors, errors
    prefixes = {
        "booking": "booking:",
        "http_overhead": "HTTP overhead",
        "bulk_update": "bulk update",
        "duplication": "duplication",
        "chat": "chat:",
        "lead_import": "lead import",
        "control_tower": "control tower read",
        "refresh": "refresh",
        "references": "v2 ",
        "scale": "scale:",
        "live": "live",
    }
    for name in WORKLOADS:
        rows = [r for r in results if r.workload.startswith(prefixes[name])]
        assert rows, f"workload {name} produced no rows"
        for row in rows:
            assert row.keel and row.baseline and row.target, row
            assert row.ratio is not None and row.ratio > 0, row

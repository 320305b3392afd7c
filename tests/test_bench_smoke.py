"""The bench cannot rot: every workload runs once at tiny size and produces its figures.

No timing is asserted — on a shared two-core machine a timing assertion would only measure the
neighbours. What is asserted: each workload ran to the end, Keel and baseline each produced a figure,
and every row carries a target.
"""

from __future__ import annotations

import os

import pytest

from bench.runner import WORKLOADS, Sizes, run_workloads

PREFIXES = {
    "booking": "booking:",
    "http_overhead": "HTTP overhead",
    "bulk_update": "bulk update",
    "duplication": "duplication",
    "chat": "chat:",
    "lead_import": "lead import",
    "control_tower": "control tower read",
    "refresh": "refresh",
    "scale": "scale:",
    "live": "live",
}
SEVERAL_PROCESSES = ("scale",)
"""Workloads that start `keel serve --workers N` servers: run once per CI run, with the other
multiprocess tests (the PgBouncer leg), not on both legs."""


def assert_every_workload_produces_figures(names: list[str]) -> None:
    server = os.environ.get("KEEL_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    results, info = run_workloads(names, Sizes.tiny(), "tiny", lambda _msg: None, server)

    assert info["postgresql"] and info["nproc"]
    errors = {r.workload: r.note for r in results if r.keel == "error"}
    assert not errors, errors
    for name in names:
        rows = [r for r in results if r.workload.startswith(PREFIXES[name])]
        assert rows, f"workload {name} produced no rows"
        for row in rows:
            assert row.keel and row.baseline and row.target, row
            assert row.ratio is not None and row.ratio > 0, row


def test_every_workload_produces_figures() -> None:
    assert set(PREFIXES) == set(WORKLOADS)
    assert_every_workload_produces_figures([name for name in WORKLOADS if name not in SEVERAL_PROCESSES])


@pytest.mark.multiprocess
def test_every_multiprocess_workload_produces_figures() -> None:
    assert_every_workload_produces_figures([name for name in WORKLOADS if name in SEVERAL_PROCESSES])

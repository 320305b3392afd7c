"""`keel refresh-metrics`: the cron entry point that refreshes the control-tower views.

It runs `CALL clinic.refresh_control_tower()` on its own connection (in autocommit: the procedure commits
between views) and writes exactly one log line with the outcome and the duration. Exit status: 0 when the
views were refreshed or another run was already refreshing them (skipped), 1 when the refresh failed or
the database could not be reached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

import click
import psycopg

from api.cli_context import database_url, load_settings
from api.errors import describe_db_error

log = logging.getLogger("keel.refresh_metrics")

REFRESH = "CALL clinic.refresh_control_tower()"


@dataclass(frozen=True)
class RefreshResult:
    outcome: str
    duration_ms: float
    detail: str


def refresh_control_tower(url: str, *, application_name: str = "keel-refresh-metrics") -> RefreshResult:
    """Run one refresh; raises psycopg.Error when it fails (the run is logged failed in the database)."""
    with psycopg.connect(url, autocommit=True, application_name=application_name) as conn:
        row = conn.execute(REFRESH).fetchone()
    if row is None:  # a CALL of a procedure with INOUT arguments always answers one row
        raise RuntimeError("clinic.refresh_control_tower() answered no row")
    outcome, duration, detail = row
    return RefreshResult(
        str(outcome), float(duration if duration is not None else Decimal(0)), str(detail or "")
    )


@click.command("refresh-metrics")
def refresh_metrics() -> None:
    """Refresh the control-tower materialized views (run me from cron every few minutes).

    Overlapping runs do not pile up: a run that finds another one refreshing logs "skipped" and exits 0.
    Exits 1 when the refresh failed (details in keel.metrics_refresh_log) or the database is unreachable.
    """
    settings = load_settings()
    try:
        with database_url(settings) as url:
            result = refresh_control_tower(url)
    except psycopg.Error as exc:
        log.error(
            "refresh-metrics failed: %s",
            describe_db_error(exc),
            extra={"outcome": "failed", "sqlstate": exc.sqlstate},
        )
        raise SystemExit(1) from exc
    log.info(
        "refresh-metrics %s in %.1f ms%s",
        result.outcome,
        result.duration_ms,
        f" ({result.detail})" if result.outcome == "skipped" else "",
        extra={"outcome": result.outcome, "duration_ms": result.duration_ms},
    )

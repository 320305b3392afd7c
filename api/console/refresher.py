"""Scheduled control-tower refresh, run by `keel serve` (and `keel worker`): KEEL_REFRESH_INTERVAL.

Every process runs this loop; before refreshing, each asks the database whether a refresh ran within the
interval (`clinic.control_tower_refresh_due`), so one process refreshes per interval however many run.
Two that ask at the same instant are kept apart by the procedure's advisory lock (the second is logged
`skipped`). The refresh needs a login that may act as keel_owner (the embedded server's does); otherwise
each run is logged failed with 42501 and cron/pg_cron should be used with KEEL_REFRESH_INTERVAL=0.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

import psycopg

from api.clinic.metrics_cli import refresh_control_tower
from api.db import Database
from api.errors import redacted
from api.settings import Settings

log = logging.getLogger(__name__)

DUE = "SELECT clinic.control_tower_refresh_due(%(interval)s) AS due"


async def refresh_if_due(settings: Settings, db: Database) -> str | None:
    """Refresh when no run happened within the interval; the outcome, or None when not due."""
    interval = timedelta(seconds=settings.refresh_interval)
    async with db.pool.connection() as conn:
        row = await (await conn.execute(DUE, {"interval": interval})).fetchone()
    if not row or not row["due"]:
        return None
    result = await asyncio.to_thread(
        refresh_control_tower, db.pool.conninfo, application_name="keel-scheduled-refresh"
    )
    log.info(
        "scheduled refresh %s in %.1f ms",
        result.outcome,
        result.duration_ms,
        extra={"outcome": result.outcome, "duration_ms": result.duration_ms},
    )
    return result.outcome


async def run(settings: Settings, db: Database, stop: asyncio.Event) -> None:
    """Worker entry point (api.workers.WORKERS); idles until `stop` when KEEL_REFRESH_INTERVAL is 0
    (returning early would make the supervisor restart it in a busy loop)."""
    if settings.refresh_interval <= 0:
        await stop.wait()
        return
    while not stop.is_set():
        try:
            await refresh_if_due(settings, db)
        except psycopg.Error as exc:
            log.warning("scheduled refresh failed: %s", redacted(exc), extra={"sqlstate": exc.sqlstate})
        # Jitter, so processes started together do not ask at the same instant.
        pause = settings.refresh_interval * random.uniform(0.9, 1.1)
        try:
            await asyncio.wait_for(stop.wait(), timeout=max(pause, 1.0))
        except TimeoutError:
            pass

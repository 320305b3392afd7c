"""Housekeeping worker: prunes replay-protection records (idempotency keys, webhook ids) hourly."""

from __future__ import annotations

import asyncio
import logging

from api.db import WORKER, Database
from api.settings import Settings

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 3600.0
PRUNE = "SELECT * FROM keel.prune_replay_records()"


async def run(settings: Settings, db: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        row = await db.fetch_one(WORKER, PRUNE)
        if row and any(row.values()):
            log.info("pruned replay records", extra=row)
        try:
            await asyncio.wait_for(stop.wait(), timeout=INTERVAL_SECONDS)
        except TimeoutError:
            pass

"""Background workers: run in-process by `keel serve`, or alone by `keel worker`.

Each entry of `WORKERS` names an `async def run(settings, db, stop)` coroutine that returns once
`stop` is set. Workers coordinate only through the database (`FOR UPDATE SKIP LOCKED`), so any
number of processes may run them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

from api.db import Database
from api.settings import Settings

log = logging.getLogger(__name__)

WORKERS: tuple[str, ...] = (
    "api.assistant.worker:run",
    "api.outbox:run",
    "api.maintenance:run",
    "api.console.refresher:run",
)


async def run_workers(settings: Settings, db: Database, stop: asyncio.Event) -> None:
    """Run every worker until `stop` is set; a worker that crashes is logged and restarted."""

    async def supervise(target: str) -> None:
        module_name, _, func_name = target.partition(":")
        run = getattr(importlib.import_module(module_name), func_name)
        while not stop.is_set():
            try:
                await run(settings, db, stop)
            except Exception:
                log.exception("worker %s crashed; restarting in 1 s", target)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1)
                except TimeoutError:
                    pass

    await asyncio.gather(*(supervise(target) for target in WORKERS))

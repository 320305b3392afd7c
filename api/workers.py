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
from api.observability import pool_collector
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


async def run_worker_process(settings: Settings, url: str) -> None:
    """The body of `keel worker`: every worker on its own pool (a direct URL) until SIGINT/SIGTERM."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    db = Database(settings, url, name="keel-worker")
    await db.open()
    pool_collector.databases["worker"] = db
    try:
        log.info("workers running; Ctrl-C to stop")
        await run_workers(settings, db, stop)
    finally:
        pool_collector.databases.pop("worker", None)
        await db.close()


def worker_process_main(url: str) -> None:
    """Entry point of the worker process `keel serve --workers N` starts beside its API processes."""
    from api.observability import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_worker_process(settings, url))

"""The app under test, served by uvicorn in a process of its own.

The served app is Keel's own (`api.app.create_app`) with the baseline handlers of
`bench/baselines/http.py` registered beside it, so both ways answer from the same process, pool,
database and data. By default the background workers (outbox dispatcher, assistant replies) run in a
process of their own, as `keel serve --no-workers` + `keel worker` deploy them (DESIGN §7, §11);
`workers_in_process=True` serves them inside the API's event loop, as plain `keel serve` does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any, Self

import httpx

from bench.loadgen import SPAWN


class ServerUrl(str):
    """The served app's base URL, also carrying the pid of the server process (for its CPU time)."""

    pid: int | None

    def __new__(cls, url: str, pid: int | None) -> Self:
        self = super().__new__(cls, url)
        self.pid = pid
        return self

    def __reduce__(self) -> tuple[type[ServerUrl], tuple[str, int | None]]:  # passed to load processes
        return ServerUrl, (str(self), self.pid)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(overrides: dict[str, Any], port: int, workers_in_process: bool) -> None:
    """Child process: build the bench app and serve it until SIGTERM."""
    import uvicorn

    from api.observability import configure_logging
    from api.serving import server_config
    from api.settings import Settings
    from bench.baselines.http import create_bench_app

    settings = Settings.from_env(**overrides)
    configure_logging(settings.log_level, "text")
    app = create_bench_app(settings, run_workers=workers_in_process)
    uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port, access_log=False)).run()


def _work(overrides: dict[str, Any]) -> None:
    """Child process: the background workers alone, as `keel worker` runs them, until SIGTERM."""
    import asyncio

    from api.db import Database
    from api.observability import configure_logging
    from api.settings import Settings
    from api.workers import run_workers

    settings = Settings.from_env(**overrides)
    configure_logging(settings.log_level, "text")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        db = Database(settings, str(settings.database_url), name="keel-worker")
        await db.open()
        try:
            await run_workers(settings, db, stop)
        finally:
            await db.close()

    asyncio.run(main())


def _stop(process: Any) -> None:
    if process.pid is not None and process.is_alive():
        os.kill(process.pid, signal.SIGTERM)
        process.join(timeout=20)
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
            process.join(timeout=5)


def wait_healthy(process: Any, health_url: str, what: str) -> None:
    """Wait (60 s at most) until `health_url` answers 200; fail at once if `process` exits."""
    deadline = time.monotonic() + 60
    while True:
        if not process.is_alive():
            raise RuntimeError(f"{what} exited with code {process.exitcode}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {health_url} within 60 s")
        time.sleep(0.1)


@contextlib.contextmanager
def served(overrides: dict[str, Any], *, workers_in_process: bool = False) -> Iterator[ServerUrl]:
    """Start the bench app (and, unless in-process, the workers) in spawned processes; yield its base
    URL (with the server's pid); stop them (SIGTERM, then SIGKILL)."""
    port = free_port()
    # Not daemonic: the app starts its own process pool (lead import), which daemons may not.
    process = SPAWN.Process(target=_serve, args=(overrides, port, workers_in_process), daemon=False)
    process.start()
    worker = None
    if not workers_in_process:
        worker = SPAWN.Process(target=_work, args=(overrides,), daemon=False)
        worker.start()
    base_url = ServerUrl(f"http://127.0.0.1:{port}", process.pid)
    try:
        wait_healthy(process, f"{base_url}/api/health", "the bench server")
        yield base_url
    finally:
        _stop(process)
        if worker is not None:
            _stop(worker)

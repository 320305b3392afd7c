"""The app under test, served by uvicorn in a process of its own.

The served app is Keel's own (`api.app.create_app`, workers in-process as `keel serve` runs them) with
the baseline handlers of `bench/baselines/http.py` registered beside it, so both ways answer from the
same process, pool, database and data.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx

from bench.loadgen import SPAWN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(overrides: dict[str, Any], port: int) -> None:
    """Child process: build the bench app and serve it until SIGTERM."""
    import uvicorn

    from api.observability import configure_logging
    from api.settings import Settings
    from bench.baselines.http import create_bench_app

    settings = Settings.from_env(**overrides)
    configure_logging(settings.log_level, "text")
    app = create_bench_app(settings)
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", access_log=False)
    ).run()


@contextlib.contextmanager
def served(overrides: dict[str, Any]) -> Iterator[str]:
    """Start the bench app in a spawned process; yield its base URL; stop it (SIGTERM, then SIGKILL)."""
    port = free_port()
    # Not daemonic: the app starts its own process pool (lead import), which daemons may not.
    process = SPAWN.Process(target=_serve, args=(overrides, port), daemon=False)
    process.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if not process.is_alive():
                raise RuntimeError(f"the bench server exited with code {process.exitcode}")
            try:
                if httpx.get(f"{base_url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the bench server did not answer /api/health within 60 s")
            time.sleep(0.1)
        yield base_url
    finally:
        if process.pid is not None and process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
            process.join(timeout=20)
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                process.join(timeout=5)

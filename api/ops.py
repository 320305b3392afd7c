"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.plugins.prometheus import PrometheusController
from psycopg import sql

from api.auth import provide_principal
from api.deps import Db, ReadDb
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
V1_CIPHERTEXTS_SQL = "SELECT clinic.count_v1_ciphertexts() AS leads"


@get("/api/ready", tags=["ops"], summary="Readiness: database reachable and schema current")
async def ready(request: Request[Any, Any, Any], db: Db, read_db: ReadDb) -> dict[str, Any]:
    """Verifies a bearer token when one is sent, so a client can check its credentials too. With a read
    replica, `replica` tells its lag and whether dashboard reads go to it (a lagging or unreachable
    replica is no reason to stop serving: reads then go to the primary). `v1_ciphertexts` counts the
    leads `keel keys rotate` must still rewrite and says whether the API reads them meanwhile."""
    body: dict[str, Any] = {"status": "ready"}
    if isinstance(read_db, ReplicaDatabase):
        lag = await read_db.measure()
        body["replica"] = {
            "reachable": lag is not None,
            "lag_seconds": lag,
            "max_lag_seconds": read_db.settings.read_max_lag_seconds,
            "serving_reads": read_db.in_use,
        }
    if "authorization" in request.headers:
        body["authenticated_as"] = (await provide_principal(request)).sub
    try:
        async with db.pool.connection() as conn:
            row = await (await conn.execute(APPLIED_SQL)).fetchone()
            sources = (
                await (await conn.execute(SOURCES_SQL)).fetchone() if row and row["has_sources"] else None
            )
            applied = set(row["ids"] if row else [])
            pending = [mid for mid in request.app.state.migration_ids if mid not in applied]
            current = sources is not None and sources["digest"] == request.app.state.sql_digest
            v1 = None
            if current and not pending:
                v1 = await (await conn.execute(V1_CIPHERTEXTS_SQL)).fetchone()
    except Exception as exc:
        raise Problem(503, f"The database is not reachable: {exc}", headers={"Retry-After": "5"}) from exc
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

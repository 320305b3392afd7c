"""Console endpoints: the operations page's reads and retry, and the admin's refresh button.

Each answer comes from one SQL function under row-level security (sql/keel/400_console_operations.sql);
the refresh runs `CALL clinic.refresh_control_tower()`, which commits between views and so needs its own
connection, exactly as `keel refresh-metrics` does.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from api.clinic.common import require_admin
from api.clinic.metrics_cli import refresh_control_tower
from api.deps import CurrentPrincipal, Db

OVERVIEW = "SELECT keel.operations_overview(failed_limit => %(limit)s)"
RETRY = "SELECT keel.console_retry_outbox(%(id)s)"

TAGS = ["operations"]
FailedLimit = Annotated[int, QueryParameter(ge=1, le=200, description="Failed events listed (newest first)")]


class ProblemDocument(msgspec.Struct):
    """RFC 9457 problem document (application/problem+json)."""

    status: int
    title: str
    detail: str
    code: str | None = None


PROBLEM_DESCRIPTIONS = {
    400: "Bad query parameter",
    401: "Missing, expired or forged bearer token",
    403: "The token is not a clinic admin's, or the database login may not refresh (42501)",
    404: "No such event in the caller's clinic (P0002)",
    409: "The event has not failed: it is pending or delivered (55000)",
    503: "The database is unavailable or busy (Retry-After)",
    504: "The database took too long",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=ProblemDocument,
            description=PROBLEM_DESCRIPTIONS[status],
            media_type="application/problem+json",
            generate_examples=False,
        )
        for status in statuses
    }


@get(
    "/api/operations",
    tags=TAGS,
    summary="Outbox depth, failed events, assistant jobs by status, refresh log and pool use (admin)",
    responses=problems(400, 401, 403, 503, 504),
)
async def operations_overview(
    db: Db, principal: CurrentPrincipal, failed_limit: FailedLimit = 20
) -> dict[str, Any]:
    require_admin(principal, "see operations")
    document: dict[str, Any] = await db.fetch_val(principal, OVERVIEW, {"limit": failed_limit})
    stats = db.pool.get_stats()
    document["pool"] = {
        "size": stats.get("pool_size", 0),
        "available": stats.get("pool_available", 0),
        "in_use": stats.get("pool_size", 0) - stats.get("pool_available", 0),
        "waiting": stats.get("requests_waiting", 0),
        "max": db.pool.max_size,
    }
    return document


@post(
    "/api/operations/outbox/{event_id:uuid}/retry",
    tags=TAGS,
    summary="Put a failed outbox event back in the queue (admin)",
    status_code=200,
    responses=problems(401, 403, 404, 409, 503, 504),
)
async def retry_outbox_event(db: Db, principal: CurrentPrincipal, event_id: FromPath[UUID]) -> dict[str, Any]:
    require_admin(principal, "retry outbox events")
    event: dict[str, Any] = await db.fetch_val(principal, RETRY, {"id": event_id})
    return event


@post(
    "/api/control-tower/refresh",
    tags=["control tower"],
    summary="Refresh the control-tower views now (admin); skipped when a refresh is already running",
    status_code=200,
    responses=problems(401, 403, 503, 504),
)
async def refresh_now(db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    require_admin(principal, "refresh the control tower")
    result = await asyncio.to_thread(
        refresh_control_tower, db.pool.conninfo, application_name="keel-console-refresh"
    )
    return {"outcome": result.outcome, "duration_ms": result.duration_ms, "detail": result.detail}


routes: list[Any] = [operations_overview, retry_outbox_event, refresh_now]

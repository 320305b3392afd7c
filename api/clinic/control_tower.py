"""Control tower: /api/control-tower/* — the clinic's dashboard (DESIGN §6, §8).

Each endpoint is one call of a SQL function (sql/clinic/310_control_tower_reads.sql) that answers the whole
JSON document from the materialized views, on the read replica when DATABASE_READ_URL is set. Answers carry
`refreshed_at`/`stale_seconds`, `Cache-Control` and a weak `ETag`; a conditional GET whose
`If-None-Match` matches answers 304 without a body.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import date
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import QueryParameter

from api.clinic.common import require_clinic
from api.deps import CurrentPrincipal, Page, ReadDb
from api.errors import Problem

MAX_RANGE_DAYS = 366
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

# The aggregates change at most once per refresh (cron, typically every few minutes).
AGGREGATE_CACHE = "private, max-age=30, must-revalidate"
# The intervention queue is live: always revalidate (cheaply, thanks to the ETag).
LIVE_CACHE = "private, no-cache"

SUMMARY = "SELECT clinic.control_tower_summary()"
DAILY = "SELECT clinic.control_tower_daily(from_date => %(from)s, to_date => %(to)s)"
DOCTORS = "SELECT clinic.control_tower_doctors(from_date => %(from)s, to_date => %(to)s)"
DOCTORS_BY_DAY = "SELECT clinic.control_tower_doctors_by_day(from_date => %(from)s, to_date => %(to)s)"
QUEUE = (
    "SELECT clinic.control_tower_intervention_queue("
    "min_days => %(min_days)s, page_limit => %(limit)s, page_offset => %(offset)s)"
)

RANGE_HELP = (
    "YYYY-MM-DD in the clinic's timezone, included; to defaults to today, from to to - 29 days; ≤ 366 days"
)
FromParam = Annotated[
    str | None, QueryParameter(name="from", format="date", description=f"First day: {RANGE_HELP}")
]
ToParam = Annotated[str | None, QueryParameter(format="date", description=f"Last day: {RANGE_HELP}")]
ByDay = Annotated[
    bool, QueryParameter(description="Add each doctor's days: [{day, appointments, booked_minutes}]")
]
MinDays = Annotated[
    int, QueryParameter(ge=0, le=3650, description="Only leads untouched for at least this many days")
]


def parse_day(name: str, value: str | None) -> date | None:
    """A `YYYY-MM-DD` query value (None when absent); 422 when it is not a real date."""
    if value is None:
        return None
    if not DATE_PATTERN.fullmatch(value):
        raise Problem(422, f"{name} must be a date written YYYY-MM-DD, got {value!r}.", code="22007")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise Problem(422, f"{name} is not a valid date: {value!r}.", code="22008") from exc


def date_range(from_: str | None, to: str | None) -> dict[str, date | None]:
    """Validated range parameters; open ends are filled in SQL from the clinic's today."""
    first, last = parse_day("from", from_), parse_day("to", to)
    if first is not None and last is not None:
        if first > last:
            raise Problem(422, f"from ({first}) is after to ({last}).", code="22023")
        if (last - first).days + 1 > MAX_RANGE_DAYS:
            raise Problem(
                422,
                f"The range {first} .. {last} spans {(last - first).days + 1} days; at most {MAX_RANGE_DAYS} are allowed.",
                code="22023",
            )
    return {"from": first, "to": last}


def etag_for(document: dict[str, Any], volatile: Iterable[str]) -> str:
    """A weak validator over the document without its volatile keys (stale_seconds ticks every second)."""
    skip = set(volatile)
    stable = {key: value for key, value in document.items() if key not in skip}
    digest = hashlib.sha256(json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str).encode())
    return f'W/"{digest.hexdigest()[:32]}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an If-None-Match list against our tag."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))


def conditional(
    request: Request[Any, Any, Any],
    document: dict[str, Any],
    cache_control: str,
    volatile: Iterable[str] = ("stale_seconds",),
) -> Response[Any]:
    """The document with its validators, or 304 when the client's copy is still current."""
    etag = etag_for(document, volatile)
    headers = {"ETag": etag, "Cache-Control": cache_control, "Vary": "Authorization"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(content=None, status_code=304, headers=headers)
    return Response(content=document, status_code=200, headers=headers)


@get(
    "/api/control-tower/summary",
    tags=["control tower"],
    summary="This month's KPIs, funnel, lead status counts and today's appointments",
)
async def summary(
    request: Request[Any, Any, Any], read_db: ReadDb, principal: CurrentPrincipal
) -> Response[Any]:
    require_clinic(principal)
    document: dict[str, Any] = await read_db.fetch_val(principal, SUMMARY)
    return conditional(request, document, AGGREGATE_CACHE)


@get(
    "/api/control-tower/daily",
    tags=["control tower"],
    summary="Leads, appointments and patients per day of a range (≤ 366 days)",
)
async def daily(
    request: Request[Any, Any, Any],
    read_db: ReadDb,
    principal: CurrentPrincipal,
    from_: FromParam = None,
    to: ToParam = None,
) -> Response[Any]:
    require_clinic(principal)
    document: dict[str, Any] = await read_db.fetch_val(principal, DAILY, date_range(from_, to))
    return conditional(request, document, AGGREGATE_CACHE)


@get(
    "/api/control-tower/doctors",
    tags=["control tower"],
    summary="Per-doctor load over a range (≤ 366 days), optionally day by day",
)
async def doctors(
    request: Request[Any, Any, Any],
    read_db: ReadDb,
    principal: CurrentPrincipal,
    from_: FromParam = None,
    to: ToParam = None,
    by_day: ByDay = False,
) -> Response[Any]:
    require_clinic(principal)
    query = DOCTORS_BY_DAY if by_day else DOCTORS
    document: dict[str, Any] = await read_db.fetch_val(principal, query, date_range(from_, to))
    return conditional(request, document, AGGREGATE_CACHE)


@get(
    "/api/control-tower/intervention-queue",
    tags=["control tower"],
    summary="Leads stalled in the CRO queue, oldest first (live)",
)
async def intervention_queue(
    request: Request[Any, Any, Any],
    read_db: ReadDb,
    principal: CurrentPrincipal,
    pagination: Page,
    min_days: MinDays = 3,
) -> Response[Any]:
    require_clinic(principal)
    page: dict[str, Any] = await read_db.fetch_val(
        principal, QUEUE, {"min_days": min_days, "limit": pagination.limit, "offset": pagination.offset}
    )
    document = {
        **pagination.page(page["items"], page["total"]),
        "min_days": page["min_days"],
        "refreshed_at": page["refreshed_at"],
        "stale_seconds": page["stale_seconds"],
    }
    # Live data: refreshed_at is the time of the request, so it is no part of the validator.
    return conditional(request, document, LIVE_CACHE, volatile=("stale_seconds", "refreshed_at"))


routes: list[Any] = [summary, daily, doctors, intervention_queue]

"""Shows and their crew: CRUD `/api/shows`, `GET/POST/DELETE /api/shows/{id}/crew`.

Each handler is one call of a `callmaster.*` function (sql/callmaster/600_shows.sql). Owners write;
crew assigned to a show read it (403 on writes); anybody else gets 404. `DELETE /api/shows/{id}` is
`callmaster.delete_show`: the show and everything under it in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import UNSET, Meta, UnsetType
from psycopg.types.json import Jsonb

from api.callmaster.identity import merge_patch, search_term
from api.deps import CurrentPrincipal, Db, Page
from api.errors import Problem
from api.patterns import NON_BLANK

LIST_SHOWS = "SELECT callmaster.list_shows(%(limit)s, %(offset)s, %(q)s)"
GET_SHOW = "SELECT callmaster.get_show(%(id)s)"
CREATE_SHOW = "SELECT callmaster.create_show(%(data)s)"
UPDATE_SHOW = "SELECT callmaster.update_show(%(id)s, %(patch)s)"
DELETE_SHOW = "SELECT count(*) FROM callmaster.delete_show(%(id)s)"
LIST_SHOW_CREW = "SELECT callmaster.list_show_crew(%(id)s, %(limit)s, %(offset)s)"
ADD_SHOW_CREW = "SELECT callmaster.add_show_crew(%(id)s, %(data)s)"
REMOVE_SHOW_CREW_MEMBER = (
    "SELECT callmaster.remove_show_crew(%(id)s, user_id => %(user_id)s, department_id => %(department_id)s)"
)
REMOVE_SHOW_CREW_ASSIGNMENT = "SELECT callmaster.remove_show_crew(%(id)s, assignment_id => %(assignment_id)s)"

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NON_BLANK)]
Notes = Annotated[str, Meta(max_length=10_000)]
ShowRole = Annotated[str, Meta(max_length=100)]
Timestamp = Annotated[
    str,
    Meta(
        pattern=(
            r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
            r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$"
        ),
        max_length=40,
        description="YYYY-MM-DD or an ISO 8601 date-time (a zone offset is recommended)",
        examples=["2026-05-01T19:30:00+01:00"],
    ),
]
Search = Annotated[
    str | None, QueryParameter(max_length=200, description="Case-insensitive substring of the name")
]


def _check_timestamps(*values: object) -> None:
    """The pattern admits days a month does not have (2026-02-30): 422 here, before PostgreSQL's cast."""
    for value in values:
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise Problem(422, f"{value!r} is not a calendar date or time.", code="22008") from None


class ShowCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    venue_id: UUID | None = None
    show_date: Timestamp | None = None
    show_end: Timestamp | None = None
    deadline: Timestamp | None = None
    notes: Notes | None = None


class ShowPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change; `null` clears a field (name cannot be cleared)."""

    name: Name | UnsetType = UNSET
    venue_id: UUID | None | UnsetType = UNSET
    show_date: Timestamp | None | UnsetType = UNSET
    show_end: Timestamp | None | UnsetType = UNSET
    deadline: Timestamp | None | UnsetType = UNSET
    notes: Notes | None | UnsetType = UNSET


class CrewAssignmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Assign a user (yourself or one of your crew) to the show, optionally in a department."""

    user_id: UUID
    department_id: UUID | None = None
    show_role: ShowRole | None = None
    is_active: bool = True


@get("/api/shows", tags=["callmaster"], summary="The shows the requesting user owns or crews")
async def list_shows(
    db: Db, principal: CurrentPrincipal, pagination: Page, q: Search = None
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        LIST_SHOWS,
        {"limit": pagination.limit, "offset": pagination.offset, "q": search_term(q)},
    )


@get("/api/shows/{show_id:uuid}", tags=["callmaster"], summary="One show")
async def get_show(show_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_val(principal, GET_SHOW, {"id": show_id})


@post(
    "/api/shows",
    tags=["callmaster"],
    summary="Create a show",
    description="The venue, when given, must be one of the requesting user's venues (else 422).",
    status_code=201,
)
async def create_show(data: JSONBody[ShowCreate], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    _check_timestamps(data.show_date, data.show_end, data.deadline)
    return await db.fetch_val(principal, CREATE_SHOW, {"data": Jsonb(msgspec.to_builtins(data))})


@patch("/api/shows/{show_id:uuid}", tags=["callmaster"], summary="Change a show")
async def update_show(
    show_id: FromPath[UUID], data: JSONBody[ShowPatch], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    _check_timestamps(data.show_date, data.show_end, data.deadline)
    return await db.fetch_val(
        principal,
        UPDATE_SHOW,
        {"id": show_id, "patch": Jsonb(msgspec.to_builtins(merge_patch(data)))},
    )


@delete(
    "/api/shows/{show_id:uuid}",
    tags=["callmaster"],
    summary="Delete a show and everything under it",
    description="Crew assignments, scripts, elements and every supporting row go in one transaction "
    "(callmaster.delete_show, which returns per-table counts to DBAs).",
    status_code=204,
)
async def delete_show(show_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> None:
    await db.execute(principal, DELETE_SHOW, {"id": show_id})


@get("/api/shows/{show_id:uuid}/crew", tags=["callmaster"], summary="The crew assigned to a show")
async def list_show_crew(
    show_id: FromPath[UUID], db: Db, principal: CurrentPrincipal, pagination: Page
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        LIST_SHOW_CREW,
        {"id": show_id, "limit": pagination.limit, "offset": pagination.offset},
    )


@post(
    "/api/shows/{show_id:uuid}/crew",
    tags=["callmaster"],
    summary="Assign a crew member to a show",
    description="The user must be visible to you (yourself or your crew; else 422); a duplicate "
    "assignment (same user and department) → 409.",
    status_code=201,
)
async def add_show_crew(
    show_id: FromPath[UUID], data: JSONBody[CrewAssignmentCreate], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        ADD_SHOW_CREW,
        {"id": show_id, "data": Jsonb(msgspec.to_builtins(data))},
    )


@delete(
    "/api/shows/{show_id:uuid}/crew",
    tags=["callmaster"],
    summary="Remove a user's crew assignments from a show",
    description="Every assignment of `user_id` on the show, or only the one in `department_id`.",
    status_code=204,
)
async def remove_show_crew(
    show_id: FromPath[UUID],
    user_id: FromQuery[UUID],
    db: Db,
    principal: CurrentPrincipal,
    department_id: FromQuery[UUID | None] = None,
) -> None:
    await db.execute(
        principal,
        REMOVE_SHOW_CREW_MEMBER,
        {"id": show_id, "user_id": user_id, "department_id": department_id},
    )


@delete(
    "/api/shows/{show_id:uuid}/crew/{assignment_id:uuid}",
    tags=["callmaster"],
    summary="Remove one crew assignment from a show",
    status_code=204,
)
async def remove_show_crew_assignment(
    show_id: FromPath[UUID], assignment_id: FromPath[UUID], db: Db, principal: CurrentPrincipal
) -> None:
    await db.execute(
        principal,
        REMOVE_SHOW_CREW_ASSIGNMENT,
        {"id": show_id, "assignment_id": assignment_id},
    )


routes = [
    list_shows,
    get_show,
    create_show,
    update_show,
    delete_show,
    list_show_crew,
    add_show_crew,
    remove_show_crew,
    remove_show_crew_assignment,
]

"""Venues and departments: full CRUD under `/api/venues` and `/api/departments`.

Each handler is one call of a `callmaster.*` function; row-level security keeps a user to their own
rows, so another owner's venue or department answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, JSONBody, Parameter
from msgspec import UNSET, Meta, UnsetType
from psycopg.types.json import Jsonb

from api.callmaster.identity import merge_patch, search_term
from api.deps import CurrentPrincipal, Db, Page
from api.patterns import EMAIL

LIST_VENUES = "SELECT callmaster.list_venues(%(limit)s, %(offset)s, %(q)s)"
GET_VENUE = "SELECT callmaster.get_venue(%(id)s)"
CREATE_VENUE = "SELECT callmaster.create_venue(%(data)s)"
UPDATE_VENUE = "SELECT callmaster.update_venue(%(id)s, %(patch)s)"
DELETE_VENUE = "SELECT callmaster.delete_venue(%(id)s)"
LIST_DEPARTMENTS = "SELECT callmaster.list_departments(%(limit)s, %(offset)s, %(q)s)"
GET_DEPARTMENT = "SELECT callmaster.get_department(%(id)s)"
CREATE_DEPARTMENT = "SELECT callmaster.create_department(%(data)s)"
UPDATE_DEPARTMENT = "SELECT callmaster.update_department(%(id)s, %(patch)s)"
DELETE_DEPARTMENT = "SELECT callmaster.delete_department(%(id)s)"

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Text = Annotated[str, Meta(max_length=500)]
Notes = Annotated[str, Meta(max_length=10_000)]
Email = Annotated[str, Meta(pattern=EMAIL, max_length=320)]
Phone = Annotated[str, Meta(max_length=50)]
Capacity = Annotated[int, Meta(ge=0, le=1_000_000)]
Length = Annotated[float, Meta(ge=0, le=999_999.99)]
Money = Annotated[float, Meta(ge=0, le=9_999_999_999.99)]
VenueType = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]*$", max_length=50)]
EquipmentItem = Annotated[str, Meta(min_length=1, max_length=200)]
Equipment = Annotated[list[EquipmentItem], Meta(max_length=500)]
Color = Annotated[str, Meta(pattern=r"^#[0-9A-Fa-f]{6}$")]
Initials = Annotated[str, Meta(pattern=r"^[A-Za-z0-9]{1,5}$")]
Search = Annotated[str | None, Parameter(max_length=200, description="Case-insensitive substring")]


class VenueCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    address: Text | None = None
    city: Text | None = None
    state: Text | None = None
    capacity: Capacity | None = None
    venue_type: VenueType | None = None
    contact_name: Text | None = None
    contact_email: Email | None = None
    contact_phone: Phone | None = None
    stage_width: Length | None = None
    stage_depth: Length | None = None
    fly_height: Length | None = None
    equipment: Equipment = []
    notes: Notes | None = None
    rental_rate: Money | None = None
    minimum_rental: Money | None = None


class VenuePatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields sent change; `null` clears a field (name cannot be cleared)."""

    name: Name | UnsetType = UNSET
    address: Text | None | UnsetType = UNSET
    city: Text | None | UnsetType = UNSET
    state: Text | None | UnsetType = UNSET
    capacity: Capacity | None | UnsetType = UNSET
    venue_type: VenueType | None | UnsetType = UNSET
    contact_name: Text | None | UnsetType = UNSET
    contact_email: Email | None | UnsetType = UNSET
    contact_phone: Phone | None | UnsetType = UNSET
    stage_width: Length | None | UnsetType = UNSET
    stage_depth: Length | None | UnsetType = UNSET
    fly_height: Length | None | UnsetType = UNSET
    equipment: Equipment | UnsetType = UNSET
    notes: Notes | None | UnsetType = UNSET
    rental_rate: Money | None | UnsetType = UNSET
    minimum_rental: Money | None | UnsetType = UNSET


class DepartmentCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Notes | None = None
    color: Color | None = None
    initials: Initials | None = None


class DepartmentPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    description: Notes | None | UnsetType = UNSET
    color: Color | None | UnsetType = UNSET
    initials: Initials | None | UnsetType = UNSET


# Venues -----------------------------------------------------------------------------------------


@get("/api/venues", tags=["callmaster"], summary="The requesting user's venues")
async def list_venues(
    db: Db, principal: CurrentPrincipal, pagination: Page, q: Search = None
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        LIST_VENUES,
        {"limit": pagination.limit, "offset": pagination.offset, "q": search_term(q)},
    )


@get("/api/venues/{venue_id:uuid}", tags=["callmaster"], summary="One venue")
async def get_venue(venue_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_val(principal, GET_VENUE, {"id": venue_id})


@post("/api/venues", tags=["callmaster"], summary="Create a venue", status_code=201)
async def create_venue(data: JSONBody[VenueCreate], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_val(principal, CREATE_VENUE, {"data": Jsonb(msgspec.to_builtins(data))})


@patch("/api/venues/{venue_id:uuid}", tags=["callmaster"], summary="Change a venue")
async def update_venue(
    venue_id: FromPath[UUID], data: JSONBody[VenuePatch], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        UPDATE_VENUE,
        {"id": venue_id, "patch": Jsonb(merge_patch(data))},
    )


@delete(
    "/api/venues/{venue_id:uuid}",
    tags=["callmaster"],
    summary="Delete a venue",
    description="Shows at the venue are detached (venue_id → null) and the venue deleted, in one "
    "transaction.",
    status_code=204,
)
async def delete_venue(venue_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> None:
    await db.execute(principal, DELETE_VENUE, {"id": venue_id})


# Departments ------------------------------------------------------------------------------------


@get("/api/departments", tags=["callmaster"], summary="The requesting user's departments")
async def list_departments(
    db: Db, principal: CurrentPrincipal, pagination: Page, q: Search = None
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        LIST_DEPARTMENTS,
        {"limit": pagination.limit, "offset": pagination.offset, "q": search_term(q)},
    )


@get("/api/departments/{department_id:uuid}", tags=["callmaster"], summary="One department")
async def get_department(
    department_id: FromPath[UUID], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(principal, GET_DEPARTMENT, {"id": department_id})


@post("/api/departments", tags=["callmaster"], summary="Create a department", status_code=201)
async def create_department(
    data: JSONBody[DepartmentCreate], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(principal, CREATE_DEPARTMENT, {"data": Jsonb(msgspec.to_builtins(data))})


@patch("/api/departments/{department_id:uuid}", tags=["callmaster"], summary="Change a department")
async def update_department(
    department_id: FromPath[UUID], data: JSONBody[DepartmentPatch], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        UPDATE_DEPARTMENT,
        {"id": department_id, "patch": Jsonb(merge_patch(data))},
    )


@delete(
    "/api/departments/{department_id:uuid}",
    tags=["callmaster"],
    summary="Delete a department",
    status_code=204,
)
async def delete_department(department_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> None:
    await db.execute(principal, DELETE_DEPARTMENT, {"id": department_id})


routes = [
    list_venues,
    get_venue,
    create_venue,
    update_venue,
    delete_venue,
    list_departments,
    get_department,
    create_department,
    update_department,
    delete_department,
]

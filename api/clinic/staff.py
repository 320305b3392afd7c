"""Staff and doctors: /api/staff, /api/doctors. Writes are for clinic admins only."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from psycopg.types.json import Jsonb

from api.clinic.common import require_admin, require_clinic
from api.clinic.schemas import SEARCH_PATTERN, StaffCreate, StaffRole, StaffUpdate
from api.deps import CurrentPrincipal, Db, Page

CREATE_STAFF = "SELECT clinic.create_staff(%(data)s)"
GET_STAFF = "SELECT clinic.get_staff(%(id)s)"
UPDATE_STAFF = "SELECT clinic.update_staff(%(id)s, %(data)s)"

LIST_STAFF = (
    "SELECT clinic.list_staff(role => %(role)s, is_active => %(is_active)s, q => %(q)s,"
    " page_limit => %(limit)s::integer, page_offset => %(offset)s::integer)"
)
Query = Annotated[
    str | None,
    QueryParameter(
        min_length=1, max_length=200, pattern=SEARCH_PATTERN, description="Substring of name or e-mail"
    ),
]


@get("/api/staff", tags=["staff"], summary="List the clinic's staff")
async def list_staff(
    db: Db,
    principal: CurrentPrincipal,
    pagination: Page,
    role: FromQuery[StaffRole | None] = None,
    is_active: FromQuery[bool | None] = None,
    q: Query = None,
) -> dict[str, Any]:
    require_clinic(principal)
    page = await db.fetch_val(
        principal,
        LIST_STAFF,
        {
            "role": role,
            "is_active": is_active,
            "q": q,
            "limit": pagination.limit,
            "offset": pagination.offset,
        },
    )
    return pagination.page(page["items"], page["total"])


@post("/api/staff", tags=["staff"], summary="Add a staff member (admin only)")
async def create_staff(db: Db, principal: CurrentPrincipal, data: JSONBody[StaffCreate]) -> dict[str, Any]:
    require_admin(principal)
    staff: dict[str, Any] = await db.fetch_val(principal, CREATE_STAFF, {"data": Jsonb(data.to_data())})
    return staff


@get("/api/staff/{staff_id:uuid}", tags=["staff"], summary="One staff member")
async def get_staff(db: Db, principal: CurrentPrincipal, staff_id: FromPath[UUID]) -> dict[str, Any]:
    require_clinic(principal)
    staff: dict[str, Any] = await db.fetch_val(principal, GET_STAFF, {"id": staff_id})
    return staff


@patch("/api/staff/{staff_id:uuid}", tags=["staff"], summary="Change a staff member (admin only)")
async def update_staff(
    db: Db, principal: CurrentPrincipal, staff_id: FromPath[UUID], data: JSONBody[StaffUpdate]
) -> dict[str, Any]:
    require_admin(principal)
    staff: dict[str, Any] = await db.fetch_val(
        principal,
        UPDATE_STAFF,
        {"id": staff_id, "data": Jsonb(data.to_data())},
    )
    return staff


@get("/api/doctors", tags=["staff"], summary="The clinic's active doctors")
async def list_doctors(
    db: Db, principal: CurrentPrincipal, pagination: Page, q: Query = None
) -> dict[str, Any]:
    require_clinic(principal)
    page = await db.fetch_val(
        principal,
        LIST_STAFF,
        {"role": "doctor", "is_active": True, "q": q, "limit": pagination.limit, "offset": pagination.offset},
    )
    return pagination.page(page["items"], page["total"])


routes: list[Any] = [list_staff, create_staff, get_staff, update_staff, list_doctors]

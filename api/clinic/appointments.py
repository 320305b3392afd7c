"""Appointments: /api/appointments.

Every rule lives in PostgreSQL (sql/clinic/2xx_appointments_*.sql, migration 0200): the snapshot
trigger copies patient and doctor in, the exclusion constraint refuses double booking (409, code
23P01, naming the conflicting slot), a trigger enforces the status lifecycle (409, code 55000), and
outbox triggers announce bookings and cancellations. Each handler validates, then makes one SQL call.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from litestar import Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from msgspec import UNSET, Meta, UnsetType
from psycopg import sql
from psycopg.types.json import Jsonb

from api.clinic.common import require_clinic
from api.clinic.schemas import Body
from api.deps import CurrentPrincipal, Db, Page
from api.errors import Problem
from api.idempotency import Replay, run_idempotent
from api.patterns import NON_BLANK

GET_APPOINTMENT = "SELECT clinic.get_appointment(%(id)s)"
UPDATE_APPOINTMENT = "SELECT clinic.update_appointment(%(id)s, %(data)s)"

AppointmentStatus = Literal["scheduled", "checked_in", "completed", "cancelled", "no_show"]
ClockTime = Annotated[
    str,
    Meta(
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$",
        description="HH:MM or HH:MM:SS, the clinic's local time",
        examples=["09:30"],
    ),
]
TypeName = Annotated[
    str,
    Meta(
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="snake_case, e.g. consultation",
        examples=["consultation"],
    ),
]
ShortText = Annotated[str, Meta(min_length=1, max_length=200, pattern=NON_BLANK)]
LongText = Annotated[str, Meta(min_length=1, max_length=5000, pattern=NON_BLANK)]

BOOK_APPOINTMENT = sql.SQL("clinic.book_appointment(%(data)s)")
# An Idempotency-Key record keeps the id only: the answer carries the patient's snapshot.
REPLAY_APPOINTMENT = Replay(sql.SQL("clinic.get_appointment"))
CANCEL_APPOINTMENT = "SELECT clinic.cancel_appointment(%(id)s, %(reason)s)"
LIST_APPOINTMENTS = (
    "SELECT clinic.list_appointments(p_date => %(date)s, p_doctor_id => %(doctor_id)s, p_status => %(status)s,"
    " p_patient_id => %(patient_id)s, p_from => %(from)s, p_to => %(to)s, p_limit => %(limit)s,"
    " p_offset => %(offset)s)"
)


class AppointmentCreate(Body):
    patient_id: UUID
    doctor_id: UUID
    appointment_date: date
    start_time: ClockTime
    end_time: ClockTime
    type: TypeName | UnsetType = UNSET
    visit_reason: LongText | None = None
    source: ShortText | None = None
    lead_id: UUID | None = None


class AppointmentUpdate(Body):
    patient_id: UUID | UnsetType = UNSET
    doctor_id: UUID | UnsetType = UNSET
    appointment_date: date | UnsetType = UNSET
    start_time: ClockTime | UnsetType = UNSET
    end_time: ClockTime | UnsetType = UNSET
    type: TypeName | UnsetType = UNSET
    status: AppointmentStatus | UnsetType = UNSET
    visit_reason: LongText | None | UnsetType = UNSET
    source: ShortText | None | UnsetType = UNSET
    cancel_reason: LongText | None | UnsetType = UNSET
    lead_id: UUID | None | UnsetType = UNSET


class AppointmentCancel(Body):
    reason: LongText | None = None


def _seconds(value: str) -> int:
    parts = [int(p) for p in value.split(":")]
    return parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)


def check_times(data: dict[str, Any]) -> None:
    """A clear 422 for an empty or inverted slot (the CHECK constraint holds it for every writer)."""
    start, end = data.get("start_time"), data.get("end_time")
    if start is not None and end is not None and _seconds(end) <= _seconds(start):
        raise Problem(
            422,
            "end_time must be after start_time.",
            code="23514",
            extra={"constraint": "appointments_time_order_check"},
        )


@post(
    "/api/appointments",
    tags=["appointments"],
    summary="Book an appointment (409 on overlap; honours Idempotency-Key)",
    status_code=201,
)
async def book_appointment(
    request: Request[Any, Any, Any],
    db: Db,
    principal: CurrentPrincipal,
    data: JSONBody[AppointmentCreate],
) -> Response[dict[str, Any]]:
    require_clinic(principal)
    payload = data.to_data()
    check_times(payload)
    outcome = await run_idempotent(
        db,
        principal,
        request,
        payload=payload,
        call=BOOK_APPOINTMENT,
        params={"data": Jsonb(payload)},
        replay=REPLAY_APPOINTMENT,
    )
    headers = {**outcome.headers, "Location": f"/api/appointments/{outcome.body['id']}"}
    return Response(outcome.body, status_code=outcome.status_code, headers=headers)


@get(
    "/api/appointments", tags=["appointments"], summary="List appointments by date, doctor, status or patient"
)
async def list_appointments(
    db: Db,
    principal: CurrentPrincipal,
    pagination: Page,
    date_: Annotated[
        date | None, QueryParameter(name="date", description="Appointment date (YYYY-MM-DD)")
    ] = None,
    doctor_id: FromQuery[UUID | None] = None,
    status: FromQuery[AppointmentStatus | None] = None,
    patient_id: FromQuery[UUID | None] = None,
    from_: Annotated[date | None, QueryParameter(name="from", description="First date, inclusive")] = None,
    to: Annotated[date | None, QueryParameter(description="Last date, inclusive")] = None,
) -> dict[str, Any]:
    require_clinic(principal)
    page: dict[str, Any] = await db.fetch_val(
        principal,
        LIST_APPOINTMENTS,
        {
            "date": date_,
            "doctor_id": doctor_id,
            "status": status,
            "patient_id": patient_id,
            "from": from_,
            "to": to,
            "limit": pagination.limit,
            "offset": pagination.offset,
        },
    )
    return pagination.page(page["items"], page["total"])


@get("/api/appointments/{appointment_id:uuid}", tags=["appointments"], summary="One appointment")
async def get_appointment(
    db: Db, principal: CurrentPrincipal, appointment_id: FromPath[UUID]
) -> dict[str, Any]:
    require_clinic(principal)
    appointment: dict[str, Any] = await db.fetch_val(principal, GET_APPOINTMENT, {"id": appointment_id})
    return appointment


@patch(
    "/api/appointments/{appointment_id:uuid}",
    tags=["appointments"],
    summary="Reschedule, reassign or move an appointment along its lifecycle",
)
async def update_appointment(
    db: Db,
    principal: CurrentPrincipal,
    appointment_id: FromPath[UUID],
    data: JSONBody[AppointmentUpdate],
) -> dict[str, Any]:
    require_clinic(principal)
    payload = data.to_data()
    check_times(payload)
    appointment: dict[str, Any] = await db.fetch_val(
        principal,
        UPDATE_APPOINTMENT,
        {"id": appointment_id, "data": Jsonb(payload)},
    )
    return appointment


@post(
    "/api/appointments/{appointment_id:uuid}/cancel",
    tags=["appointments"],
    summary="Cancel an appointment; its slot is free at once",
    status_code=200,
)
async def cancel_appointment(
    db: Db,
    principal: CurrentPrincipal,
    appointment_id: FromPath[UUID],
    data: JSONBody[AppointmentCancel | None] = None,
) -> dict[str, Any]:
    """The body and its `reason` are optional (as in `clinic.cancel_appointment`)."""
    require_clinic(principal)
    reason = data.reason.strip() if data is not None and data.reason is not None else None
    appointment: dict[str, Any] = await db.fetch_val(
        principal, CANCEL_APPOINTMENT, {"id": appointment_id, "reason": reason}
    )
    return appointment


routes: list[Any] = [
    book_appointment,
    list_appointments,
    get_appointment,
    update_appointment,
    cancel_appointment,
]

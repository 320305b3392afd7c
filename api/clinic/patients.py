"""Patients: /api/patients. UHIDs are allocated in SQL (clinic.assign_uhid)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from psycopg import sql
from psycopg.types.json import Jsonb

from api.clinic.common import require_clinic
from api.clinic.schemas import SEARCH_PATTERN, PatientCreate, PatientStatus, PatientUpdate, normalize_mobile
from api.deps import CurrentPrincipal, Db, Page
from api.errors import Problem
from api.idempotency import Replay, idempotency_key, run_idempotent

CREATE_PATIENT = sql.SQL("clinic.create_patient(%(data)s)")
# An Idempotency-Key record keeps the patient's id only; a retry re-reads the patient.
REPLAY_PATIENT = Replay(sql.SQL("clinic.get_patient"))
SEARCH_PATIENTS = (
    "SELECT clinic.search_patients(q => %(q)s, status => %(status)s, page_limit => %(limit)s::integer,"
    " page_offset => %(offset)s::integer)"
)


def patient_data(data: dict[str, Any]) -> dict[str, Any]:
    """Normalise phone numbers and reject dates of birth in the future."""
    for name in ("mobile", "emergency_contact_phone"):
        if data.get(name) is not None:
            data[name] = normalize_mobile(data[name])
    dob = data.get("dob")
    # Today anywhere on Earth (UTC+14 is the earliest), not the server's date: the clinic's may be ahead.
    if dob is not None and date.fromisoformat(dob) > (datetime.now(UTC) + timedelta(hours=14)).date():
        raise Problem(422, "dob cannot be in the future.", code="22023", extra={"field": "dob"})
    return data


class PatientController(Controller):
    path = "/api/patients"
    tags = ("patients",)

    @post("/", summary="Register a patient (honours Idempotency-Key)", status_code=201)
    async def create_patient(
        self,
        request: Request[Any, Any, Any],
        db: Db,
        principal: CurrentPrincipal,
        data: JSONBody[PatientCreate],
    ) -> Response[dict[str, Any]]:
        require_clinic(principal)
        payload = patient_data(data.to_data())
        outcome = await run_idempotent(
            db,
            principal,
            idempotency_key(request),
            method=request.method,
            path=request.url.path,
            payload=payload,
            call=CREATE_PATIENT,
            params={"data": Jsonb(payload)},
            replay=REPLAY_PATIENT,
        )
        return Response(outcome.body, status_code=outcome.status_code, headers=outcome.headers)

    @get("/", summary="Search patients by name, mobile or UHID")
    async def search_patients(
        self,
        db: Db,
        principal: CurrentPrincipal,
        pagination: Page,
        q: Annotated[
            str | None,
            QueryParameter(
                min_length=1, max_length=200, pattern=SEARCH_PATTERN, description="Name, mobile or UHID"
            ),
        ] = None,
        status: FromQuery[PatientStatus | None] = None,
    ) -> dict[str, Any]:
        require_clinic(principal)
        page = await db.fetch_val(
            principal,
            SEARCH_PATIENTS,
            {
                "q": q.strip() or None if q else None,
                "status": status,
                "limit": pagination.limit,
                "offset": pagination.offset,
            },
        )
        return pagination.page(page["items"], page["total"])

    @get("/{patient_id:uuid}", summary="One patient")
    async def get_patient(
        self, db: Db, principal: CurrentPrincipal, patient_id: FromPath[UUID]
    ) -> dict[str, Any]:
        require_clinic(principal)
        patient: dict[str, Any] = await db.fetch_val(
            principal, "SELECT clinic.get_patient(%(id)s)", {"id": patient_id}
        )
        return patient

    @patch("/{patient_id:uuid}", summary="Change a patient")
    async def update_patient(
        self, db: Db, principal: CurrentPrincipal, patient_id: FromPath[UUID], data: JSONBody[PatientUpdate]
    ) -> dict[str, Any]:
        require_clinic(principal)
        patient: dict[str, Any] = await db.fetch_val(
            principal,
            "SELECT clinic.update_patient(%(id)s, %(data)s)",
            {"id": patient_id, "data": Jsonb(patient_data(data.to_data()))},
        )
        return patient

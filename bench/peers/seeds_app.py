"""The peer: the seeds' own stack, written as their notes describe it, on Keel's database and data.

FastAPI with synchronous `def` endpoints (FastAPI runs them on its thread pool) and SQLAlchemy 2 ORM
sessions from `sessionmaker(autocommit=False, autoflush=False)` on the default connection pool, exactly
as the CallMaster note's "after" (`backend/database.py`, `get_db`); one application login, no row-level
security (tenant filters in the queries). The handlers follow the notes' own patterns:

- booking (clinic note §2.1): read the patient, read the doctor, insert the appointment with the copied
  snapshot fields; `db.commit()`, `db.refresh()` for the answer;
- control tower (clinic note §2.2): fetch every lead, patient and appointment of the clinic and
  aggregate in Python (the same aggregation as the strong baseline, `aggregate_summary`);
- script duplication (CallMaster `shows.py:duplicate_script`): the script loaded with `joinedload` of its
  elements (their supporting rows by `selectinload`, SQLAlchemy's advice for nested collections), each
  copied element `db.flush()`ed for its new id, the old→new id map in Python, then the supporting rows;
- bulk update (CallMaster "Batch Processing"): per element `db.query(...).filter(...).first()`, `setattr`
  each sent field, one `db.commit()`;
- `GET /appointments/{id}`: one ORM query, a Pydantic response model built from attributes.

No `from __future__ import annotations` here: FastAPI resolves the dependency aliases defined inside
`create_app` from the live annotations.

Auth (say so in the bench README): the same HS256 bearer tokens Keel accepts, verified with PyJWT in a
sync dependency — the CallMaster app's `get_current_user_claims`; its CallMaster routes then load the
user row by Clerk id (`get_current_user`), as the note's did. No JWKS, no Clerk round trip on either side.
"""

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated, Any
from uuid import UUID

import jwt
import psycopg
from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker

from bench.baselines.booking import age_at
from bench.baselines.duplicate import ELEMENT_COLUMNS
from bench.baselines.summary import aggregate_summary
from bench.loadgen import SPAWN
from bench.peers.models import (
    Appointment,
    ElementCrew,
    ElementEquipment,
    ElementGroup,
    ElementPerformer,
    ElementRule,
    Lead,
    Patient,
    Script,
    ScriptElement,
    Staff,
    User,
    reflect,
)
from bench.server import _stop as stop_process
from bench.server import free_port, wait_healthy

UPDATABLE = frozenset(
    ("description", "cue_notes", "cue_id", "sequence", "time_offset_ms", "duration_ms", "priority", "trigger_type",
     "location", "custom_color", "is_safety_critical", "safety_notes", "is_active")
)  # fmt: skip


class AppointmentIn(BaseModel):
    patient_id: UUID
    doctor_id: UUID
    appointment_date: dt.date
    start_time: dt.time
    end_time: dt.time
    type: str = "consultation"
    visit_reason: str | None = None


class AppointmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    clinic_id: UUID
    patient_id: UUID
    doctor_id: UUID
    appointment_date: dt.date
    start_time: dt.time
    end_time: dt.time
    type: str
    status: str
    visit_reason: str | None
    patient_name_snapshot: str | None
    patient_phone_snapshot: str | None
    doctor_name_snapshot: str | None
    created_at: dt.datetime


def create_app(database_url: str, jwt_secret: str) -> FastAPI:
    """The peer app on `database_url` (any libpq URL or conninfo; psycopg 3 under SQLAlchemy)."""
    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(database_url))
    reflect(engine)
    session_local = sessionmaker(autocommit=False, autoflush=False, bind=engine)

    def get_db() -> Iterator[Session]:
        db = session_local()
        try:
            yield db
        finally:
            db.close()

    def get_claims(authorization: Annotated[str, Header()] = "") -> dict[str, Any]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "missing bearer token")
        try:
            return dict(jwt.decode(token, jwt_secret, algorithms=["HS256"]))
        except jwt.PyJWTError as exc:
            raise HTTPException(401, "invalid token") from exc

    Db = Annotated[Session, Depends(get_db)]
    Claims = Annotated[dict[str, Any], Depends(get_claims)]

    def get_current_user(db: Db, claims: Claims) -> User:
        user = db.query(User).filter(User.clerk_user_id == claims["sub"]).first()
        if user is None:
            raise HTTPException(401, "unknown user")
        return user

    CurrentUser = Annotated[User, Depends(get_current_user)]
    app = FastAPI(title="seeds peer")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/appointments", status_code=201, response_model=AppointmentOut)
    def book(body: AppointmentIn, db: Db, claims: Claims) -> Appointment:
        clinic_id = claims["clinic_id"]
        patient = (
            db.query(Patient).filter(Patient.id == body.patient_id, Patient.clinic_id == clinic_id).first()
        )
        if patient is None:
            raise HTTPException(422, "patient not found")
        doctor = db.query(Staff).filter(Staff.id == body.doctor_id, Staff.clinic_id == clinic_id).first()
        if doctor is None or doctor.role != "doctor" or not doctor.is_active:
            raise HTTPException(422, "doctor not found")
        address = ", ".join(
            p for p in (patient.address, patient.city, patient.state, patient.postal_code) if p
        )
        appointment = Appointment(
            clinic_id=clinic_id, patient_id=patient.id, lead_id=patient.lead_id, doctor_id=doctor.id,
            appointment_date=body.appointment_date, start_time=body.start_time, end_time=body.end_time,
            type=body.type, visit_reason=body.visit_reason, patient_name_snapshot=patient.name,
            patient_phone_snapshot=patient.mobile, patient_email_snapshot=patient.email,
            patient_dob_snapshot=patient.dob, patient_sex_snapshot=patient.gender,
            patient_age_snapshot=age_at(patient.dob, body.appointment_date), patient_address_snapshot=address or None,
            doctor_name_snapshot=doctor.name,
        )  # fmt: skip
        db.add(appointment)
        db.commit()
        db.refresh(appointment)
        return appointment

    @app.get("/appointments/{appointment_id}", response_model=AppointmentOut)
    def get_appointment(appointment_id: UUID, db: Db, claims: Claims) -> Appointment:
        appointment = (
            db.query(Appointment)
            .filter(Appointment.id == appointment_id, Appointment.clinic_id == claims["clinic_id"])
            .first()
        )
        if appointment is None:
            raise HTTPException(404, "appointment not found")
        return appointment

    @app.get("/control-tower/summary")
    def control_tower(db: Db, claims: Claims) -> dict[str, Any]:
        clinic_id = claims["clinic_id"]

        def rows(model: Any) -> list[dict[str, Any]]:
            return [vars(o) for o in db.query(model).filter(model.clinic_id == clinic_id).all()]

        return aggregate_summary(rows(Lead), rows(Patient), rows(Appointment), dt.date.today())

    collections = (ScriptElement.equipment, ScriptElement.crew, ScriptElement.performers, ScriptElement.rules)

    @app.post("/scripts/{script_id}/duplicate", status_code=201)
    def duplicate(script_id: UUID, db: Db, user: CurrentUser) -> dict[str, Any]:
        source = (
            db.query(Script)
            .options(joinedload(Script.elements).options(*(selectinload(rel) for rel in collections)))
            .filter(Script.id == script_id, Script.owner_id == user.id)
            .first()
        )
        if source is None:
            raise HTTPException(404, "script not found")
        copy = Script(show_id=source.show_id, owner_id=user.id, name=f"{source.name} (copy)", notes=source.notes,
                      status="copy", start_time=source.start_time, end_time=source.end_time)  # fmt: skip
        db.add(copy)
        db.flush()
        id_map: dict[UUID, UUID] = {}
        orphans: list[tuple[ScriptElement, UUID]] = []
        for element in sorted(source.elements, key=lambda e: e.sequence):
            new = ScriptElement(
                script_id=copy.id, owner_id=user.id, **{c: getattr(element, c) for c in ELEMENT_COLUMNS}
            )
            new.parent_element_id = id_map.get(element.parent_element_id)
            db.add(new)
            db.flush()  # the new id, for the map
            id_map[element.id] = new.id
            if element.parent_element_id is not None and new.parent_element_id is None:
                orphans.append((new, element.parent_element_id))
        for new, parent in orphans:
            new.parent_element_id = id_map[parent]
        copies: list[tuple[Any, Callable[[Any], list[Any]], tuple[str, ...]]] = [
            (ElementEquipment, lambda e: e.equipment, ("equipment_name", "is_required", "notes")),
            (ElementCrew, lambda e: e.crew, ("crew_user_id", "assignment_role", "is_lead")),
            (ElementPerformer, lambda e: e.performers, ("performer_id", "character_name", "notes")),
            (ElementRule, lambda e: e.rules,
             ("condition_type", "operator", "condition_value", "description", "is_active")),
        ]  # fmt: skip
        for element in source.elements:
            for model, children, columns in copies:
                for child in children(element):
                    db.add(model(element_id=id_map[element.id], **{c: getattr(child, c) for c in columns}))
        for group in db.query(ElementGroup).filter(ElementGroup.script_id == script_id).all():
            db.add(ElementGroup(group_id=id_map[group.group_id], child_element_id=id_map[group.child_element_id],
                                script_id=copy.id, order_in_group=group.order_in_group))  # fmt: skip
        db.commit()
        return {"id": str(copy.id), "elements": len(id_map)}

    @app.patch("/scripts/{script_id}/elements")
    def bulk_update(
        script_id: UUID, updates: list[dict[str, Any]], db: Db, user: CurrentUser
    ) -> dict[str, int]:
        for update in updates:
            element = (
                db.query(ScriptElement)
                .filter(ScriptElement.id == update.get("id"))
                .filter(ScriptElement.script_id == script_id, ScriptElement.owner_id == user.id)
                .first()
            )
            if element is None:
                raise HTTPException(422, f"element {update.get('id')} is not in the script")
            for key, value in update.items():
                if key in UPDATABLE:
                    setattr(element, key, value)
        db.commit()  # single commit for all updates
        return {"updated": len(updates)}

    return app


def _serve(database_url: str, jwt_secret: str, port: int) -> None:
    """Child process: the peer under uvicorn (uvloop + httptools, one process, as Keel's bench server)."""
    import uvicorn

    app = create_app(database_url, jwt_secret)
    uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    ).run()


@contextlib.contextmanager
def served_peer(database_url: str, jwt_secret: str) -> Iterator[str]:
    """Serve the peer in a spawned process; yield its base URL; stop it."""
    port = free_port()
    process = SPAWN.Process(target=_serve, args=(database_url, jwt_secret, port), daemon=True)
    process.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, f"{base_url}/health", "the peer")
        yield base_url
    finally:
        stop_process(process)

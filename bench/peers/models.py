"""SQLAlchemy 2 ORM models of the tables the peer touches, reflected from the bench database.

The seeds' app declared its models by hand; reflecting them (`DeferredReflection`) gives the same mapped
classes without retyping Keel's schema. Relationships are declared as the CallMaster app had them: a
script's elements, and each element's supporting rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.ext.declarative import DeferredReflection
from sqlalchemy.orm import DeclarativeBase, relationship


class Base(DeclarativeBase):
    pass


class Reflected(DeferredReflection):
    __abstract__ = True


def _model(name: str, table: str, **relationships: Any) -> Any:
    """A mapped class of `schema.table` ("clinic.staff"), its columns reflected by `reflect`."""
    schema, _, table_name = table.partition(".")
    attrs = {"__tablename__": table_name, "__table_args__": {"schema": schema}}
    return type(
        name, (Reflected, Base), attrs | {k: relationship(v, viewonly=True) for k, v in relationships.items()}
    )


Staff = _model("Staff", "clinic.staff")
Patient = _model("Patient", "clinic.patients")
Lead = _model("Lead", "clinic.leads")
Appointment = _model("Appointment", "clinic.appointments")
User = _model("User", "callmaster.users")
Script = _model("Script", "callmaster.scripts", elements="ScriptElement")
ScriptElement = _model(
    "ScriptElement",
    "callmaster.script_elements",
    equipment="ElementEquipment",
    crew="ElementCrew",
    performers="ElementPerformer",
    rules="ElementRule",
)
ElementEquipment = _model("ElementEquipment", "callmaster.script_element_equipment")
ElementCrew = _model("ElementCrew", "callmaster.script_element_crew_assignments")
ElementPerformer = _model("ElementPerformer", "callmaster.script_element_performer_assignments")
ElementRule = _model("ElementRule", "callmaster.script_element_conditional_rules")
ElementGroup = _model("ElementGroup", "callmaster.script_element_groups")


def reflect(engine: Engine) -> None:
    """Load every model's columns and keys from the database (once, at start-up)."""
    Reflected.prepare(engine)

"""SQLAlchemy 2 ORM models of the tables the peer touches, reflected from the bench database.

The seeds' app declared its models by hand; reflecting them (`DeferredReflection`) gives the same mapped
classes without retyping Keel's schema. Relationships are declared as the CallMaster app had them: a
script's elements, and each element's supporting rows.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.ext.declarative import DeferredReflection
from sqlalchemy.orm import DeclarativeBase, relationship

CLINIC = {"schema": "clinic"}
CALLMASTER = {"schema": "callmaster"}


class Base(DeclarativeBase):
    pass


class Reflected(DeferredReflection):
    __abstract__ = True


class Staff(Reflected, Base):
    __tablename__ = "staff"
    __table_args__ = CLINIC


class Patient(Reflected, Base):
    __tablename__ = "patients"
    __table_args__ = CLINIC


class Lead(Reflected, Base):
    __tablename__ = "leads"
    __table_args__ = CLINIC


class Appointment(Reflected, Base):
    __tablename__ = "appointments"
    __table_args__ = CLINIC


class User(Reflected, Base):
    __tablename__ = "users"
    __table_args__ = CALLMASTER


class Script(Reflected, Base):
    __tablename__ = "scripts"
    __table_args__ = CALLMASTER
    elements = relationship("ScriptElement", viewonly=True)


class ScriptElement(Reflected, Base):
    __tablename__ = "script_elements"
    __table_args__ = CALLMASTER
    equipment = relationship("ElementEquipment", viewonly=True)
    crew = relationship("ElementCrew", viewonly=True)
    performers = relationship("ElementPerformer", viewonly=True)
    rules = relationship("ElementRule", viewonly=True)


class ElementEquipment(Reflected, Base):
    __tablename__ = "script_element_equipment"
    __table_args__ = CALLMASTER


class ElementCrew(Reflected, Base):
    __tablename__ = "script_element_crew_assignments"
    __table_args__ = CALLMASTER


class ElementPerformer(Reflected, Base):
    __tablename__ = "script_element_performer_assignments"
    __table_args__ = CALLMASTER


class ElementRule(Reflected, Base):
    __tablename__ = "script_element_conditional_rules"
    __table_args__ = CALLMASTER


class ElementGroup(Reflected, Base):
    __tablename__ = "script_element_groups"
    __table_args__ = CALLMASTER


def reflect(engine: Engine) -> None:
    """Load every model's columns and keys from the database (once, at start-up)."""
    Reflected.prepare(engine)

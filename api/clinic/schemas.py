"""Request bodies of the clinic-records endpoints (validated by msgspec before any SQL runs)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from api.patterns import EMAIL, NON_BLANK, SPACE

# A value that must say something: not empty, not only blanks.
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=NON_BLANK, description="Non-blank text")]
ShortText = Annotated[str, Meta(min_length=1, max_length=200, pattern=NON_BLANK)]
LongText = Annotated[str, Meta(min_length=1, max_length=5000, pattern=NON_BLANK)]
Email = Annotated[str, Meta(max_length=254, pattern=EMAIL, examples=["ann@clinic.example"])]
Phone = Annotated[
    str,
    Meta(
        pattern=rf"^[{SPACE}]*\+?[0-9][0-9 ()./-]{{4,22}}[0-9][{SPACE}]*$",
        description="6-15 digits; +, spaces, ( ) . - allowed",
    ),
]
Age = Annotated[int, Meta(ge=0, le=150)]
PostalCode = Annotated[str, Meta(min_length=1, max_length=20, pattern=NON_BLANK)]

StaffRole = Literal["admin", "doctor", "front_desk", "cro"]
Gender = Literal["male", "female", "other"]
LeadStatus = Literal[
    "new_inquiry", "cro_queue", "first_consult", "follow_up", "converted", "lost", "not_interested"
]
# 'converted' is reached only through conversion.
OpenLeadStatus = Literal["new_inquiry", "cro_queue", "first_consult", "follow_up", "lost", "not_interested"]
PatientStatus = Literal["active", "inactive", "deceased"]
MaritalStatus = Literal["single", "married", "divorced", "widowed", "separated", "other"]
BloodGroup = Literal["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"]

# Query strings reach SQL as text parameters, which cannot carry NUL characters.
SEARCH_PATTERN = r"^[^\x00]*$"

LEAD_ENCRYPTED_FIELDS = ("phone", "alternate_phone", "problem", "treatment_doctor", "treatment_suggested")


class Body(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every request body: unknown fields are an error, not silently dropped."""

    def to_data(self) -> dict[str, Any]:
        """JSON-ready dict of the fields that were sent (UNSET ones left out)."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class StaffCreate(Body):
    name: Name
    email: Email
    role: StaffRole
    specialty: ShortText | None = None
    is_active: bool = True


class StaffUpdate(Body):
    name: Name | UnsetType = UNSET
    email: Email | UnsetType = UNSET
    role: StaffRole | UnsetType = UNSET
    specialty: ShortText | None | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET


class PatientCreate(Body):
    name: Name
    mobile: Phone
    email: Email | None = None
    gender: Gender | None = None
    dob: date | None = None
    marital_status: MaritalStatus | None = None
    blood_group: BloodGroup | None = None
    address: LongText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    postal_code: PostalCode | None = None
    emergency_contact_name: Name | None = None
    emergency_contact_phone: Phone | None = None
    assigned_doctor_id: UUID | None = None
    registration_date: date | None = None
    status: PatientStatus = "active"


class PatientUpdate(Body):
    name: Name | UnsetType = UNSET
    mobile: Phone | UnsetType = UNSET
    email: Email | None | UnsetType = UNSET
    gender: Gender | None | UnsetType = UNSET
    dob: date | None | UnsetType = UNSET
    marital_status: MaritalStatus | None | UnsetType = UNSET
    blood_group: BloodGroup | None | UnsetType = UNSET
    address: LongText | None | UnsetType = UNSET
    city: ShortText | None | UnsetType = UNSET
    state: ShortText | None | UnsetType = UNSET
    postal_code: PostalCode | None | UnsetType = UNSET
    emergency_contact_name: Name | None | UnsetType = UNSET
    emergency_contact_phone: Phone | None | UnsetType = UNSET
    assigned_doctor_id: UUID | None | UnsetType = UNSET
    registration_date: date | UnsetType = UNSET
    status: PatientStatus | UnsetType = UNSET


class LeadCreate(Body):
    name: Name
    phone: Phone
    alternate_phone: Phone | None = None
    date_added: date | None = None
    age: Age | None = None
    gender: Gender | None = None
    source: ShortText | None = None
    inquiry: LongText | None = None
    problem: LongText | None = None
    treatment_doctor: ShortText | None = None
    treatment_suggested: LongText | None = None
    status: OpenLeadStatus = "new_inquiry"
    assigned_to_id: UUID | None = None
    guardian_name: Name | None = None
    guardian_age: Age | None = None
    location: ShortText | None = None
    referral_required: bool = False
    notes: LongText | None = None


class LeadUpdate(Body):
    name: Name | UnsetType = UNSET
    phone: Phone | UnsetType = UNSET
    alternate_phone: Phone | None | UnsetType = UNSET
    date_added: date | UnsetType = UNSET
    age: Age | None | UnsetType = UNSET
    gender: Gender | None | UnsetType = UNSET
    source: ShortText | None | UnsetType = UNSET
    inquiry: LongText | None | UnsetType = UNSET
    problem: LongText | None | UnsetType = UNSET
    treatment_doctor: ShortText | None | UnsetType = UNSET
    treatment_suggested: LongText | None | UnsetType = UNSET
    status: LeadStatus | UnsetType = UNSET
    assigned_to_id: UUID | None | UnsetType = UNSET
    guardian_name: Name | None | UnsetType = UNSET
    guardian_age: Age | None | UnsetType = UNSET
    location: ShortText | None | UnsetType = UNSET
    referral_required: bool | UnsetType = UNSET
    notes: LongText | None | UnsetType = UNSET


class LeadConversion(Body):
    """Patient fields for a converted lead; mobile, name and gender default to the lead's."""

    mobile: Phone | None = None
    name: Name | None = None
    email: Email | None = None
    gender: Gender | None = None
    dob: date | None = None
    marital_status: MaritalStatus | None = None
    blood_group: BloodGroup | None = None
    address: LongText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    postal_code: PostalCode | None = None
    emergency_contact_name: Name | None = None
    emergency_contact_phone: Phone | None = None
    assigned_doctor_id: UUID | None = None
    registration_date: date | None = None


def normalize_mobile(value: str) -> str:
    """'+91 98765-43210' → '+919876543210': the form patients.mobile stores and searches."""
    value = value.strip()
    return ("+" if value.startswith("+") else "") + re.sub(r"\D", "", value)

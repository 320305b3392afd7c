"""Rows the way a DBA makes them in psql, one factory per record: clinics, staff, patients, leads,
appointments, CallMaster users, crews, departments, shows, scripts and their elements.

The tests and `bench/` build every record through these, so a change to a table's required columns is
made here once. Factories take the DBA's connection (superuser, autocommit) and return the new row's id
as PostgreSQL returns it (a `uuid.UUID`; CallMaster ids as `str`, which is what their tests compare with
JSON). Request bodies (`lead_body`, `patient_body`) and `assert_problem` live here for the same reason.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import httpx
import psycopg
from psycopg import sql

Dba = psycopg.Connection[Any]
Bearer = Callable[..., dict[str, str]]

KEY_OLD = base64.b64encode(bytes(range(32))).decode()
KEY_NEW = base64.b64encode(bytes(range(100, 132))).decode()
KEYS_ONE = f"k1:{KEY_OLD}"
KEYS_TWO = f"k1:{KEY_OLD},k2:{KEY_NEW}"
# A well-formed AES-GCM envelope (the CHECK constraints want one) for leads whose content is never read;
# in the current format, as a deployment's rows are after `keel keys rotate` (v1 rows are counted).
CIPHERTEXT = "v2:k1:" + "A" * 43

CREATE_CLINIC = """
    SELECT clinic_id, admin_id
    FROM clinic.create_clinic(%(name)s, %(timezone)s, %(prefix)s, %(admin_name)s, %(admin_email)s)"""


def one(dba: Dba, query: Any, params: Any = None) -> Any:
    """The first column of the one row `query` returns."""
    row = dba.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def insert(dba: Dba, table: str, values: dict[str, Any]) -> uuid.UUID:
    """`INSERT INTO table (columns of values) VALUES (…) RETURNING id`; omitted columns take their default."""
    schema, name = table.split(".")
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
        sql.Identifier(schema, name),
        sql.SQL(", ").join(sql.Identifier(column) for column in values),
        sql.SQL(", ").join(sql.Placeholder(column) for column in values),
    )
    result: uuid.UUID = one(dba, query, values)
    return result


def count(dba: Dba, table: str) -> int:
    """Rows in `table` (schema-qualified; a bare name means `clinic.<name>`)."""
    schema, _, name = table.rpartition(".")
    query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema or "clinic", name))
    return int(one(dba, query))


# -- clinic ---------------------------------------------------------------------------------------------


@dataclass
class Clinic:
    """A clinic made by `clinic.create_clinic`, and the doctors and patients a factory added to it."""

    id: uuid.UUID
    admin_id: uuid.UUID
    name: str
    prefix: str
    timezone: str
    doctors: list[uuid.UUID] = field(default_factory=list)
    patients: list[uuid.UUID] = field(default_factory=list)

    @property
    def doctor_id(self) -> uuid.UUID:
        return self.doctors[0]

    @property
    def patient_id(self) -> uuid.UUID:
        return self.patients[0]


def create_clinic(
    dba: Dba,
    name: str = "Sunrise",
    timezone: str = "Asia/Kolkata",
    *,
    prefix: str | None = None,
    admin_email: str | None = None,
    doctors: int = 0,
    patients: int = 0,
) -> Clinic:
    """A clinic and its admin `"<name> Admin"` through `clinic.create_clinic`, then `doctors` doctors and
    `patients` patients (the first ones are `clinic.doctor_id` / `clinic.patient_id`)."""
    prefix = prefix or "C" + uuid.uuid4().hex[:6].upper()
    row = dba.execute(
        CREATE_CLINIC,
        {
            "name": name,
            "timezone": timezone,
            "prefix": prefix,
            "admin_name": f"{name} Admin",
            "admin_email": admin_email or f"admin-{prefix.lower()}@clinic.example",
        },
    ).fetchone()
    assert row is not None
    clinic = Clinic(row[0], row[1], name, prefix, timezone)
    clinic.doctors = [
        add_staff(dba, clinic.id, "Dr. Meera Rao" if n == 0 else f"Dr. {n}") for n in range(doctors)
    ]
    clinic.patients = [
        add_patient(dba, clinic.id, "Asha Kulkarni" if n == 0 else f"Patient {n}") for n in range(patients)
    ]
    return clinic


def add_staff(
    dba: Dba, clinic_id: uuid.UUID | str, name: str, role: str = "doctor", *, email: str | None = None
) -> uuid.UUID:
    """A staff member (doctors get specialty `general`); a unique email unless given."""
    return insert(
        dba,
        "clinic.staff",
        {
            "clinic_id": clinic_id,
            "name": name,
            "email": email or f"{uuid.uuid4().hex[:12]}@clinic.example",
            "role": role,
            "specialty": "general" if role == "doctor" else None,
        },
    )


def add_patient(
    dba: Dba,
    clinic_id: uuid.UUID | str,
    name: str = "Asha Kulkarni",
    *,
    dob: date | None = date(1990, 6, 15),
    mobile: str = "+919800000001",
    **columns: Any,
) -> uuid.UUID:
    """A patient with contact details (the snapshot trigger copies them); `columns` adds or overrides any
    column, e.g. `lead_id`, `registration_date`."""
    values = {
        "clinic_id": clinic_id,
        "name": name,
        "mobile": mobile,
        "email": "asha@example.org",
        "gender": "female",
        "dob": dob,
        "address": "12 MG Road",
        "city": "Pune",
        "state": "MH",
        "postal_code": "411001",
    }
    return insert(dba, "clinic.patients", values | columns)


def add_lead(
    dba: Dba,
    clinic_id: uuid.UUID | str,
    *,
    date_added: date,
    status: str = "new_inquiry",
    source: str | None = None,
    updated_at: datetime | None = None,
    assigned_to_id: uuid.UUID | None = None,
    name: str = "Lead",
) -> uuid.UUID:
    """A lead as a raw INSERT writes it (phone as an opaque envelope; `updated_at` also sets `created_at`).

    Only conversion makes a lead converted (clinic.check_lead_conversion); figures need converted leads
    whose patient comes later in the test or was since deleted, so a `converted` row is written as a
    restore writes it, with triggers off."""
    values: dict[str, Any] = {
        "clinic_id": clinic_id,
        "date_added": date_added,
        "name": name,
        "phone": CIPHERTEXT,
        "status": status,
        "source": source,
        "assigned_to_id": assigned_to_id,
    }
    if updated_at is not None:
        values |= {"created_at": updated_at, "updated_at": updated_at}
    with dba.transaction():
        if status == "converted":
            dba.execute("SET LOCAL session_replication_role = replica")
        return insert(dba, "clinic.leads", values)


def add_appointment(
    dba: Dba,
    clinic: Clinic,
    day: date,
    start: str,
    end: str,
    *,
    doctor_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    status: str | None = None,
) -> uuid.UUID:
    """The DBA's minimal INSERT (clinic_id and snapshots come from the trigger); the clinic's first doctor
    and patient unless given."""
    values: dict[str, Any] = {
        "patient_id": patient_id or clinic.patient_id,
        "doctor_id": doctor_id or clinic.doctor_id,
        "appointment_date": day,
        "start_time": start,
        "end_time": end,
    }
    if status is not None:
        values["status"] = status
    return insert(dba, "clinic.appointments", values)


def lead_body(**overrides: Any) -> dict[str, Any]:
    """A `POST /api/leads` body with every encrypted field filled."""
    body: dict[str, Any] = {
        "name": "Meera Nair",
        "phone": "+91 98470 12345",
        "alternate_phone": "0484 2345678",
        "age": 34,
        "gender": "female",
        "source": "google_ads",
        "inquiry": "Knee pain consult",
        "problem": "Chronic osteoarthritis left knee",
        "treatment_doctor": "Dr Raghavan",
        "treatment_suggested": "Total knee replacement",
        "location": "Kochi",
    }
    return body | overrides


def patient_body(**overrides: Any) -> dict[str, Any]:
    """A `POST /api/patients` body."""
    body: dict[str, Any] = {
        "name": "Arjun Menon",
        "mobile": "+91 98950 11111",
        "gender": "male",
        "dob": "1980-05-17",
    }
    return body | overrides


# -- callmaster -----------------------------------------------------------------------------------------


def add_user(
    dba: Dba, clerk_id: str | None, email: str | None = None, *, created_by: str | None = None
) -> str:
    """A verified user as the Clerk webhook would have made it (first name from the Clerk id), or a guest
    when `clerk_id` is None."""
    return str(
        insert(
            dba,
            "callmaster.users",
            {
                "clerk_user_id": clerk_id,
                "email": email or f"{clerk_id}@example.com",
                "first_name": clerk_id.title() if clerk_id else None,
                "status": "verified" if clerk_id else "guest",
                "created_by": created_by,
            },
        )
    )


def add_crew(dba: Dba, manager_id: str, email: str) -> str:
    """A guest user in the manager's crew."""
    user_id = add_user(dba, None, email, created_by=manager_id)
    insert(dba, "callmaster.crew_relationships", {"manager_user_id": manager_id, "crew_user_id": user_id})
    return user_id


def add_show(dba: Dba, owner_id: str, name: str = "Hamlet") -> str:
    return str(insert(dba, "callmaster.shows", {"owner_id": owner_id, "name": name}))


def add_script(dba: Dba, show_id: str, name: str = "Main") -> str:
    return str(insert(dba, "callmaster.scripts", {"show_id": show_id, "name": name}))


def add_department(dba: Dba, owner_id: str, name: str = "Lighting") -> str:
    return str(insert(dba, "callmaster.departments", {"owner_id": owner_id, "name": name}))


def assign(dba: Dba, show_id: str, user_id: str) -> None:
    """Put a user on a show's crew."""
    insert(dba, "callmaster.crew_assignments", {"show_id": show_id, "user_id": user_id})


ELEMENT_QUERIES = (
    """
    INSERT INTO callmaster.script_elements (
        id, script_id, element_type, sequence, cue_id, description, cue_notes, department_id,
        parent_element_id, trigger_type, follows_cue_id, priority, time_offset_ms, duration_ms, fade_in_ms,
        fade_out_ms, location, location_details, custom_color, group_level, is_collapsed, is_safety_critical,
        safety_notes, is_active)
    SELECT md5(%(s)s || ':' || i)::uuid, %(s)s::uuid, CASE WHEN i %% 10 = 0 THEN 'group' WHEN i %% 7 = 0 THEN 'note' ELSE 'cue' END,
           i, 'E' || i, 'element ' || i, CASE WHEN i %% 4 = 0 THEN 'notes ' || i END,
           CASE WHEN i %% 3 = 0 THEN %(dept)s::uuid END,
           CASE WHEN i %% 10 <> 0 THEN md5(%(s)s || ':' || ((i / 10 + 1) * 10))::uuid
                WHEN (i / 10) %% 5 <> 0 THEN md5(%(s)s || ':' || (((i / 10 + 4) / 5) * 50))::uuid
           END,
           (ARRAY['manual', 'time', 'auto', 'follow', 'go', 'standby'])[1 + i %% 6],
           CASE WHEN i %% 6 = 3 THEN 'E' || (i - 1) END,
           (ARRAY['critical', 'high', 'normal', 'low', 'optional'])[1 + i %% 5],
           (i * 7919) %% 600000, CASE WHEN i %% 2 = 0 THEN i * 10 END, i %% 500, NULL,
           (ARRAY['stage_left', 'booth', 'fly_gallery', 'upstage_left'])[1 + i %% 4],
           CASE WHEN i %% 9 = 0 THEN 'detail ' || i END,
           CASE WHEN i %% 8 = 0 THEN '#A1B2C3' END,
           CASE WHEN i %% 10 <> 0 THEN 2 WHEN (i / 10) %% 5 <> 0 THEN 1 ELSE 0 END,
           i %% 13 = 0, i %% 17 = 0, CASE WHEN i %% 17 = 0 THEN 'harness check' END, i %% 19 <> 0
    FROM generate_series(1, %(n)s) AS i
    """,
    """
    INSERT INTO callmaster.script_element_groups (group_id, child_element_id, script_id, order_in_group)
    SELECT md5(%(s)s || ':' || ((i / 10 + 1) * 10))::uuid, md5(%(s)s || ':' || i)::uuid, %(s)s::uuid, i %% 10
    FROM generate_series(1, %(n)s) AS i WHERE i %% 10 <> 0
    UNION ALL
    SELECT md5(%(s)s || ':' || (((i / 10 + 4) / 5) * 50))::uuid, md5(%(s)s || ':' || i)::uuid, %(s)s::uuid, (i / 10) %% 5
    FROM generate_series(10, %(n)s, 10) AS i WHERE (i / 10) %% 5 <> 0
    """,
    """
    INSERT INTO callmaster.script_element_equipment (element_id, equipment_name, is_required, notes)
    SELECT md5(%(s)s || ':' || i)::uuid, 'spot ' || (i %% 4), i %% 2 = 0, CASE WHEN i %% 3 = 0 THEN 'gel R02' END
    FROM generate_series(1, %(n)s) AS i
    UNION ALL
    SELECT md5(%(s)s || ':' || i)::uuid, 'fog machine', true, NULL FROM generate_series(3, %(n)s, 3) AS i
    """,
    """
    INSERT INTO callmaster.script_element_crew_assignments (element_id, crew_user_id, assignment_role, is_lead)
    SELECT md5(%(s)s || ':' || i)::uuid, %(c1)s::uuid, 'operator', true FROM generate_series(2, %(n)s, 2) AS i
    UNION ALL
    SELECT md5(%(s)s || ':' || i)::uuid, %(c2)s::uuid, NULL, false FROM generate_series(7, %(n)s, 7) AS i
    """,
    """
    INSERT INTO callmaster.script_element_performer_assignments (element_id, performer_id, character_name, notes)
    SELECT md5(%(s)s || ':' || i)::uuid, %(p)s::uuid, 'Ophelia', CASE WHEN i %% 8 = 0 THEN 'enters SL' END
    FROM generate_series(4, %(n)s, 4) AS i
    """,
    """
    INSERT INTO callmaster.script_element_conditional_rules (
        element_id, condition_type, operator, condition_value, description, is_active)
    SELECT md5(%(s)s || ':' || i)::uuid, 'weather', 'equals', 'rain', 'outdoor only', true
    FROM generate_series(5, %(n)s, 5) AS i
    UNION ALL
    SELECT md5(%(s)s || ':' || i)::uuid, 'cast', 'not_equals', 'understudy', NULL, i %% 2 = 0
    FROM generate_series(11, %(n)s, 11) AS i
    """,
)


def fill_script(
    dba: Dba, script_id: str, n: int, *, department_id: str, crew_ids: tuple[str, str], performer_id: str
) -> None:
    """`n` elements (a multiple of 50) labelled E1..En with every supporting table populated, set-based.

    Every 10th element is a group holding the nine before it (as parent and as group members); the
    groups are nested in turn: each 50th element's group also holds the four groups before it.
    """
    assert n % 50 == 0
    params = {
        "s": script_id,
        "n": n,
        "dept": department_id,
        "c1": crew_ids[0],
        "c2": crew_ids[1],
        "p": performer_id,
    }
    for query in ELEMENT_QUERIES:
        dba.execute(query, params)


# -- HTTP -----------------------------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status (or one of these) and a detail."""
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status_code in expected, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code and body["title"] and body["detail"]
    return body

"""The clinic-records database surface as a DBA and the API role see it, without HTTP."""

from __future__ import annotations

import json

import psycopg
import pytest


def as_api(conn: psycopg.Connection, claims: dict | None) -> None:
    conn.execute(
        "SELECT set_config('request.jwt.claims', %s, true), set_config('role', 'keel_api', true)",
        (json.dumps(claims) if claims is not None else "",),
    )


def test_create_clinic_contract(dba):
    clinic_id, admin_id = dba.execute(
        "SELECT clinic_id, admin_id FROM clinic.create_clinic('Delta', 'Europe/Berlin', ' del ', 'Dee', 'dee@delta.example')"
    ).fetchone()
    assert dba.execute(
        "SELECT name, timezone, uhid_prefix FROM clinic.clinics WHERE id = %s", (clinic_id,)
    ).fetchone() == ("Delta", "Europe/Berlin", "DEL")
    assert dba.execute("SELECT clinic_id, role FROM clinic.staff WHERE id = %s", (admin_id,)).fetchone() == (
        clinic_id,
        "admin",
    )
    assert dba.execute(
        "SELECT last_value FROM clinic.uhid_counters WHERE clinic_id = %s", (clinic_id,)
    ).fetchone() == (0,)
    for args, error in (
        (("Bad", "Nowhere/City", "X", "A", "a@b.example"), psycopg.errors.InvalidParameterValue),
        (("", "UTC", "X", "A", "a@b.example"), psycopg.errors.CheckViolation),
        (("Bad", "UTC", "X-1", "A", "a@b.example"), psycopg.errors.CheckViolation),
        (("Bad", "UTC", "X", "A", "not-an-email"), psycopg.errors.CheckViolation),
        (("Bad", "UTC", "X", None, "a@b.example"), psycopg.errors.NotNullViolation),
    ):
        with pytest.raises(error):
            dba.execute("SELECT * FROM clinic.create_clinic(%s, %s, %s, %s, %s)", args)
    assert dba.execute("SELECT count(*) FROM clinic.clinics").fetchone() == (1,)


def test_api_role_sees_only_its_clinic_and_nothing_without_claims(dba, clinic_a, clinic_b):
    for clinic in (clinic_a, clinic_b):
        dba.execute(
            "INSERT INTO clinic.patients (clinic_id, name, mobile) VALUES (%s, 'P', '9847012345')",
            (clinic.id,),
        )
    with dba.transaction():
        as_api(dba, {"sub": clinic_a.admin_id, "clinic_id": clinic_a.id, "role": "admin"})
        assert dba.execute("SELECT count(*) FROM clinic.patients").fetchone() == (1,)
        assert dba.execute("SELECT count(*) FROM clinic.staff").fetchone() == (1,)
        assert dba.execute("SELECT array_agg(id::text) FROM clinic.clinics").fetchone() == ([clinic_a.id],)
        # Updating or deleting another clinic's rows touches nothing.
        assert (
            dba.execute("UPDATE clinic.patients SET city = 'X' WHERE clinic_id = %s", (clinic_b.id,)).rowcount
            == 0
        )
        assert dba.execute("DELETE FROM clinic.staff WHERE clinic_id = %s", (clinic_b.id,)).rowcount == 0
    with dba.transaction():
        as_api(dba, None)
        for table in ("clinics", "staff", "leads", "patients"):
            query = psycopg.sql.SQL("SELECT count(*) FROM clinic.{}").format(psycopg.sql.Identifier(table))
            assert dba.execute(query).fetchone() == (0,), table
    with dba.transaction():
        as_api(dba, {"sub": "x", "clinic_id": "not-a-uuid", "role": "admin"})
        assert dba.execute("SELECT count(*) FROM clinic.patients").fetchone() == (0,)


def test_api_role_cannot_write_into_another_clinic_or_touch_counters(dba, clinic_a, clinic_b):
    with pytest.raises(psycopg.errors.InsufficientPrivilege), dba.transaction():
        as_api(dba, {"sub": "x", "clinic_id": clinic_a.id, "role": "admin"})
        dba.execute(
            "INSERT INTO clinic.patients (clinic_id, name, mobile) VALUES (%s, 'P', '9847012345')",
            (clinic_b.id,),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), dba.transaction():
        as_api(dba, {"sub": "x", "clinic_id": clinic_a.id, "role": "admin"})
        dba.execute(
            "SELECT clinic.create_patient(%s)",
            (json.dumps({"name": "P", "mobile": "9847012345", "clinic_id": clinic_b.id}),),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), dba.transaction():
        as_api(dba, {"sub": "x", "clinic_id": clinic_a.id, "role": "admin"})
        dba.execute("UPDATE clinic.uhid_counters SET last_value = 0")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), dba.transaction():
        as_api(dba, {"sub": "x", "clinic_id": clinic_a.id, "role": "admin"})
        dba.execute("SELECT * FROM clinic.create_clinic('Evil', 'UTC', 'E', 'E', 'e@e.example')")
    # A composite foreign key stops a reference to another clinic's staff even where RLS does not look.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        dba.execute(
            "INSERT INTO clinic.patients (clinic_id, name, mobile, assigned_doctor_id) VALUES (%s, 'P', '9847012345', %s)",
            (clinic_a.id, clinic_b.admin_id),
        )
    assert dba.execute("SELECT count(*) FROM clinic.patients").fetchone() == (0,)


def test_dba_functions_need_a_clinic(dba, clinic_a):
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute('SELECT clinic.create_patient(\'{"name": "P", "mobile": "9847012345"}\')')
    created = dba.execute(
        "SELECT clinic.create_patient(%s)",
        (json.dumps({"name": "P", "mobile": "9847012345", "clinic_id": clinic_a.id}),),
    ).fetchone()[0]
    assert created["uhid"] == "ALP-000001"
    staff = dba.execute(
        "SELECT clinic.create_staff(%s)",
        (
            json.dumps(
                {"name": "Dr D", "email": "d@alpha.example", "role": "doctor", "clinic_id": clinic_a.id}
            ),
        ),
    ).fetchone()[0]
    assert staff["role"] == "doctor"


def test_uhid_numbers_grow_past_six_digits(dba, clinic_a):
    dba.execute("UPDATE clinic.uhid_counters SET last_value = 999999 WHERE clinic_id = %s", (clinic_a.id,))
    rows = dba.execute(
        "INSERT INTO clinic.patients (clinic_id, name, mobile) VALUES (%s, 'A', '9847012345'), (%s, 'B', '9847012346') RETURNING uhid",
        (clinic_a.id, clinic_a.id),
    ).fetchall()
    assert [r[0] for r in rows] == ["ALP-1000000", "ALP-1000001"]


def test_every_clinic_records_function_is_commented(dba):
    bare = dba.execute(
        """
        SELECT p.proname FROM pg_proc p
        WHERE p.pronamespace = 'clinic'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
        """
    ).fetchall()
    assert bare == []

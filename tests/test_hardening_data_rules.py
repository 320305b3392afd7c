# ruff: noqa: F811 - fixtures are imported from tests.clinic_support
"""Issue 13, the data rules a DBA's raw SQL must get exactly as the API does: UHIDs skip taken numbers
(3), date defaults in the clinic's timezone (5), key rotation leaves updated_at alone (8), deleting a
department never collides with crew assignments (9), and only conversion makes a lead converted (11)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from api.clinic.cli import keys as keys_cli
from tests.callmaster_shows_support import add_crew, add_department, add_show, add_user
from tests.clinic_support import (  # noqa: F401
    KEYS_TWO,
    assert_problem,
    clinic_a,
    lead_body,
    settings_overrides,
)

Dba = psycopg.Connection[Any]
# Shaped like a ciphertext (the CHECK constraints accept it); raw INSERTs below never decrypt it.
FAKE_CIPHERTEXT = "v1:k1:" + "A" * 40
RAW_LEAD = "INSERT INTO clinic.leads (clinic_id, name, phone) VALUES (%s, %s, %s) RETURNING id"


def one(dba: Dba, query: str, params: Any = None) -> Any:
    row = dba.execute(query, params).fetchone()
    assert row is not None
    return row[0]


# -- 3: UHID skips numbers already taken ---------------------------------------------------------


async def test_hardening_uhid_skips_taken_numbers(dba: Dba, db_url: str, clinic_a) -> None:
    # A DBA registers patients by hand with numbers the counter has not reached yet.
    taken = ["ALP-000001", "ALP-000002", "ALP-000005", "ALP-000030"]
    for n, uhid in enumerate(taken):
        dba.execute(
            "INSERT INTO clinic.patients (clinic_id, uhid, name, mobile) VALUES (%s, %s, %s, '9847000000')",
            (clinic_a.id, uhid, f"Manual {n}"),
        )
    first = one(
        dba,
        "SELECT clinic.create_patient(%s) ->> 'uhid'",
        (Jsonb({"clinic_id": clinic_a.id, "name": "First", "mobile": "9847000001"}),),
    )
    assert first == "ALP-000003"

    # 50 registrations on 50 real connections at once: none fails, no number is handed out twice,
    # and the hand-made numbers are never reused.
    async def register(i: int) -> str:
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT clinic.create_patient(%s) ->> 'uhid'",
                (Jsonb({"clinic_id": clinic_a.id, "name": f"Parallel {i}", "mobile": f"98471{i:05d}"}),),
            )
            row = await cur.fetchone()
            assert row is not None
            return str(row[0])

    uhids = await asyncio.gather(*(register(i) for i in range(50)))
    assert len(set(uhids)) == 50
    assert not set(uhids) & set(taken)
    assert (
        one(dba, "SELECT count(DISTINCT uhid) FROM clinic.patients WHERE clinic_id = %s", (clinic_a.id,))
        == 55
    )
    # Only the taken numbers were skipped: 1..55 plus the four manual ones cover 1..55 exactly.
    numbers = sorted(int(u.split("-")[1]) for u in [*uhids, first, *taken])
    assert numbers == list(range(1, 56))


# -- 5: date defaults are the clinic's local date ------------------------------------------------


def make_clinic(dba: Dba, name: str, timezone: str, prefix: str) -> tuple[str, str]:
    row = dba.execute(
        "SELECT clinic_id, admin_id FROM clinic.create_clinic(%s, %s, %s, %s, %s)",
        (name, timezone, prefix, f"{name} Admin", f"admin@{prefix.lower()}.example"),
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


async def test_hardening_date_defaults_follow_clinic_timezone(
    dba: Dba, client: Any, bearer: Callable[..., dict[str, str]]
) -> None:
    east, east_admin = make_clinic(dba, "Kiritimati", "Pacific/Kiritimati", "KIR")  # UTC+14
    west, _ = make_clinic(dba, "Honolulu", "Pacific/Honolulu", "HNL")  # UTC-10

    # Around midnight UTC, the two clinics are on different days, on either side of UTC's.
    for at, east_day, west_day in (
        ("2026-03-01 23:30+00", "2026-03-02", "2026-03-01"),
        ("2026-03-02 00:30+00", "2026-03-02", "2026-03-01"),
        ("2026-03-01 09:59+00", "2026-03-01", "2026-02-28"),
        ("2026-03-01 10:00+00", "2026-03-02", "2026-03-01"),
    ):
        days = dba.execute(
            "SELECT clinic.local_date(%s, %s)::text, clinic.local_date(%s, %s)::text", (east, at, west, at)
        ).fetchone()
        assert days == (east_day, west_day), at

    # The default path: a DBA's raw INSERTs with no date, in one transaction (one now()).
    with dba.transaction():
        expected = dba.execute(
            "SELECT (now() AT TIME ZONE 'Pacific/Kiritimati')::date, (now() AT TIME ZONE 'Pacific/Honolulu')::date"
        ).fetchone()
        lead_days = [
            one(dba, RAW_LEAD.replace("RETURNING id", "RETURNING date_added"), (c, "Raw", FAKE_CIPHERTEXT))
            for c in (east, west)
        ]
        patient_days = [
            one(
                dba,
                "INSERT INTO clinic.patients (clinic_id, name, mobile) VALUES (%s, 'Raw', '9847000000')"
                " RETURNING registration_date",
                (c,),
            )
            for c in (east, west)
        ]
    assert expected is not None and tuple(lead_days) == tuple(patient_days) == tuple(expected)
    assert (lead_days[0] - lead_days[1]).days == 1  # UTC+14 and UTC-10 are always a day apart

    # The API path: a lead, a patient and a conversion in the UTC+14 clinic get its local date.
    headers = bearer(east_admin, clinic_id=east, role="admin")
    today = str(one(dba, "SELECT (now() AT TIME ZONE 'Pacific/Kiritimati')::date"))
    lead = await client.post("/api/leads", json=lead_body(), headers=headers)
    patient = await client.post(
        "/api/patients", json={"name": "Api", "mobile": "9847000002"}, headers=headers
    )
    converted = await client.post(
        f"/api/leads/{lead.json()['id']}/convert", json={"mobile": "9847000003"}, headers=headers
    )
    assert lead.status_code == patient.status_code == converted.status_code == 201, converted.text
    assert lead.json()["date_added"] == today
    assert patient.json()["registration_date"] == converted.json()["registration_date"] == today


# -- 8: key rotation does not touch updated_at ---------------------------------------------------


async def test_hardening_key_rotation_keeps_updated_at(
    dba: Dba, db_url: str, client: Any, clinic_a, tmp_path: Path
) -> None:
    ids = [
        (
            await client.post(
                "/api/leads",
                json=lead_body(name=f"Stalled {i}", phone=f"98472{i:05d}", status="cro_queue"),
                headers=clinic_a.headers,
            )
        ).json()["id"]
        for i in range(3)
    ]
    # Stalled for ten days (written with triggers off, as a restore would).
    with dba.transaction():
        dba.execute("SET LOCAL session_replication_role = replica")
        dba.execute("UPDATE clinic.leads SET updated_at = now() - interval '10 days'")
    before = dict(dba.execute("SELECT id::text, updated_at FROM clinic.leads").fetchall())
    queue = (await client.get("/api/control-tower/intervention-queue", headers=clinic_a.headers)).json()
    assert queue["total"] == 3

    env = {
        "DATABASE_URL": db_url,
        "KEEL_ENCRYPTION_KEYS": KEYS_TWO,
        "KEEL_DATA_DIR": str(tmp_path),
        "KEEL_JWT_SECRET": "cli-test-secret-0123456789abcdef0123456789",
        "KEEL_LOG_LEVEL": "WARNING",
    }
    result = CliRunner().invoke(keys_cli, ["rotate"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["reencrypted"] == 3
    assert {r[0] for r in dba.execute("SELECT DISTINCT unnest(key_ids) FROM clinic.leads")} == {"k2"}
    assert dict(dba.execute("SELECT id::text, updated_at FROM clinic.leads").fetchall()) == before
    # An ordinary edit in the same session still counts as activity.
    dba.execute("UPDATE clinic.leads SET notes = 'called back' WHERE id = %s", (ids[0],))
    assert one(
        dba, "SELECT updated_at > now() - interval '1 minute' FROM clinic.leads WHERE id = %s", (ids[0],)
    )

    # The request role cannot borrow the maintenance switch to hide an edit.
    with dba.transaction():
        dba.execute(
            "SELECT set_config('request.jwt.claims', %s, true), set_config('keel.keep_updated_at', 'on', true)",
            (json.dumps({"sub": clinic_a.admin_id, "clinic_id": clinic_a.id, "role": "admin"}),),
        )
        dba.execute("SET LOCAL ROLE keel_api")
        dba.execute("UPDATE clinic.leads SET notes = 'hidden?' WHERE id = %s", (ids[1],))
    assert one(
        dba, "SELECT updated_at > now() - interval '1 minute' FROM clinic.leads WHERE id = %s", (ids[1],)
    )


# -- 9: deleting a department succeeds ------------------------------------------------------------


async def test_hardening_department_delete_merges_crew_assignments(
    dba: Dba, client: Any, bearer: Callable[..., dict[str, str]]
) -> None:
    owner = add_user(dba, "user_owner")
    show = add_show(dba, owner)
    lighting = add_department(dba, owner, "Lighting")
    both, only_dept = add_crew(dba, owner, "both@example.com"), add_crew(dba, owner, "dept@example.com")
    for user, department in ((both, None), (both, lighting), (only_dept, lighting)):
        dba.execute(
            "INSERT INTO callmaster.crew_assignments (show_id, user_id, department_id) VALUES (%s, %s, %s)",
            (show, user, department),
        )

    r = await client.delete(f"/api/departments/{lighting}", headers=bearer("user_owner"))
    assert r.status_code == 204, r.text
    rows = dba.execute(
        "SELECT user_id::text, department_id FROM callmaster.crew_assignments WHERE show_id = %s ORDER BY 1",
        (show,),
    ).fetchall()
    assert sorted(rows) == sorted([(both, None), (only_dept, None)])  # everyone still on the show, once

    # The same from psql.
    sound = add_department(dba, owner, "Sound")
    for user in (both, only_dept):
        dba.execute(
            "INSERT INTO callmaster.crew_assignments (show_id, user_id, department_id) VALUES (%s, %s, %s)",
            (show, user, sound),
        )
    dba.execute("DELETE FROM callmaster.departments WHERE id = %s", (sound,))
    assert one(dba, "SELECT count(*) FROM callmaster.crew_assignments WHERE show_id = %s", (show,)) == 2


# -- 11: only conversion makes a lead converted ---------------------------------------------------


async def test_hardening_converted_only_by_conversion(dba: Dba, client: Any, clinic_a) -> None:
    lead = one(dba, RAW_LEAD, (clinic_a.id, "Raw", FAKE_CIPHERTEXT))
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute("UPDATE clinic.leads SET status = 'converted' WHERE id = %s", (lead,))
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute(
            "INSERT INTO clinic.leads (clinic_id, name, phone, status) VALUES (%s, 'Raw', %s, 'converted')",
            (clinic_a.id, FAKE_CIPHERTEXT),
        )
    # A DBA's bulk import: the converted row is rejected with a reason, the others go in.
    rows = [
        {"index": 0, "name": "Fine", "phone": FAKE_CIPHERTEXT},
        {"index": 1, "name": "Skewed", "phone": FAKE_CIPHERTEXT, "status": "converted"},
    ]
    result = one(dba, "SELECT clinic.import_leads(%s, true, %s)", (Jsonb(rows), clinic_a.id))
    assert result["imported"] == 1
    assert result["rejected"] == [
        {"index": 1, "errors": [{"field": "status", "reason": "a lead becomes converted only by conversion"}]}
    ]
    assert one(dba, "SELECT count(*) FROM clinic.leads WHERE status = 'converted'") == 0

    # Through the API, PATCH cannot either; conversion can, and the lead then stays converted.
    api_lead = (await client.post("/api/leads", json=lead_body(), headers=clinic_a.headers)).json()
    assert_problem(
        await client.patch(
            f"/api/leads/{api_lead['id']}", json={"status": "converted"}, headers=clinic_a.headers
        ),
        422,
    )
    dba.execute("SELECT clinic.convert_lead(%s, mobile => '9847000009')", (lead,))
    assert one(dba, "SELECT status FROM clinic.leads WHERE id = %s", (lead,)) == "converted"
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute("UPDATE clinic.leads SET status = 'lost' WHERE id = %s", (lead,))
    # Figures only count converted leads that have their patient.
    assert (
        one(
            dba,
            "SELECT count(*) FROM clinic.leads AS l WHERE l.status = 'converted'"
            " AND NOT EXISTS (SELECT FROM clinic.patients AS p WHERE p.lead_id = l.id)",
        )
        == 0
    )

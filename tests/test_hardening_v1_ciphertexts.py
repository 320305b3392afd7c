"""Issue 13, after finding 13: lead fields encrypted before values were bound to their clinic and row (v1)
kept decrypting until `keel keys rotate` ran, so a v1 value copied into another clinic's lead read there.
Now the API refuses v1 values unless KEEL_ACCEPT_V1_CIPHERTEXTS is set (the upgrade window), and
`keel migrate` and `/api/ready` count the leads still holding any; `keel keys rotate` rewrites them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from api.clinic.cli import keys as keys_cli
from api.migrate import migrate
from tests.factories import KEYS_ONE, lead_body
from tests.test_clinic_keys import cli_env
from tests.test_hardening_tenant_crypto import legacy_blind_index, legacy_ciphertext

Dba = psycopg.Connection[Any]
PHONE = "9847077777"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}  # KEEL_ACCEPT_V1_CIPHERTEXTS unset: the default


async def test_v1_ciphertexts_are_refused_counted_and_rotated(
    client: Any, clinic_a, clinic_b, dba: Dba, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await client.get("/api/ready")).json()["v1_ciphertexts"] == {"leads": 0, "readable": False}
    legacy = dba.execute(
        "INSERT INTO clinic.leads (clinic_id, name, phone, phone_bidx, problem) VALUES (%s, 'Legacy', %s, %s, %s)"
        " RETURNING id::text",
        (
            clinic_a.id,
            legacy_ciphertext(PHONE, "clinic.leads.phone"),
            legacy_blind_index(PHONE),
            legacy_ciphertext("Old complaint", "clinic.leads.problem"),
        ),
    ).fetchone()[0]
    # Refused: answered (never a 500) with the fields null and named; its v1 phone index matches nothing.
    r = await client.get(f"/api/leads/{legacy}", headers=clinic_a.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["phone"], body["problem"], body["name"]) == (None, None, "Legacy")
    assert body["unreadable_fields"] == ["phone", "problem"]
    found = (await client.get("/api/leads", params={"phone": PHONE}, headers=clinic_a.headers)).json()
    assert found["total"] == 0

    # What v1 allowed: the value copied into another clinic's lead. It reads there no more than here.
    other = (await client.post("/api/leads", json=lead_body(name="B lead"), headers=clinic_b.headers)).json()
    dba.execute(
        "UPDATE clinic.leads SET problem = (SELECT problem FROM clinic.leads WHERE id = %s) WHERE id = %s",
        (legacy, other["id"]),
    )
    copied = (await client.get(f"/api/leads/{other['id']}", headers=clinic_b.headers)).json()
    assert copied["problem"] is None and copied["unreadable_fields"] == ["problem"]

    # The operator is told, by /api/ready and by `keel migrate`.
    assert (await client.get("/api/ready")).json()["v1_ciphertexts"] == {"leads": 2, "readable": False}
    caplog.set_level(logging.WARNING, logger="api.migrate")
    assert migrate(db_url)["v1_ciphertext_leads"] == 2
    assert any("2 lead(s) still hold v1 ciphertexts" in r.getMessage() for r in caplog.records)

    # `keel keys rotate` reads them whatever the setting, and rewrites them bound to clinic and row.
    dba.execute("UPDATE clinic.leads SET problem = NULL WHERE id = %s", (other["id"],))  # the copy: gone
    result = CliRunner().invoke(keys_cli, ["rotate"], env=cli_env(db_url, tmp_path, KEYS_ONE))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"reencrypted": 1, "key_id": "k1"}
    body = (await client.get(f"/api/leads/{legacy}", headers=clinic_a.headers)).json()
    assert (body["phone"], body["problem"]) == (PHONE, "Old complaint") and "unreadable_fields" not in body
    found = (await client.get("/api/leads", params={"phone": PHONE}, headers=clinic_a.headers)).json()
    assert [item["id"] for item in found["items"]] == [legacy]
    assert (await client.get("/api/ready")).json()["v1_ciphertexts"] == {"leads": 0, "readable": False}
    assert migrate(db_url)["v1_ciphertext_leads"] == 0


def test_the_count_reads_only_the_v1_rows(dba: Dba, clinic_setup) -> None:
    """/api/ready asks on every probe: the partial index answers, whatever the table's size."""
    dba.execute(
        "INSERT INTO clinic.leads (clinic_id, name, phone, phone_bidx)"
        " SELECT %s, 'Filler ' || i, 'v2:k1:' || repeat('A', 40), 'v2:k1:f' || i FROM generate_series(1, 2000) i",
        (clinic_setup.id,),
    )
    dba.execute("ANALYZE clinic.leads")
    # The function's query (its body, word for word), planned as it runs inside the function.
    plan = dba.execute(
        "EXPLAIN SELECT count(*) FROM clinic.leads"
        " WHERE phone LIKE 'v1:%' OR alternate_phone LIKE 'v1:%' OR problem LIKE 'v1:%'"
        " OR treatment_doctor LIKE 'v1:%' OR treatment_suggested LIKE 'v1:%' OR phone_bidx NOT LIKE 'v2:%'"
    ).fetchall()
    assert any("leads_v1_ciphertext_idx" in row[0] for row in plan), plan
    assert dba.execute("SELECT clinic.count_v1_ciphertexts()").fetchone() == (0,)

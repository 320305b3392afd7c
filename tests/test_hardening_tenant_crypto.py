"""Issue 13, finding 13: blind indexes are per clinic and ciphertexts are bound to their clinic, row and
column; rows in the old format read during the upgrade window (KEEL_ACCEPT_V1_CIPHERTEXTS; refused
otherwise: tests/test_hardening_v1_ciphertexts.py) and `keel keys rotate` moves them over."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from api.clinic.cli import keys as keys_cli
from api.crypto import _derive, normalize_phone
from tests.factories import KEY_OLD, KEYS_ONE, lead_body

Dba = psycopg.Connection[Any]
MASTER = base64.b64decode(KEY_OLD)  # key k1 of KEYS_ONE


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE, "accept_v1_ciphertexts": True}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def legacy_ciphertext(value: str, column: str) -> str:
    """A value as the v1 format wrote it: bound to the column name only."""
    nonce = os.urandom(12)
    sealed = AESGCM(_derive(MASTER, b"aes-256-gcm")).encrypt(nonce, value.encode(), column.encode())
    return f"v1:k1:{b64url(nonce + sealed)}"


def legacy_blind_index(phone: str) -> str:
    """A phone's v1 blind index: one key for every clinic."""
    key = _derive(MASTER, b"blind-index")
    return "k1:" + b64url(hmac.new(key, normalize_phone(phone).encode(), hashlib.sha256).digest())


async def test_hardening_blind_index_and_aad_bound_to_tenant(
    client: Any, clinic_a, clinic_b, dba: Dba, db_url: str, tmp_path: Path
) -> None:
    # The same phone in two clinics: unrelated blind indexes, yet each clinic finds its own lead.
    phone = "+91 98470 55555"
    a1 = (
        await client.post("/api/leads", json=lead_body(name="A one", phone=phone), headers=clinic_a.headers)
    ).json()
    b1 = (
        await client.post("/api/leads", json=lead_body(name="B one", phone=phone), headers=clinic_b.headers)
    ).json()
    indexes = dict(dba.execute("SELECT id::text, phone_bidx FROM clinic.leads").fetchall())
    assert indexes[a1["id"]] != indexes[b1["id"]] and indexes[a1["id"]].startswith("v2:k1:")
    a2 = (
        await client.post("/api/leads", json=lead_body(name="A two", phone=phone), headers=clinic_a.headers)
    ).json()
    assert a2["possible_duplicate_of"] == a1["id"]
    for clinic, expected in ((clinic_a, {a1["id"], a2["id"]}), (clinic_b, {b1["id"]})):
        found = (
            await client.get("/api/leads", params={"phone": "9847055555"}, headers=clinic.headers)
        ).json()
        assert {item["id"] for item in found["items"]} == expected

    # A ciphertext copied to another row of the clinic, or to another clinic's row, does not decrypt:
    # the lead is answered (200, never a 500) with that field null and named in unreadable_fields.
    problem = dba.execute("SELECT problem FROM clinic.leads WHERE id = %s", (a1["id"],)).fetchone()[0]
    dba.execute("UPDATE clinic.leads SET problem = %s WHERE id IN (%s, %s)", (problem, a2["id"], b1["id"]))
    for lead, clinic in ((a2, clinic_a), (b1, clinic_b)):
        r = await client.get(f"/api/leads/{lead['id']}", headers=clinic.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["problem"] is None and body["unreadable_fields"] == ["problem"]
        assert body["phone"] == phone and body["name"] == lead["name"]
    listed = await client.get("/api/leads", headers=clinic_a.headers)
    assert listed.status_code == 200
    by_id = {item["id"]: item for item in listed.json()["items"]}
    assert by_id[a1["id"]]["problem"] == lead_body()["problem"] and "unreadable_fields" not in by_id[a1["id"]]
    assert by_id[a2["id"]]["unreadable_fields"] == ["problem"]
    # The same ciphertext moved into another column of its own row fails too.
    dba.execute("UPDATE clinic.leads SET treatment_doctor = problem WHERE id = %s", (a1["id"],))
    body = (await client.get(f"/api/leads/{a1['id']}", headers=clinic_a.headers)).json()
    assert body["unreadable_fields"] == ["treatment_doctor"] and body["problem"] == lead_body()["problem"]

    # Rows written before tenant binding (v1): in the upgrade window they read and match before rotation …
    legacy = dba.execute(
        "INSERT INTO clinic.leads (clinic_id, name, phone, phone_bidx, problem) VALUES (%s, 'Legacy', %s, %s, %s)"
        " RETURNING id::text",
        (
            clinic_a.id,
            legacy_ciphertext("9847066666", "clinic.leads.phone"),
            legacy_blind_index("9847066666"),
            legacy_ciphertext("Old complaint", "clinic.leads.problem"),
        ),
    ).fetchone()[0]
    r = await client.get(f"/api/leads/{legacy}", headers=clinic_a.headers)
    assert r.status_code == 200 and (r.json()["phone"], r.json()["problem"]) == (
        "9847066666",
        "Old complaint",
    )
    found = (await client.get("/api/leads", params={"phone": "98470 66666"}, headers=clinic_a.headers)).json()
    assert [item["id"] for item in found["items"]] == [legacy]
    ready = (await client.get("/api/ready")).json()
    assert ready["v1_ciphertexts"] == {"leads": 1, "readable": True}

    # … and `keel keys rotate` rewrites them bound to their clinic and row, with the clinic's index.
    env = {
        "DATABASE_URL": db_url,
        "KEEL_ENCRYPTION_KEYS": KEYS_ONE,
        "KEEL_DATA_DIR": str(tmp_path),
        "KEEL_JWT_SECRET": "cli-test-secret-0123456789abcdef0123456789",
        "KEEL_LOG_LEVEL": "WARNING",
    }
    dba.execute(
        "UPDATE clinic.leads SET problem = NULL, treatment_doctor = NULL WHERE id IN (%s, %s, %s)",
        (a1["id"], a2["id"], b1["id"]),
    )  # the tampered values above would (rightly) stop it
    result = CliRunner().invoke(keys_cli, ["rotate"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"reencrypted": 1, "key_id": "k1"}
    row = dba.execute(
        "SELECT phone, problem, phone_bidx FROM clinic.leads WHERE id = %s", (legacy,)
    ).fetchone()
    assert row[0].startswith("v2:k1:") and row[1].startswith("v2:k1:") and row[2].startswith("v2:k1:")
    assert dba.execute("SELECT clinic.count_leads_to_rekey('k1')").fetchone()[0] == 0
    assert (await client.get("/api/ready")).json()["v1_ciphertexts"] == {"leads": 0, "readable": True}
    r = await client.get(f"/api/leads/{legacy}", headers=clinic_a.headers)
    assert (r.json()["phone"], r.json()["problem"]) == ("9847066666", "Old complaint")
    found = (await client.get("/api/leads", params={"phone": "9847066666"}, headers=clinic_a.headers)).json()
    assert [item["id"] for item in found["items"]] == [legacy]
    # A rotated value copied into another clinic no longer decrypts there.
    dba.execute("UPDATE clinic.leads SET problem = %s WHERE id = %s", (row[1], b1["id"]))
    body = (await client.get(f"/api/leads/{b1['id']}", headers=clinic_b.headers)).json()
    assert body["problem"] is None and body["unreadable_fields"] == ["problem"]

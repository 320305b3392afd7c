# ruff: noqa: F811 - fixtures are imported from tests.clinic_support
"""Field encryption and key rotation, and the clinic CLI commands (`clinic create`, `leads import`,
`keys generate`, `keys rotate`) run against the test database."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.clinic.cli import clinic as clinic_cli
from api.clinic.cli import keys as keys_cli
from api.clinic.cli import leads as leads_cli
from api.crypto import CryptoError, DecryptionFailed, Keyring, UnknownKey, generate_key_entry, normalize_phone
from tests.clinic_support import (  # noqa: F401
    KEY_NEW,
    KEYS_ONE,
    KEYS_TWO,
    assert_problem,
    clinic_a,
    count,
    lead_body,
    settings_overrides,
)

ROW = "clinic-1/lead-1"


def test_keyring_roundtrip_and_failures():
    ring = Keyring.parse(KEYS_TWO)
    assert ring.key_ids == ["k1", "k2"] and ring.current_id == "k2"
    token = ring.encrypt("Chronic pain", "clinic.leads.problem", ROW)
    assert token.startswith("v2:k2:") and "Chronic" not in token
    assert ring.encrypt("Chronic pain", "clinic.leads.problem", ROW) != token  # fresh nonce every time
    assert ring.decrypt(token, "clinic.leads.problem", ROW) == "Chronic pain"
    with pytest.raises(DecryptionFailed):
        ring.decrypt(token, "clinic.leads.phone", ROW)  # bound to its column
    with pytest.raises(DecryptionFailed):
        ring.decrypt(token, "clinic.leads.problem", "clinic-1/lead-2")  # and to its row
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(DecryptionFailed):
        ring.decrypt(tampered, "clinic.leads.problem", ROW)
    with pytest.raises(UnknownKey):
        Keyring.parse(f"k2:{KEY_NEW}").decrypt(Keyring.parse(KEYS_ONE).encrypt("x", "f", ROW), "f", ROW)
    for spec in ("", "k1", "k1:short", "bad id!:" + KEY_NEW, f"k1:{KEY_NEW},k1:{KEY_NEW}", "k1:%%%"):
        with pytest.raises(CryptoError):
            Keyring.parse(spec)
    assert Keyring.parse(generate_key_entry("k9")).current_id == "k9"


def test_phone_blind_index():
    assert (
        normalize_phone("+91 98470-12345") == normalize_phone("098470 12345") == normalize_phone("9847012345")
    )
    ring = Keyring.parse(KEYS_TWO)
    assert ring.phone_index("+91 98470 12345", "c1") == ring.phone_index("9847012345", "c1")
    assert ring.phone_index("9847012345", "c1").startswith("v2:k2:")
    matches = ring.phone_matches("9847012345", "c1")
    # Every key's index in this clinic, then the legacy (v1, one for all clinics) ones.
    assert [m.rsplit(":", 1)[0] for m in matches] == ["v2:k1", "v2:k2", "k1", "k2"]
    assert Keyring.parse(KEYS_ONE).phone_index("9847012345", "c1") == matches[0]
    assert "9847012345" not in "".join(matches)


def cli_env(db_url: str, tmp_path: Path, keys: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "KEEL_ENCRYPTION_KEYS": keys,
        "KEEL_DATA_DIR": str(tmp_path),
        "KEEL_JWT_SECRET": "cli-test-secret-0123456789abcdef0123456789",
        "KEEL_LOG_LEVEL": "WARNING",
    }


async def test_rotation_keeps_old_rows_readable_and_rotate_moves_them(
    settings, clinic_a, dba, db_url, tmp_path
):
    headers = clinic_a.headers
    old_settings = settings
    new_settings = dataclasses.replace(settings, encryption_keys=KEYS_TWO)
    only_new = dataclasses.replace(settings, encryption_keys=f"k2:{KEY_NEW}")

    async with AsyncTestClient(app=create_app(old_settings)) as client:
        old = [
            (
                await client.post(
                    "/api/leads", json=lead_body(name=f"Old {i}", phone=f"98470{i:05d}"), headers=headers
                )
            ).json()
            for i in range(30)
        ]
    assert {row[0] for row in dba.execute("SELECT DISTINCT unnest(key_ids) FROM clinic.leads")} == {"k1"}

    async with AsyncTestClient(app=create_app(new_settings)) as client:
        # Old rows still decrypt after a newer key is added; new rows use the newer key.
        r = await client.get(f"/api/leads/{old[0]['id']}", headers=headers)
        assert (
            r.status_code == 200
            and r.json()["phone"] == "9847000000"
            and r.json()["problem"] == lead_body()["problem"]
        )
        new = (
            await client.post(
                "/api/leads", json=lead_body(name="New", phone="+91 98470 00001"), headers=headers
            )
        ).json()
        assert new["possible_duplicate_of"] == old[1]["id"]  # blind index matched across keys
        row = dba.execute("SELECT phone, phone_bidx FROM clinic.leads WHERE id = %s", (new["id"],)).fetchone()
        assert row[0].startswith("v2:k2:") and row[1].startswith("v2:k2:")
        found = (await client.get("/api/leads", params={"phone": "9847000001"}, headers=headers)).json()
        assert {item["id"] for item in found["items"]} == {old[1]["id"], new["id"]}

    async with AsyncTestClient(app=create_app(only_new)) as client:
        # Before rotation, dropping the old key would make old rows unreadable: a clear 503, not a 500.
        problem = assert_problem(await client.get(f"/api/leads/{old[0]['id']}", headers=headers), 503)
        assert "k1" in problem["detail"]

    result = CliRunner().invoke(
        keys_cli, ["rotate", "--batch-size", "7"], env=cli_env(db_url, tmp_path, KEYS_TWO)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"reencrypted": 30, "key_id": "k2"}
    assert {row[0] for row in dba.execute("SELECT DISTINCT unnest(key_ids) FROM clinic.leads")} == {"k2"}
    assert dba.execute(
        "SELECT count(*) FROM clinic.leads WHERE phone_bidx NOT LIKE 'v2:k2:%'"
    ).fetchone() == (0,)
    # Running it again has nothing to do.
    again = CliRunner().invoke(keys_cli, ["rotate"], env=cli_env(db_url, tmp_path, KEYS_TWO))
    assert again.exit_code == 0 and json.loads(again.stdout.strip().splitlines()[-1])["reencrypted"] == 0

    async with AsyncTestClient(app=create_app(only_new)) as client:
        # Now the old key can go: everything reads and searches with the new key alone.
        leads = (await client.get("/api/leads", params={"limit": 500}, headers=headers)).json()
        assert leads["total"] == 31
        assert {item["phone"] for item in leads["items"]} >= {"9847000000", "9847000029", "+91 98470 00001"}
        found = (await client.get("/api/leads", params={"phone": "98470 00005"}, headers=headers)).json()
        assert [item["name"] for item in found["items"]] == ["Old 5"]


def test_keys_generate_prints_a_usable_entry():
    result = CliRunner().invoke(keys_cli, ["generate", "k7"])
    assert result.exit_code == 0
    assert Keyring.parse(result.stdout.strip()).key_ids == ["k7"]
    assert CliRunner().invoke(keys_cli, ["generate", "bad id"]).exit_code != 0


def test_clinic_create_cli_prints_ids_and_an_admin_token(db_url, tmp_path, dba):
    env = cli_env(db_url, tmp_path, KEYS_ONE)
    result = CliRunner().invoke(
        clinic_cli,
        [
            "create",
            "--name",
            "Gamma",
            "--timezone",
            "Asia/Kolkata",
            "--uhid-prefix",
            "gam",
            "--admin-name",
            "Gita",
            "--admin-email",
            "gita@gamma.example",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert set(created) == {"clinic_id", "admin_id", "token", "console_url"}
    assert created["console_url"].endswith(f"/console/#token={created['token']}")
    assert dba.execute(
        "SELECT uhid_prefix, timezone FROM clinic.clinics WHERE id = %s", (created["clinic_id"],)
    ).fetchone() == ("GAM", "Asia/Kolkata")
    # The token is signed with KEEL_JWT_SECRET and names the new admin and clinic.
    import jwt

    claims = jwt.decode(created["token"], env["KEEL_JWT_SECRET"], algorithms=["HS256"])
    assert (
        claims["sub"] == created["admin_id"]
        and claims["clinic_id"] == created["clinic_id"]
        and claims["role"] == "admin"
    )

    bad = CliRunner().invoke(
        clinic_cli,
        [
            "create",
            "--name",
            "Bad",
            "--timezone",
            "Mars/Olympus",
            "--admin-name",
            "X",
            "--admin-email",
            "x@x.example",
        ],
        env=env,
    )
    assert bad.exit_code != 0 and "unknown time zone" in bad.output
    assert dba.execute("SELECT count(*) FROM clinic.clinics").fetchone() == (1,)


def test_leads_import_cli(clinic_a, db_url, tmp_path, dba):
    env = cli_env(db_url, tmp_path, KEYS_ONE)
    good = tmp_path / "leads.csv"
    good.write_text(
        "name,phone,problem,assigned_to_id\n"
        + "".join(
            f"Lead {i},+91 9{i:09d},Back pain {i},{clinic_a.admin_id if i % 2 else ''}\n" for i in range(2500)
        )
    )
    result = CliRunner().invoke(leads_cli, ["import", str(good), "--clinic", clinic_a.id], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "imported": 2500,
        "rejected": 0,
        "total_rows": 2500,
    }
    assert count(dba, "leads") == 2500
    row = dba.execute("SELECT problem, phone_bidx, id FROM clinic.leads WHERE name = 'Lead 7'").fetchone()
    assert (
        row[0].startswith("v2:k1:")
        and Keyring.parse(KEYS_ONE).decrypt(row[0], "clinic.leads.problem", f"{clinic_a.id}/{row[2]}")
        == "Back pain 7"
    )
    assert row[1] == Keyring.parse(KEYS_ONE).phone_index("9000000007", clinic_a.id)

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {"name": "A", "phone": "9847012345"},
                {"name": "", "phone": "9847012345"},
                {
                    "name": "C",
                    "phone": "9847012346",
                    "assigned_to_id": "00000000-0000-0000-0000-000000000000",
                },
            ]
        )
    )
    result = CliRunner().invoke(leads_cli, ["import", str(bad), "--clinic", clinic_a.id], env=env)
    assert result.exit_code == 1 and "row 1: name" in result.output
    assert count(dba, "leads") == 2500
    result = CliRunner().invoke(
        leads_cli, ["import", str(bad), "--clinic", clinic_a.id, "--partial"], env=env
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "imported": 1,
        "rejected": 2,
        "total_rows": 3,
    }
    assert count(dba, "leads") == 2501

    header = tmp_path / "header.csv"
    header.write_text("nom,phone\nA,9847012345\n")
    result = CliRunner().invoke(leads_cli, ["import", str(header), "--clinic", clinic_a.id], env=env)
    assert result.exit_code == 1 and "nom" in result.output


def test_embedded_mode_generates_one_local_key(tmp_path):
    from api.crypto import keyring_for
    from api.settings import Settings

    settings = Settings.from_env(database_url=None, encryption_keys=None, data_dir=tmp_path)
    ring = keyring_for(settings)
    key_file = tmp_path / "encryption-key"
    assert ring.key_ids == ["local"] and key_file.exists()
    assert key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    token = ring.encrypt("secret", "f", ROW)
    # A later process (fresh cache) reads the same key from the data dir.
    again = Keyring([("local", __import__("base64").b64decode(key_file.read_text()))])
    assert again.decrypt(token, "f", ROW) == "secret"


async def test_lead_endpoints_say_what_to_set_without_keys(settings, clinic_a):
    unconfigured = dataclasses.replace(settings, encryption_keys=None)  # a DATABASE_URL, no keys
    async with AsyncTestClient(app=create_app(unconfigured)) as client:
        problem = assert_problem(
            await client.post("/api/leads", json=lead_body(), headers=clinic_a.headers), 503
        )
        assert "KEEL_ENCRYPTION_KEYS" in problem["detail"]
        assert_problem(await client.get("/api/leads", headers=clinic_a.headers), 503)
        # Everything that needs no key keeps working.
        assert (await client.get("/api/staff", headers=clinic_a.headers)).status_code == 200

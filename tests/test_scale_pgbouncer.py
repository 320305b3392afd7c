"""The API behind PgBouncer in transaction mode (DESIGN §11): every kind of request works when each
transaction may land on another server backend, and nothing a request does relies on session state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from api.settings import Settings
from tests.clinic_support import KEYS_ONE, Clinic, clinic_a  # noqa: F401 - fixture
from tests.conftest import url_for_database
from tests.pg_servers import pgbouncer

POOL_SIZE = 3  # server connections per database: fewer than the app's pool, so backends are shared


@pytest.fixture(scope="module")
def pooler_url(pg_admin_url: str) -> Iterator[str]:
    with pgbouncer(pg_admin_url, pool_size=POOL_SIZE) as url:
        yield url


@pytest.fixture
def settings_overrides(pooler_url: str, db_url: str) -> dict[str, Any]:
    dbname = dbname_of(db_url)
    return {
        "encryption_keys": KEYS_ONE,
        "database_url": url_for_database(pooler_url, dbname),
        "database_direct_url": db_url,
        "prepare_threshold": None,
    }


def dbname_of(url: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def transactions_through(pooler_url: str, dbname: str) -> int:
    """PgBouncer's count of transactions it passed to `dbname` (admin console, simple protocol)."""
    admin = url_for_database(pooler_url, "pgbouncer")
    with psycopg.connect(
        admin, autocommit=True, cursor_factory=psycopg.ClientCursor, row_factory=dict_row
    ) as conn:
        rows = conn.execute("SHOW STATS").fetchall()
    return sum(int(row["total_xact_count"]) for row in rows if row["database"] == dbname)


def test_settings_turn_prepared_statements_off_with_a_direct_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEEL_PREPARE_THRESHOLD", raising=False)
    monkeypatch.delenv("DATABASE_DIRECT_URL", raising=False)
    assert Settings.from_env().prepare_threshold == 5
    monkeypatch.setenv("DATABASE_DIRECT_URL", "postgresql://db.internal/keel")
    assert Settings.from_env().prepare_threshold is None
    monkeypatch.setenv("KEEL_PREPARE_THRESHOLD", "10")
    assert Settings.from_env().prepare_threshold == 10
    monkeypatch.setenv("KEEL_PREPARE_THRESHOLD", "off")
    monkeypatch.delenv("DATABASE_DIRECT_URL")
    assert Settings.from_env().prepare_threshold is None


def test_the_pooler_loses_prepared_statements_between_transactions(pooler_url: str, db_url: str) -> None:
    """Why `prepare_threshold` must be None behind it: a statement psycopg prepared on one backend is
    unknown to the next backend PgBouncer lends the same client."""
    url = url_for_database(pooler_url, dbname_of(db_url))
    with (
        psycopg.connect(url, autocommit=True, prepare_threshold=0) as client,
        psycopg.connect(url, autocommit=True) as other,
    ):
        client.execute("SELECT %s::int", (1,))  # prepared on the backend lent for this transaction
        with other.transaction():
            other.execute("SELECT pg_sleep(0)")  # `other` now holds that (idle) backend …
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                client.execute("SELECT %s::int", (2,))  # … so this runs on another, without it
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as client:
        assert [client.execute("SELECT %s::int", (n,)).fetchone()[0] for n in range(10)] == list(range(10))


async def test_every_kind_of_request_works_through_transaction_pooling(
    client: Any,
    clinic_a: Clinic,  # noqa: F811
    bearer: Callable[..., dict[str, str]],
    settings: Settings,
    pooler_url: str,
    db_url: str,
    dba: psycopg.Connection[Any],
) -> None:
    dbname = dbname_of(db_url)
    assert (
        settings.database_url is not None
        and f":{pooler_url.split(':')[-1].split('/')[0]}/" in settings.database_url
    )
    before = transactions_through(pooler_url, dbname)
    headers = clinic_a.headers

    async def ok(method: str, path: str, **kwargs: Any) -> Any:
        kwargs["headers"] = {**headers, **kwargs.get("headers", {})}
        response = await client.request(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    staff = await ok(
        "POST", "/api/staff", json={"name": "Dr Pool", "email": "pool@alpha.example", "role": "doctor"}
    )
    # Idempotent create: a transaction-scoped advisory lock and the key row, in one transaction.
    key = {"Idempotency-Key": str(uuid.uuid4())}
    lead = await ok("POST", "/api/leads", json={"name": "Pooled", "phone": "+919800000001"}, headers=key)
    again = await client.post(
        "/api/leads", json={"name": "Pooled", "phone": "+919800000001"}, headers={**headers, **key}
    )
    assert again.status_code == 201 and again.json()["id"] == lead["id"]
    # Bulk import: rows staged in a temporary table that lives and dies inside the one transaction.
    rows = [{"name": f"Imported {n}", "phone": f"+91990000{n:04d}"} for n in range(50)]
    imported = await ok("POST", "/api/leads/import", json=rows)
    assert imported["imported"] == 50, imported

    # Many concurrent reads, more than the pooler's backends: each call goes to whichever is free, far
    # more than 5 times per statement (psycopg would have prepared them).
    paths = [
        f"/api/staff/{staff['id']}",
        f"/api/leads/{lead['id']}",
        "/api/leads?limit=5",
        "/api/doctors",
        "/api/control-tower/summary",
    ]
    for _ in range(4):
        await asyncio.gather(*(ok("GET", path) for path in paths for _ in range(6)))
    booked = await ok(
        "POST",
        "/api/patients",
        json={"name": "Pat Pool", "mobile": "+919811111111"},
    )
    assert booked["uhid"].startswith("ALP-")

    ready = await client.get("/api/ready")
    assert ready.status_code == 200, ready.text
    assert transactions_through(pooler_url, dbname) - before >= 4 * 6 * len(paths) + 5
    assert (
        dba.execute("SELECT count(*) FROM clinic.leads WHERE clinic_id = %s", (clinic_a.id,)).fetchone()[0]
        == 51
    )

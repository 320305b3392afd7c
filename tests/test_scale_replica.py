"""Dashboard reads on a real streaming replica (DESIGN §11): a private primary and a replica made by
`pg_basebackup -R` with the test server's own binaries (embedded 18, or Debian 15 in CI's second leg)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.app import create_app
from api.auth import TokenVerifier
from api.db import Database
from api.migrate import migrate
from api.replica import ReplicaDatabase
from api.settings import Settings
from tests.conftest import TEST_JWT_SECRET, live_server
from tests.factories import KEYS_ONE, create_clinic
from tests.pg_servers import Pair, bin_dir_for, free_port, primary_with_replica

MAX_LAG = 5.0


@pytest.fixture(scope="module")
def pair(pg_admin_url: str) -> Iterator[Pair]:
    with primary_with_replica(bin_dir_for(pg_admin_url)) as servers:
        with psycopg.connect(servers.primary_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE keel")
        migrate(servers.url(servers.primary_url, "keel"))
        servers.wait_replayed()
        yield servers


def replica_settings(pair: Pair, tmp_path: Path, read_url: str) -> Settings:
    return Settings.from_env(
        database_url=pair.url(pair.primary_url, "keel"),
        database_read_url=read_url,
        database_direct_url=None,
        read_max_lag_seconds=MAX_LAG,
        data_dir=tmp_path,
        jwt_secret=TEST_JWT_SECRET,
        jwt_jwks_url=None,
        encryption_keys=KEYS_ONE,
        notify_webhook_url=None,
        openai_api_key=None,
        pool_min_size=1,
        pool_max_size=5,
    )


def summary_refreshed_at(conn: psycopg.Connection[Any]) -> datetime:
    return conn.execute("SELECT clinic.control_tower_refreshed_at()").fetchone()[0]


def refreshed_at(document: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(document["refreshed_at"])


async def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


async def test_the_read_database_reads_on_the_replica(pair: Pair, tmp_path: Path) -> None:
    settings = replica_settings(pair, tmp_path, pair.url(pair.replica_url, "keel"))
    primary = Database(settings, str(settings.database_url))
    replica = ReplicaDatabase(settings, str(settings.database_read_url), primary)
    await primary.open()
    await replica.open()
    try:
        assert replica.in_use and replica.lag_seconds is not None and replica.lag_seconds <= MAX_LAG
        assert await replica.fetch_val(None, "SELECT pg_is_in_recovery()") is True
        assert await primary.fetch_val(None, "SELECT pg_is_in_recovery()") is False
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            await replica.execute(None, "CREATE TEMPORARY TABLE nothing_written_here (x int)")
    finally:
        await replica.close()
        await primary.close()


async def test_dashboard_on_the_replica_writes_and_fresh_reads_on_the_primary_fallback_past_max_lag(
    pair: Pair, tmp_path: Path
) -> None:
    primary_url, replica_url = pair.url(pair.primary_url, "keel"), pair.url(pair.replica_url, "keel")
    settings = replica_settings(pair, tmp_path, replica_url)
    with psycopg.connect(primary_url, autocommit=True) as dba:
        made = create_clinic(dba, "Replica", prefix="REP", admin_email="admin@replica.example")
        clinic_id, admin_id = str(made.id), str(made.admin_id)
    pair.wait_replayed()  # the last replayed commit is recent: the lag starts near 0
    token = TokenVerifier(settings).mint({"sub": admin_id, "clinic_id": clinic_id, "role": "admin"})
    headers = {"Authorization": f"Bearer {token}"}

    with (
        psycopg.connect(primary_url, autocommit=True) as dba,
        psycopg.connect(replica_url, autocommit=True) as standby,
    ):
        async with live_server(create_app(settings)) as client:
            ready = (await client.get("/api/ready")).json()
            assert ready["replica"] == {
                "reachable": True,
                "in_recovery": True,
                "lag_seconds": ready["replica"]["lag_seconds"],
                "max_lag_seconds": MAX_LAG,
                "serving_reads": True,
                "fallback_to_primary": False,
                "fallback_reason": None,
            }, ready
            assert 0 <= ready["replica"]["lag_seconds"] <= MAX_LAG, ready
            before = (await client.get("/api/control-tower/summary", headers=headers)).json()

            standby.execute("SELECT pg_wal_replay_pause()")
            try:
                created = await client.post(
                    "/api/leads", json={"name": "After pause", "phone": "+919812345678"}, headers=headers
                )
                assert created.status_code == 201, created.text  # a write: the primary (the replica refuses)
                fresh = await client.get(f"/api/leads/{created.json()['id']}", headers=headers)
                assert fresh.status_code == 200, fresh.text  # read-your-write: not the paused replica
                dba.execute("CALL clinic.refresh_control_tower()")
                refreshed = summary_refreshed_at(dba)
                assert refreshed != refreshed_at(before)

                # Within the allowed lag the dashboard still reads the replica, which has not replayed
                # the refresh.
                stale = (await client.get("/api/control-tower/summary", headers=headers)).json()
                assert refreshed_at(stale) == refreshed_at(before) == summary_refreshed_at(standby)

                # Past it, dashboard reads fall back to the primary; ready and /metrics show the lag.
                async def lagging() -> Any:
                    body = (await client.get("/api/ready")).json()
                    return body if not body["replica"]["serving_reads"] else None

                body = await wait_until(lagging, MAX_LAG * 4, "the replica's lag passes the maximum")
                assert body["status"] == "ready" and body["replica"]["lag_seconds"] > MAX_LAG, body
                assert body["replica"]["reachable"] and body["replica"]["in_recovery"], body
                assert body["replica"]["fallback_to_primary"], body
                assert body["replica"]["fallback_reason"] == "lagging", body
                metrics = (await client.get("/metrics")).text
                lag_line = next(
                    line for line in metrics.splitlines() if line.startswith("keel_db_replica_lag_seconds{")
                )
                assert float(lag_line.rsplit(" ", 1)[1]) > MAX_LAG, lag_line
                assert 'keel_db_replica_in_use{pool="read"} 0.0' in metrics
                current = (await client.get("/api/control-tower/summary", headers=headers)).json()
                assert refreshed_at(current) == refreshed
            finally:
                standby.execute("SELECT pg_wal_replay_resume()")

            pair.wait_replayed()

            async def caught_up() -> Any:
                return (await client.get("/api/ready")).json()["replica"]["serving_reads"]

            await wait_until(caught_up, 10, "reads return to the replica once it caught up")
            again = (await client.get("/api/control-tower/summary", headers=headers)).json()
            assert refreshed_at(again) == refreshed == summary_refreshed_at(standby)


async def test_an_unreachable_replica_or_a_primary_as_replica_is_reported_and_reads_go_to_the_primary(
    pair: Pair, tmp_path: Path
) -> None:
    settings = replica_settings(
        pair, tmp_path, f"postgresql://postgres@127.0.0.1:{free_port()}/keel?connect_timeout=1"
    )
    with psycopg.connect(pair.url(pair.primary_url, "keel"), autocommit=True) as dba:
        made = create_clinic(dba, "Lonely", prefix="LON", admin_email="admin@lonely.example")
        clinic_id, admin_id = str(made.id), str(made.admin_id)
    token = TokenVerifier(settings).mint({"sub": admin_id, "clinic_id": clinic_id, "role": "admin"})
    async with live_server(create_app(settings)) as client:
        ready = await client.get("/api/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["replica"] == {
            "reachable": False,
            "in_recovery": None,
            "lag_seconds": None,
            "max_lag_seconds": MAX_LAG,
            "serving_reads": False,
            "fallback_to_primary": True,
            "fallback_reason": "unreachable",
        }
        summary = await client.get("/api/control-tower/summary", headers={"Authorization": f"Bearer {token}"})
        assert summary.status_code == 200, summary.text
        assert "keel_db_replica_lag_seconds{" not in (await client.get("/metrics")).text

    # A read URL that answers but is no standby (a misconfiguration) is reachable, not in recovery, has
    # no lag to show, and is not read from.
    primary_as_replica = replace(settings, database_read_url=pair.url(pair.primary_url, "keel"))
    async with live_server(create_app(primary_as_replica)) as client:
        ready = await client.get("/api/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["replica"] == {
            "reachable": True,
            "in_recovery": False,
            "lag_seconds": None,
            "max_lag_seconds": MAX_LAG,
            "serving_reads": False,
            "fallback_to_primary": True,
            "fallback_reason": "not_a_standby",
        }

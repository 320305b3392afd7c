"""CALL clinic.refresh_control_tower() and `keel refresh-metrics`: concurrent refresh that never blocks
reads, overlapping runs that skip instead of piling up, the refresh log, and the cron entry point."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest

from api.clinic.metrics_cli import RefreshResult, refresh_control_tower
from tests.control_tower_expected import REFRESH_LOCK, local_today, refresh
from tests.factories import add_lead, create_clinic

VIEWS = (
    "clinic.control_tower_leads_daily",
    "clinic.control_tower_lead_status",
    "clinic.control_tower_appointments_daily",
    "clinic.control_tower_doctor_load_daily",
    "clinic.control_tower_patients_daily",
)


def log_rows(dba: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return dba.execute(
        "SELECT outcome, finished_at IS NOT NULL, duration_ms, detail FROM keel.metrics_refresh_log ORDER BY id"
    ).fetchall()


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def run_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url, "KEEL_LOG_FORMAT": "text"}
    env.pop("DATABASE_READ_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "refresh-metrics", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_freshly_migrated_database_has_populated_views(dba: psycopg.Connection[Any]) -> None:
    populated = dba.execute(
        "SELECT oid::regclass::text, relispopulated FROM pg_class WHERE oid = ANY(%s::regclass[])",
        (list(VIEWS),),
    ).fetchall()
    assert sorted(populated) == sorted((view, True) for view in VIEWS)
    # Every view can be refreshed concurrently: a unique index on plain columns, no predicate.
    for view in VIEWS:
        unique = dba.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass AND indisunique"
            " AND indpred IS NULL AND indexprs IS NULL",
            (view,),
        ).fetchone()[0]
        assert unique == 1, view
    # Reads work before the first cron run, and say when the views were computed.
    clinic = create_clinic(dba, "Fresh")
    summary = dba.execute("SELECT clinic.control_tower_summary(%s)", (clinic.id,)).fetchone()[0]
    assert summary["refreshed_at"] is not None
    assert [row[0] for row in log_rows(dba)] == ["ok"]


def test_refresh_logs_duration_and_outcome(dba: psycopg.Connection[Any]) -> None:
    outcome, duration, detail = refresh(dba)
    assert outcome == "ok" and duration >= 0
    for view in VIEWS:
        assert view in detail  # per-view timings
    last = log_rows(dba)[-1]
    assert last[0] == "ok" and last[1] and last[2] == duration and last[3] == detail
    started, finished = dba.execute(
        "SELECT started_at, finished_at FROM keel.metrics_refresh_log ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert finished >= started
    refreshed = dba.execute("SELECT clinic.control_tower_refreshed_at()").fetchone()[0]
    assert refreshed == started


def test_refresh_inside_a_transaction_block_is_refused_and_leaves_no_lock(
    db_url: str, dba: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(db_url) as conn:  # not autocommit: psycopg opens a transaction block
        with pytest.raises(psycopg.errors.InvalidTransactionTermination):
            conn.execute("CALL clinic.refresh_control_tower()")
        conn.rollback()
        # The same session can refresh properly afterwards, and so can any other.
        conn.autocommit = True
        assert conn.execute("CALL clinic.refresh_control_tower()").fetchone()[0] == "ok"
    assert refresh(dba)[0] == "ok"


async def test_reads_answer_while_a_refresh_runs_and_an_overlapping_refresh_skips(
    db_url: str,
    dba: psycopg.Connection[Any],
    client: httpx.AsyncClient,
    bearer: Callable[..., dict[str, str]],
) -> None:
    clinic = create_clinic(dba, "Busy")
    today = local_today(dba, clinic.timezone)
    add_lead(dba, clinic.id, date_added=today, status="lost")
    headers = bearer(clinic.admin_id, clinic_id=clinic.id, role="admin")

    # Hold the refresh open: a DBA's transaction locks the leads table, so the refresh — already holding
    # its advisory lock and the first view's EXCLUSIVE lock — waits inside REFRESH … CONCURRENTLY.
    with psycopg.connect(db_url) as blocker:
        blocker.execute("LOCK TABLE clinic.leads IN ACCESS EXCLUSIVE MODE")
        first = asyncio.create_task(asyncio.to_thread(refresh_control_tower, db_url))

        def refresh_is_waiting() -> bool:
            row = dba.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keel-refresh-metrics'"
                " AND datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE 'CALL clinic.refresh_control_tower%%'"
            ).fetchone()
            return bool(row and row[0] == 1)

        await asyncio.to_thread(wait_until, refresh_is_waiting)
        # The run is visible as running while it works.
        assert [row[0] for row in log_rows(dba)][-1] == "running"
        # The leads view is locked by the refresh in progress (EXCLUSIVE: blocks other refreshes only).
        locks = dba.execute(
            "SELECT mode FROM pg_locks WHERE relation = 'clinic.control_tower_leads_daily'::regclass AND granted"
        ).fetchall()
        assert ("ExclusiveLock",) in locks

        # Reads keep answering, fast, from the views being refreshed.
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                client.get(path, headers=headers)
                for path in (
                    "/api/control-tower/summary",
                    f"/api/control-tower/daily?from={today - timedelta(days=7)}&to={today}",
                    "/api/control-tower/doctors",
                    "/api/control-tower/summary",
                )
            )
        )
        assert [r.status_code for r in answers] == [200] * 4, [r.text for r in answers]
        assert time.monotonic() - started < 5
        # Not refreshed yet: the lead added above is not in the figures.
        assert answers[0].json()["month"]["leads"] == 0

        # A second refresh meanwhile does not queue behind the first: it skips at once, and says so.
        notices: list[str] = []
        with psycopg.connect(db_url, autocommit=True) as second:
            second.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
            t0 = time.monotonic()
            outcome, duration, detail = second.execute("CALL clinic.refresh_control_tower()").fetchone()
            assert time.monotonic() - t0 < 2
        assert (outcome, duration) == ("skipped", 0)
        assert "another refresh is running" in detail
        assert any("skipped" in notice for notice in notices)
        assert not first.done()

        blocker.rollback()  # let the first refresh go on
    result: RefreshResult = await asyncio.wait_for(first, 30)
    assert result.outcome == "ok"
    # In id order: the migration's population, the first run (logged running when it began), the skip.
    assert [row[0] for row in log_rows(dba)] == ["ok", "ok", "skipped"]

    after = await client.get("/api/control-tower/summary", headers=headers)
    assert after.json()["month"]["leads"] == 1
    assert after.json()["kpis"]["churn_rate"] == 1


def test_two_refreshes_at_once_one_runs_one_skips(db_url: str, dba: psycopg.Connection[Any]) -> None:
    """Two cron runs fired together while a slow refresh holds the lock: neither waits, both skip; after
    it, a run proceeds normally."""
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", REFRESH_LOCK)
        results = [refresh_control_tower(db_url), refresh_control_tower(db_url)]
        assert [r.outcome for r in results] == ["skipped", "skipped"]
        assert all(str(holder.info.backend_pid) in r.detail for r in results)
        # Unlock before closing: a closed connection's backend releases its session locks only when it
        # has finished exiting, which the client does not wait for.
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", REFRESH_LOCK)
    assert refresh_control_tower(db_url).outcome == "ok"
    assert [row[0] for row in log_rows(dba)][-3:] == ["skipped", "skipped", "ok"]


def test_an_abandoned_run_is_marked_failed_by_the_next(db_url: str, dba: psycopg.Connection[Any]) -> None:
    dba.execute("INSERT INTO keel.metrics_refresh_log (outcome) VALUES ('running')")
    assert refresh(dba)[0] == "ok"
    outcomes = dba.execute("SELECT outcome, detail FROM keel.metrics_refresh_log ORDER BY id").fetchall()
    assert outcomes[1][0] == "failed" and "abandoned" in outcomes[1][1]
    assert outcomes[-1][0] == "ok"


def test_cli_refreshes_and_logs_one_line_with_the_duration(db_url: str, dba: psycopg.Connection[Any]) -> None:
    done = run_cli(db_url)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "refresh-metrics ok in" in lines[0] and " ms" in lines[0]
    assert log_rows(dba)[-1][0] == "ok"


def test_cli_skips_with_exit_0_while_another_refresh_runs(db_url: str, dba: psycopg.Connection[Any]) -> None:
    dba.execute("SELECT pg_advisory_lock(%s, %s)", REFRESH_LOCK)
    try:
        done = run_cli(db_url)
    finally:
        dba.execute("SELECT pg_advisory_unlock(%s, %s)", REFRESH_LOCK)
    assert done.returncode == 0, done.stderr
    assert "refresh-metrics skipped" in done.stderr
    assert log_rows(dba)[-1][0] == "skipped"


def test_cli_fails_with_exit_1_and_the_run_is_logged_failed(
    db_url: str, dba: psycopg.Connection[Any]
) -> None:
    """Cron set up with an account that does not own the views: every view fails, the run says so."""
    dba.execute("GRANT EXECUTE ON PROCEDURE clinic.refresh_control_tower(text, numeric, text) TO keel_api")
    # keel_api has no privilege in schema keel (issue 13, finding 6): let this account write the log.
    dba.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON keel.metrics_refresh_log TO keel_api")
    as_api_role = f"{db_url}{'&' if '?' in db_url else '?'}options={quote('-c role=keel_api')}"
    done = run_cli(as_api_role)
    assert done.returncode == 1
    assert "refresh-metrics failed" in done.stderr and "control tower refresh failed" in done.stderr
    outcome, finished, _duration, detail = log_rows(dba)[-1]
    assert outcome == "failed" and finished
    assert all(view in detail for view in VIEWS)
    # The lock was released: the proper account refreshes right after.
    assert refresh(dba)[0] == "ok"


def test_cli_fails_with_exit_1_when_the_database_is_unreachable(db_url: str) -> None:
    done = run_cli(db_url.rsplit("/", 1)[0] + "/keel_no_such_database")
    assert done.returncode == 1
    assert "refresh-metrics failed" in done.stderr

"""The console's server side: static pages and redirect, the offline OpenAPI UI, the operations endpoints
under row-level security (an admin sees their clinic, a DBA sees all), the refresh button and the
scheduled refresh of `keel serve` (KEEL_REFRESH_INTERVAL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import psycopg
import pytest

from api.console.refresher import refresh_if_due
from api.db import Database
from tests.factories import add_appointment, assert_problem, create_clinic


def fail_events(dba: psycopg.Connection[Any], clinic_id: uuid.UUID, error: str) -> list[uuid.UUID]:
    """Mark the clinic's undelivered outbox events failed, as the dispatcher does after its last attempt."""
    rows = dba.execute(
        "UPDATE keel.outbox SET failed_at = now(), attempts = 12, last_error = %s, last_status = 500"
        " WHERE clinic_id = %s AND delivered_at IS NULL RETURNING id",
        (error, clinic_id),
    ).fetchall()
    return [row[0] for row in rows]


async def test_root_redirects_to_console_and_pages_are_served(client):
    root = await client.get("/", follow_redirects=False)
    assert root.status_code == 302 and root.headers["location"] == "/console/"
    page = await client.get("/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/console/app.js">' in page.text
    # It holds a bearer token: only its own files may run, and no other site may frame it.
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy and page.headers["x-content-type-options"] == "nosniff"
    for asset in ("/console/app.js", "/console/api.js", "/console/console.css"):
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["content-security-policy"] == policy, asset
        # No CDN: nothing is loaded from another host (the SVG namespace is a name, not a download).
        assert "//" not in response.text.replace("http://www.w3.org/2000/svg", "").replace("// ", "")
    assert (await client.get("/console/missing.js")).status_code == 404


async def test_openapi_ui_loads_its_assets_from_this_server(client):
    ui = await client.get("/schema")
    assert ui.status_code == 200
    assert "/console/vendor/swagger-ui/swagger-ui-bundle.js" in ui.text
    assert "cdn" not in ui.text.lower() and "unpkg" not in ui.text.lower()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        asset = await client.get(f"/console/vendor/swagger-ui/{name}")
        assert asset.status_code == 200 and len(asset.content) > 1000, name


async def test_operations_show_only_the_admins_clinic(client, dba, bearer):
    mine, theirs = (
        create_clinic(dba, "Mine", doctors=1, patients=1),
        create_clinic(dba, "Theirs", doctors=1, patients=1),
    )
    add_appointment(dba, mine, date(2030, 1, 7), "10:00", "10:30")
    add_appointment(dba, theirs, date(2030, 1, 7), "10:00", "10:30")
    add_appointment(dba, theirs, date(2030, 1, 7), "11:00", "11:30")
    [failed_mine] = fail_events(dba, mine.id, "receiver answered 500")
    fail_events(dba, theirs.id, "their receiver is down")
    admin = bearer(str(mine.admin_id), clinic_id=mine.id, role="admin")

    response = await client.get("/api/operations", headers=admin)
    assert response.status_code == 200, response.text
    ops = response.json()
    assert ops["outbox"]["failed"] == 1 and ops["outbox"]["pending"] == 0
    assert [e["id"] for e in ops["failed_events"]] == [str(failed_mine)]
    assert ops["failed_events"][0]["last_error"] == "receiver answered 500"
    assert {"size", "in_use", "waiting", "max"} <= set(ops["pool"])
    assert ops["refresh_log"] and ops["refresh_log"][0]["outcome"] == "ok"

    # A DBA in psql sees every clinic's events with the same function.
    dba_view = dba.execute("SELECT keel.operations_overview()").fetchone()[0]
    assert dba_view["outbox"]["failed"] == 3


async def test_operations_need_an_admin_of_a_clinic(client, dba, bearer):
    clinic = create_clinic(dba, doctors=1, patients=1)
    front_desk = bearer(str(clinic.admin_id), clinic_id=clinic.id, role="front_desk")
    assert_problem(await client.get("/api/operations", headers=front_desk), 403)
    assert_problem(await client.get("/api/operations"), 401)
    admin = bearer(str(clinic.admin_id), clinic_id=clinic.id, role="admin")
    assert_problem(await client.get("/api/operations?failed_limit=0", headers=admin), 400)
    # The database refuses a non-admin too, whatever the API checks.
    dba.execute(
        "SELECT set_config('request.jwt.claims', %s, false)",
        (f'{{"clinic_id": "{clinic.id}", "role": "cro"}}',),
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dba.execute("SET ROLE keel_api; SELECT keel.operations_overview()")


async def test_retry_requeues_a_failed_event_of_the_own_clinic_only(client, dba, bearer):
    mine, theirs = (
        create_clinic(dba, "Mine", doctors=1, patients=1),
        create_clinic(dba, "Theirs", doctors=1, patients=1),
    )
    add_appointment(dba, mine, date(2030, 1, 7), "10:00", "10:30")
    add_appointment(dba, theirs, date(2030, 1, 7), "10:00", "10:30")
    [event] = fail_events(dba, mine.id, "timeout")
    [other] = fail_events(dba, theirs.id, "timeout")
    admin = bearer(str(mine.admin_id), clinic_id=mine.id, role="admin")

    assert_problem(await client.post(f"/api/operations/outbox/{other}/retry", headers=admin), 404)
    assert_problem(await client.post(f"/api/operations/outbox/{uuid.uuid4()}/retry", headers=admin), 404)
    cro = bearer(str(mine.admin_id), clinic_id=mine.id, role="cro")
    assert_problem(await client.post(f"/api/operations/outbox/{event}/retry", headers=cro), 403)
    assert dba.execute("SELECT failed_at IS NOT NULL FROM keel.outbox WHERE id = %s", (other,)).fetchone()[0]

    response = await client.post(f"/api/operations/outbox/{event}/retry", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(event) and response.json()["last_error"] == "timeout"
    row = dba.execute("SELECT failed_at, attempts FROM keel.outbox WHERE id = %s", (event,)).fetchone()
    assert row == (None, 0)
    again = assert_problem(await client.post(f"/api/operations/outbox/{event}/retry", headers=admin), 409)
    assert "has not failed" in again["detail"]


async def test_refresh_button_refreshes_for_admins_only(client, dba, bearer):
    clinic = create_clinic(dba, doctors=1, patients=1)
    doctor = bearer(str(clinic.doctor_id), clinic_id=clinic.id, role="doctor")
    assert_problem(await client.post("/api/control-tower/refresh", headers=doctor), 403)
    before = dba.execute("SELECT count(*) FROM keel.metrics_refresh_log").fetchone()[0]
    admin = bearer(str(clinic.admin_id), clinic_id=clinic.id, role="admin")
    response = await client.post("/api/control-tower/refresh", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "ok"
    assert dba.execute("SELECT count(*) FROM keel.metrics_refresh_log").fetchone()[0] == before + 1


async def test_openapi_documents_every_status_of_the_operations_endpoints(client):
    spec = (await client.get("/schema/openapi.json")).json()
    retry = spec["paths"]["/api/operations/outbox/{event_id}/retry"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "503"} <= set(retry)
    assert "application/problem+json" in retry["409"]["content"]
    assert {"200", "401", "403"} <= set(spec["paths"]["/api/operations"]["get"]["responses"])
    assert {"200", "403"} <= set(spec["paths"]["/api/control-tower/refresh"]["post"]["responses"])


async def test_scheduled_refresh_runs_once_per_interval_across_processes(settings, db_url, dba):
    from dataclasses import replace

    scheduled = replace(settings, refresh_interval=300)
    dba.execute("UPDATE keel.metrics_refresh_log SET started_at = started_at - interval '1 hour'")
    databases = [Database(scheduled, db_url, name=f"process-{n}") for n in range(3)]
    for db in databases:
        await db.open()
    try:
        outcomes = await asyncio.gather(*(refresh_if_due(scheduled, db) for db in databases))
        # However the three raced, exactly one refreshed; the others found it done, running, or locked.
        assert outcomes.count("ok") == 1, outcomes
        assert set(outcomes) <= {"ok", "skipped", None}
        assert await refresh_if_due(scheduled, databases[0]) is None  # not due again within the interval
    finally:
        for db in databases:
            await db.close()
    runs = dba.execute(
        "SELECT count(*) FROM keel.metrics_refresh_log WHERE outcome = 'ok' AND started_at > now() - interval '5 minutes'"
    ).fetchone()[0]
    assert runs == 1


def test_token_console_link_keeps_the_token_in_the_fragment():
    import jwt
    from click.testing import CliRunner

    from api.cli import main
    from tests.conftest import TEST_JWT_SECRET

    clinic_id = str(uuid.uuid4())
    env = {"KEEL_JWT_SECRET": TEST_JWT_SECRET, "DATABASE_URL": "postgresql://127.0.0.1:1/unused"}
    args = ["token", "--sub", "staff-1", "--clinic", clinic_id, "--role", "admin", "--console"]
    result = CliRunner().invoke(main, [*args, "--base-url", "http://127.0.0.1:9000/"], env=env)
    assert result.exit_code == 0, result.output
    address, _, fragment = result.stdout.strip().partition("#")
    assert address == "http://127.0.0.1:9000/console/"  # what a server (and its log) could ever see
    claims = jwt.decode(fragment.removeprefix("token="), TEST_JWT_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["clinic_id"], claims["role"]) == ("staff-1", clinic_id, "admin")

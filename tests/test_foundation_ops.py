"""Operations endpoints, request ids, OpenAPI, and the embedded `keel serve` lifecycle."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest

from api.app import create_app
from api.migrate import migrate
from tests.conftest import live_server
from tests.factories import assert_problem
from tests.reliability_support import proxy_target, through
from tests.tcp_proxy import TcpProxy


async def test_health_and_ready(client):
    assert (await client.get("/api/health")).json() == {"status": "ok"}
    assert (await client.get("/api/ready")).json() == {
        "status": "ready",
        "v1_ciphertexts": {"leads": 0, "readable": False},
    }


async def test_ready_is_503_when_schema_is_behind(db_url, client):
    migrate(db_url, rollback=1)
    response = await client.get("/api/ready")
    assert response.status_code == 503
    body = response.json()
    assert "keel migrate" in body["detail"] and len(body["pending"]) == 1


async def test_ready_is_503_when_functions_are_from_another_version(dba, client):
    assert (await client.get("/api/ready")).status_code == 200
    dba.execute("UPDATE keel.sql_sources SET digest = 'from-an-older-tree'")
    response = await client.get("/api/ready")
    assert response.status_code == 503 and "keel migrate" in response.json()["detail"]


async def test_ready_answers_503_within_its_timeout_when_the_database_stalls(settings):
    """A stalled network (connections open, nothing flows) must not hang the readiness probe."""
    proxy = TcpProxy(proxy_target(settings.database_url)).start()
    keel = replace(settings, database_url=through(settings.database_url, proxy), ready_timeout=0.5)
    try:
        async with live_server(create_app(keel)) as http:
            assert (await http.get("/api/ready")).status_code == 200
            proxy.stall()
            started = time.monotonic()
            stalled = await http.get("/api/ready")
            elapsed = time.monotonic() - started
            assert_problem(stalled, 503)
            assert stalled.headers["retry-after"] == "5"
            assert "did not answer within 0.5 s" in stalled.json()["detail"], stalled.json()
            assert elapsed < 2.5, elapsed  # 0.5 s for a connection + 0.5 s for the answer, and slack
            proxy.resume()
            deadline = time.monotonic() + 10
            while (await http.get("/api/ready")).status_code != 200:
                assert time.monotonic() < deadline, "ready did not recover once the network flowed"
                await asyncio.sleep(0.1)
    finally:
        proxy.resume()
        proxy.stop()


async def test_request_id_is_returned_and_propagated(client):
    generated = await client.get("/api/health")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/api/health", headers={"X-Request-ID": "trace-abc-123"})
    assert echoed.headers["x-request-id"] == "trace-abc-123"
    problem = await client.get("/api/missing", headers={"X-Request-ID": "trace-404"})
    assert problem.status_code == 404 and problem.headers["x-request-id"] == "trace-404"


async def test_metrics_expose_requests_and_pool(client):
    await client.get("/api/health")
    text = (await client.get("/metrics")).text
    assert 'keel_requests_total{app_name="keel",method="GET",path="/api/health",status_code="200"}' in text
    assert "keel_request_duration_seconds_bucket" in text
    for gauge in ("keel_db_pool_size", "keel_db_pool_in_use", "keel_db_pool_waiting"):
        assert f'{gauge}{{pool="primary"}}' in text


def request_samples(text: str, path: str) -> dict[tuple[str, str], float]:
    """{(sample name, status code): value} of the request metrics of `GET <route template>`."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, sample.labels.get("status_code", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name.startswith("keel_request") and sample.labels.get("path") == path
        and sample.labels.get("method") == "GET" and "le" not in sample.labels
    }  # fmt: skip


async def test_request_metrics_count_each_status_under_its_route(client, clinic_a, dba):
    route = "/api/staff/{staff_id}"
    before = request_samples((await client.get("/metrics")).text, route)
    own = await client.get(f"/api/staff/{clinic_a.admin_id}", headers=clinic_a.headers)
    missing = await client.get("/api/staff/00000000-0000-4000-8000-000000000000", headers=clinic_a.headers)
    assert (own.status_code, missing.status_code) == (200, 404)
    after = request_samples((await client.get("/metrics")).text, route)
    for status in ("200", "404"):
        assert after[("keel_requests_total", status)] - before.get(("keel_requests_total", status), 0) == 1
        count = ("keel_request_duration_seconds_count", status)
        assert after[count] - before.get(count, 0) == 1
    assert after[("keel_requests_in_progress", "200")] == 0  # labelled 200, as Litestar's middleware did
    assert ("keel_requests_error_total", "404") not in after

    dba.execute("UPDATE keel.sql_sources SET digest = 'from-an-older-tree'")
    ready = await client.get("/api/ready")
    assert ready.status_code == 503
    errors = request_samples((await client.get("/metrics")).text, "/api/ready")
    assert errors[("keel_requests_error_total", "503")] >= 1
    assert not any("/metrics" in line for line in (await client.get("/metrics")).text.splitlines()
                   if line.startswith("keel_requests_total"))  # fmt: skip


async def test_openapi_31_and_browsable_ui(client):
    spec = (await client.get("/schema/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/health" in spec["paths"]
    ui = await client.get("/schema")
    assert ui.status_code == 200 and "<html" in ui.text.lower()


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"keel serve exited early: {proc.stderr.read()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("keel serve did not come up")


def _postgres_for(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.info["name"] == "postgres" and str(data_dir) in cmdline:
            found.append(proc)
    return found


@pytest.mark.embedded
def test_embedded_serve_lifecycle(embedded_data_dir, unused_tcp_port):
    """No configuration: serve starts a private PostgreSQL, migrates, answers, stops it on a signal —
    SIGINT, then again on the data dir it left (no initdb, nothing to migrate), SIGTERM."""
    data_dir = embedded_data_dir
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KEEL_"))}
    env["KEEL_DATA_DIR"] = str(data_dir)
    keel = [sys.executable, "-m", "api.cli"]
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        proc = subprocess.Popen(
            [*keel, "serve", "--port", str(unused_tcp_port)], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            base = f"http://127.0.0.1:{unused_tcp_port}"
            assert _wait_for(f"{base}/api/health", proc).status_code == 200
            token = subprocess.run(
                [*keel, "token", "--sub", "staff-1", "--role", "admin"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            ready = httpx.get(f"{base}/api/ready", headers={"Authorization": f"Bearer {token}"})
            assert ready.status_code == 200 and ready.json()["authenticated_as"] == "staff-1"
            if stop_signal == signal.SIGINT:
                url = subprocess.run(
                    [*keel, "db-url"], env=env, capture_output=True, text=True, check=True
                ).stdout.strip()
                schemas = subprocess.run(
                    ["psql", url, "-Atc", "SELECT nspname FROM pg_namespace ORDER BY 1"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                assert {"keel", "clinic", "assistant", "callmaster"} <= set(schemas)

                second = subprocess.run(
                    [*keel, "serve", "--port", "1"],
                    check=False,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert second.returncode != 0 and "already using" in second.stderr
            assert _postgres_for(data_dir)
        finally:
            proc.send_signal(stop_signal)
            proc.wait(timeout=60)
            log = proc.stderr.read()
            proc.stderr.close()
        # A stop asked for is a clean exit: status 0, no "Aborted!", and the lead-import pool stopped
        # with the app (no semaphores left for the resource tracker to report).
        assert proc.returncode == 0, (stop_signal, log)
        assert "Aborted" not in log and "leaked" not in log, (stop_signal, log)
        deadline = time.monotonic() + 15
        while _postgres_for(data_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _postgres_for(data_dir) == [], (stop_signal, log)


def test_serve_refuses_a_schema_that_is_behind(empty_db_url):
    env = {**os.environ, "DATABASE_URL": empty_db_url, "KEEL_JWT_SECRET": "x" * 32}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", "--port", "1"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "schema is behind" in result.stderr and "keel migrate" in result.stderr


def test_worker_refuses_functions_from_another_version(db_url, dba):
    dba.execute("UPDATE keel.sql_sources SET digest = 'from-an-older-tree'")
    env = {**os.environ, "DATABASE_URL": db_url, "KEEL_JWT_SECRET": "x" * 32}
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "worker"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "keel migrate" in result.stderr


def test_cli_lists_every_command_with_help():
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("serve", "worker", "migrate", "db-url", "token"):
        assert command in result.stdout


def test_every_route_resolves_its_dependencies_one_at_a_time(app):
    """Dependencies that do not depend on one another are resolved in an anyio task group per request
    (litestar#4563), which cost ~70-100 us per request here; api.deps.app_dependencies chains them.
    A new app-level dependency outside the chain would bring the task group back."""
    batches = [
        len(batch)
        for route in app.routes
        for _handler, kwargs_model in getattr(route, "route_handler_map", {}).values()
        for batch in kwargs_model.dependency_batches
    ]
    assert batches and set(batches) == {1}

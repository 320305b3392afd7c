"""`keel serve --workers N` (DESIGN §11): N API processes on one port, the background workers in one
process apart, the embedded PostgreSQL started once by the supervisor, metrics summed over processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from api.auth import TokenVerifier
from api.serving import MULTIPROC_ENV
from api.settings import Settings
from tests.pg_servers import free_port, stop_process, wait_healthy

pytestmark = pytest.mark.multiprocess


START_SECONDS = 120


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def metric(text: str, name: str, labels: str = "") -> float:
    """The sum of a metric's samples whose label set contains `labels`."""
    pattern = re.compile(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
    return sum(float(value) for found, value in pattern.findall(text) if labels in found)


def test_serve_with_several_processes_on_the_embedded_database(embedded_data_dir: Path) -> None:
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KEEL_", "DATABASE_", "PROMETHEUS_"))
    }
    env.update(KEEL_DATA_DIR=str(embedded_data_dir), KEEL_POOL_MIN_SIZE="2", KEEL_LOG_FORMAT="json")
    # The operator's metrics directory, holding what an earlier run left: a process that died with its
    # supervisor (never marked dead) and whose live pool gauge would otherwise count forever.
    metrics_dir = embedded_data_dir.parent / "metrics"
    metrics_dir.mkdir()
    env[MULTIPROC_ENV] = str(metrics_dir)
    subprocess.run(
        [sys.executable, "-c", STALE_GAUGE], env={**env, "STALE": str(STALE_CONNECTIONS)}, check=True
    )
    assert list(metrics_dir.glob("gauge_livesum_*.db"))
    keel = str(Path(sys.executable).parent / "keel")
    log = (embedded_data_dir.parent / "serve.log").open("w")
    server = subprocess.Popen(
        [keel, "serve", "--port", str(port), "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_healthy(
            f"http://127.0.0.1:{port}", server, START_SECONDS, embedded_data_dir.parent / "serve.log"
        )

        db_url = subprocess.run(
            [keel, "db-url"], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        with psycopg.connect(db_url, autocommit=True) as dba:
            # One embedded server, started by the supervisor and shared by every process.
            assert (
                dba.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
                ).fetchone()[0]
                == 1
            )
            deadline = time.monotonic() + 30
            while True:
                apps = dict(
                    dba.execute(
                        "SELECT application_name, count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND application_name LIKE 'keel%%'"
                        " GROUP BY 1"
                    ).fetchall()
                )
                # The workers run once: one outbox dispatcher's LISTEN session, one worker pool (which
                # may grow past its minimum of 2 while the assistant, outbox and refresher start up).
                one_set_of_workers = apps.get("keel-worker", 0) >= 2 and apps.get("keel-outbox-listener") == 1
                if apps.get("keel", 0) >= 4 and one_set_of_workers:
                    break
                assert time.monotonic() < deadline, apps
                time.sleep(0.2)
            clinic_id, admin_id = dba.execute(
                "SELECT clinic_id, admin_id FROM clinic.create_clinic('Multi', 'UTC', 'MUL', 'A', 'a@m.example')"
            ).fetchone()

        # Two API processes share the listening socket; the workers run in one more process, which
        # does not listen (and no API process runs workers of its own: one worker pool above).
        api_processes = listening_processes(server.pid, port)
        assert len(api_processes) == 2, (api_processes, children(server.pid))
        assert len(set(children(server.pid)) - set(api_processes)) >= 1

        # The data dir's JWT secret is the supervisor's: every process accepts the same token.
        settings = Settings.from_env(data_dir=embedded_data_dir, database_url=None, jwt_secret=None)
        token = TokenVerifier(settings).mint(
            {"sub": str(admin_id), "clinic_id": str(clinic_id), "role": "admin"}
        )
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(40):  # new connections: the kernel spreads them over the processes
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                assert fresh.get("/api/staff", headers=headers).status_code == 200

        # /metrics sums every process, whichever answers: the same totals from any of them.
        time.sleep(1.5)  # pool gauges are published every second
        totals = set()
        for _ in range(6):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                text = fresh.get("/metrics").text
            totals.add(metric(text, "keel_requests_total", 'path="/api/staff"'))
            assert metric(text, "keel_db_pool_size", 'pool="primary"') >= 4, text
        assert totals == {40.0}, totals

        # The pool gauge counts the live processes' connections, nothing the earlier run left.
        pool_matches_connections(port, db_url, metrics_dir, server.pid)

        # A killed API process (SIGKILL: no clean exit) is replaced; the port keeps answering.
        killed = api_processes[0]
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while len(set(listening_processes(server.pid, port)) - {killed}) < 2:
            assert time.monotonic() < deadline, "the killed API process was not replaced"
            time.sleep(0.2)
        for _ in range(10):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                assert fresh.get("/api/staff", headers=headers).status_code == 200
        # ...and its live gauges no longer count: the supervisor marked it dead.
        pool_matches_connections(port, db_url, metrics_dir, server.pid)
        assert not list(metrics_dir.glob(f"gauge_live*_{killed}.db"))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:  # counters stay
            assert metric(fresh.get("/metrics").text, "keel_requests_total", 'path="/api/staff"') == 50
    finally:
        stop_process(server)
        log.close()
    assert server.returncode == 0, "a supervisor stopped by SIGTERM exits 0"
    assert not (embedded_data_dir / "pgdata" / "postmaster.pid").exists(), (
        "the embedded server was not stopped"
    )


STALE_CONNECTIONS = 1000
STALE_GAUGE = """
import os
from prometheus_client import Gauge
Gauge("keel_db_pool_size", "", ["pool"], multiprocess_mode="livesum").labels("primary").set(int(os.environ["STALE"]))
"""


def pool_matches_connections(port: int, db_url: str, metrics_dir: Path, supervisor: int) -> None:
    """Wait until the live pool gauges are exactly the live API processes' (each has published) and
    /metrics' primary pool size, their sum, equals the API connections the server sees: a dead
    process's gauge would keep it above. (The API processes are read each time: under load, uvicorn's
    supervisor may replace a child that answers its health check late.)"""
    deadline = time.monotonic() + 60
    while True:
        api_processes = set(listening_processes(supervisor, port))
        publishers = {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("gauge_livesum_*.db")}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
            gauge = metric(fresh.get("/metrics").text, "keel_db_pool_size", 'pool="primary"')
        with psycopg.connect(db_url, autocommit=True) as dba:
            connections = dba.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'keel'"
            ).fetchone()[0]
        if publishers == api_processes and gauge == connections:
            return
        assert time.monotonic() < deadline, (publishers, api_processes, gauge, connections)
        time.sleep(0.5)


def listening_processes(parent: int, port: int) -> list[int]:
    """The children of `parent` holding the socket that listens on `port` (the API processes)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    holders = []
    for pid in children(parent):
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except OSError:
            continue
        if links & inodes:
            holders.append(pid)
    return holders

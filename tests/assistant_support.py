"""Fixtures and helpers shared by the tests/test_assistant_*.py modules (import what you use)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.assistant import worker as assistant_worker
from api.db import Database
from api.settings import Settings
from tests.llm_server import LLMServer

FINAL = ("done", "failed")


@pytest.fixture
def llm() -> Iterator[LLMServer]:
    """The loopback OpenAI-compatible LLM, fresh per test."""
    server = LLMServer().start()
    yield server
    server.stop()


def assistant_settings(llm: LLMServer, **overrides: Any) -> dict[str, Any]:
    """Settings for a fast test: short timeouts, leases, backoff and polling."""
    values: dict[str, Any] = {
        "openai_base_url": llm.url,
        "openai_api_key": "test-key",
        "assistant_model": "test-model",
        "assistant_timeout": 1.5,
        "assistant_lease_seconds": 2.0,
        "assistant_max_attempts": 4,
        "assistant_retry_base": 0.05,
        "assistant_poll_interval": 0.3,
        "assistant_sse_keepalive": 5.0,
        "assistant_concurrency": 16,
        "pool_max_size": 10,
    }
    values.update(overrides)
    return values


@pytest.fixture
def settings_overrides(llm: LLMServer) -> dict[str, Any]:
    return assistant_settings(llm)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, name: str = "test-worker") -> AsyncIterator[asyncio.Task[None]]:
    """The assistant worker as a task of this event loop, with its own pool; stopped on exit."""
    db = Database(settings, settings.database_url or "", name=name)
    await db.open()
    stop = asyncio.Event()
    task = asyncio.create_task(assistant_worker.run(settings, db, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)
        await db.close()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    async with running_worker(settings) as task:
        yield task


@dataclass
class StaffMember:
    clinic_id: str
    staff_id: str
    headers: dict[str, str]


def create_clinic_staff(
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    name: str,
    prefix: str,
    role: str = "admin",
) -> StaffMember:
    """A clinic and its admin (via clinic.create_clinic), with a token for that admin."""
    row = dba.execute(
        "SELECT clinic_id, admin_id FROM clinic.create_clinic(%s, 'Asia/Kolkata', %s, %s, %s)",
        (name, prefix, f"{name} Admin", f"admin@{name.lower()}.example"),
    ).fetchone()
    assert row is not None
    clinic_id, staff_id = str(row[0]), str(row[1])
    return StaffMember(clinic_id, staff_id, bearer(staff_id, clinic_id=clinic_id, role=role))


def add_staff(
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
    clinic: StaffMember,
    name: str,
    role: str,
) -> StaffMember:
    row = dba.execute(
        "INSERT INTO clinic.staff (clinic_id, name, email, role) VALUES (%s, %s, %s, %s) RETURNING id",
        (clinic.clinic_id, name, f"{name.lower().replace(' ', '.')}@x.example", role),
    ).fetchone()
    assert row is not None
    return StaffMember(
        clinic.clinic_id, str(row[0]), bearer(str(row[0]), clinic_id=clinic.clinic_id, role=role)
    )


@pytest.fixture
def staff(dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]) -> StaffMember:
    return create_clinic_staff(dba, bearer, "Alpha", "ALP")


async def chat(client: httpx.AsyncClient, who: StaffMember, message: str, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/internal-assistant/chat", json={"message": message, **body}, headers=who.headers
    )
    assert response.status_code == 202, response.text
    return response.json()


async def wait_final(
    client: httpx.AsyncClient, who: StaffMember, message_id: str, timeout: float = 15.0
) -> dict[str, Any]:
    """Poll the message until it is done or failed."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/api/internal-assistant/messages/{message_id}", headers=who.headers)
        assert response.status_code == 200, response.text
        message: dict[str, Any] = response.json()
        if message["status"] in FINAL:
            return message
        assert time.monotonic() < deadline, f"message still {message['status']}: {message}"
        await asyncio.sleep(0.05)


@dataclass
class SSEEvent:
    event: str
    data: Any = None
    id: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class SSEStream:
    events: list[SSEEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[SSEEvent]:
        return [e for e in self.events if e.event == kind]

    @property
    def text(self) -> str:
        """The text a client following the protocol shows: deltas, restarted on `reset`."""
        parts: list[str] = []
        for e in self.events:
            if e.event == "reset":
                parts = []
            elif e.event == "delta":
                parts.append(e.data["text"])
        return "".join(parts)


async def read_sse(
    client: httpx.AsyncClient,
    who: StaffMember,
    message_id: str,
    *,
    last_event_id: str | None = None,
    max_events: int | None = None,
    on_event: Callable[[SSEEvent], None] | None = None,
) -> SSEStream:
    """Follow the message's event stream until it ends (or `max_events` events have arrived)."""
    headers = dict(who.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    stream = SSEStream()
    url = f"/api/internal-assistant/messages/{message_id}/events"
    async with client.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                stream.comments.append(line[1:].strip())
                continue
            if line:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
                continue
            if not fields:
                continue
            data = fields.get("data")
            event = SSEEvent(
                fields.get("event", "message"), json.loads(data) if data else None, fields.get("id")
            )
            fields = {}
            stream.events.append(event)
            if on_event is not None:
                on_event(event)
            if max_events is not None and len(stream.events) >= max_events:
                break
    return stream


def worker_process(
    settings: Settings, llm: LLMServer, env: dict[str, str] | None = None, *, stderr: int = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """A real `keel worker` process on the test's database and LLM (short lease and polling);
    `env` adds or overrides variables."""
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker"],
        cwd=Path(__file__).resolve().parent.parent,
        env={
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "OPENAI_BASE_URL": llm.url,
            "OPENAI_API_KEY": "test-key",
            "KEEL_ASSISTANT_MODEL": "test-model",
            "KEEL_ASSISTANT_LEASE_SECONDS": "1.5",
            "KEEL_ASSISTANT_POLL_INTERVAL": "0.2",
            "KEEL_ASSISTANT_TIMEOUT": "5",
            "KEEL_NOTIFY_WEBHOOK_URL": "",
            **(env or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )

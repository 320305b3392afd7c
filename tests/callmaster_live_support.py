"""Helpers for the CallMaster live tests: a Server-Sent Events follower that tests can await event by
event, and a small stage (owner, crew, show, script with cues)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from tests.factories import add_crew, add_department, add_script, add_show, add_user, one


@dataclass
class Event:
    event: str
    id: str | None
    data: Any


@dataclass
class Follower:
    """Reads one SSE stream in the background; `next()` awaits the next event."""

    client: httpx.AsyncClient
    url: str
    headers: dict[str, str]
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    status: asyncio.Future[int] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    body: bytes = b""
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.status is not None
        try:
            async with self.client.stream("GET", self.url, headers=self.headers) as response:
                if response.status_code != 200:
                    self.body = await response.aread()
                    self.status.set_result(response.status_code)
                    return
                assert response.headers["content-type"].startswith("text/event-stream")
                self.status.set_result(200)
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        continue
                    if line:
                        key, _, value = line.partition(":")
                        fields[key] = value.removeprefix(" ")
                        continue
                    if fields:
                        data = fields.get("data")
                        self.queue.put_nowait(
                            Event(
                                fields.get("event", "message"),
                                fields.get("id"),
                                json.loads(data) if data else None,
                            )
                        )
                        fields = {}
        finally:
            if not self.status.done():
                self.status.set_result(0)
            self.ended.set()

    async def start(self) -> int:
        self.status = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(self._read())
        return await asyncio.wait_for(self.status, 20)

    async def next(self, timeout: float = 10.0) -> Event:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def take(self, n: int, timeout: float = 10.0) -> list[Event]:
        return [await self.next(timeout) for _ in range(n)]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


@contextlib.asynccontextmanager
async def follow(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str] | None = None,
    last_event_id: str | None = None,
) -> Any:
    h = dict(headers or {})
    if last_event_id is not None:
        h["Last-Event-ID"] = last_event_id
    follower = Follower(client, url, h)
    try:
        status = await follower.start()
        assert status == 200, (status, follower.body)
        yield follower
    finally:
        await follower.close()


def live_stage(dba: psycopg.Connection[Any], cues: int = 4) -> dict[str, Any]:
    """Owner user_a with a show, a script of `cues` cues (Q1..), a second script; crew: a caller, a
    lighting operator (department Lighting), a stranger."""
    owner = add_user(dba, "user_a")
    show = add_show(dba, owner)
    script = add_script(dba, show)
    lighting = add_department(dba, owner)
    caller = add_user(dba, "caller_c")
    operator = add_user(dba, "lx_op")
    add_user(dba, "stranger_s")
    dba.execute(
        "INSERT INTO callmaster.crew_assignments (show_id, user_id, show_role) VALUES (%s, %s, 'Stage Manager')",
        (show, caller),
    )
    dba.execute(
        "INSERT INTO callmaster.crew_assignments (show_id, user_id, department_id, show_role)"
        " VALUES (%s, %s, %s, 'board op')",
        (show, operator, lighting),
    )
    ids = [
        str(
            one(
                dba,
                "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, sequence)"
                " VALUES (%s, 'cue', %s, %s) RETURNING id",
                (script, f"Q{n}", n * 10),
            )
        )
        for n in range(1, cues + 1)
    ]
    return {
        "owner": owner,
        "show": show,
        "script": script,
        "other_script": add_script(dba, show, "Understudy"),
        "lighting": lighting,
        "caller": caller,
        "operator": operator,
        "cues": ids,
        "guest": add_crew(dba, owner, "guest@example.com"),
    }


async def slow_reader(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw GET of `url` whose socket fills after a few KB unread: a device that stops reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (client.base_url.host, client.base_url.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(f"GET {url} HTTP/1.1\r\nHost: test\r\n{head}\r\n".encode())
    return reader, writer


def add_notes(dba: psycopg.Connection[Any], script: str) -> int:
    """1,000 notes in the script; returns its feed position after them."""
    dba.execute(
        "INSERT INTO callmaster.script_elements (script_id, element_type, sequence)"
        " SELECT %s, 'note', 1000 + g FROM generate_series(1, 1000) AS g",
        (script,),
    )
    return int(one(dba, "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s", (script,)))


def flood(dba: psycopg.Connection[Any], script: str) -> int:
    """30 updates of the 1,000 notes: 30,000 events, ~5 MB of SSE, more than the sockets hold; returns the
    feed position after them."""
    for n in range(30):
        dba.execute(
            "UPDATE callmaster.script_elements SET description = %s"
            " WHERE script_id = %s AND element_type = 'note'",
            (f"take {n}", script),
        )
    return int(one(dba, "SELECT position FROM callmaster.live_feed_heads WHERE script_id = %s", (script,)))

"""Server-Sent Events for a reply: `delta` events as text arrives, then `done` or `error`.

Event ids are `<attempt>:<offset>` — the attempt that wrote the text and the character offset after this
event's text — so a client reconnecting with `Last-Event-ID` gets exactly the text after what it has.
When the worker restarted the reply (its earlier attempt was abandoned, its text cleared), a reader that
saw text of the old attempt first gets a `reset` event (`{"attempt": n}`: discard the text so far), then
the new attempt's text from its start — text is never duplicated.

No transaction stays open while a stream waits: each look at the reply is one short call of
`assistant.reply_progress` under the reader's claims. Between looks the stream waits for a NOTIFY on
`assistant_messages` (one LISTEN connection per process, shared by every stream, opened while any stream
is open and reopened when lost), at most `assistant_poll_interval` seconds; a comment line keeps the
connection alive every `assistant_sse_keepalive` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from litestar.response import ServerSentEventMessage

from api.db import PROBE, Database, HasClaims
from api.settings import Settings
from api.streams import StreamCount

log = logging.getLogger(__name__)

PROGRESS_SQL = "SELECT assistant.reply_progress(%(id)s, %(attempt)s, %(offset)s)"
LISTEN_MESSAGES = "LISTEN assistant_messages"
FINAL = ("done", "failed")
_EVENT_ID = re.compile(r"^(\d{1,10}):(\d{1,10})$")
INT4_MAX = 2_147_483_647  # attempt and offset are `integer` parameters of assistant.reply_progress


def parse_last_event_id(value: str | None) -> tuple[int, int]:
    """(attempt, offset) from a Last-Event-ID header; (0, 0) when absent or not one of ours (which
    includes numbers beyond the `integer` range: this stream never sent those)."""
    match = _EVENT_ID.match((value or "").strip())
    if not match:
        return (0, 0)
    attempt, offset = int(match.group(1)), int(match.group(2))
    return (attempt, offset) if attempt <= INT4_MAX and offset <= INT4_MAX else (0, 0)


class MessageHub:
    """One LISTEN on `assistant_messages` per process, waking the streams of the ids it hears."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.waiters: dict[str, set[asyncio.Event]] = {}
        self.task: asyncio.Task[None] | None = None
        self.streams = StreamCount()  # per staff member (api.streams)

    @contextlib.asynccontextmanager
    async def subscribe(self, message_id: uuid.UUID) -> AsyncIterator[asyncio.Event]:
        key = str(message_id)
        event = asyncio.Event()
        self.waiters.setdefault(key, set()).add(event)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._listen(), name="assistant-sse-listen")
        try:
            yield event
        finally:
            subscribers = self.waiters.get(key)
            if subscribers is not None:
                subscribers.discard(event)
                if not subscribers:
                    del self.waiters[key]
            if not self.waiters and self.task is not None:
                self.task.cancel()  # the last stream closed: free the connection
                self.task = None

    def _wake_all(self) -> None:
        for events in self.waiters.values():
            for event in events:
                event.set()

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, application_name="keel-assistant-sse"
                )
                async with conn:
                    await conn.execute(LISTEN_MESSAGES)
                    self._wake_all()  # anything that changed before we listened: look again
                    delay = 0.2
                    while True:
                        async for notify in conn.notifies(timeout=30.0):
                            for event in self.waiters.get(notify.payload, ()):
                                event.set()
                        await conn.execute(PROBE)
            except psycopg.OperationalError as exc:
                log.warning("assistant SSE: LISTEN connection lost (%s); reconnecting in %.1f s", exc, delay)
                self._wake_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def hub_for(state: Any, db: Database) -> MessageHub:
    """The process's hub, kept in the app state (created on first use)."""
    hub = getattr(state, "assistant_hub", None)
    if hub is None:
        hub = MessageHub(db.direct_conninfo)
        state.assistant_hub = hub
    return hub


async def reply_progress(
    db: Database, principal: HasClaims, message_id: uuid.UUID, attempt: int, offset: int
) -> Any:
    """One look at the reply (raises P0002 → 404 when the caller may not see it)."""
    return await db.fetch_val(
        principal, PROGRESS_SQL, {"id": message_id, "attempt": attempt, "offset": offset}
    )


def _retrying(progress: dict[str, Any]) -> bool:
    """Past its first attempt: a failed attempt was rescheduled (queued) or its successor is running."""
    attempt = progress["attempt"]
    return attempt > 1 or (attempt == 1 and progress["status"] == "queued")


async def reply_events(
    db: Database,
    principal: HasClaims,
    hub: MessageHub,
    settings: Settings,
    message_id: uuid.UUID,
    attempt: int,
    offset: int,
) -> AsyncIterator[ServerSentEventMessage]:
    """The event stream of one reply, from (attempt, offset) on, until it is final."""
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    told_retry = 0
    async with hub.subscribe(message_id) as changed:
        while True:
            changed.clear()
            progress = await reply_progress(db, principal, message_id, attempt, offset)
            if progress["reset"]:
                yield ServerSentEventMessage(event="reset", data=json.dumps({"attempt": progress["attempt"]}))
                offset = 0
            if progress["text"]:
                attempt = progress["attempt"]
                offset = progress["offset"] + len(progress["text"])
                yield ServerSentEventMessage(
                    event="delta", id=f"{attempt}:{offset}", data=json.dumps({"text": progress["text"]})
                )
                last_sent = loop.time()
            if progress["status"] not in FINAL and _retrying(progress) and progress["attempt"] != told_retry:
                # An attempt failed and another is due or under way: say so, even before it sends text.
                told_retry = progress["attempt"]
                yield ServerSentEventMessage(
                    event="status",
                    data=json.dumps(
                        {"status": "retrying", "attempt": told_retry, "error": progress["error"]}
                    ),
                )
            if progress["status"] in FINAL:
                final: dict[str, Any] = {"message_id": str(message_id), "status": progress["status"]}
                if progress["status"] == "done":
                    yield ServerSentEventMessage(
                        event="done", id=f"{progress['attempt']}:{offset}", data=json.dumps(final)
                    )
                else:
                    final["error"] = progress["error"]
                    yield ServerSentEventMessage(event="error", data=json.dumps(final))
                return
            last_poll = loop.time()
            while True:
                now = loop.time()
                until_keepalive = settings.assistant_sse_keepalive - (now - last_sent)
                until_poll = settings.assistant_poll_interval - (now - last_poll)
                if until_keepalive <= 0:
                    yield ServerSentEventMessage(comment="keep-alive")
                    last_sent = loop.time()
                    continue
                if until_poll <= 0:
                    break  # look anyway: a notification may have been missed
                try:
                    await asyncio.wait_for(changed.wait(), timeout=min(until_keepalive, until_poll))
                    break
                except TimeoutError:
                    continue

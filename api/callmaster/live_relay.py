"""The per-process relay of the script change feed: one session (LISTEN) per API process, fanning
committed feed events out in memory to every live subscriber of that process.

Feed positions are per script, gapless and in commit order (sql/callmaster/700_live_feed.sql), so the
relay only ever asks "what is after the last position I have" — one query for every script it follows.
While events flow it polls every `live_poll_interval` seconds, so writers need not NOTIFY (a NOTIFY
serialises commits cluster-wide); show commands (a few a minute, and the events whose latency is
measured) NOTIFY anyway, so a GO is fetched as soon as it commits rather than at the next poll. After
`live_linger` quiet seconds the relay announces that it sleeps (`callmaster.live_relay_asleep`, which also
waits for writers that saw it awake), looks once more, and waits for a NOTIFY on `callmaster_live`. Every
`live_check_interval` seconds it re-checks every subscriber's access and reports presence
(`callmaster.live_heartbeat`), and disconnects the revoked — on a second session, so that a GO never
waits behind those checks (10–80 ms each with 250 subscribers on a loaded machine, measured).

Fan-out: each batch of new events is encoded and framed once, and the relay writes the same bytes to
every subscriber that is up to date, in one pass, straight to its connection (`api.body_writer.BodyWriter`:
no task, queue, Litestar stream or ASGI send per subscriber and event — at 500 subscribers those were
most of the API's CPU, then most of the fan-out's time beyond the socket writes). Each script keeps its
most recent events; positions are gapless, so the events after a subscriber's position are a slice. A
subscriber the relay does not write to — behind (it joined before the relay had caught up), its socket
full (flow control), or served without a `BodyWriter` — is woken and catches up in its own stream
(`LiveStream`, through the ASGI send): from those recent events, or from the database when it is further
behind. The session runs on `database_direct_url` (a transaction-mode pooler cannot hold a LISTEN).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.response.base import ASGIResponse
from litestar.types import HTTPResponseBodyEvent, Receive, Scope, Send
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.body_writer import BODY_WRITER, BodyWriter
from api.db import WORKER_ROLE
from api.settings import Settings
from api.streams import TooManyStreams, refuse

log = logging.getLogger(__name__)

EVENTS_AFTER = (
    "SELECT script_id, id, event, element_id, run_id, fields, command, run, created_at"
    " FROM callmaster.live_events_after(%(scripts)s::uuid[], %(after)s::bigint[], %(limit)s)"
)
HEARTBEAT = "SELECT callmaster.live_heartbeat(%(process)s, %(subscribers)s) AS revoked"
ASLEEP = "SELECT callmaster.live_relay_asleep(%(wait)s) AS clear"
AWAKE = "SELECT callmaster.live_relay_awake()"
LISTEN = "LISTEN callmaster_live"
PRUNE = "SELECT callmaster.prune_live_events(%(keep)s)"

RING = 4096  # events kept per script (between RING and 2 × RING) for subscribers slightly behind
FETCH_LIMIT = 2000  # events per script and poll
PRUNE_EVERY = 60.0


def event_data(row: dict[str, Any]) -> str:
    """The SSE `data` of a feed event (ids, changed field names, the run after a command)."""
    data: dict[str, Any] = {"at": row["created_at"].isoformat()}
    for key in ("element_id", "run_id", "fields", "command", "run"):
        if row.get(key) is not None:
            data[key] = str(row[key]) if key in ("element_id", "run_id") else row[key]
    return json.dumps(data)


class Message(ServerSentEventMessage):
    """A feed event as SSE, encoded once however many subscribers it is sent to."""

    def __init__(self, position: int, event: str, data: str) -> None:
        super().__init__(data=data, event=event, id=position)
        self.position = position
        self.encoded = super().encode()

    def encode(self) -> bytes:
        return self.encoded


@dataclass(eq=False)
class Subscriber:
    """One live stream: who it is (a Clerk user or a share link), what it has delivered, and how the
    relay writes to it (`writer`, set while it may)."""

    script_id: uuid.UUID
    position: int
    sub: str | None = None
    link_id: str | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    revoked: bool = False
    gone: bool = False  # the client disconnected
    writer: BodyWriter | None = None
    busy: bool = False  # the stream's own write is under way
    last_sent: float = 0.0

    @property
    def follower(self) -> tuple[str, str | None]:
        """Whom the stream counts against (`live_max_streams`): its share link, else its user."""
        return ("link", self.link_id) if self.link_id else ("user", self.sub)


@dataclass
class Feed:
    head: int
    recent: list[Message] = field(default_factory=list)  # consecutive positions, oldest first
    subscribers: set[Subscriber] = field(default_factory=set)


def body(chunk: bytes) -> HTTPResponseBodyEvent:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


class LiveRelay:
    def __init__(self, settings: Settings, conninfo: str) -> None:
        self.settings = settings
        self.conninfo = conninfo
        self.process_id = uuid.uuid4()
        self.feeds: dict[uuid.UUID, Feed] = {}
        self.task: asyncio.Task[None] | None = None
        self.check_now = asyncio.Event()

    def streams_of(self, subscriber: Subscriber) -> int:
        """Streams this process serves to the subscriber's follower."""
        who = subscriber.follower
        return sum(sub.follower == who for feed in self.feeds.values() for sub in feed.subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self, subscriber: Subscriber) -> AsyncIterator[Subscriber]:
        """Follow the subscriber's script while inside; TooManyStreams past `live_max_streams`. Counting and
        joining have no await between them, so a burst of opens cannot all pass the count."""
        if self.streams_of(subscriber) >= self.settings.live_max_streams:
            raise TooManyStreams
        feed = self.feeds.get(subscriber.script_id)
        if feed is None:
            feed = self.feeds[subscriber.script_id] = Feed(head=subscriber.position)
        feed.subscribers.add(subscriber)
        self.check_now.set()  # report presence soon
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="callmaster-live-relay")
        try:
            yield subscriber
        finally:
            feed.subscribers.discard(subscriber)
            if not feed.subscribers and self.feeds.get(subscriber.script_id) is feed:
                del self.feeds[subscriber.script_id]
            if not self.feeds and self.task is not None:
                self.task.cancel()  # the last stream closed: free the session
                self.task = None

    def events_after(self, subscriber: Subscriber) -> list[Message] | None:
        """The events this process has after the subscriber's position; None when they do not reach
        back that far (the subscriber reads the gap from the database)."""
        feed = self.feeds.get(subscriber.script_id)
        if feed is None or feed.head <= subscriber.position:
            return []
        if not feed.recent or feed.recent[0].position > subscriber.position + 1:
            return None
        return feed.recent[subscriber.position + 1 - feed.recent[0].position :]

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, row_factory=dict_row, application_name="keel-live-relay"
        )
        # The relay reads every subscribed script's feed: the worker role's calls, not a request's.
        await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(WORKER_ROLE)))
        return conn

    async def _run(self) -> None:
        delay = 0.2
        while self.feeds:
            try:
                async with await self._connect() as conn, await self._connect() as checks:
                    delay = 0.2
                    tasks = [asyncio.create_task(self._serve(conn)), asyncio.create_task(self._check(checks))]
                    try:  # both run while anyone follows; the first to end (or fail) ends the other
                        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for task in tasks:
                            task.cancel()
                        await asyncio.wait(tasks)
                    for task in done:
                        task.result()
            except psycopg.Error as exc:  # lost session, or a failing call: start over on new sessions
                log.warning("live relay: %s; reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _check(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        """Every `live_check_interval` seconds, and soon after a subscriber joins: re-check access and
        report presence; once a minute, prune the log."""
        s = self.settings
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        while self.feeds:
            self.check_now.clear()
            await self._heartbeat(conn)
            if loop.time() >= next_prune:
                await conn.execute(PRUNE, {"keep": timedelta(hours=s.live_retention_hours)})
                next_prune = loop.time() + PRUNE_EVERY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.check_now.wait(), timeout=s.live_check_interval)

    async def _serve(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        last_event = loop.time()
        awake = True
        await conn.execute(LISTEN)  # show commands always ring; other writers only while a relay sleeps
        while self.feeds:
            if await self._poll(conn):
                last_event = loop.time()
            now = loop.time()
            if awake and now - last_event < s.live_linger:
                await self._notified(conn, s.live_poll_interval)
                continue
            if awake:
                # Announce sleep; once the writers that saw us awake have ended, look once more (top of
                # the loop) and only then wait for a NOTIFY.
                cur = await conn.execute(ASLEEP, {"wait": timedelta(milliseconds=50)})
                row = await cur.fetchone()
                if row and row["clear"]:
                    awake = False
                else:  # a writer that saw us awake is still open: look again, then retry
                    await self._notified(conn, s.live_poll_interval)
                continue
            if await self._notified(conn, 1.0):
                await conn.execute(AWAKE)
                awake = True
                last_event = loop.time()

    @staticmethod
    async def _notified(conn: psycopg.AsyncConnection[dict[str, Any]], timeout: float) -> bool:
        """Wait up to `timeout` for a NOTIFY (those read meanwhile, e.g. during a poll, count at once)."""
        notified = False
        async for _ in conn.notifies(timeout=timeout, stop_after=1):
            notified = True
        return notified

    async def _poll(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> bool:
        scripts = list(self.feeds)
        if not scripts:
            return False
        cur = await conn.execute(
            EVENTS_AFTER,
            {"scripts": scripts, "after": [self.feeds[sid].head for sid in scripts], "limit": FETCH_LIMIT},
        )
        rows = await cur.fetchall()
        fresh: dict[uuid.UUID, list[Message]] = {}
        for row in rows:
            feed = self.feeds.get(row["script_id"])
            if feed is None or row["id"] <= feed.head:
                continue
            message = Message(row["id"], row["event"], event_data(row))
            if row["id"] != feed.head + 1:
                # Pruned before this relay read them (it was cut off for longer than the retention):
                # `recent` holds consecutive positions only, so followers behind read the gap from the
                # database, which answers `reset`.
                feed.recent.clear()
            feed.recent.append(message)
            feed.head = row["id"]
            if len(feed.recent) >= 2 * RING:
                del feed.recent[:RING]
            fresh.setdefault(row["script_id"], []).append(message)
        now = asyncio.get_running_loop().time()
        for sid, messages in fresh.items():
            self._fan_out(self.feeds[sid], messages, now)
        return bool(rows)

    @staticmethod
    def _fan_out(feed: Feed, fresh: list[Message], now: float) -> None:
        """Write the new events to every subscriber that is up to date, in this one pass: the same framed
        bytes to each. A subscriber behind, writing, or that cannot take them now is woken to catch up."""
        first, last = fresh[0].position, fresh[-1].position
        shared: bytes | None = None
        for sub in feed.subscribers:
            if sub.position >= last:
                continue
            if sub.busy or sub.writer is None or sub.position < first - 1:
                sub.wake.set()
                continue
            if sub.position == first - 1:
                if shared is None:
                    shared = BodyWriter.chunk(b"".join(m.encoded for m in fresh))
                chunk = shared
            else:  # joined after the first of these
                chunk = BodyWriter.chunk(b"".join(m.encoded for m in fresh if m.position > sub.position))
            if sub.writer.write(chunk):
                sub.position, sub.last_sent = last, now
                if sub.writer.paused:  # that filled it: its stream times the client (live_stall_timeout)
                    sub.wake.set()
            else:  # its socket is full, or it left: its stream deals with it
                sub.wake.set()

    async def _heartbeat(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        subscribers = [sub for feed in self.feeds.values() for sub in feed.subscribers]
        payload = [
            {
                "key": sub.key,
                "script_id": str(sub.script_id),
                "sub": sub.sub,
                "link_id": sub.link_id,
                "devices": 1,
            }
            for sub in subscribers
        ]
        cur = await conn.execute(HEARTBEAT, {"process": self.process_id, "subscribers": Jsonb(payload)})
        row = await cur.fetchone()
        revoked = set(row["revoked"] if row else ())
        for sub in subscribers:
            if sub.key in revoked:
                sub.revoked = True
                sub.wake.set()


def db_event(event: dict[str, Any]) -> Message:
    """An event as live_open returns it, as SSE."""
    data = dict(event)
    return Message(int(data.pop("id")), str(data.pop("event")), json.dumps(data))


def reset_message(position: int) -> Message:
    reason = "the feed no longer holds the events after Last-Event-ID: reload the script"
    return Message(position, "reset", json.dumps({"reason": reason}))


KEEP_ALIVE = ServerSentEventMessage(comment="keep-alive", data=None).encode()  # a comment, no event
END: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}

Reopen = Callable[[int], Awaitable[dict[str, Any]]]


class Stalled(Exception):
    """The client left its socket full for `live_stall_timeout` seconds."""


class LiveStream:
    """The body of one live SSE response: `opening` (state, reset or replay), then the feed until the
    client leaves or its access ends. While the subscriber is up to date the relay writes to its connection
    directly (`LiveRelay._fan_out`, with the server's `BodyWriter`); this stream catches it up through the
    ASGI send when it is behind (from the relay's recent events, or with `reopen(position)` — live_open —
    from the database), sends keep-alives and `revoked`. A client that reads nothing for
    `live_stall_timeout` seconds while a write waits for it is disconnected (it resumes with
    Last-Event-ID): otherwise its connection, its buffered events and its place in the relay would stay
    as long as it stays silent."""

    def __init__(
        self, relay: LiveRelay, subscriber: Subscriber, opening: list[Message], reopen: Reopen
    ) -> None:
        self.relay, self.subscriber, self.opening, self.reopen = relay, subscriber, opening, reopen
        self.connection: BodyWriter | None = None

    async def __call__(self, scope: Scope, send: Send, receive: Receive) -> None:
        """Stream, the subscriber having joined the relay (`LiveRelay.subscribe`)."""
        sub = self.subscriber
        self.connection = (scope.get("extensions") or {}).get(BODY_WRITER)
        try:
            await self._write(send, b"".join(m.encode() for m in self.opening))
            sub.writer = self.connection
            listener = asyncio.create_task(self._until_disconnect(receive))
            try:
                await self._follow(send)
            finally:
                sub.writer = None
                listener.cancel()
        except Stalled:
            if self.connection is not None:
                self.connection.abort()
            return
        await send(END)

    async def _until_disconnect(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.subscriber.gone = True
        self.subscriber.wake.set()

    async def _write(self, send: Send, chunk: bytes) -> None:
        sub = self.subscriber
        sub.busy = True  # the relay leaves the subscriber alone (and wakes it) meanwhile
        try:  # the send returns once the connection has room again (flow control)
            await asyncio.wait_for(send(body(chunk)), self.relay.settings.live_stall_timeout)
        except TimeoutError:
            raise Stalled from None
        finally:
            sub.busy = False
        sub.last_sent = asyncio.get_running_loop().time()

    async def _catch_up(self, pending: list[Message] | None) -> bytes:
        """The events after the subscriber's position, from the relay (`pending`) or, when the relay does
        not reach back that far (None), from the database; or a `reset` when the log does not either."""
        sub, chunk = self.subscriber, b""
        if pending is None:
            try:
                reopened = await self.reopen(sub.position)
            except (psycopg.errors.NoDataFound, psycopg.errors.InsufficientPrivilege):
                sub.revoked = True
                return b""
            if reopened["reset"]:
                sub.position = reopened["state"]["script"]["version"]
                chunk = reset_message(sub.position).encoded
            pending = [db_event(e) for e in reopened["events"]]
        fresh = [m for m in pending if m.position > sub.position]
        if fresh:
            sub.position = fresh[-1].position
        return chunk + b"".join(m.encoded for m in fresh)

    async def _follow(self, send: Send) -> None:
        sub, keepalive = self.subscriber, self.relay.settings.live_sse_keepalive
        loop = asyncio.get_running_loop()
        while not sub.gone:
            sub.wake.clear()
            if sub.revoked:
                sub.writer = None  # the relay writes no more
                await self._write(send, Message(sub.position, "revoked", "{}").encoded)
                return
            pending = self.relay.events_after(sub)
            if pending != []:
                sub.busy = True
                try:
                    chunk = await self._catch_up(pending)
                finally:
                    sub.busy = False
                if chunk:
                    await self._write(send, chunk)
                continue
            wait = keepalive - (loop.time() - sub.last_sent)
            if wait <= 0 or (self.connection is not None and self.connection.paused):
                await self._write(send, KEEP_ALIVE)  # waits for the client to read (up to the stall timeout)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), timeout=wait)


class LiveResponse(ServerSentEvent):
    """An SSE response (headers, OpenAPI) whose body is a `LiveStream`."""

    def __init__(self, stream: LiveStream) -> None:
        super().__init__(content=())
        self.stream = stream

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        return _LiveASGIResponse(super().to_asgi_response(*args, **kwargs), self.stream)


class _LiveASGIResponse(ASGIResponse):
    def __init__(self, head: ASGIResponse, stream: LiveStream) -> None:
        self.head, self.stream = head, stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Joined before the status goes out, so a follower past its limit gets 429, not a stream.
        try:
            async with self.stream.relay.subscribe(self.stream.subscriber):
                await self.head.start_response(send)
                await self.stream(scope, send, receive)
        except TooManyStreams:
            await refuse(send)
            return
        await self.head.after_response()


def relay_for(state: Any, settings: Settings, database_url: str) -> LiveRelay:
    """The process's relay, kept in the app state (created on first use)."""
    relay = getattr(state, "live_relay", None)
    if relay is None:
        relay = LiveRelay(settings, settings.database_direct_url or database_url)
        state.live_relay = relay
    return relay

"""The per-process relay of the script change feed: one session (LISTEN) per API process, fanning
committed feed events out in memory to every live subscriber of that process.

Feed positions are per script, gapless and in commit order (sql/callmaster/700_live_feed.sql), so the
relay only ever asks "what is after the last position I have" — one query for every script it follows.
While events flow it polls every `live_poll_interval` seconds, so writers need not NOTIFY (a NOTIFY
serialises commits cluster-wide); after `live_linger` quiet seconds it announces that it sleeps
(`callmaster.live_relay_asleep`, which also waits for writers that saw it awake), looks once more, and
waits for a NOTIFY on `callmaster_live`. Every `live_check_interval` seconds it re-checks every
subscriber's access and reports presence (`callmaster.live_heartbeat`), and disconnects the revoked.

Each script keeps its most recent events, encoded once for every subscriber; positions are gapless, so
the events after a subscriber's position are a slice. A subscriber further behind (or that joined
before the relay had caught up) reads what it lacks from the database itself. The session runs on
`database_direct_url` (a transaction-mode pooler cannot hold a LISTEN).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from litestar.response import ServerSentEventMessage
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from api.db import WORKER_ROLE
from api.settings import Settings

log = logging.getLogger(__name__)

EVENTS_AFTER = (
    "SELECT script_id, id, event, element_id, run_id, fields, command, run, created_at"
    " FROM callmaster.live_events_after(%(scripts)s::uuid[], %(after)s::bigint[], %(limit)s)"
)
HEARTBEAT = "SELECT callmaster.live_heartbeat(%(process)s, %(subscribers)s) AS revoked"
ASLEEP = "SELECT callmaster.live_relay_asleep(%(wait)s) AS clear"
AWAKE = "SELECT callmaster.live_relay_awake()"
LISTEN = "LISTEN callmaster_live"
UNLISTEN = "UNLISTEN callmaster_live"
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
    """One live stream: who it is (a Clerk user or a share link) and what it has delivered."""

    script_id: uuid.UUID
    position: int
    sub: str | None = None
    link_id: str | None = None
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    revoked: bool = False


@dataclass
class Feed:
    head: int
    recent: list[Message] = field(default_factory=list)  # consecutive positions, oldest first
    subscribers: set[Subscriber] = field(default_factory=set)


class LiveRelay:
    def __init__(self, settings: Settings, conninfo: str) -> None:
        self.settings = settings
        self.conninfo = conninfo
        self.process_id = uuid.uuid4()
        self.feeds: dict[uuid.UUID, Feed] = {}
        self.task: asyncio.Task[None] | None = None
        self.check_now = asyncio.Event()

    @contextlib.asynccontextmanager
    async def subscribe(self, subscriber: Subscriber) -> AsyncIterator[Subscriber]:
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

    async def _run(self) -> None:
        delay = 0.2
        while self.feeds:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, row_factory=dict_row, application_name="keel-live-relay"
                )
                async with conn:
                    # The relay reads every subscribed script's feed: the worker role's calls, not a request's.
                    await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(WORKER_ROLE)))
                    delay = 0.2
                    await self._serve(conn)
            except psycopg.Error as exc:  # lost session, or a failing call: start over on a new session
                log.warning("live relay: %s; reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _serve(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        last_event = loop.time()
        next_check = 0.0
        next_prune = loop.time()
        awake = True
        while self.feeds:
            if await self._poll(conn):
                last_event = loop.time()
            now = loop.time()
            if now >= next_check or self.check_now.is_set():
                self.check_now.clear()
                await self._heartbeat(conn)
                next_check = now + s.live_check_interval
            if now >= next_prune:
                await conn.execute(PRUNE, {"keep": timedelta(hours=s.live_retention_hours)})
                next_prune = now + PRUNE_EVERY
            if awake and now - last_event < s.live_linger:
                await asyncio.sleep(s.live_poll_interval)
                continue
            if awake:
                # Listen, announce sleep; once the writers that saw us awake have ended, look once more
                # (top of the loop) and only then wait for a NOTIFY. (Awake, the session does not listen:
                # psycopg would keep every notification it reads meanwhile.)
                await conn.execute(LISTEN)
                cur = await conn.execute(ASLEEP, {"wait": timedelta(milliseconds=50)})
                row = await cur.fetchone()
                if row and row["clear"]:
                    awake = False
                else:  # a writer that saw us awake is still open: look again, then retry
                    await asyncio.sleep(s.live_poll_interval)
                continue
            timeout = max(0.01, min(next_check - loop.time(), 1.0))
            notified = False
            async for _ in conn.notifies(timeout=timeout, stop_after=1):
                notified = True
            if notified:
                await conn.execute(AWAKE)
                await conn.execute(UNLISTEN)
                awake = True
                last_event = loop.time()

    async def _poll(self, conn: psycopg.AsyncConnection[dict[str, Any]]) -> bool:
        scripts = list(self.feeds)
        if not scripts:
            return False
        cur = await conn.execute(
            EVENTS_AFTER,
            {"scripts": scripts, "after": [self.feeds[sid].head for sid in scripts], "limit": FETCH_LIMIT},
        )
        rows = await cur.fetchall()
        touched: set[uuid.UUID] = set()
        for row in rows:
            feed = self.feeds.get(row["script_id"])
            if feed is None or row["id"] <= feed.head:
                continue
            feed.recent.append(Message(row["id"], row["event"], event_data(row)))
            feed.head = row["id"]
            if len(feed.recent) >= 2 * RING:
                del feed.recent[:RING]
            touched.add(row["script_id"])
        for sid in touched:
            for subscriber in self.feeds[sid].subscribers:
                subscriber.wake.set()
        return bool(rows)

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


def relay_for(state: Any, settings: Settings, database_url: str) -> LiveRelay:
    """The process's relay, kept in the app state (created on first use)."""
    relay = getattr(state, "live_relay", None)
    if relay is None:
        relay = LiveRelay(settings, settings.database_direct_url or database_url)
        state.live_relay = relay
    return relay

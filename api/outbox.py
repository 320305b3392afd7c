"""The outbox dispatcher: delivers `keel.outbox` events as signed webhooks (Standard Webhooks).

Events are rows written by triggers in the transaction that made the change (sql/clinic/290_outbox_
triggers.sql). A dispatcher:

- claims due events with `keel.claim_outbox` (FOR UPDATE SKIP LOCKED plus a lease), so any number of
  dispatchers in any number of processes deliver each event once; an event whose dispatcher dies is
  due again when its lease ends;
- is woken by `NOTIFY keel_outbox` (the payload is an event id, nothing else) on a dedicated LISTEN
  connection that reconnects with backoff, and polls every `poll_interval` seconds besides;
- once woken, stays awake while events keep coming: it polls every `busy_poll_interval` seconds until
  it has found nothing for `linger` seconds, and meanwhile announces itself (`keel.outbox_awake`) so
  writers skip their NOTIFY — a NOTIFY serialises every notifying commit in the cluster, which under
  load capped bookings (sql/keel/200_outbox.sql explains the protocol);
- POSTs each event to `KEEL_NOTIFY_WEBHOOK_URL` as `{"type", "timestamp", "data"}` with the
  `webhook-id` (the event id, stable across retries), `webhook-timestamp` and `webhook-signature`
  headers, signed with `KEEL_NOTIFY_WEBHOOK_SECRET` (`whsec_…`) by the `standardwebhooks` library;
- on a non-2xx answer or a network error records the error in the row and retries with exponential
  backoff until `max_attempts`, after which the event is marked failed (`failed_at`) and kept;
- with no URL configured, logs each event and marks it delivered;
- prunes delivered events older than the retention period.

Delivery happens outside every request and every transaction, with bounded HTTP timeouts: a slow or
dead receiver delays only its own events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from psycopg import sql
from prometheus_client import Counter
from psycopg_pool import PoolTimeout
from standardwebhooks.webhooks import Webhook

from api.db import PROBE, WORKER, Database
from api.settings import Settings

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "keel_outbox_deliveries",
    "Outbox delivery attempts by outcome: delivered; retry (failed, next attempt scheduled); failed (gave "
    "up after the last attempt); lost (the claim was taken over by another dispatcher, which sends it: "
    "nothing recorded here)",
    ["outcome"],
)

CHANNEL = "keel_outbox"
USER_AGENT = "keel-outbox/0.1"
SECRET_FILE = "notify-webhook-secret"
MIN_PAUSE = 0.05  # seconds: an event due now but locked by a concurrent claim is retried this soon

CLAIM = "SELECT * FROM keel.claim_outbox(%(limit)s, make_interval(secs => %(lease)s), %(worker)s)"
START = "SELECT keel.start_outbox_delivery(%(id)s, %(token)s, make_interval(secs => %(lease)s))"
COMPLETE = "SELECT keel.complete_outbox(%(id)s, %(token)s, %(status)s)"
COMPLETE_UNSENT = "SELECT keel.complete_outbox_unsent(%(ids)s, %(token)s)"
FAIL = (
    "SELECT outcome, next_attempt_at"
    " FROM keel.fail_outbox(%(id)s, %(token)s, %(error)s, %(status)s, %(max_attempts)s,"
    " make_interval(secs => %(base)s), make_interval(secs => %(max)s))"
)
NEXT_DUE = "SELECT keel.outbox_next_due()"
AWAKE = "SELECT keel.outbox_awake()"
ASLEEP = "SELECT keel.outbox_asleep(make_interval(secs => %(linger)s))"
PRUNE = "SELECT keel.prune_outbox(make_interval(secs => %(retention)s), %(limit)s)"
AS_WORKER = "SET ROLE keel_worker"  # the role that may call keel.outbox_awake and the claims


class NotConfigured(Exception):
    """The webhook URL is set but no usable signing secret is."""


def webhook_signer(settings: Settings) -> Webhook | None:
    """The signer for `KEEL_NOTIFY_WEBHOOK_SECRET`; None when no URL is configured.

    In embedded (development) mode a secret is generated once into the data dir when none is set.
    """
    if not settings.notify_webhook_url:
        return None
    secret = settings.notify_webhook_secret
    if not secret and settings.embedded:
        path = settings.data_file(SECRET_FILE)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
            log.warning(
                "generated a webhook signing secret in %s (set KEEL_NOTIFY_WEBHOOK_SECRET to choose one)",
                path,
            )
        secret = path.read_text().strip()
    if not secret:
        raise NotConfigured(
            "KEEL_NOTIFY_WEBHOOK_URL is set but KEEL_NOTIFY_WEBHOOK_SECRET is not: set it to a whsec_<base64> "
            "secret shared with the receiver; events stay queued until then"
        )
    try:
        return Webhook(secret)
    except Exception as exc:  # the library raises plain errors for bad base64 or an empty secret
        raise NotConfigured(
            f"KEEL_NOTIFY_WEBHOOK_SECRET is not a valid whsec_<base64> secret: {exc}"
        ) from exc


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.url = settings.notify_webhook_url
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.wake = asyncio.Event()
        self.listening = asyncio.Event()
        self._last_prune = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set."""
        try:
            signer = webhook_signer(self.settings)
        except NotConfigured as exc:
            log.error("outbox dispatcher idle: %s", exc)
            await stop.wait()
            return
        if self.url is None:
            log.info("KEEL_NOTIFY_WEBHOOK_URL is not set: outbox events are logged and marked delivered")
        limits = httpx.Limits(
            max_connections=self.settings.outbox_concurrency,
            max_keepalive_connections=self.settings.outbox_concurrency,
        )
        timeout = httpx.Timeout(
            self.settings.notify_timeout,
            connect=min(self.settings.notify_connect_timeout, self.settings.notify_timeout),
        )
        listener = asyncio.create_task(self._listen(stop), name=f"outbox-listen-{self.name}")
        failures = 0
        try:
            async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False) as http:
                while not stop.is_set():
                    self.wake.clear()
                    try:
                        if await self.drain(http, signer, stop):
                            await self._stay_awake(http, signer, stop)
                        await self._maybe_prune()
                        # Sleep until woken, the next retry or lease expiry falls due, or the poll.
                        next_due = await self.db.fetch_val(WORKER, NEXT_DUE)
                        failures = 0
                    except (psycopg.OperationalError, PoolTimeout) as exc:
                        failures += 1
                        delay = min(0.5 * 2**failures, 30.0)
                        log.warning(
                            "outbox dispatcher cannot reach the database (%s); retrying in %.1f s", exc, delay
                        )
                        await _wait(stop, delay)
                        continue
                    pause = self.settings.outbox_poll_interval
                    if next_due is not None:
                        pause = min(pause, max(next_due, MIN_PAUSE))
                    await _wait_any(stop, self.wake, pause)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def drain(self, http: httpx.AsyncClient, signer: Webhook | None, stop: asyncio.Event) -> int:
        """Claim and deliver batches until nothing is due; returns how many were handled."""
        handled = 0
        gate = asyncio.Semaphore(self.settings.outbox_concurrency)
        while not stop.is_set():
            events = await self.db.fetch(
                WORKER,
                CLAIM,
                {
                    "limit": self.settings.outbox_batch_size,
                    "lease": self.settings.outbox_lease_seconds,
                    "worker": self.name,
                },
            )
            if not events:
                break
            if self.url is None or signer is None:
                await self.log_unsent(events)
            else:

                async def guarded(event: dict[str, Any]) -> None:
                    async with gate:
                        await self.deliver(http, signer, event)

                await asyncio.gather(*(guarded(event) for event in events))
            handled += len(events)
            if len(events) < self.settings.outbox_batch_size:
                break
        return handled

    async def _stay_awake(self, http: httpx.AsyncClient, signer: Webhook | None, stop: asyncio.Event) -> None:
        """Poll every `busy_poll_interval` until `linger` seconds pass without an event.

        Meanwhile the announcement (one dispatcher holds it; others just poll) spares writers their
        NOTIFY. Withdrawing it waits for the writers that saw it, then drains once more, so none of
        their events waits for the next regular poll.
        """
        async with await psycopg.AsyncConnection.connect(
            self.db.direct_conninfo, autocommit=True, application_name="keel-outbox-awake"
        ) as session:
            await session.execute(AS_WORKER)
            row = await (await session.execute(AWAKE)).fetchone()
            announced = bool(row and row[0])
            quiet_since = time.monotonic()
            while not stop.is_set() and time.monotonic() - quiet_since < self.settings.outbox_linger:
                await _wait(stop, self.settings.outbox_busy_poll_interval)
                if await self.drain(http, signer, stop):
                    quiet_since = time.monotonic()
                await self._maybe_prune()
            if announced:
                await session.execute(ASLEEP, {"linger": self.settings.outbox_linger})
        await self.drain(http, signer, stop)

    async def log_unsent(self, events: list[dict[str, Any]]) -> None:
        """No receiver configured: log each event, then mark the whole batch delivered in one call."""
        for event in events:
            event_id = str(event["id"])
            # Ids only: payloads carry no personal data (sql/clinic/290_outbox_triggers.sql), and a log
            # line is no place to find out if one ever does.
            ids = {name: value for name, value in event["payload"].items() if name.endswith("_id")}
            log.info(
                "outbox event %s %s (not sent: no KEEL_NOTIFY_WEBHOOK_URL)",
                event["topic"],
                event_id,
                extra={"event_id": event_id, "topic": event["topic"], "ids": ids},
            )
        await self.db.fetch_val(
            WORKER,
            COMPLETE_UNSENT,
            {"ids": [event["id"] for event in events], "token": events[0]["claim_token"]},
        )

    async def deliver(self, http: httpx.AsyncClient, signer: Webhook, event: dict[str, Any]) -> None:
        """Send one claimed event, unless its claim was lost meanwhile.

        The batch's lease started at the claim, and this event may have waited behind slower deliveries
        for longer than that: its lease is renewed now, for this delivery only, and only while the claim
        token is still the event's (otherwise another dispatcher has re-claimed it and sends it)."""
        event_id = str(event["id"])
        token = event["claim_token"]
        if not await self.db.fetch_val(
            WORKER, START, {"id": event["id"], "token": token, "lease": self.settings.outbox_lease_seconds}
        ):
            log.info(
                "outbox event %s %s was re-claimed by another dispatcher; not sent", event["topic"], event_id
            )
            DELIVERIES.labels("lost").inc()
            return
        body = json.dumps(
            {"type": event["topic"], "timestamp": event["created_at"].isoformat(), "data": event["payload"]},
            separators=(",", ":"),
            default=str,
        )
        now = datetime.now(tz=UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(event_id, now, body),
        }
        status: int | None = None
        error: str | None = None
        started = time.monotonic()
        try:
            response = await http.post(self.url, content=body.encode(), headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:500]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        elapsed_ms = (time.monotonic() - started) * 1000
        if error is None:
            completed = {"id": event["id"], "token": token, "status": status}
            if await self.db.fetch_val(WORKER, COMPLETE, completed):
                DELIVERIES.labels("delivered").inc()
                log.debug("delivered %s %s in %.0f ms", event["topic"], event_id, elapsed_ms)
            else:
                DELIVERIES.labels("lost").inc()
                log.warning(
                    "outbox event %s %s was received in %.0f ms, but its claim had been taken over "
                    "meanwhile: the other dispatcher sends it again (receivers deduplicate on webhook-id)",
                    event["topic"],
                    event_id,
                    elapsed_ms,
                )
            return
        failed = await self.db.fetch_one(
            WORKER,
            FAIL,
            {
                "id": event["id"],
                "token": token,
                "error": f"attempt {event['attempts']}: {error}",
                "status": status,
                "max_attempts": self.settings.outbox_max_attempts,
                "base": self.settings.outbox_backoff_base,
                "max": self.settings.outbox_backoff_max,
            },
        )
        outcome = failed["outcome"]
        DELIVERIES.labels(outcome).inc()
        if outcome == "failed":
            log.error(
                "outbox event %s %s failed for good after %s attempts: %s",
                event["topic"],
                event_id,
                event["attempts"],
                error,
            )
        elif outcome == "retry":
            log.warning(
                "outbox event %s %s attempt %s failed (%s); next at %s",
                event["topic"],
                event_id,
                event["attempts"],
                error,
                failed["next_attempt_at"].isoformat(),
            )
        else:
            log.warning(
                "outbox event %s %s attempt %s failed (%s), but its claim had been taken over meanwhile: "
                "nothing recorded, the other dispatcher delivers it",
                event["topic"],
                event_id,
                event["attempts"],
                error,
            )

    async def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune < self.settings.outbox_prune_interval:
            return
        self._last_prune = time.monotonic()
        limit = 10000
        while True:
            deleted = await self.db.fetch_val(
                WORKER, PRUNE, {"retention": self.settings.outbox_retention_hours * 3600, "limit": limit}
            )
            if deleted:
                log.info("pruned %s delivered outbox events", deleted)
            if not deleted or deleted < limit:
                return

    async def _listen(self, stop: asyncio.Event) -> None:
        """Keep a LISTEN connection open; every notification (or reconnection) wakes the loop."""
        delay = 0.5
        conninfo = self.db.direct_conninfo
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True, application_name="keel-outbox-listener"
                )
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    self.listening.set()
                    self.wake.set()  # anything committed while we were not listening
                    delay = 0.5
                    while not stop.is_set():
                        async for _notify in conn.notifies(timeout=self.settings.outbox_listen_keepalive):
                            self.wake.set()
                        await conn.execute(PROBE)  # silence: prove the connection is alive
            except psycopg.Error as exc:
                log.warning("outbox LISTEN connection lost (%s); reconnecting in %.1f s", exc, delay)
            finally:
                self.listening.clear()
            self.wake.set()  # poll once while reconnecting
            await _wait(stop, delay)
            delay = min(delay * 2, 30.0)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, seconds: float) -> None:
    """Return when `stop` or `wake` is set, or after `seconds`."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run(
    settings: Settings,
    db: Database,
    stop: asyncio.Event,
    *,
    name: str | None = None,
) -> None:
    """Worker entry point (`api.outbox:run` in api/workers.py)."""
    await Dispatcher(settings, db, name=name).run(stop)

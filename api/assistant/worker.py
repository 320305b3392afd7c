"""The assistant worker: claims queued replies, streams them from the LLM into the database.

The message row is the job (DESIGN §7). The worker

- wakes on `LISTEN assistant_jobs` (a dedicated connection, re-opened when lost) and polls every
  `assistant_poll_interval` seconds besides, so a lost notification only delays a reply;
- claims with `assistant.claim_replies` (`FOR UPDATE SKIP LOCKED`, a lease of `assistant_lease_seconds`)
  as many replies as it has free slots (`assistant_concurrency` in flight at once);
- streams each reply through `openai.AsyncOpenAI` (`max_retries=0`: retries are ours), appending the text
  to the row every `FLUSH_INTERVAL` seconds — which renews the lease and NOTIFYs SSE readers — and renews
  the lease on a heartbeat while the model is silent (slow first token, tool calls);
- lets the model call read-only tools (`api.assistant.tools`) under the asking staff member's claims;
- stores the final reply with `assistant.complete_reply`, guarded by the attempt number: a worker that lost
  its lease writes nothing, so the reply is stored once however many workers raced;
- on a transient error (timeout, 408/409/429/5xx, connection refused or dropped, stream cut short or
  garbled) queues the reply again with exponential backoff, clearing its partial text; on a permanent one
  (400, 401, 403, 404, 422 …) marks it failed at once; `attempts` counts every claim;
- on shutdown hands its in-flight replies back to the queue for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import openai
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout

from api.assistant.tools import call_tool, tool_specs
from api.auth import Principal
from api.db import PROBE, WORKER, Database
from api.errors import redacted
from api.settings import Settings

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
MAX_TOOL_ROUNDS = 4
MAX_BACKOFF = 60.0
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})

SYSTEM_PROMPT = """\
You are the internal assistant of a clinic, used by its staff: front-desk staff, client relationship \
officers (CROs), doctors and administrators. You help with their daily work: leads and their follow-up, \
patients, doctors, appointments and the clinic's figures.

- Answer briefly and concretely, in the language of the question.
- When a question needs the clinic's records or figures, call the tools. They return only this clinic's \
data, as the person asking is allowed to see it. Never invent names, UHIDs or numbers; if the tools do not \
give what is needed, say so and suggest where in the application to look.
- You do not diagnose or give medical advice; refer clinical questions to the treating doctor.

Today is {today}. The person asking has the role: {role}."""

TODAY_SQL = "SELECT assistant.tool_today()"
CLAIM_SQL = "SELECT * FROM assistant.claim_replies(%(worker)s, %(limit)s, %(lease)s, %(max_attempts)s)"
APPEND_SQL = "SELECT assistant.append_reply(%(id)s, %(attempt)s, %(offset)s, %(text)s, %(lease)s)"
COMPLETE_SQL = "SELECT assistant.complete_reply(%(id)s, %(attempt)s, %(text)s, %(tool_log)s)"
FAIL_SQL = "SELECT assistant.fail_reply(%(id)s, %(attempt)s, %(error)s, %(retry_after)s, %(max_attempts)s)"
RELEASE_SQL = "SELECT assistant.release_reply(%(id)s, %(attempt)s)"
LISTEN_JOBS = "LISTEN assistant_jobs"


def make_client(settings: Settings) -> openai.AsyncOpenAI:
    timeout = settings.assistant_timeout
    return openai.AsyncOpenAI(
        base_url=settings.openai_base_url,
        # A local OpenAI-compatible server may need no key; the SDK insists on one.
        api_key=settings.openai_api_key or "unused",
        timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)),
        max_retries=0,
    )


@dataclass(frozen=True)
class Job:
    id: uuid.UUID
    attempt: int
    clinic_id: uuid.UUID
    staff_id: uuid.UUID
    caller_role: str | None
    model: str | None
    history: list[dict[str, Any]]

    @property
    def caller(self) -> Principal:
        """The claims the reply's tools run under: those of the staff member who asked."""
        claims: dict[str, Any] = {"sub": str(self.staff_id), "clinic_id": str(self.clinic_id)}
        if self.caller_role:
            claims["role"] = self.caller_role
        return Principal(claims)


class TransientError(Exception):
    """A failure worth retrying that the SDK does not raise itself (e.g. a stream cut short)."""


class PermanentError(Exception):
    """A failure retrying will not fix (e.g. a model that never stops calling tools)."""


class LeaseLost(Exception):
    """This attempt is no longer the reply's current one: another worker took it over."""


@dataclass(frozen=True)
class Failure:
    message: str
    transient: bool
    retry_after: float | None = None


def classify(exc: BaseException, settings: Settings) -> Failure:
    """What an exception means for the reply: a readable message, and whether to retry."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _provider_message(exc)
        transient = status in TRANSIENT_STATUSES or status >= 500
        hint = _retry_after_header(exc.response.headers.get("retry-after")) if transient else None
        return Failure(f"the LLM answered HTTP {status}: {detail}", transient, hint)
    if isinstance(exc, openai.APITimeoutError):
        return Failure(f"the LLM did not answer within {settings.assistant_timeout:g} s", True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return Failure(f"could not reach the LLM: {cause.__class__.__name__}: {cause}".rstrip(": "), True)
    if isinstance(exc, openai.APIError):
        return Failure(f"the LLM reported an error: {exc.message}", True)
    if isinstance(exc, TransientError):
        return Failure(str(exc), True)
    if isinstance(exc, PermanentError):
        return Failure(str(exc), False)
    if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
        return Failure(f"the database was unavailable: {exc}", True)
    if isinstance(exc, json.JSONDecodeError):  # the SDK could not parse a `data:` line of the stream
        return Failure(f"the LLM sent a malformed stream: {exc}", True)
    return Failure(f"internal error while generating the reply: {exc.__class__.__name__}: {exc}", False)


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if body.get("message"):
            return str(body["message"])
    return exc.message


def _retry_after_header(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def backoff(attempt: int, settings: Settings, hint: float | None = None) -> float:
    """Delay before the next attempt: doubling from assistant_retry_base, jittered; Retry-After wins."""
    if hint is not None:
        return min(hint, MAX_BACKOFF)
    base = settings.assistant_retry_base * 2 ** max(attempt - 1, 0)
    return min(base * random.uniform(0.5, 1.0), MAX_BACKOFF)


@dataclass
class ReplyWriter:
    """Collects a reply's text; its `pump` writes it to the row in batches, each renewing the lease.

    Reading the LLM's stream never waits for the database: `add` only buffers. The pump writes what is
    pending at most every FLUSH_INTERVAL (more coalesces when the database is slower), and with nothing
    pending still renews the lease every third of it (slow first token, tool calls).
    """

    db: Database
    job: Job
    lease_seconds: float
    parts: list[str] = field(default_factory=list)
    written: int = 0  # characters the row is known to hold
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, delta: str) -> None:
        self.parts.append(delta)
        self.changed.set()

    async def flush(self) -> None:
        """Write the text not yet written (possibly none: a lease renewal); LeaseLost when taken over.

        Written at the known offset, so a write whose outcome was lost can simply be repeated.
        """
        text = self.text
        ok = await self.db.fetch_val(
            WORKER,
            APPEND_SQL,
            {
                "id": self.job.id,
                "attempt": self.job.attempt,
                "offset": self.written,
                "text": text[self.written :],
                "lease": self.lease_seconds,
            },
        )
        if not ok:
            raise LeaseLost
        self.written = len(text)

    async def pump(self) -> bool:
        """Write and renew until `close()`; returns True then, False as soon as the lease is lost."""
        loop = asyncio.get_running_loop()
        renew_every = max(self.lease_seconds / 3, 0.05)
        last_write = loop.time()
        while True:
            if not self.closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.changed.wait(), timeout=max(renew_every - (loop.time() - last_write), 0)
                    )
            self.changed.clear()
            closing = self.closing
            try:
                await self.flush()
                last_write = loop.time()
            except LeaseLost:
                return False
            except (psycopg.OperationalError, PoolTimeout) as exc:
                log.warning("assistant reply %s: writing progress failed (%s); retrying", self.job.id, exc)
            if closing:
                return True
            if not self.closing:
                await asyncio.sleep(FLUSH_INTERVAL)  # let the next pieces gather into one write

    def close(self) -> None:
        self.closing = True
        self.changed.set()


class ReplyWorker:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.client = make_client(settings)
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self.listen(stop), name="assistant-listen")
        relay = asyncio.create_task(self._relay(stop), name="assistant-stop")
        log.info(
            "assistant worker %s started (concurrency %s)", self.name, self.settings.assistant_concurrency
        )
        try:
            while not stop.is_set():
                self.wake.clear()
                free = self.settings.assistant_concurrency - len(self.tasks)
                if free > 0 and await self.claim(free) == free:
                    continue  # there may be more waiting: claim again once a slot is free
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.settings.assistant_poll_interval)
        finally:
            for task in (listener, relay, *self.tasks):
                task.cancel()
            await asyncio.gather(listener, relay, *self.tasks, return_exceptions=True)
            await self.client.close()
            log.info("assistant worker %s stopped", self.name)

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.wake.set()

    async def claim(self, free: int) -> int:
        try:
            rows = await self.db.fetch(
                WORKER,
                CLAIM_SQL,
                {
                    "worker": self.name,
                    "limit": free,
                    "lease": self.settings.assistant_lease_seconds,
                    "max_attempts": self.settings.assistant_max_attempts,
                },
            )
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("assistant worker: cannot claim replies (%s)", exc)
            return 0
        for row in rows:
            job = Job(
                id=row["id"],
                attempt=row["attempt"],
                clinic_id=row["clinic_id"],
                staff_id=row["staff_id"],
                caller_role=row["caller_role"],
                model=row["model"],
                history=list(row["history"] or []),
            )
            task = asyncio.create_task(self.process(job), name=f"assistant-reply-{job.id}")
            self.tasks.add(task)
            task.add_done_callback(self._done)
        return len(rows)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.wake.set()

    async def listen(self, stop: asyncio.Event) -> None:
        """LISTEN for new jobs on a dedicated connection; reconnect with backoff when it is lost."""
        delay = 0.2
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.db.direct_conninfo, autocommit=True, application_name="keel-assistant-listen"
                )
                async with conn:
                    await conn.execute(LISTEN_JOBS)
                    self.wake.set()  # catch up with whatever was queued while we were not listening
                    delay = 0.2
                    while not stop.is_set():
                        async for _ in conn.notifies(
                            timeout=max(self.settings.assistant_poll_interval * 5, 5.0)
                        ):
                            self.wake.set()
                        await conn.execute(PROBE)  # quiet for a while: is the connection still alive?
            except psycopg.OperationalError as exc:
                log.warning(
                    "assistant worker: LISTEN connection lost (%s); reconnecting in %.1f s", exc, delay
                )
                self.wake.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, 10.0)

    async def process(self, job: Job) -> None:
        writer = ReplyWriter(self.db, job, self.settings.assistant_lease_seconds)
        generate = asyncio.create_task(self.generate(job, writer))
        pump = asyncio.create_task(writer.pump())
        try:
            done, _ = await asyncio.wait({generate, pump}, return_when=asyncio.FIRST_COMPLETED)
            if generate not in done:
                raise LeaseLost  # the pump stops only when the lease is lost
            tool_log = generate.result()  # raises what the generation raised
            writer.close()
            if not await pump:
                raise LeaseLost
            stored = await self.db.fetch_val(
                WORKER,
                COMPLETE_SQL,
                {
                    "id": job.id,
                    "attempt": job.attempt,
                    "text": writer.text,
                    "tool_log": Jsonb(tool_log) if tool_log else None,
                },
            )
            if not stored:
                raise LeaseLost
            log.info("assistant reply %s done (attempt %s, %s chars)", job.id, job.attempt, len(writer.text))
        except LeaseLost:
            log.warning(
                "assistant reply %s: attempt %s lost its lease; another worker has it", job.id, job.attempt
            )
        except asyncio.CancelledError:
            await asyncio.shield(self._release(job))
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the reply
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(pump), timeout=5)
            await self._fail(job, exc)
        finally:
            for task in (generate, pump):
                task.cancel()
            await asyncio.gather(generate, pump, return_exceptions=True)

    async def _fail(self, job: Job, exc: Exception) -> None:
        failure = classify(exc, self.settings)
        if failure.transient:
            log.warning("assistant reply %s attempt %s failed: %s", job.id, job.attempt, failure.message)
        else:
            log.error(
                "assistant reply %s failed permanently: %s",
                job.id,
                failure.message,
                exc_info=None if isinstance(exc, (openai.APIError, PermanentError)) else exc,
            )
        retry_after = backoff(job.attempt, self.settings, failure.retry_after) if failure.transient else None
        try:
            status = await self.db.fetch_val(
                WORKER,
                FAIL_SQL,
                {
                    "id": job.id,
                    "attempt": job.attempt,
                    "error": failure.message,
                    "retry_after": retry_after,
                    "max_attempts": self.settings.assistant_max_attempts,
                },
            )
        except (psycopg.Error, PoolTimeout) as db_exc:
            log.warning(
                "assistant reply %s: could not record the failure (%s); its lease will expire", job.id, db_exc
            )
            return
        if status == "queued" and retry_after is not None:
            asyncio.get_running_loop().call_later(retry_after, self.wake.set)

    async def _release(self, job: Job) -> None:
        try:
            await self.db.fetch_val(WORKER, RELEASE_SQL, {"id": job.id, "attempt": job.attempt})
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning(
                "assistant reply %s: could not hand it back (%s); its lease will expire", job.id, redacted(exc)
            )

    async def generate(self, job: Job, writer: ReplyWriter) -> list[dict[str, Any]]:
        """Stream the reply into `writer`, running tool calls between rounds; returns the tools used."""
        # The clinic's today (its timezone), not the server's: "today's appointments" means the clinic's.
        today = await self.db.fetch_val(job.caller, TODAY_SQL)
        system = SYSTEM_PROMPT.format(today=today.isoformat(), role=job.caller_role or "staff")
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}, *job.history]
        tool_log: list[dict[str, Any]] = []
        for round_number in range(MAX_TOOL_ROUNDS + 1):
            offer_tools = round_number < MAX_TOOL_ROUNDS
            text, calls = await self._stream_round(job, messages, writer, offer_tools)
            if not calls:
                return tool_log
            if not offer_tools:
                raise PermanentError(
                    f"the model kept calling tools after {MAX_TOOL_ROUNDS} rounds without answering"
                )
            messages.append(
                {
                    "role": "assistant",
                    "content": text or None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ],
                }
            )
            for call in calls:
                result, ok = await call_tool(self.db, job.caller, call["name"], call["arguments"])
                tool_log.append({"name": call["name"], "arguments": call["arguments"], "ok": ok})
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        return tool_log

    async def _stream_round(
        self, job: Job, messages: list[dict[str, Any]], writer: ReplyWriter, offer_tools: bool
    ) -> tuple[str, list[dict[str, str]]]:
        extra: dict[str, Any] = {"tools": tool_specs()} if offer_tools else {}
        stream = await self.client.chat.completions.create(
            model=job.model or self.settings.assistant_model,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            **extra,
        )
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish: str | None = None
        async with stream:
            async for chunk in stream:
                for choice in chunk.choices[:1]:
                    delta = choice.delta
                    if delta is not None and delta.content:
                        text.append(delta.content)
                        writer.add(delta.content)
                    for tc in (delta.tool_calls if delta is not None else None) or []:
                        acc = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        if tc.id:
                            acc["id"] = tc.id
                        if tc.function is not None:
                            acc["name"] += tc.function.name or ""
                            acc["arguments"] += tc.function.arguments or ""
                    if choice.finish_reason:
                        finish = choice.finish_reason
        if finish is None:
            raise TransientError("the LLM stream ended before the reply was complete")
        ordered = [calls[i] for i in sorted(calls)]
        for i, call in enumerate(ordered):
            call["id"] = call["id"] or f"call_{i}"
        return "".join(text), ordered


async def run(settings: Settings, db: Database, stop: asyncio.Event) -> None:
    """Worker entry point (api.workers.WORKERS): answer queued assistant replies until `stop` is set."""
    if not settings.llm_configured:
        log.warning(
            "assistant worker idle: no LLM configured (set OPENAI_API_KEY and/or OPENAI_BASE_URL, "
            "and KEEL_ASSISTANT_MODEL); chat requests answer 503 until then"
        )
        await stop.wait()
        return
    await ReplyWorker(settings, db).run(stop)


__all__: list[str] = ["SYSTEM_PROMPT", "ReplyWorker", "run"]

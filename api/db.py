"""The connection pool and the per-request transaction.

Every call runs in its own transaction that first sets the request's claims, switches to the
`keel_api` role (subject to row-level security) and bounds the statement time, in one statement.
That context statement and the call are pipelined and closed by one Sync, which PostgreSQL runs as
one implicit transaction: a request costs one round trip, not four (BEGIN, context, call, COMMIT).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

import msgspec
import psycopg
from psycopg import AsyncConnection, OperationalError
from psycopg.abc import Query
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool
from psycopg_pool.base import AttemptWithBackoff

from api.errors import is_retried
from api.settings import Settings

Params = Sequence[Any] | Mapping[str, Any] | None
Statement = tuple[Query, Params]
T = TypeVar("T")

# clinic.request_claims checks a clinic token against the staff member's current standing (deactivated:
# 28000, answered 401; the role is the current one), in this statement: no extra round trip.
CONTEXT_SQL = (
    "SELECT set_config('request.jwt.claims', clinic.request_claims(%(claims)s), true),"
    " set_config('role', %(role)s, true),"
    " set_config('statement_timeout', %(timeout)s, true)"
)
API_ROLE = "keel_api"
WORKER_ROLE = "keel_worker"
MAX_ATTEMPTS = 4
PROBE = "SELECT 1"  # does the connection still answer?
ANSWER_GRACE = 2.0  # seconds past the statement timeout after which a silent server counts as gone
RECONNECT_MAX_DELAY = 1.0  # seconds between the pool's attempts to reconnect to a server that went away


notices = logging.getLogger("keel.db.notices")


def _log_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
    """A server notice (`RAISE NOTICE`, or a plan from auto_explain with `auto_explain.log_level =
    notice`) in the log, with the request id of the request whose statement raised it and, in
    `context`, the function (and line) that ran the statement."""
    notices.info(
        "%s: %s", diagnostic.severity, diagnostic.message_primary, extra={"context": diagnostic.context}
    )


def _load_json(data: bytes) -> Any:
    """json/jsonb columns as Python values: msgspec's decoder, ~3× faster than `json.loads` (most
    answers are one jsonb value the API re-encodes), which stays the fallback for what msgspec refuses
    and `json.loads` reads (a number beyond a float's range, as PostgreSQL's numeric allows: inf)."""
    try:
        return msgspec.json.decode(data)
    except msgspec.MsgspecError:
        return json.loads(data)


async def _configure(conn: AsyncConnection[Any]) -> None:
    conn.add_notice_handler(_log_notice)
    set_json_loads(_load_json, conn)


class HasClaims(Protocol):
    """Who a transaction runs for: the claims, and the same claims as the JSON CONTEXT_SQL sets (encoded
    once per caller, not per transaction)."""

    @property
    def claims(self) -> Mapping[str, Any]: ...

    @property
    def claims_json(self) -> str: ...


class Worker:
    """The caller of background work (outbox dispatcher, assistant replies, maintenance): no request
    claims, and the role keel_worker, the only one granted the SECURITY DEFINER functions that act for
    every tenant. Request handlers pass their Principal (role keel_api) or None (keel_api, no claims)."""

    claims: Mapping[str, Any] = MappingProxyType({})
    claims_json = ""


WORKER = Worker()


def context_params(principal: HasClaims | None, timeout_ms: int) -> dict[str, str]:
    """The parameters of CONTEXT_SQL: the claims as JSON ("" for none), the role and the statement
    timeout."""
    return {
        "claims": "" if principal is None else principal.claims_json,
        "role": WORKER_ROLE if principal is WORKER else API_ROLE,
        "timeout": str(timeout_ms),
    }


async def call(
    conn: AsyncConnection[Any],
    context: Mapping[str, Any],
    query: Query,
    params: Params,
    mode: str = "one",
    *,
    before: Sequence[Statement] = (),
) -> Any:
    """Run CONTEXT_SQL, the `before` statements and `query` on an autocommit connection as one
    transaction, in one round trip; the result is `query`'s.

    `mode` is "all" (every row), "one" (the first row or None) or "none". Errors (the query's, or the
    Sync's commit) are raised here, after PostgreSQL has rolled the transaction back.
    """
    async with conn.pipeline():  # leaving the block sends the Sync and reads every result
        await conn.execute(CONTEXT_SQL, context)
        for statement, statement_params in before:
            await conn.execute(statement, statement_params)
        cur = await conn.execute(query, params)
    if mode == "all":
        return await cur.fetchall()
    if mode == "none":
        return None
    return await cur.fetchone()


class _CappedBackoff(AttemptWithBackoff):
    """psycopg_pool's reconnection backoff (1 s, doubling), capped at RECONNECT_MAX_DELAY."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_MAX_DELAY)


class Pool(AsyncConnectionPool):
    """The pool, reconnecting at least every RECONNECT_MAX_DELAY while the server is away.

    psycopg_pool doubles the delay between reconnection attempts without bound: after an outage of
    8 s it next tries at 15 s, so a restarted PostgreSQL stayed unused (every request a 503) for
    about as long again as it was down (tests/test_reliability_restart.py measured it).
    """

    async def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        await super()._add_connection(attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing)


class Database:
    """Pool plus the transaction discipline every API call uses."""

    def __init__(self, settings: Settings, conninfo: str, *, name: str = "keel") -> None:
        self.settings = settings
        # Where this database's components open a session of their own (LISTEN, session advisory
        # locks): never through a transaction pooler, which hands each transaction another backend.
        self.direct_conninfo = settings.database_direct_url or conninfo
        self.pool = Pool(
            conninfo,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            timeout=settings.pool_timeout,
            # Autocommit: `call` needs no BEGIN/COMMIT (its pipeline's Sync commits), and
            # `transaction` sends its own.
            # prepare_threshold None behind a transaction pooler (PgBouncer 1.18): a statement prepared
            # on one backend is unknown to the next one the pooler lends.
            kwargs={
                "row_factory": dict_row,
                "application_name": name,
                "autocommit": True,
                "prepare_threshold": settings.prepare_threshold,
            },
            configure=_configure,
            open=False,
            name=name,
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(
        self, principal: HasClaims | None, *, timeout_ms: int | None = None
    ) -> AsyncIterator[AsyncConnection[dict[str, Any]]]:
        """A connection inside a transaction running as keel_api with the principal's claims."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(CONTEXT_SQL, context_params(principal, self._timeout(timeout_ms)))
            yield conn

    def _timeout(self, timeout_ms: int | None = None) -> int:
        return timeout_ms if timeout_ms is not None else self.settings.statement_timeout_ms

    async def _run(
        self,
        principal: HasClaims | None,
        query: Query,
        params: Params,
        mode: str,
        before: Sequence[Statement] = (),
    ) -> Any:
        context = context_params(principal, self._timeout())
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                async with self.pool.connection() as conn:
                    return await self._answered(conn, call(conn, context, query, params, mode, before=before))
            except psycopg.Error as exc:
                if not is_retried(exc) or attempt == MAX_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.02 * 2**attempt))
        raise AssertionError("unreachable")

    async def _answered(
        self, conn: AsyncConnection[Any], work: Coroutine[Any, Any, T], seconds: float | None = None
    ) -> T:
        """Await `work` on `conn`, but no longer than `seconds` (default: the statement timeout plus
        ANSWER_GRACE).

        The server ends a slow statement itself (57014 → 504); this bounds what it cannot: a network
        partition, where the connection stays open and nothing comes back (TCP would wait many
        minutes). The connection is then closed, not cancelled — psycopg's cancel would open another
        connection across the same dead network and wait 10 s more — and the pool discards it.

        `work` runs in the caller's task under a timer, not in a task of its own: a task and an
        `asyncio.wait` per call were ~3 % of the API's CPU samples for `GET /api/appointments/{id}`
        (bench/README.md). When the timer fires it closes the connection first (so psycopg, seeing
        no live transaction, does not try to cancel it), then cancels the caller's task.
        """
        limit = self._timeout() / 1000 + ANSWER_GRACE if seconds is None else seconds
        task = asyncio.current_task()
        assert task is not None
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            conn.pgconn.finish()  # the transaction's state is unknown: close, so the call cannot linger
            task.cancel()

        timer = asyncio.get_running_loop().call_later(limit, expire)
        try:
            return await work
        except (asyncio.CancelledError, psycopg.Error):
            # Cancelled by the timer alone (not also by the request's own cancellation): the timeout.
            if expired and task.uncancel() == 0:
                raise OperationalError(f"the database did not answer within {limit:g} s") from None
            raise
        finally:
            timer.cancel()

    async def fetch(
        self, principal: HasClaims | None, query: Query, params: Params = None
    ) -> list[dict[str, Any]]:
        return await self._run(principal, query, params, "all")

    async def fetch_one(
        self,
        principal: HasClaims | None,
        query: Query,
        params: Params = None,
        *,
        before: Sequence[Statement] = (),
    ) -> dict[str, Any] | None:
        """The first row (None when there is none); `before`: statements run first, in the same
        transaction and round trip (e.g. a lock)."""
        return await self._run(principal, query, params, "one", before)

    async def fetch_val(self, principal: HasClaims | None, query: Query, params: Params = None) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = await self._run(principal, query, params, "one")
        return None if row is None else next(iter(row.values()))

    async def execute(self, principal: HasClaims | None, query: Query, params: Params = None) -> None:
        await self._run(principal, query, params, "none")

    async def check(
        self, work: Callable[[AsyncConnection[Any]], Coroutine[Any, Any, T]], seconds: float
    ) -> T:
        """`work(conn)` on a pool connection, outside any request context (readiness, replica lag),
        bounded: `seconds` to get the connection and as many for the answer. A stalled pool or server
        raises (PoolTimeout, OperationalError) instead of hanging the caller."""
        async with self.pool.connection(timeout=seconds) as conn:
            return await self._answered(conn, work(conn), seconds)

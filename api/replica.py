"""Dashboard reads on a streaming replica (`DATABASE_READ_URL`), while it keeps up.

A task per process measures the replica's replay lag every `LAG_POLL_SECONDS` (one cheap query on the
replica's own pool). Reads go to the replica while that lag is known and at most
`KEEL_READ_MAX_LAG_SECONDS`; when it is larger, or the replica does not answer, they go to the primary,
so a dashboard is never staler than the knob says and a replica outage is not an API outage. The
request itself stays one round trip: the choice is made from the last measurement, not per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from api.db import Database, HasClaims, Params, Statement
from api.settings import Settings

log = logging.getLogger(__name__)

LAG_POLL_SECONDS = 1.0
# Replay lag in seconds: 0 when everything received is replayed (an idle primary is not "lag"), else
# the age of the last replayed transaction. NULL when this server is not a standby.
LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0.0
    ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, 0.0)
END AS lag_seconds, pg_is_in_recovery() AS in_recovery
"""


async def _lag_row(conn: AsyncConnection[Any]) -> dict[str, Any] | None:
    row: dict[str, Any] | None = await (await conn.execute(LAG_SQL)).fetchone()
    return row


class ReplicaDatabase(Database):
    """A `Database` on the replica that hands its calls to `primary` while the replica lags."""

    def __init__(self, settings: Settings, conninfo: str, primary: Database) -> None:
        super().__init__(settings, conninfo, name="keel-read")
        self.primary = primary
        self.lag_seconds: float | None = None
        """The last measured replay lag; None until measured, or when the replica does not answer."""
        self.reachable = False
        """Whether the replica answered the last measurement."""
        self.in_recovery: bool | None = None
        """Whether it is a standby (`pg_is_in_recovery()`); None when it did not answer."""
        self.measured_at: float | None = None
        self._monitor: asyncio.Task[None] | None = None

    async def open(self) -> None:
        # Not waiting for the replica: the API starts (reading from the primary) while it is down.
        await self.pool.open(wait=False)
        await self.measure()
        self._monitor = asyncio.create_task(self._watch(), name="keel-replica-lag")

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await super().close()

    @property
    def in_use(self) -> bool:
        """Whether reads go to the replica now."""
        return self.lag_seconds is not None and self.lag_seconds <= self.settings.read_max_lag_seconds

    async def measure(self, seconds: float = LAG_POLL_SECONDS * 2) -> float | None:
        """Measure the lag now (also what `/api/ready` reports), waiting at most `seconds` for a
        connection and as long for the answer; None when the replica does not answer or is not a
        standby at all."""
        try:
            row = await self.check(_lag_row, seconds)
        except Exception as exc:  # noqa: BLE001 - any failure means "do not read there"
            if self.reachable:
                log.warning("read replica unavailable (%s); dashboard reads go to the primary", exc)
            self.reachable, self.in_recovery, self.lag_seconds = False, None, None
            return None
        self.reachable, self.in_recovery = True, bool(row and row["in_recovery"])
        if not self.in_recovery:
            log.warning(
                "DATABASE_READ_URL is not a standby (pg_is_in_recovery() is false); using the primary"
            )
        self.lag_seconds = None if row is None or row["lag_seconds"] is None else float(row["lag_seconds"])
        self.measured_at = time.monotonic()
        return self.lag_seconds

    def status(self) -> dict[str, Any]:
        """The replica as `/api/ready` shows it, each fact on its own: whether it answered, whether it
        is a standby, its lag (None when unknown), and whether reads fall back to the primary and why."""
        reason = None
        if not self.reachable:
            reason = "unreachable"
        elif not self.in_recovery:
            reason = "not_a_standby"
        elif not self.in_use:
            reason = "lagging"
        return {
            "reachable": self.reachable,
            "in_recovery": self.in_recovery,
            "lag_seconds": self.lag_seconds,
            "max_lag_seconds": self.settings.read_max_lag_seconds,
            "serving_reads": self.in_use,
            "fallback_to_primary": reason is not None,
            "fallback_reason": reason,
        }

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(LAG_POLL_SECONDS)
            await self.measure()

    async def _run(
        self,
        principal: HasClaims | None,
        query: Any,
        params: Params,
        mode: str,
        before: Sequence[Statement] = (),
    ) -> Any:
        if not self.in_use:
            return await self.primary._run(principal, query, params, mode, before)
        return await super()._run(principal, query, params, mode, before)

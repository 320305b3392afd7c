"""Issue 13, finding 7: outbox double delivery.

A dispatcher used to lease a whole batch when it claimed it; a batch queued behind a few slow delivery
slots outlived its lease, another dispatcher re-claimed events still waiting (or in flight) and both
delivered them; `fail_outbox`/`complete_outbox` did not check who held the claim. Now each event's lease
starts when its delivery starts, and every write after the claim carries the claim token.

Scaled down from the issue's figures (a 9 s receiver, 8 slots of 10 s, 50 events) so the test takes a
few seconds: the same shape — the batch takes several leases to deliver.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY

from tests.test_outbox_dispatcher import (
    FAST,
    book_many,
    dispatching,
    outbox,
    receiver,
    settings_overrides,
    until,
)

__all__ = ["receiver", "settings_overrides"]

EVENTS = 50
# 50 events behind 8 slots of 0.6 s take ~4 s to deliver; the lease is 1.5 s.
SLOW = FAST | {
    "outbox_batch_size": 50,
    "outbox_concurrency": 8,
    "outbox_lease_seconds": 1.5,
    "notify_timeout": 1.0,
    "outbox_poll_interval": 0.2,
}


async def test_finding7_slow_receiver_two_dispatchers_each_webhook_id_once(
    dba, settings, receiver, clinic_setup
):
    receiver.delay = 0.6
    book_many(dba, clinic_setup, EVENTS)
    async with dispatching(settings, SLOW, name="d1"):
        await asyncio.sleep(0.3)  # d1 claims the whole batch first
        async with dispatching(settings, SLOW, name="d2"):
            await until(lambda: all(row["delivered_at"] for row in outbox(dba)), timeout=30)
            await asyncio.sleep(1.0)  # would-be duplicates still in flight arrive
    ids = Counter(d.headers["webhook-id"] for d in receiver.snapshot())
    duplicated = {event_id: n for event_id, n in ids.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} events delivered more than once"
    assert len(ids) == EVENTS


def test_finding7_complete_and_fail_need_the_current_claim(dba: psycopg.Connection[Any], clinic_setup):
    """A dispatcher whose claim was taken over can neither complete nor fail the event."""
    book_many(dba, clinic_setup, 1)
    [(event_id, stale)] = dba.execute(
        "SELECT id, claim_token FROM keel.claim_outbox(1, interval '0 seconds', 'old')"
    ).fetchall()
    [(_, current)] = dba.execute(
        "SELECT id, claim_token FROM keel.claim_outbox(1, interval '1 minute', 'new')"
    ).fetchall()
    assert stale != current
    assert dba.execute(
        "SELECT keel.start_outbox_delivery(%s, %s, interval '1 minute')", (event_id, stale)
    ).fetchone() == (False,)
    assert dba.execute("SELECT keel.complete_outbox(%s, %s, 204)", (event_id, stale)).fetchone() == (False,)
    failed = dba.execute(
        "SELECT * FROM keel.fail_outbox(%s, %s, 'late', 500, 5, interval '1 second', interval '1 minute')",
        (event_id, stale),
    ).fetchall()
    assert failed == [("lost", None)]
    assert dba.execute("SELECT keel.complete_outbox_unsent(%s, %s)", ([event_id], stale)).fetchone() == (0,)
    [row] = outbox(dba)
    assert row["delivered_at"] is None and row["last_error"] is None and row["claimed_by"] == "new"
    assert dba.execute("SELECT keel.complete_outbox(%s, %s, 204)", (event_id, current)).fetchone() == (True,)


def delivered(outcome: str) -> float:
    return REGISTRY.get_sample_value("keel_outbox_deliveries_total", {"outcome": outcome}) or 0.0


async def test_finding7_each_outcome_is_logged_and_counted_as_what_it_was(
    dba, db_url, settings, receiver, clinic_setup, caplog: pytest.LogCaptureFixture
):
    """A failed attempt whose claim was taken over meanwhile is "lost", not "failed for good" (fail_outbox
    returned NULL for both); a delivery whose claim was lost is not "delivered"; retries and giving up are
    told apart, in the log and in `keel_outbox_deliveries_total{outcome}`."""
    caplog.set_level(logging.DEBUG, logger="api.outbox")

    def steal_then(status: int) -> int:
        # While the receiver holds the request, the lease runs out and another dispatcher claims the event.
        with psycopg.connect(db_url, autocommit=True) as thief:
            thief.execute("UPDATE keel.outbox SET available_at = now() - interval '1 second'")
            stolen = thief.execute("SELECT count(*) FROM keel.claim_outbox(1, interval '1 hour', 'thief')")
            assert stolen.fetchone() == (1,)
        return status

    before = {outcome: delivered(outcome) for outcome in ("delivered", "retry", "failed", "lost")}
    book_many(dba, clinic_setup, 1)
    config = FAST | {"outbox_max_attempts": 2}
    for status in (500, 204):  # the attempt fails / succeeds at the receiver, after the claim was taken
        receiver.respond = lambda n, status=status: steal_then(status)
        dba.execute("UPDATE keel.outbox SET available_at = now(), claim_token = NULL, claimed_by = NULL")
        async with dispatching(settings, config):
            await until(lambda: outbox(dba)[0]["claimed_by"] == "thief", timeout=10)
            await until(lambda: delivered("lost") - before["lost"] >= (1 if status == 500 else 2), timeout=10)
        [row] = outbox(dba)
        assert row["delivered_at"] is None and row["failed_at"] is None and row["last_error"] is None
    lines = [r.getMessage() for r in caplog.records if r.name == "api.outbox"]
    assert sum("claim had been taken over" in line for line in lines) == 2
    assert not any("failed for good" in line or line.startswith("delivered") for line in lines)

    # Not stolen: the first failure is a retry, the second (the last attempt) gives up.
    receiver.respond = lambda n: 503
    dba.execute("UPDATE keel.outbox SET available_at = now(), attempts = 0, claim_token = NULL")
    async with dispatching(settings, config):
        await until(lambda: outbox(dba)[0]["failed_at"] is not None, timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == "api.outbox"]
    assert sum("failed for good after 2 attempts" in line for line in lines) == 1
    assert sum("attempt 1 failed (HTTP 503" in line and "next at" in line for line in lines) == 1
    counted = {outcome: delivered(outcome) - n for outcome, n in before.items()}
    assert counted == {"delivered": 0, "retry": 1, "failed": 1, "lost": 2}

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
from collections import Counter
from dataclasses import replace
from typing import Any

import psycopg

from tests.test_outbox_dispatcher import (
    FAST,
    book_many,
    dispatching,
    outbox,
    receiver,
    settings_overrides,
    setup,
    until,
)

__all__ = ["receiver", "settings_overrides", "setup"]

EVENTS = 50
# 50 events behind 8 slots of 0.6 s take ~4 s to deliver; the lease is 1.5 s.
SLOW = replace(FAST, batch_size=50, concurrency=8, lease_seconds=1.5, http_timeout=1.0, poll_interval=0.2)


async def test_finding7_slow_receiver_two_dispatchers_each_webhook_id_once(dba, settings, receiver, setup):
    receiver.delay = 0.6
    book_many(dba, setup, EVENTS)
    async with dispatching(settings, SLOW, name="d1"):
        await asyncio.sleep(0.3)  # d1 claims the whole batch first
        async with dispatching(settings, SLOW, name="d2"):
            await until(lambda: all(row["delivered_at"] for row in outbox(dba)), timeout=30)
            await asyncio.sleep(1.0)  # would-be duplicates still in flight arrive
    ids = Counter(d.headers["webhook-id"] for d in receiver.snapshot())
    duplicated = {event_id: n for event_id, n in ids.items() if n > 1}
    assert not duplicated, f"{len(duplicated)} events delivered more than once"
    assert len(ids) == EVENTS


def test_finding7_complete_and_fail_need_the_current_claim(dba: psycopg.Connection[Any], setup):
    """A dispatcher whose claim was taken over can neither complete nor fail the event."""
    book_many(dba, setup, 1)
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
        "SELECT keel.fail_outbox(%s, %s, 'late', 500, 5, interval '1 second', interval '1 minute')",
        (event_id, stale),
    ).fetchone()
    assert failed == (None,)
    assert dba.execute("SELECT keel.complete_outbox_unsent(%s, %s)", ([event_id], stale)).fetchone() == (0,)
    [row] = outbox(dba)
    assert row["delivered_at"] is None and row["last_error"] is None and row["claimed_by"] == "new"
    assert dba.execute("SELECT keel.complete_outbox(%s, %s, 204)", (event_id, current)).fetchone() == (True,)

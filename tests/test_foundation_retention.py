"""Replay-protection records are kept for their retention period, then pruned."""

from __future__ import annotations

import asyncio

from api.db import Database
from api.maintenance import run


def _seed(dba) -> None:
    dba.execute(
        """
        INSERT INTO keel.idempotency_keys (principal, key, method, path, request_hash, created_at)
        VALUES ('p', 'old', 'POST', '/x', 'h', now() - interval '2 days'),
               ('p', 'new', 'POST', '/x', 'h', now() - interval '1 hour');
        INSERT INTO keel.webhook_events (source, event_id, event_type, received_at)
        VALUES ('clerk', 'msg_old', 'user.created', now() - interval '40 days'),
               ('clerk', 'msg_new', 'user.created', now() - interval '1 day');
        """
    )


async def test_maintenance_worker_prunes_only_expired_records(dba, settings):
    _seed(dba)
    db = Database(settings, settings.database_url)
    await db.open()
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(run(settings, db, stop))
        for _ in range(100):
            if dba.execute("SELECT count(*) FROM keel.webhook_events").fetchone()[0] == 1:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    finally:
        await db.close()
    assert [r[0] for r in dba.execute("SELECT key FROM keel.idempotency_keys")] == ["new"]
    assert [r[0] for r in dba.execute("SELECT event_id FROM keel.webhook_events")] == ["msg_new"]


def test_prune_is_callable_by_a_dba_with_custom_retention(dba):
    _seed(dba)
    counts = dba.execute(
        "SELECT * FROM keel.prune_replay_records(interval '30 minutes', interval '12 hours')"
    ).fetchone()
    assert counts == (2, 2)

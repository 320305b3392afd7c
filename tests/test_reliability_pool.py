"""Fault injection: more concurrent requests than pool connections while some statements run into
`statement_timeout` (a DBA holds a row lock the requests need).

Those requests answer 504 problems (SQLSTATE 57014) and change nothing; requests that wait too long for
a connection answer 503 with `Retry-After`; the rest of the traffic is served meanwhile, and everything
succeeds once the lock is gone. No 500, nothing slower than the statement plus the pool timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest

from tests.appointments_support import book_raw, make_clinic
from tests.reliability_support import Outcome, budget

pytestmark = pytest.mark.reliability

POOL_SIZE = 4
POOL_TIMEOUT = 1.0
STATEMENT_TIMEOUT_MS = 800


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "pool_min_size": POOL_SIZE,
        "pool_max_size": POOL_SIZE,
        "pool_timeout": POOL_TIMEOUT,
        "statement_timeout_ms": STATEMENT_TIMEOUT_MS,
    }


async def test_slow_statements_and_an_exhausted_pool_leave_the_rest_served(
    client: httpx.AsyncClient,
    db_url: str,
    dba: psycopg.Connection[Any],
    bearer: Callable[..., dict[str, str]],
) -> None:
    setup = make_clinic(dba)
    locked = book_raw(dba, setup, date(2027, 5, 3), "09:00", "09:30")
    other = book_raw(dba, setup, date(2027, 5, 3), "10:00", "10:30")
    headers = bearer(setup.admin_id, clinic_id=setup.clinic_id, role="front_desk")
    outcomes: list[Outcome] = []

    async def send(kind: str, method: str, url: str, **kw: Any) -> None:
        started = time.monotonic()
        r = await client.request(method, url, headers=headers, **kw)
        ctype = r.headers.get("content-type", "")
        body = r.json() if ctype.startswith("application/problem+json") else {}
        outcomes.append(
            Outcome(
                kind,
                None,
                r.status_code,
                started,
                time.monotonic() - started,
                r.headers.get("retry-after"),
                ctype,
                str(body.get("code") or ""),
            )
        )

    async def loop(stop: asyncio.Event, kind: str, method: str, url: str, **kw: Any) -> None:
        while not stop.is_set():
            await send(kind, method, url, **kw)

    stop = asyncio.Event()
    with psycopg.connect(db_url) as holder:  # the DBA's open transaction holding the row lock
        holder.execute("SELECT 1 FROM clinic.appointments WHERE id = %s FOR UPDATE", (locked,))
        lock_started = time.monotonic()
        patch = {"json": {"visit_reason": "during the lock"}}
        tasks = [
            asyncio.create_task(loop(stop, "slow", "PATCH", f"/api/appointments/{locked}", **patch))
            for _ in range(POOL_SIZE - 1)
        ]
        tasks += [
            asyncio.create_task(loop(stop, "read", "GET", f"/api/appointments/{other}")) for _ in range(8)
        ]
        await asyncio.sleep(budget(ci=4.0, full=20.0))
        stop.set()
        await asyncio.gather(*tasks)
        holder.rollback()
    lock_ended = time.monotonic()

    # After the lock: everything is served, the slow request included.
    after = await client.patch(f"/api/appointments/{locked}", json={"visit_reason": "after"}, headers=headers)
    assert after.status_code == 200, after.text
    reads_after = await asyncio.gather(
        *(client.get(f"/api/appointments/{other}", headers=headers) for _ in range(20))
    )
    assert all(r.status_code == 200 for r in reads_after)

    slow = Counter(o.status for o in outcomes if o.kind == "slow")
    reads = Counter(o.status for o in outcomes if o.kind == "read")
    print(
        f"[reliability] pool: pool={POOL_SIZE} clients={POOL_SIZE - 1 + 8} lock_s={lock_ended - lock_started:.1f}"
        f" requests={len(outcomes) + 21} slow={dict(slow)} reads={dict(reads)} 500s=0"
    )
    assert set(slow) <= {503, 504} and slow[504] >= 3, slow
    assert set(reads) <= {200, 503} and reads[200] >= 0.5 * sum(reads.values()), reads
    for o in outcomes:
        assert o.elapsed <= STATEMENT_TIMEOUT_MS / 1000 + POOL_TIMEOUT + 1.5, o
        if o.status >= 500:
            assert o.content_type.startswith("application/problem+json"), o
        if o.status == 504:
            assert o.detail == "57014", o
        if o.status == 503:
            assert o.retry_after, o
    # The timed-out updates changed nothing; the one after the lock did.
    assert dba.execute(
        "SELECT visit_reason FROM clinic.appointments WHERE id = %s", (locked,)
    ).fetchone() == ("after",)

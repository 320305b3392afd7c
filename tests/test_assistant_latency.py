"""The request only records the message: POST latency does not depend on the LLM's, and replies run in
parallel (DESIGN §10: chat POST while the LLM takes 5 s ≤ 1.5× its latency with an instant LLM)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import psycopg
import pytest

from tests.assistant_api import StaffMember, assistant_settings, chat, wait_final
from tests.llm_server import Behavior, LLMServer

POSTS = 7


@pytest.fixture
def settings_overrides(llm: LLMServer) -> dict[str, Any]:
    # A lease long enough that a machine busy with other suites never makes a reply look abandoned.
    return assistant_settings(
        llm, assistant_concurrency=100, assistant_timeout=15.0, assistant_lease_seconds=15.0, pool_max_size=20
    )


async def _post_latencies(client: httpx.AsyncClient, staff: StaffMember) -> list[float]:
    latencies = []
    for n in range(POSTS):
        started = time.perf_counter()
        await chat(client, staff, f"Latency probe {n}")
        latencies.append(time.perf_counter() - started)
    return latencies


async def test_post_latency_does_not_depend_on_llm_latency(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any
) -> None:
    await chat(client, staff, "warm up")  # first-request costs (pool, JIT of plans) out of the way

    llm.default = Behavior()  # instant
    fast = statistics.median(await _post_latencies(client, staff))

    llm.default = Behavior(delay=5.0)  # every reply takes five seconds to start
    slow = statistics.median(await _post_latencies(client, staff))
    slow_reply = await chat(client, staff, "slow reply")
    await asyncio.sleep(0.3)
    in_progress = (
        await client.get(
            f"/api/internal-assistant/messages/{slow_reply['message_id']}", headers=staff.headers
        )
    ).json()

    print(
        f"\nPOST median: instant LLM {fast * 1000:.1f} ms, 5 s LLM {slow * 1000:.1f} ms (ratio {slow / fast:.2f})"
    )
    assert in_progress["status"] == "running"  # the worker really is waiting on the 5 s LLM meanwhile
    assert slow < 1.0, "POST waited for the LLM"
    assert slow <= 1.5 * fast + 0.1, (fast, slow)  # same cost (absolute slack for scheduling noise)


async def test_a_hundred_chats_complete_in_parallel(
    client: httpx.AsyncClient, staff: StaffMember, llm: LLMServer, worker: Any, dba: psycopg.Connection[Any]
) -> None:
    reply_seconds = 3.0
    llm.default = Behavior(delay=reply_seconds)
    started = time.perf_counter()
    bodies = await asyncio.gather(*(chat(client, staff, f"Question {n}") for n in range(100)))
    posted = time.perf_counter() - started
    while True:  # watch from psql rather than a hundred HTTP pollers competing with the worker
        row = dba.execute(
            "SELECT count(*) FILTER (WHERE status IN ('done', 'failed')) FROM assistant.messages WHERE role = 'assistant'"
        ).fetchone()
        if row == (100,):
            break
        assert time.perf_counter() - started < 60, row
        await asyncio.sleep(0.05)
    total = time.perf_counter() - started
    replies = [await wait_final(client, staff, b["message_id"]) for b in bodies]

    print(
        f"\n100 chats: posted in {posted:.2f} s, all replies done after {total:.2f} s "
        f"(one reply takes {reply_seconds:.1f} s; serial would be {100 * reply_seconds:.0f} s); "
        f"LLM saw up to {llm.max_in_flight} requests at once"
    )
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in replies)
    assert len({r["content"] for r in replies}) == 100
    assert llm.max_in_flight >= 50  # they really were generated concurrently
    # Close to one reply's time (plus posting a hundred), nowhere near 100×; the bound leaves room for a
    # CI box that is busy with other suites.
    assert total < 10 * reply_seconds

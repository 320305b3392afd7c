"""Chat: `POST /api/internal-assistant/chat` latency with the loopback LLM instant vs. slow.

Keel answers 202 once the message is queued; the baseline route (seed §1.1) awaits the whole LLM
reply inside the request. The LLM is the loopback OpenAI-compatible server of the tests, told to
wait `delay` seconds before answering. Then 100 chats posted at once, timed until every reply is
stored (Keel: all replies `done` in the database; baseline: all requests answered).
"""

from __future__ import annotations

import json
import time

from bench import datagen
from bench.loadgen import closed_loop, in_process
from bench.runner import Context, Result
from bench.stats import median, p99
from bench.workloads.common import json_req, ms

CONCURRENCY = 4
CHAT = "/api/internal-assistant/chat"
BASELINE = "/bench/baseline/chat"


def run(ctx: Context) -> list[Result]:
    from tests.llm_server import Behavior

    if ctx.llm is None:
        raise RuntimeError("the chat workload needs the loopback LLM")
    delay, count, burst = ctx.sizes.chat_delay, ctx.sizes.chat_requests, ctx.sizes.chat_concurrent
    with ctx.connect() as conn:
        clinic = datagen.create_clinic(conn, "chat")
    headers = ctx.headers(clinic.claims("admin"))

    def wait_done(ids: list[str], timeout: float) -> float:
        """Seconds until every message in `ids` is final (done/failed), polled from the database."""
        started = time.perf_counter()
        with ctx.connect() as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE status IN ('done', 'failed')), count(*) FILTER (WHERE status = 'failed')"
                    " FROM assistant.messages WHERE id = ANY(%s::uuid[])",
                    (ids,),
                ).fetchone()
                assert row is not None
                if row[0] >= len(ids):
                    if row[1]:
                        raise RuntimeError(f"{row[1]} of {len(ids)} replies failed")
                    return time.perf_counter() - started
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"only {row[0]} of {len(ids)} replies done after {timeout:.0f} s")
                time.sleep(0.02)

    def posts(path: str, k: int, conc: int, tag: str) -> tuple[list[float], list[str], float, dict[int, int]]:
        reqs = [json_req("POST", path, headers, {"message": f"{tag} question {i}"}) for i in range(k)]
        result = in_process(closed_loop, ctx.base_url, reqs, conc, k)
        ids = [json.loads(body)["message_id"] for body in result.sample_bodies if body.startswith(b"{")]
        return result.latencies, ids, result.elapsed, result.statuses

    latency: dict[tuple[str, float], list[float]] = {}
    statuses: dict[int, int] = {}
    for llm_delay in (0.0, delay):
        ctx.llm.default = Behavior(delay=llm_delay)
        _, ids, _, _ = posts(CHAT, CONCURRENCY, CONCURRENCY, "warm-up")  # warm-up
        wait_done(ids, 60 + llm_delay * 4)
        lat, ids, _, st = posts(CHAT, count, CONCURRENCY, f"keel {llm_delay}")
        latency[("keel", llm_delay)] = lat
        wait_done(ids, 60 + llm_delay * count)
        lat, _, _, st2 = posts(BASELINE, count, CONCURRENCY, f"baseline {llm_delay}")
        latency[("base", llm_delay)] = lat
        for code, n in [*st.items(), *st2.items()]:
            statuses[code] = statuses.get(code, 0) + n

    # 100 chats at once, to completion.
    _, ids, post_elapsed, st = posts(CHAT, burst, burst, "burst")
    keel_total = post_elapsed + wait_done(ids, 120 + delay * burst)
    _, _, base_total, st2 = posts(BASELINE, burst, burst, "burst baseline")
    for code, n in [*st.items(), *st2.items()]:
        statuses[code] = statuses.get(code, 0) + n
    ctx.llm.default = Behavior()

    k0, k5 = median(latency[("keel", 0.0)]), median(latency[("keel", delay)])
    b0, b5 = median(latency[("base", 0.0)]), median(latency[("base", delay)])
    bad = {code: n for code, n in statuses.items() if code not in (200, 202)}
    note = f"p99 Keel {ms(p99(latency[('keel', delay)]))} at {delay:g} s LLM"
    if bad:
        note += f"; unexpected statuses {bad}"
    return [
        Result(
            f"chat: POST latency, LLM {delay:g} s ÷ LLM 0 s",
            f"{ms(k5)} vs {ms(k0)} = {k5 / k0:,.2f}×",
            f"{ms(b5)} vs {ms(b0)} = {b5 / b0:,.1f}×",
            k5 / k0,
            "Keel ≤ 1.5×",
            k5 / k0 <= 1.5,
            note,
            {"latencies": {f"{who}@{d}": v for (who, d), v in latency.items()}},
        ),
        Result(
            f"chat: POST latency at LLM {delay:g} s",
            ms(k5),
            ms(b5),
            b5 / k5,
            "(faster than baseline)",
            None,
        ),
        Result(
            f"chat: {burst} concurrent chats to completion, LLM {delay:g} s",
            f"{keel_total:,.2f} s",
            f"{base_total:,.2f} s",
            base_total / keel_total,
            f"≈ one reply ({delay:g} s), not {burst}×",
            None,
        ),
    ]

"""Helpers shared by the workloads: slots, formatting, result rows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from bench.loadgen import Req
from bench.runner import Context, Result
from bench.stats import median


# The change feed's triggers on the script-element tables (sql/callmaster/700_live_feed.sql).
LIVE_FEED_TRIGGERS = """
SELECT tgrelid::regclass::text, tgname FROM pg_trigger
WHERE NOT tgisinternal AND tgname LIKE '%%live_feed%%' AND tgrelid::regclass::text LIKE 'callmaster.script_element%%'
"""


@contextmanager
def triggers_off(ctx: Context, triggers: Sequence[tuple[str, str]]) -> Iterator[None]:
    """Switch (table, trigger) pairs off for the duration (in the bench's scratch database)."""

    def alter(action: str) -> None:
        with ctx.connect() as conn:
            for table, trigger in triggers:
                conn.execute(
                    sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                        sql.SQL(table), sql.SQL(action), sql.Identifier(trigger)
                    )
                )

    alter("DISABLE")
    try:
        yield
    finally:
        alter("ENABLE")


@contextmanager
def live_feed_off(ctx: Context) -> Iterator[None]:
    """The "before" designs (and the peer written like them) had no change feed: its triggers are off while
    they write script elements, so they do not pay for Keel's feed (Keel's own runs do)."""
    with ctx.connect() as conn:
        triggers = [(str(t), str(n)) for t, n in conn.execute(LIVE_FEED_TRIGGERS).fetchall()]
    with triggers_off(ctx, triggers):
        yield


# A script's tables, vacuumed after its copies are deleted (delete_copies).
VACUUM_SCRIPT_TABLES = """
VACUUM callmaster.scripts, callmaster.live_feed_heads, callmaster.live_events, callmaster.script_elements,
       callmaster.script_element_equipment, callmaster.script_element_crew_assignments,
       callmaster.script_element_performer_assignments, callmaster.script_element_conditional_rules,
       callmaster.script_element_groups
"""


def delete_copies(conn: psycopg.Connection[Any], where: LiteralString, params: dict[str, Any]) -> int:
    """Delete the copied scripts (`DELETE FROM callmaster.scripts WHERE {where}`, outside any timing) and
    vacuum their tables: every repetition of a copy, whoever makes it, then starts from the same tables,
    with no dead rows and no autovacuum of them running beside the next copy. The count deleted."""
    delete = sql.SQL("DELETE FROM callmaster.scripts WHERE {}").format(sql.SQL(where))
    gone = conn.execute(delete, params).rowcount
    conn.execute(VACUUM_SCRIPT_TABLES)
    return gone


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def per_s(value: float) -> str:
    return f"{value:,.0f}/s"


def slots(
    doctors: Sequence[str], count: int, *, start_day: dt.date, per_day: int = 20
) -> list[dict[str, Any]]:
    """`count` distinct, non-overlapping 20-minute slots over the doctors, from `start_day` on."""
    out = []
    for i in range(count):
        doctor = doctors[i % len(doctors)]
        k = i // len(doctors)
        day = start_day + dt.timedelta(days=k // per_day)
        minutes = 7 * 60 + (k % per_day) * 30
        start, end = dt.time(minutes // 60, minutes % 60), dt.time((minutes + 20) // 60, (minutes + 20) % 60)
        out.append({"doctor_id": doctor, "appointment_date": day.isoformat(),
                    "start_time": start.strftime("%H:%M"), "end_time": end.strftime("%H:%M")})  # fmt: skip
    return out


def json_req(method: str, path: str, headers: tuple[tuple[str, str], ...], body: Any = None) -> Req:
    return Req(method, path, headers, None if body is None else json.dumps(body).encode())


def alternate(
    repeats: int, keel: Callable[[int], float], baseline: Callable[[int], float]
) -> tuple[list[float], list[float]]:
    """Run Keel then baseline, `repeats` times (interleaved, so drift hits both); the two series."""
    ks, bs = [], []
    for rep in range(repeats):
        ks.append(keel(rep))
        bs.append(baseline(rep))
    return ks, bs


def ratio_result(
    workload: str,
    keel: float,
    baseline: float,
    *,
    fmt: Callable[[float], str],
    target: str,
    minimum: float | None = None,
    higher_is_better: bool = True,
    note: str = "",
    data: dict[str, Any] | None = None,
) -> Result:
    """A row whose ratio is Keel's advantage: keel/baseline for rates, baseline/keel for times."""
    if higher_is_better:
        ratio = keel / baseline if baseline else None
    else:
        ratio = baseline / keel if keel else None
    passed = None if minimum is None or ratio is None else ratio >= minimum
    return Result(workload, fmt(keel), fmt(baseline), ratio, target, passed, note, data or {})


def med(values: Sequence[float]) -> float:
    return median(values)

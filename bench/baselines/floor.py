"""The floor: what PostgreSQL itself does for the same rows, with no application in the way.

- booking: a bare `INSERT` of the appointment row (the caller switches the table's triggers off), one
  autocommit statement per booking, at the same concurrency as the API's bookings;
- duplication: `INSERT … SELECT` of the script's elements and supporting rows into unconstrained copies
  of the tables (`CREATE TABLE … (LIKE …)`: no keys, no indexes, no triggers), one transaction;
- bulk update: one `UPDATE … FROM unnest(…)` (a VALUES list passed as arrays) of the same fields;
- `SELECT 1` round trips, to measure the network hop itself.

Booking and `SELECT 1` run in a load process (`bench.loadgen.in_process`); the others on the caller's
connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from bench.loadgen import LoadResult, per_connection

FLOOR_SCHEMA = "bench_floor"
ELEMENT_TABLES = (
    "script_element_equipment",
    "script_element_crew_assignments",
    "script_element_performer_assignments",
    "script_element_conditional_rules",
)
BARE_INSERT_SQL = """
INSERT INTO clinic.appointments (clinic_id, patient_id, doctor_id, appointment_date, start_time, end_time)
VALUES (%(clinic_id)s, %(patient_id)s, %(doctor_id)s, %(appointment_date)s, %(start_time)s, %(end_time)s)
"""
UPDATE_FLOOR_SQL = """
UPDATE callmaster.script_elements AS e
SET description = v.description, time_offset_ms = v.time_offset_ms, priority = v.priority
FROM unnest(%(ids)s::uuid[], %(descriptions)s::text[], %(offsets)s::bigint[], %(priorities)s::text[])
     AS v(id, description, time_offset_ms, priority)
WHERE e.id = v.id
"""
COPY_ELEMENTS_SQL = sql.SQL(
    "INSERT INTO {schema}.script_elements SELECT * FROM callmaster.script_elements WHERE script_id = %(script)s"
)
COPY_CHILDREN_SQL = sql.SQL(
    "INSERT INTO {schema}.{table} SELECT c.* FROM callmaster.{table} AS c"
    " JOIN callmaster.script_elements AS e ON e.id = c.element_id WHERE e.script_id = %(script)s"
)
COPY_GROUPS_SQL = sql.SQL(
    "INSERT INTO {schema}.script_element_groups SELECT g.* FROM callmaster.script_element_groups AS g"
    " JOIN callmaster.script_elements AS e ON e.id = g.group_id WHERE e.script_id = %(script)s"
)


def _copy_tables() -> tuple[str, ...]:
    return ("script_elements", *ELEMENT_TABLES, "script_element_groups")


def create_copy_tables(conn: psycopg.Connection[Any]) -> None:
    """The unconstrained copies (DBA connection, once per run)."""
    schema = sql.Identifier(FLOOR_SCHEMA)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
    for table in _copy_tables():
        conn.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} (LIKE callmaster.{})").format(
                schema, sql.Identifier(table), sql.Identifier(table)
            )
        )


def empty_copy_tables(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        sql.SQL("TRUNCATE {}").format(
            sql.SQL(", ").join(sql.Identifier(FLOOR_SCHEMA, t) for t in _copy_tables())
        )
    )


def copy_script(conn: psycopg.Connection[Any], script_id: str) -> None:
    """The duplication floor: every row of the script into the copies, one transaction, pipelined."""
    schema = sql.Identifier(FLOOR_SCHEMA)
    params = {"script": script_id}
    with conn.transaction(), conn.pipeline():
        conn.execute(COPY_ELEMENTS_SQL.format(schema=schema), params)
        for table in ELEMENT_TABLES:
            conn.execute(COPY_CHILDREN_SQL.format(schema=schema, table=sql.Identifier(table)), params)
        conn.execute(COPY_GROUPS_SQL.format(schema=schema), params)


def update_elements(conn: psycopg.Connection[Any], items: Sequence[dict[str, Any]]) -> int:
    """The bulk-update floor: one statement; the rows it changed."""
    with conn.transaction():
        cur = conn.execute(
            UPDATE_FLOOR_SQL,
            {
                "ids": [i["id"] for i in items],
                "descriptions": [i["description"] for i in items],
                "offsets": [i["time_offset_ms"] for i in items],
                "priorities": [i["priority"] for i in items],
            },
        )
        return cur.rowcount


async def _statements(url: str, query: str, params: Sequence[Any], concurrency: int) -> LoadResult:
    return await per_connection(url, params, concurrency, lambda conn, item: conn.execute(query, item))


def bare_inserts(url: str, rows: Sequence[dict[str, Any]], concurrency: int) -> LoadResult:
    """The booking floor: each row one autocommit `INSERT`, `concurrency` connections at once."""
    return asyncio.run(_statements(url, BARE_INSERT_SQL, rows, concurrency))


def select_ones(url: str, count: int, concurrency: int) -> LoadResult:
    """`count` round trips of `SELECT 1` (the hop's own cost), `concurrency` connections at once."""
    return asyncio.run(_statements(url, "SELECT 1", [None] * count, concurrency))

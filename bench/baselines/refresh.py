"""The plain refresh: every control-tower view refreshed without CONCURRENTLY (readers wait for it)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql


def plain_refresh(conn: psycopg.Connection[Any]) -> None:
    """`REFRESH MATERIALIZED VIEW` of each view of `clinic.control_tower_views()`, one transaction each."""
    row = conn.execute("SELECT clinic.control_tower_views()::text[]").fetchone()
    assert row is not None
    for name in row[0]:
        schema, _, view = name.partition(".")
        conn.execute(
            sql.SQL("REFRESH MATERIALIZED VIEW {}.{}").format(sql.Identifier(schema), sql.Identifier(view))
        )

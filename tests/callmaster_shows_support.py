"""Helpers for the CallMaster show/script/element tests: users, fixtures built with SQL, structural
snapshots of a script (ids mapped to element labels) and orphan checks over every callmaster table."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
from psycopg import sql

Bearer = Callable[..., dict[str, str]]
Dba = psycopg.Connection[Any]

CALLMASTER_TABLES = (
    "users",
    "crew_relationships",
    "venues",
    "departments",
    "shows",
    "crew_assignments",
    "scripts",
    "script_elements",
    "script_element_equipment",
    "script_element_crew_assignments",
    "script_element_performer_assignments",
    "script_element_conditional_rules",
    "script_element_groups",
)

# A row whose parent is gone, for every reference between callmaster tables (the foreign keys make
# these impossible; the tests prove no code path works around them).
ORPHAN_QUERIES = {
    "crew_relationships": """
        SELECT count(*) FROM callmaster.crew_relationships AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.users AS u WHERE u.id = x.manager_user_id)
           OR NOT EXISTS (SELECT 1 FROM callmaster.users AS u WHERE u.id = x.crew_user_id)""",
    "venues": """
        SELECT count(*) FROM callmaster.venues AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.users AS u WHERE u.id = x.owner_id)""",
    "departments": """
        SELECT count(*) FROM callmaster.departments AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.users AS u WHERE u.id = x.owner_id)""",
    "shows": """
        SELECT count(*) FROM callmaster.shows AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.users AS u WHERE u.id = x.owner_id)
           OR (x.venue_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM callmaster.venues AS v WHERE v.id = x.venue_id))""",
    "crew_assignments": """
        SELECT count(*) FROM callmaster.crew_assignments AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.shows AS s WHERE s.id = x.show_id)""",
    "scripts": """
        SELECT count(*) FROM callmaster.scripts AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.shows AS s WHERE s.id = x.show_id)""",
    "script_elements": """
        SELECT count(*) FROM callmaster.script_elements AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.scripts AS s WHERE s.id = x.script_id)
           OR (x.parent_element_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM callmaster.script_elements AS p WHERE p.id = x.parent_element_id))""",
    "script_element_equipment": """
        SELECT count(*) FROM callmaster.script_element_equipment AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.script_elements AS e WHERE e.id = x.element_id)""",
    "script_element_crew_assignments": """
        SELECT count(*) FROM callmaster.script_element_crew_assignments AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.script_elements AS e WHERE e.id = x.element_id)""",
    "script_element_performer_assignments": """
        SELECT count(*) FROM callmaster.script_element_performer_assignments AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.script_elements AS e WHERE e.id = x.element_id)""",
    "script_element_conditional_rules": """
        SELECT count(*) FROM callmaster.script_element_conditional_rules AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.script_elements AS e WHERE e.id = x.element_id)""",
    "script_element_groups": """
        SELECT count(*) FROM callmaster.script_element_groups AS x
        WHERE NOT EXISTS (SELECT 1 FROM callmaster.script_elements AS e WHERE e.id = x.group_id)
           OR NOT EXISTS (SELECT 1 FROM callmaster.script_elements AS e WHERE e.id = x.child_element_id)
           OR NOT EXISTS (SELECT 1 FROM callmaster.scripts AS s WHERE s.id = x.script_id)""",
}

# Rows that belong to a show, per table.
UNDER_SHOW_QUERIES = {
    "shows": "SELECT count(*) FROM callmaster.shows WHERE id = %(show)s",
    "crew_assignments": "SELECT count(*) FROM callmaster.crew_assignments WHERE show_id = %(show)s",
    "scripts": "SELECT count(*) FROM callmaster.scripts WHERE show_id = %(show)s",
    "script_elements": """
        SELECT count(*) FROM callmaster.script_elements AS e
        JOIN callmaster.scripts AS s ON s.id = e.script_id WHERE s.show_id = %(show)s""",
    **{
        table: sql.SQL(
            """SELECT count(*) FROM callmaster.{} AS x
               JOIN callmaster.script_elements AS e ON e.id = x.element_id
               JOIN callmaster.scripts AS s ON s.id = e.script_id WHERE s.show_id = %(show)s"""
        ).format(sql.Identifier(table))
        for table in (
            "script_element_equipment",
            "script_element_crew_assignments",
            "script_element_performer_assignments",
            "script_element_conditional_rules",
        )
    },
    "script_element_groups": """
        SELECT count(*) FROM callmaster.script_element_groups AS g
        JOIN callmaster.scripts AS s ON s.id = g.script_id WHERE s.show_id = %(show)s""",
}


def add_user(
    dba: Dba, clerk_id: str | None, email: str | None = None, *, created_by: str | None = None
) -> str:
    row = dba.execute(
        """INSERT INTO callmaster.users (clerk_user_id, email, status, created_by)
           VALUES (%s, %s, CASE WHEN %s::text IS NULL THEN 'guest' ELSE 'verified' END, %s) RETURNING id""",
        (clerk_id, email or f"{clerk_id}@example.com", clerk_id, created_by),
    ).fetchone()
    assert row is not None
    return str(row[0])


def add_crew(dba: Dba, manager_id: str, email: str) -> str:
    """A guest user in the manager's crew."""
    user_id = add_user(dba, None, email, created_by=manager_id)
    dba.execute(
        "INSERT INTO callmaster.crew_relationships (manager_user_id, crew_user_id) VALUES (%s, %s)",
        (manager_id, user_id),
    )
    return user_id


def one(dba: Dba, query: str, params: Any = None) -> Any:
    row = dba.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def add_show(dba: Dba, owner_id: str, name: str = "Hamlet") -> str:
    return str(
        one(
            dba,
            "INSERT INTO callmaster.shows (owner_id, name) VALUES (%s, %s) RETURNING id",
            (owner_id, name),
        )
    )


def add_script(dba: Dba, show_id: str, name: str = "Main") -> str:
    return str(
        one(
            dba,
            "INSERT INTO callmaster.scripts (show_id, name) VALUES (%s, %s) RETURNING id",
            (show_id, name),
        )
    )


def add_department(dba: Dba, owner_id: str, name: str = "Lighting") -> str:
    return str(
        one(
            dba,
            "INSERT INTO callmaster.departments (owner_id, name) VALUES (%s, %s) RETURNING id",
            (owner_id, name),
        )
    )


def assign(dba: Dba, show_id: str, user_id: str) -> None:
    dba.execute(
        "INSERT INTO callmaster.crew_assignments (show_id, user_id) VALUES (%s, %s)", (show_id, user_id)
    )


def fill_script(
    dba: Dba, script_id: str, n: int, *, department_id: str, crew_ids: tuple[str, str], performer_id: str
) -> None:
    """`n` elements (a multiple of 50) labelled E1..En with every supporting table populated.

    Every 10th element is a group holding the nine before it (as parent and as group members); the
    groups are nested in turn: each 50th element's group also holds the four groups before it.
    """
    assert n % 50 == 0
    params = {
        "s": script_id,
        "n": n,
        "dept": department_id,
        "c1": crew_ids[0],
        "c2": crew_ids[1],
        "p": performer_id,
    }
    dba.execute(
        """
        INSERT INTO callmaster.script_elements (
            id, script_id, element_type, sequence, cue_id, description, cue_notes, department_id,
            parent_element_id, trigger_type, follows_cue_id, priority, time_offset_ms, duration_ms, fade_in_ms,
            fade_out_ms, location, location_details, custom_color, group_level, is_collapsed, is_safety_critical,
            safety_notes, is_active)
        SELECT md5(%(s)s || ':' || i)::uuid, %(s)s::uuid, CASE WHEN i %% 10 = 0 THEN 'group' WHEN i %% 7 = 0 THEN 'note' ELSE 'cue' END,
               i, 'E' || i, 'element ' || i, CASE WHEN i %% 4 = 0 THEN 'notes ' || i END,
               CASE WHEN i %% 3 = 0 THEN %(dept)s::uuid END,
               CASE WHEN i %% 10 <> 0 THEN md5(%(s)s || ':' || ((i / 10 + 1) * 10))::uuid
                    WHEN (i / 10) %% 5 <> 0 THEN md5(%(s)s || ':' || (((i / 10 + 4) / 5) * 50))::uuid
               END,
               (ARRAY['manual', 'time', 'auto', 'follow', 'go', 'standby'])[1 + i %% 6],
               CASE WHEN i %% 6 = 3 THEN 'E' || (i - 1) END,
               (ARRAY['critical', 'high', 'normal', 'low', 'optional'])[1 + i %% 5],
               (i * 7919) %% 600000, CASE WHEN i %% 2 = 0 THEN i * 10 END, i %% 500, NULL,
               (ARRAY['stage_left', 'booth', 'fly_gallery', 'upstage_left'])[1 + i %% 4],
               CASE WHEN i %% 9 = 0 THEN 'detail ' || i END,
               CASE WHEN i %% 8 = 0 THEN '#A1B2C3' END,
               CASE WHEN i %% 10 <> 0 THEN 2 WHEN (i / 10) %% 5 <> 0 THEN 1 ELSE 0 END,
               i %% 13 = 0, i %% 17 = 0, CASE WHEN i %% 17 = 0 THEN 'harness check' END, i %% 19 <> 0
        FROM generate_series(1, %(n)s) AS i
        """,
        params,
    )
    dba.execute(
        """
        INSERT INTO callmaster.script_element_groups (group_id, child_element_id, script_id, order_in_group)
        SELECT md5(%(s)s || ':' || ((i / 10 + 1) * 10))::uuid, md5(%(s)s || ':' || i)::uuid, %(s)s::uuid, i %% 10
        FROM generate_series(1, %(n)s) AS i WHERE i %% 10 <> 0
        UNION ALL
        SELECT md5(%(s)s || ':' || (((i / 10 + 4) / 5) * 50))::uuid, md5(%(s)s || ':' || i)::uuid, %(s)s::uuid, (i / 10) %% 5
        FROM generate_series(10, %(n)s, 10) AS i WHERE (i / 10) %% 5 <> 0
        """,
        params,
    )
    dba.execute(
        """
        INSERT INTO callmaster.script_element_equipment (element_id, equipment_name, is_required, notes)
        SELECT md5(%(s)s || ':' || i)::uuid, 'spot ' || (i %% 4), i %% 2 = 0, CASE WHEN i %% 3 = 0 THEN 'gel R02' END
        FROM generate_series(1, %(n)s) AS i
        UNION ALL
        SELECT md5(%(s)s || ':' || i)::uuid, 'fog machine', true, NULL FROM generate_series(3, %(n)s, 3) AS i
        """,
        params,
    )
    dba.execute(
        """
        INSERT INTO callmaster.script_element_crew_assignments (element_id, crew_user_id, assignment_role, is_lead)
        SELECT md5(%(s)s || ':' || i)::uuid, %(c1)s::uuid, 'operator', true FROM generate_series(2, %(n)s, 2) AS i
        UNION ALL
        SELECT md5(%(s)s || ':' || i)::uuid, %(c2)s::uuid, NULL, false FROM generate_series(7, %(n)s, 7) AS i
        """,
        params,
    )
    dba.execute(
        """
        INSERT INTO callmaster.script_element_performer_assignments (element_id, performer_id, character_name, notes)
        SELECT md5(%(s)s || ':' || i)::uuid, %(p)s::uuid, 'Ophelia', CASE WHEN i %% 8 = 0 THEN 'enters SL' END
        FROM generate_series(4, %(n)s, 4) AS i
        """,
        params,
    )
    dba.execute(
        """
        INSERT INTO callmaster.script_element_conditional_rules (
            element_id, condition_type, operator, condition_value, description, is_active)
        SELECT md5(%(s)s || ':' || i)::uuid, 'weather', 'equals', 'rain', 'outdoor only', true
        FROM generate_series(5, %(n)s, 5) AS i
        UNION ALL
        SELECT md5(%(s)s || ':' || i)::uuid, 'cast', 'not_equals', 'understudy', NULL, i %% 2 = 0
        FROM generate_series(11, %(n)s, 11) AS i
        """,
        params,
    )


SNAPSHOT_QUERIES = {
    "elements": """
        SELECT e.element_type, e.sequence, e.cue_id, e.description, e.cue_notes, e.department_id, e.trigger_type,
               e.follows_cue_id, e.priority, e.time_offset_ms, e.duration_ms, e.fade_in_ms, e.fade_out_ms,
               e.location, e.location_details, e.custom_color, e.group_level, e.is_collapsed,
               e.is_safety_critical, e.safety_notes, e.is_active, p.cue_id AS parent
        FROM callmaster.script_elements AS e
        LEFT JOIN callmaster.script_elements AS p ON p.id = e.parent_element_id
        WHERE e.script_id = %(s)s""",
    "equipment": """
        SELECT e.cue_id, x.equipment_name, x.is_required, x.notes
        FROM callmaster.script_element_equipment AS x
        JOIN callmaster.script_elements AS e ON e.id = x.element_id WHERE e.script_id = %(s)s""",
    "crew": """
        SELECT e.cue_id, x.crew_user_id, x.assignment_role, x.is_lead
        FROM callmaster.script_element_crew_assignments AS x
        JOIN callmaster.script_elements AS e ON e.id = x.element_id WHERE e.script_id = %(s)s""",
    "performers": """
        SELECT e.cue_id, x.performer_id, x.character_name, x.notes
        FROM callmaster.script_element_performer_assignments AS x
        JOIN callmaster.script_elements AS e ON e.id = x.element_id WHERE e.script_id = %(s)s""",
    "rules": """
        SELECT e.cue_id, x.condition_type, x.operator, x.condition_value, x.description, x.is_active
        FROM callmaster.script_element_conditional_rules AS x
        JOIN callmaster.script_elements AS e ON e.id = x.element_id WHERE e.script_id = %(s)s""",
    "groups": """
        SELECT g.cue_id, c.cue_id, x.order_in_group
        FROM callmaster.script_element_groups AS x
        JOIN callmaster.script_elements AS g ON g.id = x.group_id
        JOIN callmaster.script_elements AS c ON c.id = x.child_element_id
        WHERE x.script_id = %(s)s""",
}


def snapshot(dba: Dba, script_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """The script's content with every element id replaced by its label (cue_id), sorted: two scripts
    with equal snapshots are structurally identical."""
    return {
        name: sorted(dba.execute(query, {"s": script_id}).fetchall(), key=repr)  # type: ignore[arg-type]
        for name, query in SNAPSHOT_QUERIES.items()
    }


def orphans(dba: Dba) -> dict[str, int]:
    """Per callmaster table, the rows whose parent row is gone (all zero when consistent)."""
    counts = {table: int(one(dba, query)) for table, query in ORPHAN_QUERIES.items()}  # type: ignore[arg-type]
    assert set(counts) | {"users"} == set(CALLMASTER_TABLES)
    return counts


def rows_under_show(dba: Dba, show_id: str) -> dict[str, int]:
    return {table: int(one(dba, query, {"show": show_id})) for table, query in UNDER_SHOW_QUERIES.items()}  # type: ignore[arg-type]


def assert_problem(r: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == r.status_code and body["title"] and body["detail"]
    return body


def wait_until_blocked(dba: Dba, pid: int, timeout: float = 10.0) -> None:
    """Wait until backend `pid` waits for a lock (the other transaction holds it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = dba.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")

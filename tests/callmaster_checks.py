"""Checks for the CallMaster show/script/element tests: structural snapshots of a script (ids mapped to
element labels), orphan checks over every callmaster table, and waiting for a blocked backend."""

from __future__ import annotations

import time
from typing import Any

from psycopg import sql

from tests.factories import Dba, one

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


def wait_until_blocked(dba: Dba, pid: int, timeout: float = 10.0) -> None:
    """Wait until backend `pid` waits for a lock (the other transaction holds it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = dba.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
        if row is not None and row[0] == "Lock":
            return
        time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited for a lock")

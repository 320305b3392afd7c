"""The "before" script duplication (callmaster seed, `shows.py:duplicate_script`), ORM-style on psycopg.

Select the script and everything under it, insert the copy's elements one at a time (each insert
returning its new id, as `db.flush()` per element did), keep the old→new id map in Python, remap
parents (fixed up afterwards when a child came before its parent) and group membership through it,
then insert the supporting rows — batched with `executemany` (pipelined by psycopg), as SQLAlchemy 2's
unit of work would batch rows whose keys it already knows. One transaction, as the original. Runs as
the owner role (the original had no row-level security), so the baseline is, if anything, favoured.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

ELEMENT_COLUMNS = (
    "element_type", "sequence", "cue_id", "description", "cue_notes", "department_id", "trigger_type",
    "follows_cue_id", "priority", "time_offset_ms", "duration_ms", "fade_in_ms", "fade_out_ms", "location",
    "location_details", "custom_color", "group_level", "is_collapsed", "is_safety_critical", "safety_notes",
    "is_active", "created_by", "updated_by",
)  # fmt: skip
INSERT_ELEMENT = sql.SQL(
    "INSERT INTO callmaster.script_elements (script_id, owner_id, parent_element_id, {columns})"
    " VALUES (%(script_id)s, %(owner_id)s, %(parent)s, {values}) RETURNING id"
).format(
    columns=sql.SQL(", ").join(map(sql.Identifier, ELEMENT_COLUMNS)),
    values=sql.SQL(", ").join(map(sql.Placeholder, ELEMENT_COLUMNS)),
)


def duplicate_script(conn: psycopg.Connection[Any], script_id: str, new_name: str | None = None) -> str:
    """Deep-copy a script the old way; returns the copy's id. Commits on success."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET LOCAL ROLE keel_owner")
        src = cur.execute("SELECT * FROM callmaster.scripts WHERE id = %s", (script_id,)).fetchone()
        if src is None:
            raise LookupError(f"script {script_id} not found")
        new = cur.execute(
            "INSERT INTO callmaster.scripts (show_id, owner_id, name, notes, status, start_time, end_time)"
            " VALUES (%s, %s, %s, %s, 'copy', %s, %s) RETURNING id",
            (src["show_id"], src["owner_id"], new_name or src["name"] + " (copy)", src["notes"], src["start_time"],
             src["end_time"]),
        ).fetchone()  # fmt: skip
        assert new is not None
        new_id = new["id"]
        elements = cur.execute(
            "SELECT * FROM callmaster.script_elements WHERE script_id = %s ORDER BY sequence", (script_id,)
        ).fetchall()
        id_map: dict[Any, Any] = {}
        pending_parents: list[tuple[Any, Any]] = []
        for element in elements:
            parent = element["parent_element_id"]
            row = {c: element[c] for c in ELEMENT_COLUMNS}
            row.update(script_id=new_id, owner_id=src["owner_id"], parent=id_map.get(parent))
            inserted = cur.execute(INSERT_ELEMENT, row).fetchone()
            assert inserted is not None
            id_map[element["id"]] = inserted["id"]
            if parent is not None and parent not in id_map:
                pending_parents.append((inserted["id"], parent))
        for child, parent in pending_parents:
            cur.execute(
                "UPDATE callmaster.script_elements SET parent_element_id = %s WHERE id = %s",
                (id_map[parent], child),
            )
        old_ids = list(id_map)

        def rows(table: str) -> list[dict[str, Any]]:
            query = sql.SQL("SELECT * FROM callmaster.{} WHERE element_id = ANY(%s)").format(
                sql.Identifier(table)
            )
            return cur.execute(query, (old_ids,)).fetchall()

        cur.executemany(
            "INSERT INTO callmaster.script_element_equipment (element_id, equipment_name, is_required, notes)"
            " VALUES (%s, %s, %s, %s)",
            [(id_map[r["element_id"]], r["equipment_name"], r["is_required"], r["notes"])
             for r in rows("script_element_equipment")],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO callmaster.script_element_crew_assignments (element_id, crew_user_id, assignment_role,"
            " is_lead) VALUES (%s, %s, %s, %s)",
            [(id_map[r["element_id"]], r["crew_user_id"], r["assignment_role"], r["is_lead"])
             for r in rows("script_element_crew_assignments")],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO callmaster.script_element_performer_assignments (element_id, performer_id, character_name,"
            " notes) VALUES (%s, %s, %s, %s)",
            [(id_map[r["element_id"]], r["performer_id"], r["character_name"], r["notes"])
             for r in rows("script_element_performer_assignments")],
        )  # fmt: skip
        cur.executemany(
            "INSERT INTO callmaster.script_element_conditional_rules (element_id, condition_type, operator,"
            " condition_value, description, is_active) VALUES (%s, %s, %s, %s, %s, %s)",
            [(id_map[r["element_id"]], r["condition_type"], r["operator"], r["condition_value"], r["description"],
              r["is_active"]) for r in rows("script_element_conditional_rules")],
        )  # fmt: skip
        groups = cur.execute(
            "SELECT * FROM callmaster.script_element_groups WHERE script_id = %s", (script_id,)
        ).fetchall()
        cur.executemany(
            "INSERT INTO callmaster.script_element_groups (group_id, child_element_id, script_id, order_in_group)"
            " VALUES (%s, %s, %s, %s)",
            [
                (id_map[g["group_id"]], id_map[g["child_element_id"]], new_id, g["order_in_group"])
                for g in groups
            ],
        )
    return str(new_id)

"""Scripts and their elements over HTTP: script CRUD, elements with nested supporting rows, references
kept inside the script, versions, bulk updates, auto-sort and edit batches."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.callmaster_checks import wait_until_blocked
from tests.factories import (
    Bearer,
    add_crew,
    add_department,
    add_script,
    add_show,
    add_user,
    assert_problem,
    one,
)


@pytest.fixture
def stage(dba: psycopg.Connection[Any]) -> dict[str, Any]:
    owner = add_user(dba, "user_a")
    stranger = add_user(dba, "user_b")
    show = add_show(dba, owner)
    return {
        "owner": owner,
        "stranger": stranger,
        "show": show,
        "script": add_script(dba, show),
        "other_script": add_script(dba, show, "Understudy"),
        "department": add_department(dba, owner),
        "foreign_department": add_department(dba, stranger, "Theirs"),
        "crew": add_crew(dba, owner, "lx@example.com"),
        "performer": add_crew(dba, owner, "ophelia@example.com"),
    }


def element_count(dba: psycopg.Connection[Any], script: str) -> int:
    return int(one(dba, "SELECT count(*) FROM callmaster.script_elements WHERE script_id = %s", (script,)))


async def test_script_crud(client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer) -> None:
    owner = add_user(dba, "user_a")
    show = add_show(dba, owner)
    auth = bearer("user_a")
    r = await client.post(
        f"/api/shows/{show}/scripts",
        json={"name": "Prompt book", "status": "working", "start_time": "2026-05-01T19:30:00Z"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    script = r.json()
    assert (script["name"], script["status"], script["show_id"], script["element_count"]) == (
        "Prompt book",
        "working",
        show,
        0,
    )
    await client.post(f"/api/shows/{show}/scripts", json={"name": "Backup"}, headers=auth)
    listing = (await client.get(f"/api/shows/{show}/scripts", headers=auth)).json()
    assert [s["name"] for s in listing["items"]] == ["Prompt book", "Backup"] and listing["total"] == 2
    assert listing["items"][1]["status"] == "draft"
    assert (await client.get(f"/api/scripts/{script['id']}", headers=auth)).json() == script

    r = await client.patch(
        f"/api/scripts/{script['id']}", json={"status": "final", "notes": None}, headers=auth
    )
    assert r.status_code == 200 and r.json()["status"] == "final" and r.json()["name"] == "Prompt book"
    assert_problem(
        await client.patch(f"/api/scripts/{script['id']}", json={"status": "lost"}, headers=auth), 400
    )
    assert_problem(
        await client.patch(f"/api/scripts/{script['id']}", json={"status": None}, headers=auth), (400, 422)
    )
    assert_problem(
        await client.patch(
            f"/api/scripts/{script['id']}",
            json={"start_time": "2026-05-01T20:00Z", "end_time": "2026-05-01T19:00Z"},
            headers=auth,
        ),
        422,
    )
    assert_problem(
        await client.post(f"/api/shows/{show}/scripts", json={"name": " "}, headers=auth), (400, 422)
    )
    assert_problem(await client.post(f"/api/shows/{show}/scripts", json={}, headers=auth), 400)
    assert_problem(await client.get(f"/api/shows/{show}/scripts", headers=bearer("user_b")), (403, 404))

    r = await client.delete(f"/api/scripts/{script['id']}", headers=auth)
    assert r.status_code == 204
    assert_problem(await client.get(f"/api/scripts/{script['id']}", headers=auth), 404)
    counts = dict(
        dba.execute("SELECT * FROM callmaster.delete_script(%s)", (listing["items"][1]["id"],)).fetchall()
    )
    assert counts["scripts"] == 1 and counts["script_elements"] == 0


async def test_element_with_nested_rows(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth = bearer("user_a")
    script = stage["script"]
    r = await client.post(
        f"/api/scripts/{script}/elements",
        json={"element_type": "cue", "cue_id": "LX1", "time_offset_ms": 1000},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["sequence"], first["version"], first["trigger_type"], first["priority"]) == (
        1,
        1,
        "manual",
        "normal",
    )
    assert first["created_by"] == first["updated_by"] == stage["owner"]

    group_body = {
        "element_type": "group",
        "cue_id": "G1",
        "description": "Storm",
        "department_id": stage["department"],
        "location": "fly_gallery",
        "custom_color": "#112233",
        "is_safety_critical": True,
        "safety_notes": "flown scenery",
        "equipment": [
            {"equipment_name": "fog", "notes": "low"},
            {"equipment_name": "wind", "is_required": False},
        ],
        "crew_assignments": [{"crew_user_id": stage["crew"], "assignment_role": "flyman", "is_lead": True}],
        "performer_assignments": [{"performer_id": stage["performer"], "character_name": "Ophelia"}],
        "conditional_rules": [{"condition_type": "weather", "operator": "equals", "condition_value": "rain"}],
        "group_members": [{"child_element_id": first["id"]}],
    }
    r = await client.post(f"/api/scripts/{script}/elements", json=group_body, headers=auth)
    assert r.status_code == 201, r.text
    group = r.json()
    assert group["sequence"] == 2
    assert [e["equipment_name"] for e in group["equipment"]] == ["fog", "wind"]
    assert group["equipment"][1]["is_required"] is False
    assert group["crew_assignments"] == [
        {"crew_user_id": stage["crew"], "assignment_role": "flyman", "is_lead": True}
    ]
    assert group["performer_assignments"][0]["character_name"] == "Ophelia"
    assert group["conditional_rules"][0]["condition_value"] == "rain"
    assert group["group_members"] == [{"child_element_id": first["id"], "order_in_group": 0}]

    child = (
        await client.post(
            f"/api/scripts/{script}/elements",
            json={"element_type": "note", "parent_element_id": group["id"], "sequence": 0},
            headers=auth,
        )
    ).json()
    listing = (await client.get(f"/api/scripts/{script}/elements", headers=auth)).json()
    assert [e["id"] for e in listing["items"]] == [child["id"], first["id"], group["id"]]
    assert listing["items"][2] == group
    assert (await client.get(f"/api/elements/{group['id']}", headers=auth)).json() == group

    r = await client.patch(
        f"/api/elements/{group['id']}",
        json={
            "description": "Tempest",
            "equipment": [{"equipment_name": "rain"}],
            "crew_assignments": [],
            "base_version": 1,
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["version"] == 2 and changed["description"] == "Tempest" and changed["cue_id"] == "G1"
    assert [e["equipment_name"] for e in changed["equipment"]] == ["rain"] and changed[
        "crew_assignments"
    ] == []
    assert changed["performer_assignments"] == group["performer_assignments"]

    body = assert_problem(
        await client.patch(
            f"/api/elements/{group['id']}", json={"description": "late", "base_version": 1}, headers=auth
        ),
        409,
    )
    assert "version 2" in body["detail"]
    assert_problem(await client.delete(f"/api/elements/{group['id']}?base_version=1", headers=auth), 409)
    r = await client.delete(f"/api/elements/{group['id']}?base_version=2", headers=auth)
    assert r.status_code == 204
    assert_problem(await client.get(f"/api/elements/{group['id']}", headers=auth), 404)
    # The child moved to the top level (and that is a change: its version moved on).
    lifted = (await client.get(f"/api/elements/{child['id']}", headers=auth)).json()
    assert lifted["parent_element_id"] is None and lifted["version"] == 2
    for table in (
        "script_element_equipment",
        "script_element_performer_assignments",
        "script_element_conditional_rules",
        "script_element_groups",
    ):
        assert one(dba, sql.SQL("SELECT count(*) FROM callmaster.{}").format(sql.Identifier(table))) == 0


async def test_element_references_stay_inside_the_script(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth = bearer("user_a")
    script, other = stage["script"], stage["other_script"]
    outsider = (
        await client.post(f"/api/scripts/{other}/elements", json={"element_type": "cue"}, headers=auth)
    ).json()
    mine = (
        await client.post(f"/api/scripts/{script}/elements", json={"element_type": "group"}, headers=auth)
    ).json()
    elements = f"/api/scripts/{script}/elements"

    cases = [
        {"element_type": "cue", "parent_element_id": outsider["id"]},
        {"element_type": "group", "group_members": [{"child_element_id": outsider["id"]}]},
        {"element_type": "cue", "department_id": stage["foreign_department"]},
        {"element_type": "cue", "crew_assignments": [{"crew_user_id": stage["stranger"]}]},
        {"element_type": "cue", "performer_assignments": [{"performer_id": stage["stranger"]}]},
    ]
    for body in cases:
        problem = assert_problem(await client.post(elements, json=body, headers=auth), 422)
        assert problem["code"] == "23503"
    assert_problem(
        await client.patch(
            f"/api/elements/{mine['id']}", json={"parent_element_id": outsider["id"]}, headers=auth
        ),
        422,
    )
    assert_problem(
        await client.patch(
            f"/api/elements/{mine['id']}", json={"parent_element_id": mine["id"]}, headers=auth
        ),
        422,
    )
    inner = (
        await client.post(
            elements, json={"element_type": "group", "parent_element_id": mine["id"]}, headers=auth
        )
    ).json()
    problem = assert_problem(
        await client.patch(
            f"/api/elements/{mine['id']}", json={"parent_element_id": inner["id"]}, headers=auth
        ),
        422,
    )
    assert "cycle" in problem["detail"]
    problem = assert_problem(
        await client.post(
            elements,
            json={"element_type": "cue", "group_members": [{"child_element_id": mine["id"]}]},
            headers=auth,
        ),
        422,
    )
    assert "only group elements" in problem["detail"]

    for bad in (
        {"element_type": "cue", "priority": "urgent"},
        {"element_type": "scene"},
        {"cue_id": "no type"},
        {"element_type": "cue", "custom_color": "red"},
        {"element_type": "cue", "fade_in_ms": -1},
        {"element_type": "cue", "sequence": -1},
        {"element_type": "cue", "equipment": [{"equipment_name": ""}]},
        {
            "element_type": "cue",
            "conditional_rules": [
                {"condition_type": "moon", "operator": "equals", "condition_value": "full"}
            ],
        },
        {"element_type": "cue", "version": 7},
    ):
        assert_problem(await client.post(elements, json=bad, headers=auth), (400, 422))
    problem = assert_problem(
        await client.post(elements, json={"element_type": "cue", "parent_element_id": "t1"}, headers=auth),
        422,
    )
    assert problem["code"] == "22P02"
    assert_problem(
        await client.post(
            elements,
            json={"element_type": "cue", "equipment": [{"equipment_name": "fog"}, {"equipment_name": "fog"}]},
            headers=auth,
        ),
        409,
    )
    assert element_count(dba, script) == 2 and element_count(dba, other) == 1
    assert_problem(
        await client.post(
            f"/api/scripts/{stage['show']}/elements", json={"element_type": "cue"}, headers=auth
        ),
        404,
    )


async def test_bulk_update_is_one_statement_all_or_nothing(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth = bearer("user_a")
    script, other = stage["script"], stage["other_script"]
    dba.execute(
        "INSERT INTO callmaster.script_elements (script_id, element_type, sequence, cue_id) "
        "SELECT %s, 'cue', i, 'Q' || i FROM generate_series(1, 1000) AS i",
        (script,),
    )
    foreign = one(
        dba,
        "INSERT INTO callmaster.script_elements (script_id, element_type) VALUES (%s, 'cue') RETURNING id",
        (other,),
    )
    ids = [
        str(r[0])
        for r in dba.execute(
            "SELECT id FROM callmaster.script_elements WHERE script_id = %s ORDER BY sequence", (script,)
        )
    ]
    updates = [
        {"id": element_id, "time_offset_ms": 5000 - n, "priority": "high", "cue_notes": f"note {n}"}
        for n, element_id in enumerate(ids)
    ]

    r = await client.patch(f"/api/scripts/{script}/elements", json=updates, headers=auth)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["updated"] == 1000 and {e["version"] for e in result["elements"]} == {2}
    row = dba.execute(
        "SELECT count(*), min(time_offset_ms), max(time_offset_ms), count(DISTINCT updated_by), "
        "bool_and(priority = 'high' AND cue_id IS NOT NULL) FROM callmaster.script_elements "
        "WHERE script_id = %s",
        (script,),
    ).fetchone()
    assert row == (1000, 4001, 5000, 1, True)

    def state() -> list[tuple[Any, ...]]:
        return dba.execute(
            "SELECT id, version, priority, cue_notes FROM callmaster.script_elements ORDER BY id"
        ).fetchall()

    before = state()
    bad_batches = [
        ([*updates[:10], {"id": str(foreign), "priority": "low"}], 422, str(foreign)),
        (
            [*updates[:10], {"id": "00000000-0000-0000-0000-000000000000", "priority": "low"}],
            422,
            "00000000-0000-0000-0000-000000000000",
        ),
        ([updates[0], updates[0]], 422, ids[0]),
        ([{"id": ids[0], "parent_element_id": str(foreign)}], 422, str(foreign)),
        ([{"id": ids[0], "department_id": stage["foreign_department"]}], 422, stage["foreign_department"]),
        ([{"id": ids[0], "priority": "urgent"}], 400, None),
        ([{"id": ids[0], "sequence": None}], 400, None),
        ([{"id": ids[0], "colour": "red"}], 400, None),
        ([], 400, None),
    ]
    for batch, status, named in bad_batches:
        problem = assert_problem(
            await client.patch(f"/api/scripts/{script}/elements", json=batch, headers=auth), status
        )
        if named:
            assert named in problem["detail"], problem
    assert state() == before

    # The DBA's call: the same function, all or nothing too.
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        dba.execute(
            "SELECT callmaster.bulk_update_script_elements(%s, %s)",
            (script, Jsonb([{"id": ids[1], "cue_id": "X"}, {"id": str(foreign), "cue_id": "X"}])),
        )
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute(
            "SELECT callmaster.bulk_update_script_elements(%s, %s)",
            (script, Jsonb([{"id": ids[1], "cue": "X"}])),
        )
    assert state() == before


async def test_bulk_update_changes_exactly_the_fields_sent(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    script = stage["script"]

    def add(element_type: str, cue_id: str) -> str:
        return str(
            one(
                dba,
                "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, cue_notes, duration_ms, "
                "location) VALUES (%s, %s, %s, 'original notes', 1000, 'house') RETURNING id",
                (script, element_type, cue_id),
            )
        )

    def row(element_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = one(
            dba, "SELECT to_jsonb(e) FROM callmaster.script_elements AS e WHERE e.id = %s", (element_id,)
        )
        return doc

    group, every, some = add("group", "G"), add("cue", "Q1"), add("cue", "Q2")
    every_field = {
        "element_type": "note", "sequence": 42, "cue_id": "LX 7", "description": "Blackout", "cue_notes": "slow",
        "department_id": stage["department"], "parent_element_id": group, "trigger_type": "follow",
        "follows_cue_id": "LX 6", "priority": "critical", "time_offset_ms": 90_061, "duration_ms": 2500,
        "fade_in_ms": 300, "fade_out_ms": 700, "location": "booth", "location_details": "desk 2",
        "custom_color": "#12AB9f", "group_level": 1, "is_collapsed": True, "is_safety_critical": True,
        "safety_notes": "strobe", "is_active": False,
    }  # fmt: skip
    # Every column a client may set is covered (a new element field must be added to the bulk update).
    assert sorted(every_field) == sorted(one(dba, "SELECT callmaster.element_fields()"))
    before = row(some)

    r = await client.patch(
        f"/api/scripts/{script}/elements",
        json=[{"id": every, **every_field}, {"id": some, "cue_notes": None, "is_active": False}],
        headers=bearer("user_a"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == 2
    stored = row(every)
    assert {name: stored[name] for name in every_field} == every_field
    assert stored["version"] == 2 and stored["updated_by"] == stage["owner"]
    after = row(some)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {"cue_notes", "is_active", "version", "updated_by", "updated_at"}
    assert (after["cue_notes"], after["is_active"], after["version"]) == (None, False, 2)
    assert (after["duration_ms"], after["location"], after["cue_id"]) == (1000, "house", "Q2")

    # A DBA's call converts values like jsonb_populate_record and fails like it; nothing changes.
    snapshot = [row(every), row(some)]
    bad_values = [
        ({"sequence": "abc"}, psycopg.errors.InvalidTextRepresentation),
        ({"time_offset_ms": 2**63}, psycopg.errors.NumericValueOutOfRange),
        ({"priority": None}, psycopg.errors.NotNullViolation),
        ({"location": "roof"}, psycopg.errors.CheckViolation),
        ({"parent_element_id": some}, psycopg.errors.CheckViolation),  # its own parent
    ]
    for fields, error in bad_values:
        with pytest.raises(error):
            dba.execute(
                "SELECT callmaster.bulk_update_script_elements(%s, %s)",
                (script, Jsonb([{"id": every, "cue_id": "X"}, {"id": some, **fields}])),
            )
    assert [row(every), row(some)] == snapshot
    result = one(
        dba,
        "SELECT callmaster.bulk_update_script_elements(%s, %s)",
        (script, Jsonb([{"id": some, "sequence": "7", "is_collapsed": "true", "cue_notes": 5}])),
    )
    assert result["elements"] == [{"id": some, "version": 3}]
    assert (row(some)["sequence"], row(some)["is_collapsed"], row(some)["cue_notes"]) == (7, True, "5")


def test_bulk_update_of_unindexed_columns_is_hot(dba: psycopg.Connection[Any], stage: dict[str, Any]) -> None:
    """Freshly loaded elements leave room on their page (fillfactor 50), so a bulk update that keeps
    every indexed column stays on the page (HOT, no index entries) from the first pass."""
    script = stage["script"]
    ids = [
        str(r[0])
        for r in dba.execute(
            "INSERT INTO callmaster.script_elements (script_id, element_type, sequence, cue_id, description) "
            "SELECT %s, 'cue', i, 'Q' || i, 'Element ' || i FROM generate_series(1, 500) AS i RETURNING id",
            (script,),
        )
    ]
    updates = [
        {"id": element_id, "description": f"Rev 2 of {n}", "time_offset_ms": 1000 * n, "priority": "high"}
        for n, element_id in enumerate(ids)
    ]
    counts = (
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
        "WHERE relid = 'callmaster.script_elements'::regclass"
    )
    with dba.transaction():
        upd_before, hot_before = dba.execute(counts).fetchone() or (0, 0)
        dba.execute("SELECT callmaster.bulk_update_script_elements(%s, %s)", (script, Jsonb(updates)))
        upd_after, hot_after = dba.execute(counts).fetchone() or (0, 0)
    assert (upd_after - upd_before, hot_after - hot_before) == (500, 500)


async def test_auto_sort_orders_by_time_and_keeps_ties_stable(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth = bearer("user_a")
    script = stage["script"]
    # (label, sequence, time_offset_ms): B, D and E tie at 2000 and must keep their order B, D, E.
    rows = [
        ("A", 1, 3000),
        ("B", 2, 2000),
        ("C", 3, 500),
        ("D", 4, 2000),
        ("E", 7, 2000),
        ("F", 9, 0),
        ("G", 9, 4000),
    ]
    for label, sequence, offset in rows:
        dba.execute(
            "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id, sequence, "
            "time_offset_ms) VALUES (%s, 'cue', %s, %s, %s)",
            (script, label, sequence, offset),
        )

    r = await client.post(f"/api/scripts/{script}/elements/auto-sort", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == {"script_id": script, "renumbered": 6}  # D keeps 4
    items = (await client.get(f"/api/scripts/{script}/elements", headers=auth)).json()["items"]
    assert [(e["cue_id"], e["sequence"]) for e in items] == [
        ("F", 1),
        ("C", 2),
        ("B", 3),
        ("D", 4),
        ("E", 5),
        ("A", 6),
        ("G", 7),
    ]
    assert {e["cue_id"]: e["version"] for e in items} == {
        "A": 2,
        "B": 2,
        "C": 2,
        "D": 1,
        "E": 2,
        "F": 2,
        "G": 2,
    }
    assert {e["updated_by"] for e in items if e["cue_id"] != "D"} == {stage["owner"]}

    again = await client.post(f"/api/scripts/{script}/elements/auto-sort", headers=auth)
    assert again.json()["renumbered"] == 0
    assert_problem(await client.post(f"/api/scripts/{stage['show']}/elements/auto-sort", headers=auth), 404)


async def test_edit_batch_with_temp_ids(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth = bearer("user_a")
    script = stage["script"]
    edits = f"/api/scripts/{script}/edits"
    existing = [
        (
            await client.post(
                f"/api/scripts/{script}/elements", json={"element_type": "cue", "cue_id": label}, headers=auth
            )
        ).json()
        for label in ("Q1", "Q2", "Q3")
    ]

    r = await client.post(
        edits,
        json={
            "operations": [
                {"op": "create", "temp_id": "grp", "data": {"element_type": "group", "cue_id": "G"}},
                {
                    "op": "create",
                    "temp_id": "new",
                    "data": {
                        "element_type": "cue",
                        "cue_id": "Q4",
                        "parent_element_id": "grp",
                        "equipment": [{"equipment_name": "strobe"}],
                    },
                },
                {
                    "op": "update",
                    "id": "grp",
                    "data": {
                        "group_members": [
                            {"child_element_id": "new"},
                            {"child_element_id": existing[0]["id"]},
                        ]
                    },
                },
                {"op": "move", "id": "grp", "after_id": existing[0]["id"], "base_version": 5},
                {
                    "op": "update",
                    "id": existing[1]["id"],
                    "base_version": 1,
                    "data": {"description": "cue two"},
                },
                {"op": "move", "id": existing[2]["id"], "after_id": None, "base_version": 1},
                {"op": "delete", "id": existing[1]["id"], "base_version": 1},
            ]
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch["applied"] == 7 and set(batch["temp_ids"]) == {"grp", "new"}
    assert [res["index"] for res in batch["results"]] == list(range(7))
    group_id, new_id = batch["temp_ids"]["grp"], batch["temp_ids"]["new"]
    items = (await client.get(f"/api/scripts/{script}/elements", headers=auth)).json()["items"]
    assert [e["cue_id"] for e in items] == ["Q3", "Q1", "G", "Q4"]
    assert [e["sequence"] for e in items] == [1, 2, 3, 5]
    group = next(e for e in items if e["id"] == group_id)
    assert group["group_members"] == [
        {"child_element_id": new_id, "order_in_group": 0},
        {"child_element_id": existing[0]["id"], "order_in_group": 1},
    ]
    assert next(e for e in items if e["id"] == new_id)["parent_element_id"] == group_id

    def state() -> list[tuple[Any, ...]]:
        return dba.execute(
            "SELECT id, version, sequence, cue_id, description FROM callmaster.script_elements ORDER BY id"
        ).fetchall()

    before = state()
    q1 = existing[0]
    failing = [
        # (operations, status, detail fragment)
        (
            [
                {"op": "create", "temp_id": "x", "data": {"element_type": "cue"}},
                {"op": "update", "id": q1["id"], "data": {"cue_id": "changed"}},
                {"op": "update", "id": "nope", "data": {"cue_id": "y"}},
            ],
            422,
            "operations[2] (update)",
        ),
        (
            [
                {"op": "update", "id": q1["id"], "data": {"cue_id": "changed"}},
                {"op": "delete", "id": group_id, "base_version": 1},
            ],
            409,
            "operations[1] (delete)",
        ),
        (
            [{"op": "create", "data": {"element_type": "cue", "parent_element_id": stage["other_script"]}}],
            422,
            "operations[0] (create)",
        ),
        (
            [
                {"op": "create", "temp_id": "a", "data": {"element_type": "cue"}},
                {"op": "create", "temp_id": "a", "data": {"element_type": "cue"}},
            ],
            422,
            "operations[1] (create)",
        ),
        ([{"op": "move", "id": q1["id"], "after_id": q1["id"]}], 422, "operations[0] (move)"),
        ([{"op": "update", "id": q1["id"], "data": {"priority": "urgent"}}], 400, None),
        ([{"op": "rename", "id": q1["id"]}], 400, None),
        ([], 400, None),
    ]
    for operations, status, fragment in failing:
        problem = assert_problem(
            await client.post(edits, json={"operations": operations}, headers=auth), status
        )
        if fragment:
            assert fragment in problem["detail"], problem
            assert "nothing was applied" in problem["detail"]
    assert state() == before

    # The DBA's call names the operation the same way.
    with pytest.raises(psycopg.errors.CheckViolation, match=r"operations\[1\] \(update\)"):
        dba.execute(
            "SELECT callmaster.apply_script_edits(%s, %s)",
            (
                script,
                Jsonb(
                    [
                        {"op": "delete", "id": new_id},
                        {"op": "update", "id": q1["id"], "data": {"priority": "urgent"}},
                    ]
                ),
            ),
        )
    assert state() == before


def test_two_stage_managers_editing_at_once(
    db_url: str, dba: psycopg.Connection[Any], stage: dict[str, Any]
) -> None:
    """Two batches based on the same version of an element, on parallel connections: the first wins,
    the second waits for it and then answers 55000 (409) without applying anything."""
    script = stage["script"]
    element = str(
        one(
            dba,
            "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id) VALUES (%s, 'cue', 'Q1') "
            "RETURNING id",
            (script,),
        )
    )

    def batch(cue: str) -> Jsonb:
        return Jsonb(
            [
                {"op": "create", "temp_id": "n", "data": {"element_type": "note", "cue_id": f"by {cue}"}},
                {"op": "update", "id": element, "base_version": 1, "data": {"cue_id": cue}},
            ]
        )

    outcome: dict[str, Any] = {}
    claims = '{"sub": "user_a"}'
    with psycopg.connect(db_url) as first, psycopg.connect(db_url) as second:
        for conn in (first, second):
            conn.execute("SELECT set_config('request.jwt.claims', %s, false), set_config('role', 'keel_api', false)",
                         (claims,))  # fmt: skip
        first.execute("SELECT callmaster.apply_script_edits(%s, %s)", (script, batch("first")))

        def run_second() -> None:
            try:
                second.execute("SELECT callmaster.apply_script_edits(%s, %s)", (script, batch("second")))
                second.commit()
                outcome["second"] = "applied"
            except psycopg.Error as exc:
                second.rollback()
                outcome["second"] = (exc.sqlstate, str(exc))

        thread = threading.Thread(target=run_second)
        thread.start()
        wait_until_blocked(dba, second.info.backend_pid)
        first.commit()
        thread.join(timeout=30)
    state, message = outcome["second"]
    assert state == "55000" and "operations[1] (update)" in message
    rows = dba.execute("SELECT cue_id, version FROM callmaster.script_elements ORDER BY cue_id").fetchall()
    assert rows == [("by first", 1), ("first", 2)]


async def test_nasty_input_is_a_4xx_problem_never_a_500(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, stage: dict[str, Any]
) -> None:
    auth = bearer("user_a")
    script = stage["script"]
    group = (
        await client.post(f"/api/scripts/{script}/elements", json={"element_type": "group"}, headers=auth)
    ).json()
    cue = (
        await client.post(f"/api/scripts/{script}/elements", json={"element_type": "cue"}, headers=auth)
    ).json()
    requests: list[tuple[str, str, Any]] = [
        (
            "POST",
            f"/api/scripts/{script}/elements",
            {"element_type": "cue", "description": "nul \u0000 byte"},
        ),
        ("POST", f"/api/scripts/{script}/elements", {"element_type": "cue", "time_offset_ms": 2**63}),
        ("POST", f"/api/scripts/{script}/elements", {"element_type": "cue", "sequence": 2**31}),
        ("POST", f"/api/scripts/{script}/elements", {"element_type": "cue", "equipment": "fog"}),
        (
            "POST",
            f"/api/scripts/{script}/elements",
            {"element_type": "cue", "equipment": [{"equipment_name": 5}]},
        ),
        ("POST", f"/api/scripts/{script}/elements", ["not", "an", "object"]),
        ("PATCH", f"/api/elements/{group['id']}", {"group_members": [{"child_element_id": group["id"]}]}),
        ("PATCH", f"/api/elements/{group['id']}", {"group_members": [{"child_element_id": "t9"}]}),
        ("PATCH", f"/api/elements/{cue['id']}", {"base_version": 0}),
        ("PATCH", f"/api/scripts/{script}/elements", [{"id": cue["id"], "parent_element_id": cue["id"]}]),
        ("PATCH", f"/api/scripts/{script}/elements", {"id": cue["id"]}),
        ("PATCH", f"/api/scripts/{script}/elements", [{"id": "x"}]),
        (
            "POST",
            f"/api/scripts/{script}/edits",
            {
                "operations": [
                    {
                        "op": "create",
                        "data": {"element_type": "group", "group_members": [{"child_element_id": "later"}]},
                    }
                ]
            },
        ),
        (
            "POST",
            f"/api/scripts/{script}/edits",
            {"operations": [{"op": "delete", "id": cue["id"]}, {"op": "move", "id": cue["id"]}]},
        ),
        (
            "POST",
            f"/api/scripts/{script}/edits",
            {"operations": [{"op": "move", "id": cue["id"], "after_id": "x"}]},
        ),
        ("POST", f"/api/scripts/{script}/edits", {"operations": "all"}),
        ("POST", f"/api/shows/{stage['show']}/crew", {"user_id": stage["crew"], "show_role": "x" * 101}),
        ("GET", f"/api/scripts/{script}/elements?limit=0", None),
        ("GET", f"/api/scripts/{script}/elements?offset=-1", None),
        ("DELETE", f"/api/elements/{cue['id']}?base_version=abc", None),
    ]
    for method, path, body in requests:
        r = await client.request(method, path, json=body, headers=auth)
        assert 400 <= r.status_code < 500, (method, path, body, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert element_count(dba, script) == 2

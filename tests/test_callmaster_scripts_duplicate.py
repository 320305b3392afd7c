"""`callmaster.duplicate_script` / `POST /api/scripts/{id}/duplicate`: a structurally identical, fully
independent deep copy of a 1,200-element script with nested groups and every supporting table populated."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.callmaster_checks import orphans, snapshot
from tests.database import explained_plans
from tests.factories import (
    Bearer,
    add_crew,
    add_department,
    add_script,
    add_show,
    add_user,
    assert_problem,
    fill_script,
    one,
)

ELEMENTS = 1200


@pytest.fixture
def big_script(dba: psycopg.Connection[Any]) -> dict[str, Any]:
    owner = add_user(dba, "user_a")
    crew = (add_crew(dba, owner, "lx@example.com"), add_crew(dba, owner, "sd@example.com"))
    performer = add_crew(dba, owner, "ophelia@example.com")
    show = add_show(dba, owner)
    script = add_script(dba, show)
    dba.execute(
        "UPDATE callmaster.scripts SET notes = 'prompt copy', status = 'final', start_time = '2026-05-01 19:30Z', "
        "end_time = '2026-05-01 22:00Z', actual_start_time = '2026-05-01 19:34Z' WHERE id = %s",
        (script,),
    )
    fill_script(
        dba, script, ELEMENTS, department_id=add_department(dba, owner), crew_ids=crew, performer_id=performer
    )
    return {"owner": owner, "show": show, "script": script}


def references_into(dba: psycopg.Connection[Any], copy: str, original: str) -> int:
    """Rows of the copy that point at an element of the original script."""
    return int(
        one(
            dba,
            """
            SELECT (SELECT count(*) FROM callmaster.script_elements AS e
                    JOIN callmaster.script_elements AS p ON p.id = e.parent_element_id
                    WHERE e.script_id = %(copy)s AND p.script_id <> %(copy)s)
                 + (SELECT count(*) FROM callmaster.script_element_groups AS g
                    JOIN callmaster.script_elements AS x ON x.id IN (g.group_id, g.child_element_id)
                    WHERE g.script_id = %(copy)s AND x.script_id <> %(copy)s)
                 + (SELECT count(*) FROM callmaster.script_elements AS e
                    WHERE e.script_id = %(copy)s
                      AND e.id IN (SELECT o.id FROM callmaster.script_elements AS o WHERE o.script_id = %(original)s))
            """,
            {"copy": copy, "original": original},
        )
    )


async def test_duplicate_is_structurally_identical_and_independent(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, big_script: dict[str, Any]
) -> None:
    original = big_script["script"]
    before = snapshot(dba, original)
    assert len(before["elements"]) == ELEMENTS
    assert all(before[table] for table in ("equipment", "crew", "performers", "rules", "groups"))
    nested = one(
        dba,
        """SELECT count(*) FROM callmaster.script_elements AS e
                         JOIN callmaster.script_elements AS p ON p.id = e.parent_element_id
                         WHERE e.script_id = %s AND e.element_type = 'group' AND p.element_type = 'group'""",
        (original,),
    )
    assert nested > 0  # groups inside groups

    r = await client.post(f"/api/scripts/{original}/duplicate", headers=bearer("user_a"))
    assert r.status_code == 201, r.text
    copy = r.json()
    assert r.headers["location"] == f"/api/scripts/{copy['id']}"
    assert (
        copy["name"] == "Main (copy)" and copy["status"] == "copy" and copy["show_id"] == big_script["show"]
    )
    assert copy["notes"] == "prompt copy" and copy["actual_start_time"] is None
    assert copy["element_count"] == ELEMENTS

    assert snapshot(dba, copy["id"]) == before
    assert references_into(dba, copy["id"], original) == 0
    assert (
        one(
            dba,
            "SELECT count(*) FROM callmaster.script_elements WHERE script_id = %s AND version <> 1",
            (copy["id"],),
        )
        == 0
    )

    # Independence: edit, then delete, the original; the copy does not move.
    dba.execute(
        "UPDATE callmaster.script_elements SET description = 'changed', parent_element_id = NULL "
        "WHERE script_id = %s",
        (original,),
    )
    dba.execute(
        "DELETE FROM callmaster.script_element_equipment AS x USING callmaster.script_elements AS e "
        "WHERE e.id = x.element_id AND e.script_id = %s",
        (original,),
    )
    assert snapshot(dba, copy["id"]) == before
    r = await client.delete(f"/api/scripts/{original}", headers=bearer("user_a"))
    assert r.status_code == 204, r.text
    assert one(dba, "SELECT count(*) FROM callmaster.script_elements WHERE script_id = %s", (original,)) == 0
    assert snapshot(dba, copy["id"]) == before
    assert all(n == 0 for n in orphans(dba).values())

    # And the other way round: editing the copy leaves a second copy of it alone.
    second = one(dba, "SELECT callmaster.duplicate_script(%s, 'second')", (copy["id"],))
    dba.execute(
        "DELETE FROM callmaster.script_elements WHERE script_id = %s AND element_type = 'group'",
        (copy["id"],),
    )
    assert snapshot(dba, str(second)) == before


def test_duplicate_from_psql_into_another_show(
    dba: psycopg.Connection[Any], big_script: dict[str, Any]
) -> None:
    other_show = add_show(dba, big_script["owner"], "Macbeth")
    copy = str(
        one(dba, "SELECT callmaster.duplicate_script(%s, %s, %s)", (big_script["script"], "Tour", other_show))
    )
    row = dba.execute(
        "SELECT show_id, name, owner_id FROM callmaster.scripts WHERE id = %s", (copy,)
    ).fetchone()
    assert row is not None and (str(row[0]), row[1], str(row[2])) == (other_show, "Tour", big_script["owner"])
    assert snapshot(dba, copy) == snapshot(dba, big_script["script"])

    stranger_show = add_show(dba, add_user(dba, "user_b"), "Not yours")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        dba.execute("SELECT callmaster.duplicate_script(%s, NULL, %s)", (big_script["script"], stranger_show))
    with pytest.raises(psycopg.errors.NoDataFound):
        dba.execute("SELECT callmaster.duplicate_script(gen_random_uuid())")
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute("SELECT callmaster.duplicate_script(%s, '  ')", (big_script["script"],))
    assert one(dba, "SELECT count(*) FROM callmaster.scripts") == 2


async def test_duplicate_api_options_errors_and_idempotency(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    owner = add_user(dba, "user_a")
    stranger = add_user(dba, "user_b")
    show, other_show = add_show(dba, owner), add_show(dba, owner, "Macbeth")
    foreign_show = add_show(dba, stranger, "Theirs")
    script = add_script(dba, show)
    dba.execute(
        "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id) VALUES (%s, 'cue', 'Q1')",
        (script,),
    )
    auth = bearer("user_a")

    r = await client.post(
        f"/api/scripts/{script}/duplicate", json={"name": "Tour", "show_id": other_show}, headers=auth
    )
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["show_id"], r.json()["element_count"]) == ("Tour", other_show, 1)

    body = assert_problem(
        await client.post(f"/api/scripts/{script}/duplicate", json={"show_id": foreign_show}, headers=auth),
        422,
    )
    assert foreign_show in body["detail"]
    assert_problem(
        await client.post(f"/api/scripts/{script}/duplicate", json={"name": ""}, headers=auth), 400
    )
    assert_problem(
        await client.post(f"/api/scripts/{script}/duplicate", json={"nom": "x"}, headers=auth), 400
    )
    assert_problem(await client.post(f"/api/scripts/{script}/duplicate", headers=bearer("user_b")), 404)
    assert_problem(await client.post(f"/api/scripts/{foreign_show}/duplicate", headers=auth), 404)

    key = {"Idempotency-Key": "dup-1", **auth}
    first = await client.post(f"/api/scripts/{script}/duplicate", json={"name": "Once"}, headers=key)
    again = await client.post(f"/api/scripts/{script}/duplicate", json={"name": "Once"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and again.headers.get("idempotent-replayed") == "true"
    assert one(dba, "SELECT count(*) FROM callmaster.scripts WHERE name = 'Once'") == 1
    assert_problem(
        await client.post(f"/api/scripts/{script}/duplicate", json={"name": "Other"}, headers=key), 422
    )


async def test_copy_is_authored_by_the_acting_user(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, big_script: dict[str, Any]
) -> None:
    """Through the API every copied element is created and last updated by the requesting user; a DBA's
    copy (no acting user) keeps each element's authorship as it was in the original."""
    original, owner = big_script["script"], big_script["owner"]
    editor = add_crew(dba, owner, "editor@example.com")
    dba.execute(
        "UPDATE callmaster.script_elements SET created_by = CASE WHEN sequence %% 2 = 0 THEN %s::uuid END, "
        "updated_by = %s WHERE script_id = %s",
        (editor, editor, original),
    )

    def authors(script: str) -> list[tuple[Any, ...]]:
        return dba.execute(
            "SELECT cue_id, created_by::text, updated_by::text FROM callmaster.script_elements "
            "WHERE script_id = %s ORDER BY cue_id",
            (script,),
        ).fetchall()

    r = await client.post(f"/api/scripts/{original}/duplicate", headers=bearer("user_a"))
    assert r.status_code == 201, r.text
    copied = authors(r.json()["id"])
    assert len(copied) == ELEMENTS and {(c, u) for _, c, u in copied} == {(owner, owner)}

    by_dba = str(one(dba, "SELECT callmaster.duplicate_script(%s, 'by a DBA')", (original,)))
    assert authors(by_dba) == authors(original)
    assert {c for _, c, _ in authors(by_dba)} == {editor, None}


def test_copied_ids_are_derived_from_the_copy_and_the_original(
    dba: psycopg.Connection[Any], big_script: dict[str, Any]
) -> None:
    """A copied element's id (and its parent) is callmaster.copied_id(copy, original element's id): a version-8
    UUID, different for every copy of the same script."""
    original = big_script["script"]
    first, second = (
        str(one(dba, "SELECT callmaster.duplicate_script(%s, %s)", (original, name)))
        for name in ("one", "two")
    )
    for copy in (first, second):
        mismatched = one(
            dba,
            """
            SELECT count(*)
            FROM callmaster.script_elements AS o
            LEFT JOIN callmaster.script_elements AS c
                   ON c.id = callmaster.copied_id(%(copy)s, o.id) AND c.script_id = %(copy)s
                  AND c.cue_id = o.cue_id
                  AND c.parent_element_id IS NOT DISTINCT FROM callmaster.copied_id(%(copy)s, o.parent_element_id)
            WHERE o.script_id = %(original)s AND c.id IS NULL
            """,
            {"copy": copy, "original": original},
        )
        assert mismatched == 0
        ids = [
            row[0]
            for row in dba.execute("SELECT id FROM callmaster.script_elements WHERE script_id = %s", (copy,))
        ]
        assert len(ids) == ELEMENTS
        assert all(i.version == 8 and i.variant == uuid.RFC_4122 for i in ids)
    assert one(dba, "SELECT callmaster.copied_id(%s, NULL)", (first,)) is None
    assert (
        one(
            dba,
            "SELECT count(*) FROM callmaster.script_elements AS a JOIN callmaster.script_elements AS b USING (id) "
            "WHERE a.script_id = %s AND b.script_id = %s",
            (first, second),
        )
        == 0
    )


def nested_loops_over_a_cte(plan: dict[str, Any]) -> list[str]:
    """Nested Loop nodes whose inner side rescans a CTE (once per outer row: quadratic in the copy's size)."""
    found = []
    children = plan.get("Plans", [])
    if plan["Node Type"] == "Nested Loop" and children[1]["Node Type"] in ("CTE Scan", "Materialize"):
        found.append(children[1].get("CTE Name", children[1]["Node Type"]))
    for child in children:
        found += nested_loops_over_a_cte(child)
    return found


def test_copy_stays_linear_under_a_generic_plan_with_small_script_statistics(
    dba: psycopg.Connection[Any], big_script: dict[str, Any]
) -> None:
    """A pooled connection plans duplicate_script's statement generically from its sixth copy on, from statistics
    in which a script has a few elements (or, for a script created since the last ANALYZE, none). The copy must
    not then loop over a map of its own elements per row: that made a 10,000-element copy take 3.6 s instead of
    0.8 s (a join of the group memberships with an old->new id map in a CTE, planned as a nested loop)."""
    show = big_script["show"]
    dba.execute(
        "INSERT INTO callmaster.scripts (show_id, name) SELECT %s, 'Small ' || g FROM generate_series(1, 400) AS g",
        (show,),
    )
    dba.execute(
        """
        INSERT INTO callmaster.script_elements (script_id, element_type, sequence)
        SELECT s.id, t.element_type, t.sequence
        FROM callmaster.scripts AS s, (VALUES ('group', 0), ('cue', 1)) AS t (element_type, sequence)
        WHERE s.name LIKE 'Small %%'
        """
    )
    dba.execute(
        """
        INSERT INTO callmaster.script_element_groups (group_id, child_element_id, script_id, order_in_group)
        SELECT g.id, c.id, g.script_id, 0
        FROM callmaster.script_elements AS g
        JOIN callmaster.script_elements AS c ON c.script_id = g.script_id AND c.element_type = 'cue'
        JOIN callmaster.scripts AS s ON s.id = g.script_id AND s.name LIKE 'Small %%'
        WHERE g.element_type = 'group'
        """
    )
    dba.execute("ANALYZE callmaster.script_elements, callmaster.script_element_groups")

    with explained_plans(dba, {"plan_cache_mode": "force_generic_plan"}) as explained:
        copy = str(one(dba, "SELECT callmaster.duplicate_script(%s)", (big_script["script"],)))
    plans = [e["Plan"] for e in explained]
    assert any(p["Node Type"] == "Result" and "CTE" in json.dumps(p) for p in plans)  # the copy's statement
    assert [name for p in plans for name in nested_loops_over_a_cte(p)] == []
    assert snapshot(dba, copy) == snapshot(dba, big_script["script"])


def index_conditions(plan: dict[str, Any]) -> list[str]:
    """The "Index Cond" of every index scan in a plan tree."""
    found = [plan["Index Cond"]] if "Index Cond" in plan else []
    for child in plan.get("Plans", []):
        found += index_conditions(child)
    return found


def test_a_dbas_delete_of_a_copy_finds_each_link_by_its_element(
    dba: psycopg.Connection[Any], big_script: dict[str, Any]
) -> None:
    """A raw DELETE of a script cascades once per element: to its group memberships (as group and as member)
    and to its children's parent links. Each of those statements must find its rows by the element, never
    by the script alone and a filter: a copy made after the last ANALYZE is a script the statistics do not
    know, and an index matching script_id only then looked as good, which made deleting a 10,000-element
    script quadratic (16-22 s instead of 0.8 s)."""
    dba.execute("ANALYZE callmaster.script_elements, callmaster.script_element_groups")
    copy = str(one(dba, "SELECT callmaster.duplicate_script(%s)", (big_script["script"],)))
    with explained_plans(dba) as explained:
        dba.execute("DELETE FROM callmaster.scripts WHERE id = %s", (copy,))
    links = {
        '"script_element_groups" WHERE $1 OPERATOR(pg_catalog.=) "script_id" AND $2 OPERATOR(pg_catalog.=) '
        f'"{column}"': column
        for column in ("group_id", "child_element_id")
    } | {'SET "parent_element_id" = NULL WHERE': "parent_element_id"}
    seen = {column: 0 for column in links.values()}
    for entry in explained:
        for text, column in links.items():
            if text in entry["Query Text"]:
                seen[column] += 1
                conditions = index_conditions(entry["Plan"])
                assert conditions and all(column in c for c in conditions), (column, entry["Plan"])
    assert seen["group_id"] == seen["child_element_id"] == ELEMENTS, seen
    assert seen["parent_element_id"] == ELEMENTS, seen
    assert one(dba, "SELECT count(*) FROM callmaster.script_elements WHERE script_id = %s", (copy,)) == 0

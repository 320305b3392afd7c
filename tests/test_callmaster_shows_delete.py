"""`callmaster.delete_show`: everything under a show goes in one transaction, from the API and from psql,
leaving no orphan in any callmaster table; a duplicate of one of its scripts racing the delete either
completes before it or fails cleanly — never a half copy."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg
import pytest

from tests.callmaster_checks import CALLMASTER_TABLES, orphans, rows_under_show, wait_until_blocked
from tests.factories import (
    Bearer,
    add_crew,
    add_department,
    add_script,
    add_show,
    add_user,
    assert_problem,
    assign,
    fill_script,
    one,
)

NO_ORPHANS = dict.fromkeys(CALLMASTER_TABLES[1:], 0)  # every table but users


@pytest.fixture
def production(dba: psycopg.Connection[Any]) -> dict[str, Any]:
    """Owner user_a with two shows, each with crew and two scripts full of elements."""
    owner = add_user(dba, "user_a")
    crew = (add_crew(dba, owner, "lx@example.com"), add_crew(dba, owner, "sd@example.com"))
    performer = add_crew(dba, owner, "ophelia@example.com")
    department = add_department(dba, owner)
    shows = {}
    for name in ("Hamlet", "Macbeth"):
        show = add_show(dba, owner, name)
        for user in crew:
            assign(dba, show, user)
        scripts = [add_script(dba, show, "Main"), add_script(dba, show, "Understudy")]
        for script in scripts:
            fill_script(dba, script, 150, department_id=department, crew_ids=crew, performer_id=performer)
        shows[name] = {"id": show, "scripts": scripts}
    return {"owner": owner, "crew": crew, "performer": performer, "department": department, "shows": shows}


def expected_counts(dba: psycopg.Connection[Any], show: str) -> dict[str, int]:
    counts = rows_under_show(dba, show)
    assert all(counts.values()), counts  # every table has rows under the show
    return counts


async def test_delete_show_from_api(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer, production: dict[str, Any]
) -> None:
    hamlet, macbeth = production["shows"]["Hamlet"]["id"], production["shows"]["Macbeth"]["id"]
    expected_counts(dba, hamlet)
    untouched = rows_under_show(dba, macbeth)

    r = await client.delete(f"/api/shows/{hamlet}", headers=bearer("user_a"))
    assert r.status_code == 204, r.text
    assert r.content == b""

    assert all(n == 0 for n in rows_under_show(dba, hamlet).values())
    assert rows_under_show(dba, macbeth) == untouched
    assert orphans(dba) == NO_ORPHANS
    # Users, crews and departments are not part of a show.
    assert one(dba, "SELECT count(*) FROM callmaster.users") == 4
    assert one(dba, "SELECT count(*) FROM callmaster.departments") == 1
    assert_problem(
        await client.get(
            f"/api/scripts/{production['shows']['Hamlet']['scripts'][0]}", headers=bearer("user_a")
        ),
        404,
    )


def test_delete_show_from_psql_returns_per_table_counts(
    dba: psycopg.Connection[Any], production: dict[str, Any]
) -> None:
    hamlet, macbeth = production["shows"]["Hamlet"]["id"], production["shows"]["Macbeth"]["id"]
    expected = expected_counts(dba, hamlet)
    untouched = rows_under_show(dba, macbeth)

    counts = dict(
        dba.execute("SELECT table_name, deleted_rows FROM callmaster.delete_show(%s)", (hamlet,)).fetchall()
    )
    assert counts == expected
    assert counts["scripts"] == 2 and counts["script_elements"] == 300 and counts["crew_assignments"] == 2

    assert all(n == 0 for n in rows_under_show(dba, hamlet).values())
    assert rows_under_show(dba, macbeth) == untouched
    assert orphans(dba) == NO_ORPHANS
    with pytest.raises(psycopg.errors.NoDataFound):
        dba.execute("SELECT * FROM callmaster.delete_show(%s)", (hamlet,))


def test_duplicate_first_then_delete_show_removes_the_copy_too(
    db_url: str, dba: psycopg.Connection[Any], production: dict[str, Any]
) -> None:
    """The copy's transaction holds the show (FOR KEY SHARE): delete_show waits, then deletes the copy too."""
    show = production["shows"]["Hamlet"]["id"]
    script = production["shows"]["Hamlet"]["scripts"][0]
    outcome: dict[str, Any] = {}
    with psycopg.connect(db_url) as copier, psycopg.connect(db_url, autocommit=True) as deleter:
        copy_id = one(copier, "SELECT callmaster.duplicate_script(%s)", (script,))  # type: ignore[arg-type]

        def delete() -> None:
            outcome["counts"] = dict(
                deleter.execute(
                    "SELECT table_name, deleted_rows FROM callmaster.delete_show(%s)", (show,)
                ).fetchall()
            )

        thread = threading.Thread(target=delete)
        thread.start()
        wait_until_blocked(dba, deleter.info.backend_pid)
        copier.commit()
        thread.join(timeout=30)
    assert outcome["counts"]["scripts"] == 3  # the two scripts and the committed copy
    assert outcome["counts"]["script_elements"] == 450
    assert one(dba, "SELECT count(*) FROM callmaster.scripts WHERE id = %s", (copy_id,)) == 0
    assert all(n == 0 for n in rows_under_show(dba, show).values())
    assert orphans(dba) == NO_ORPHANS


def test_delete_show_first_then_duplicate_fails_cleanly(
    db_url: str, dba: psycopg.Connection[Any], production: dict[str, Any]
) -> None:
    """delete_show holds the show FOR UPDATE: the copy (into another show) waits, then fails with P0002."""
    show = production["shows"]["Hamlet"]["id"]
    target = production["shows"]["Macbeth"]["id"]
    script = production["shows"]["Hamlet"]["scripts"][0]
    before = rows_under_show(dba, target)
    outcome: dict[str, Any] = {}
    with psycopg.connect(db_url) as deleter, psycopg.connect(db_url, autocommit=True) as copier:
        deleter.execute("SELECT * FROM callmaster.delete_show(%s)", (show,)).fetchall()

        def duplicate() -> None:
            try:
                copier.execute("SELECT callmaster.duplicate_script(%s, 'copy', %s)", (script, target))
                outcome["result"] = "copied"
            except psycopg.Error as exc:
                outcome["result"] = exc.sqlstate

        thread = threading.Thread(target=duplicate)
        thread.start()
        wait_until_blocked(dba, copier.info.backend_pid)
        deleter.commit()
        thread.join(timeout=30)
    assert outcome["result"] == "P0002"
    assert rows_under_show(dba, target) == before
    assert one(dba, "SELECT count(*) FROM callmaster.scripts WHERE name = 'copy'") == 0
    assert orphans(dba) == NO_ORPHANS


def race_duplicate(
    db_url: str,
    barrier: threading.Barrier,
    results: dict[str, Any],
    key: str,
    script: str,
    name: str,
    into: str,
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        barrier.wait()
        try:
            results[key] = str(
                one(conn, "SELECT callmaster.duplicate_script(%s, %s, %s)", (script, name, into))
            )  # type: ignore[arg-type]
        except psycopg.Error as exc:
            results[key] = exc.sqlstate


def race_delete(db_url: str, barrier: threading.Barrier, results: dict[str, Any], show: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        barrier.wait()
        results["delete"] = conn.execute("SELECT * FROM callmaster.delete_show(%s)", (show,)).fetchall()


def test_racing_duplicates_and_delete_show_never_leave_a_half_copy(
    db_url: str, dba: psycopg.Connection[Any], production: dict[str, Any]
) -> None:
    """Real parallel connections started together, several rounds: each copy is complete or absent."""
    target = production["shows"]["Macbeth"]["id"]
    owner, crew, performer = production["owner"], production["crew"], production["performer"]
    department = production["department"]
    outcomes: list[str] = []
    for round_no in range(6):
        show = add_show(dba, owner, f"Round {round_no}")
        script = add_script(dba, show)
        fill_script(dba, script, 200, department_id=department, crew_ids=crew, performer_id=performer)
        source_rows = rows_under_show(dba, show)
        barrier = threading.Barrier(3)
        results: dict[str, Any] = {}
        threads = [
            threading.Thread(
                target=race_duplicate,
                args=(db_url, barrier, results, "elsewhere", script, f"copy {round_no} elsewhere", target),
            ),
            threading.Thread(
                target=race_duplicate,
                args=(db_url, barrier, results, "same show", script, f"copy {round_no} same", show),
            ),
            threading.Thread(target=race_delete, args=(db_url, barrier, results, show)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert isinstance(results["delete"], list)
        assert all(n == 0 for n in rows_under_show(dba, show).values())
        copied = results["elsewhere"]
        if copied == "P0002":
            outcomes.append("failed")
            assert (
                one(
                    dba,
                    "SELECT count(*) FROM callmaster.scripts WHERE name = %s",
                    (f"copy {round_no} elsewhere",),
                )
                == 0
            )
        else:
            outcomes.append("copied")
            copy_rows = {
                table: one(dba, query, {"s": copied})
                for table, query in {
                    "script_elements": "SELECT count(*) FROM callmaster.script_elements WHERE script_id = %(s)s",
                    "script_element_groups": "SELECT count(*) FROM callmaster.script_element_groups WHERE script_id = %(s)s",
                    "script_element_equipment": """SELECT count(*) FROM callmaster.script_element_equipment AS x
                        JOIN callmaster.script_elements AS e ON e.id = x.element_id WHERE e.script_id = %(s)s""",
                    "script_element_conditional_rules": """SELECT count(*)
                        FROM callmaster.script_element_conditional_rules AS x
                        JOIN callmaster.script_elements AS e ON e.id = x.element_id WHERE e.script_id = %(s)s""",
                }.items()
            }
            assert copy_rows == {table: source_rows[table] for table in copy_rows}
        same = results["same show"]  # completed first (then deleted with the show) or failed cleanly
        assert same == "P0002" or (
            len(same) == 36
            and one(dba, "SELECT count(*) FROM callmaster.scripts WHERE id = %s", (same,)) == 0
        ), same
        assert orphans(dba) == NO_ORPHANS
    assert len(outcomes) == 6

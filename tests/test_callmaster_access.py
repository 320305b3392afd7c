"""Row-level security of every CallMaster table, checked as the API role with request claims.

Owner writes; crew assigned to a show read that show, its scripts and elements (and supporting rows),
its venue and the owner's departments; anybody else sees nothing. Tenant keys of child rows are copied
from the parent and enforced by composite foreign keys.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.callmaster_checks import CALLMASTER_TABLES as TABLES

PRODUCTION_TABLES = TABLES[4:]
# CallMaster live (sql/callmaster/700_live_*.sql): keel_api reads show runs under RLS and reaches the
# others only through SECURITY DEFINER functions; their policies guard them should a grant ever appear.
LIVE_TABLES = ("live_feed_heads", "live_events", "show_runs", "share_links", "live_presence")
# Invitations of users outside a crew (issue 13, finding 15): the manager's rows, minus the invitee's id
# (tests/test_hardening_guest_email.py).
INVITATION_TABLES = ("crew_invitations",)


@contextmanager
def as_user(dba: psycopg.Connection[Any], clerk_id: str) -> Iterator[psycopg.Connection[Any]]:
    """The API's transaction: claims set, role keel_api; rolled back afterwards."""
    with dba.transaction(force_rollback=True):
        dba.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"sub": clerk_id}),))
        dba.execute("SET LOCAL ROLE keel_api")
        yield dba


def count_of(table: str) -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM callmaster.{}").format(sql.Identifier(table))


def visible(conn: psycopg.Connection[Any], table: str) -> int:
    return conn.execute(count_of(table)).fetchone()[0]


@pytest.fixture
def production(dba: psycopg.Connection[Any]) -> dict[str, str]:
    """Owner A's show with one row in every table; B is crew on it; C is a stranger."""
    ids: dict[str, str] = {}
    for name in ("a", "b", "c"):
        ids[name] = str(
            dba.execute(
                "INSERT INTO callmaster.users (clerk_user_id, email, status) VALUES (%s, %s, 'verified') RETURNING id",
                (f"user_{name}", f"{name}@example.com"),
            ).fetchone()[0]
        )
    row = dba.execute(
        """
        WITH v AS (INSERT INTO callmaster.venues (owner_id, name) VALUES (%(a)s, 'Venue') RETURNING id),
        d AS (INSERT INTO callmaster.departments (owner_id, name) VALUES (%(a)s, 'LX') RETURNING id),
        s AS (INSERT INTO callmaster.shows (owner_id, venue_id, name) SELECT %(a)s, v.id, 'Show' FROM v RETURNING id),
        r AS (INSERT INTO callmaster.crew_relationships (manager_user_id, crew_user_id) VALUES (%(a)s, %(b)s)
              RETURNING id)
        SELECT (SELECT id FROM v), (SELECT id FROM d), (SELECT id FROM s)
        """,
        ids,
    ).fetchone()
    ids.update(venue=str(row[0]), department=str(row[1]), show=str(row[2]))
    # Minimal DBA inserts: owner_id / script_id are filled from the parent by trigger.
    dba.execute(
        "INSERT INTO callmaster.crew_assignments (show_id, user_id, department_id, show_role)"
        " VALUES (%(show)s, %(b)s, %(department)s, 'board op')",
        ids,
    )
    ids["script"] = str(
        dba.execute(
            "INSERT INTO callmaster.scripts (show_id, name) VALUES (%(show)s, 'Script') RETURNING id", ids
        ).fetchone()[0]
    )
    ids["group"] = str(
        dba.execute(
            "INSERT INTO callmaster.script_elements (script_id, element_type)"
            " VALUES (%(script)s, 'group') RETURNING id",
            ids,
        ).fetchone()[0]
    )
    ids["cue"] = str(
        dba.execute(
            "INSERT INTO callmaster.script_elements (script_id, element_type, parent_element_id, department_id)"
            " VALUES (%(script)s, 'cue', %(group)s, %(department)s) RETURNING id",
            ids,
        ).fetchone()[0]
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_equipment (element_id, equipment_name) VALUES (%(cue)s, 'haze')",
        ids,
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_crew_assignments (element_id, crew_user_id)"
        " VALUES (%(cue)s, %(b)s)",
        ids,
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_performer_assignments (element_id, performer_id)"
        " VALUES (%(cue)s, %(c)s)",
        ids,
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_conditional_rules (element_id, condition_type, operator,"
        " condition_value) VALUES (%(cue)s, 'weather', 'equals', 'rain')",
        ids,
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_groups (group_id, child_element_id)"
        " VALUES (%(group)s, %(cue)s)",
        ids,
    )
    return ids


def test_every_table_has_forced_rls_and_policies(dba: psycopg.Connection[Any]) -> None:
    rows = dba.execute(
        """
        SELECT c.relname, c.relrowsecurity AND c.relforcerowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
        FROM pg_class c
        WHERE c.relnamespace = 'callmaster'::regnamespace AND c.relkind = 'r'
        """
    ).fetchall()
    assert {name for name, _, _ in rows} == set(TABLES) | set(LIVE_TABLES) | set(INVITATION_TABLES)
    assert all(forced and policies > 0 for _, forced, policies in rows), rows


def test_owner_crew_and_stranger(production: dict[str, str], dba: psycopg.Connection[Any]) -> None:
    with as_user(dba, "user_a") as conn:
        assert {t: visible(conn, t) for t in PRODUCTION_TABLES} == {
            "shows": 1,
            "crew_assignments": 1,
            "scripts": 1,
            "script_elements": 2,
            "script_element_equipment": 1,
            "script_element_crew_assignments": 1,
            "script_element_performer_assignments": 1,
            "script_element_conditional_rules": 1,
            "script_element_groups": 1,
        }
        assert conn.execute(
            "UPDATE callmaster.script_elements SET description = 'go' RETURNING id"
        ).fetchall()

    with as_user(dba, "user_b") as conn:  # crew: reads the production, writes nothing
        assert all(visible(conn, t) >= 1 for t in PRODUCTION_TABLES)
        assert visible(conn, "venues") == 1 and visible(conn, "departments") == 1
        for table in ("shows", "scripts", "venues", "departments"):
            rename = sql.SQL("UPDATE callmaster.{} SET name = 'mine' RETURNING id").format(
                sql.Identifier(table)
            )
            updated = conn.execute(rename)
            assert updated.fetchall() == [], table
        assert (
            conn.execute("UPDATE callmaster.script_elements SET description = 'x' RETURNING id").fetchall()
            == []
        )
        assert conn.execute("DELETE FROM callmaster.scripts RETURNING id").fetchall() == []
        assert conn.execute("DELETE FROM callmaster.script_element_equipment RETURNING 1").fetchall() == []
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO callmaster.scripts (show_id, owner_id, name) VALUES (%(show)s, %(a)s, 'x')",
                production,
            )

    with as_user(dba, "user_c") as conn:  # stranger: nothing at all (they are a performer row, still hidden)
        assert {t: visible(conn, t) for t in TABLES if t != "users"} == {t: 0 for t in TABLES if t != "users"}
        assert visible(conn, "users") == 1  # themself
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO callmaster.scripts (show_id, name) VALUES (%(show)s, 'x')", production)

    # Inactive assignment: the crew member loses read access.
    dba.execute("UPDATE callmaster.crew_assignments SET is_active = false")
    with as_user(dba, "user_b") as conn:
        assert (
            visible(conn, "shows") == 0
            and visible(conn, "script_elements") == 0
            and visible(conn, "venues") == 0
        )


def test_users_see_their_people_only(production: dict[str, str], dba: psycopg.Connection[Any]) -> None:
    with as_user(dba, "user_a") as conn:
        seen = {str(r[0]) for r in conn.execute("SELECT id FROM callmaster.users")}
        assert seen == {production["a"], production["b"]}
        # Profile columns of oneself only; Clerk-owned columns never.
        assert conn.execute("UPDATE callmaster.users SET first_name = 'A' RETURNING id").fetchall() == [
            (uuid.UUID(production["a"]),)
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE callmaster.users SET clerk_user_id = 'user_b'")
    with as_user(dba, "user_b") as conn:  # crew see the show's owner, their manager
        seen = {str(r[0]) for r in conn.execute("SELECT id FROM callmaster.users")}
        assert seen == {production["a"], production["b"]}
        assert conn.execute("SELECT count(*) FROM callmaster.crew_relationships").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM callmaster.users")


def test_tenant_keys_follow_the_parent(production: dict[str, str], dba: psycopg.Connection[Any]) -> None:
    owners = dba.execute(
        "SELECT (SELECT owner_id FROM callmaster.crew_assignments), (SELECT owner_id FROM callmaster.scripts),"
        " (SELECT array_agg(DISTINCT owner_id) FROM callmaster.script_elements),"
        " (SELECT script_id FROM callmaster.script_element_groups)"
    ).fetchone()
    assert [str(owners[0]), str(owners[1]), [str(o) for o in owners[2]], str(owners[3])] == [
        production["a"],
        production["a"],
        [production["a"]],
        production["script"],
    ]

    other_show = str(
        dba.execute(
            "INSERT INTO callmaster.shows (owner_id, name) VALUES (%(c)s, 'C show') RETURNING id", production
        ).fetchone()[0]
    )
    other_script = str(
        dba.execute(
            "INSERT INTO callmaster.scripts (show_id, name) VALUES (%s, 'C') RETURNING id", (other_show,)
        ).fetchone()[0]
    )
    other_element = str(
        dba.execute(
            "INSERT INTO callmaster.script_elements (script_id, element_type)"
            " VALUES (%s, 'cue') RETURNING id",
            (other_script,),
        ).fetchone()[0]
    )
    bad = [
        # a script claiming another owner than its show's
        (
            "INSERT INTO callmaster.scripts (show_id, owner_id, name) VALUES (%s, %s, 'x')",
            (other_show, production["a"]),
        ),
        # an element of C's script using A's department, or a parent from A's script
        (
            "INSERT INTO callmaster.script_elements (script_id, element_type, department_id) VALUES (%s, 'cue', %s)",
            (other_script, production["department"]),
        ),
        (
            "INSERT INTO callmaster.script_elements (script_id, element_type, parent_element_id) VALUES (%s, 'cue', %s)",
            (other_script, production["group"]),
        ),
        # a group member from another script
        (
            "INSERT INTO callmaster.script_element_groups (group_id, child_element_id) VALUES (%s, %s)",
            (production["group"], other_element),
        ),
    ]
    for statement, params in bad:
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            dba.execute(statement, params)
    for statement in (
        "INSERT INTO callmaster.script_elements (script_id, element_type) VALUES (%(script)s, 'scene')",
        (
            "INSERT INTO callmaster.script_elements (script_id, element_type, location)"
            " VALUES (%(script)s, 'cue', 'on_the_roof')"
        ),
        "INSERT INTO callmaster.scripts (show_id, name, status) VALUES (%(show)s, 'x', 'published')",
    ):
        with pytest.raises(psycopg.errors.CheckViolation):
            dba.execute(statement, production)


def test_deletes_cascade_and_detach(production: dict[str, str], dba: psycopg.Connection[Any]) -> None:
    dba.execute("DELETE FROM callmaster.departments WHERE id = %(department)s", production)
    assert (
        dba.execute(
            "SELECT department_id FROM callmaster.script_elements WHERE id = %(cue)s", production
        ).fetchone()[0]
        is None
    )
    assert dba.execute("SELECT count(*) FROM callmaster.crew_assignments").fetchone()[0] == 1
    dba.execute("DELETE FROM callmaster.script_elements WHERE id = %(group)s", production)
    assert (
        dba.execute(
            "SELECT parent_element_id FROM callmaster.script_elements WHERE id = %(cue)s", production
        ).fetchone()[0]
        is None
    )
    assert dba.execute("SELECT count(*) FROM callmaster.script_element_groups").fetchone()[0] == 0
    dba.execute("DELETE FROM callmaster.shows WHERE id = %(show)s", production)
    left = {t: dba.execute(count_of(t)).fetchone()[0] for t in PRODUCTION_TABLES}
    assert left == {t: 0 for t in PRODUCTION_TABLES}

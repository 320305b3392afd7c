"""The request role cannot link a stranger to its own data (issue 13, findings 6 and 15, reviewed).

Users are not a tenant's rows, so no composite foreign key keeps a show's crew, an element's crew or
performers, or a manager's crew to people the manager may name: the API's functions check it
(`callmaster.check_member_refs`, invitations for anyone outside one's crew). A session of the request role
with a user's claims (a faulty API, as tests/test_hardening_tenant_catalog.py puts it) must meet the same
rule in row-level security, or it could assign any user id to its show, or re-point a crew relationship at
it, and then read that person's email and phone (crew of one's shows and one's crew are visible users).

The user references keel_api may write come from the catalog (foreign keys to callmaster.users): each
is listed in GUARDED with what keeps it to the caller's own reach, so a new one must be considered here.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from tests.factories import add_crew, add_script, add_show, add_user, assign, one

GUARDED = {
    "callmaster.users.created_by": "users_insert: the caller (a guest they create)",
    "callmaster.crew_relationships.manager_user_id": "crew_relationships_insert/update: the caller",
    "callmaster.crew_relationships.crew_user_id": "insert: a guest the caller created; not updatable",
    "callmaster.venues.owner_id": "venues_owner: the caller",
    "callmaster.departments.owner_id": "departments_owner: the caller",
    "callmaster.shows.owner_id": "shows_owner: the caller",
    "callmaster.crew_assignments.user_id": "crew_assignments_member_visible: a user the caller can see",
    "callmaster.script_elements.created_by": "audit stamp of the caller's own element; grants nothing",
    "callmaster.script_elements.updated_by": "audit stamp of the caller's own element; grants nothing",
    "callmaster.script_element_crew_assignments.crew_user_id": "…_member_visible: a user the caller can see",
    "callmaster.script_element_performer_assignments.performer_id": "…_member_visible: as crew",
}

USER_REFERENCES = """
    SELECT c.conrelid::regclass::text || '.' || a.attname
    FROM pg_constraint AS c
    CROSS JOIN LATERAL unnest(c.conkey) AS k (attnum)
    JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
    WHERE c.contype = 'f' AND c.confrelid = 'callmaster.users'::regclass
      AND (has_column_privilege('keel_api', c.conrelid, a.attname, 'INSERT')
           OR has_column_privilege('keel_api', c.conrelid, a.attname, 'UPDATE'))
    ORDER BY 1
"""


def test_every_user_reference_keel_api_may_write_is_guarded(dba: psycopg.Connection[Any]) -> None:
    assert sorted(row[0] for row in dba.execute(USER_REFERENCES).fetchall()) == sorted(GUARDED)


NEW_GUEST = "INSERT INTO callmaster.users (email, status, created_by) VALUES ('new-guest@example.com', 'guest', %(manager)s)"

LINK_NEW_GUEST = (
    "INSERT INTO callmaster.crew_relationships (manager_user_id, crew_user_id)"
    " SELECT %(manager)s, id FROM callmaster.users WHERE email = 'new-guest@example.com'"
)


def as_request(db_url: str, sub: str, statements: str | tuple[str, ...], params: dict[str, Any]) -> None:
    """Run statements as the request role with `sub`'s claims set raw, in one transaction rolled back."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true), set_config('role', 'keel_api', true)",
            (json.dumps({"sub": sub}),),
        )
        try:
            for statement in (statements,) if isinstance(statements, str) else statements:
                conn.execute(statement, params)
        finally:
            conn.rollback()


def test_the_request_role_cannot_link_a_stranger_to_read_their_profile(
    db_url: str, dba: psycopg.Connection[Any]
) -> None:
    manager = add_user(dba, "user_m")
    stranger = add_user(dba, "user_s", "stranger@example.org")
    dba.execute("UPDATE callmaster.users SET phone = '+1 555 0199' WHERE id = %s", (stranger,))
    guest = add_crew(dba, manager, "guest@example.com")
    show = add_show(dba, manager)
    assign(dba, show, guest)
    script = add_script(dba, show)
    element = one(
        dba,
        "INSERT INTO callmaster.script_elements (script_id, element_type) VALUES (%s, 'cue') RETURNING id",
        (script,),
    )
    # The manager is crew on another owner's show: that owner is visible to them, not their crew member.
    other = add_user(dba, "user_o")
    assign(dba, add_show(dba, other, "Elsewhere"), manager)
    ids = {"manager": manager, "stranger": stranger, "guest": guest, "show": show, "element": element}

    forged = {
        "assign a stranger to one's show": "INSERT INTO callmaster.crew_assignments (show_id, user_id)"
        " VALUES (%(show)s, %(stranger)s)",
        "re-point one's assignment at a stranger": "UPDATE callmaster.crew_assignments"
        " SET user_id = %(stranger)s WHERE user_id = %(guest)s",
        "re-point one's crew relationship at a stranger": "UPDATE callmaster.crew_relationships"
        " SET crew_user_id = %(stranger)s WHERE crew_user_id = %(guest)s",
        "take a visible user into one's crew without an invitation": "INSERT INTO callmaster.crew_relationships"
        " (manager_user_id, crew_user_id) SELECT %(manager)s, s.owner_id FROM callmaster.shows AS s"
        " WHERE s.name = 'Elsewhere'",
        "put a stranger on one's cue": "INSERT INTO callmaster.script_element_crew_assignments"
        " (element_id, crew_user_id) VALUES (%(element)s, %(stranger)s)",
        "cast a stranger as one's performer": "INSERT INTO callmaster.script_element_performer_assignments"
        " (element_id, performer_id) VALUES (%(element)s, %(stranger)s)",
    }
    accepted = []
    for what, statement in forged.items():
        try:
            as_request(db_url, "user_m", statement, ids)
            accepted.append(what)
        except psycopg.errors.InsufficientPrivilege:
            pass
    assert accepted == []

    # The same session may still do what the API does: name itself or its guest, change its crew's notes.
    allowed = [
        "INSERT INTO callmaster.crew_assignments (show_id, user_id, show_role) VALUES (%(show)s, %(manager)s, 'fly')",
        (
            "INSERT INTO callmaster.script_element_crew_assignments (element_id, crew_user_id)"
            " VALUES (%(element)s, %(guest)s)"
        ),
        (
            "INSERT INTO callmaster.script_element_performer_assignments (element_id, performer_id)"
            " VALUES (%(element)s, %(manager)s)"
        ),
        "UPDATE callmaster.crew_relationships SET notes = 'rigger' WHERE crew_user_id = %(guest)s",
        (NEW_GUEST, LINK_NEW_GUEST),
    ]
    for statement in allowed:
        as_request(db_url, "user_m", statement, ids)

"""Issue 13, finding 15, the last enumeration channel: a pending crew member against a guest.

Adding an address held by a user outside the crew answers like a new guest, but becomes an invitation
(tests/test_hardening_guest_email.py). The pending member could not be assigned to a show or an element
while a guest could, so a manager could tell "this address has an account" by trying. Now every call that
takes a crew member's id answers for a pending member exactly as for a guest (the sweep below runs each
with both and compares statuses and bodies), the assignments name the invitation and grant nothing, and
accepting moves them to the user in the same transaction.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.callmaster_checks import wait_until_blocked
from tests.callmaster_live_support import follow
from tests.contract_support import operations, resolve
from tests.factories import add_user, assert_problem, one

Bearer = Callable[..., dict[str, str]]
Dba = psycopg.Connection[Any]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)")
TOKEN = re.compile(r'"token": ?"[^"]+"|/shared/[^"/]+')
PERSON = {"first_name": "Sam", "last_name": "Reyes", "phone": "+1 555 0100", "notes": "follow spot"}
# Two addresses of one length: "gus" gets a guest, "ivy" (who has an account) an invitation.
GUEST_EMAIL, INVITEE_EMAIL = "gus@example.com", "ivy@example.com"

# Every input of the API that names a crew member, and the SQL functions taking one: the sweep covers each.
MEMBER_FIELDS = {"user_id", "crew_user_id", "performer_id"}
SWEPT_INPUTS = {
    ("PATCH", "/api/crew/{user_id}"),
    ("DELETE", "/api/crew/{user_id}"),
    ("POST", "/api/shows/{show_id}/crew"),
    ("DELETE", "/api/shows/{show_id}/crew"),
    ("POST", "/api/scripts/{script_id}/elements"),
    ("PATCH", "/api/elements/{element_id}"),
    ("POST", "/api/scripts/{script_id}/edits"),
}
SWEPT_FUNCTIONS = {
    "callmaster.get_crew_member(uuid)",  # replays of POST /api/crew/guests (re-adding, below)
    "callmaster.update_crew_member(uuid,jsonb)",
    "callmaster.remove_crew_member(uuid)",
    "callmaster.remove_show_crew(uuid,uuid,uuid,uuid)",
}


def member_fields(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> set[str]:
    """Names of the member-id fields anywhere in a request body schema."""
    schema = resolve(doc, schema)
    found: set[str] = set()
    if depth > 8:
        return found
    for name, prop in schema.get("properties", {}).items():
        if name in MEMBER_FIELDS:
            found.add(name)
        found |= member_fields(doc, prop, depth + 1)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found |= member_fields(doc, schema[key], depth + 1)
    for key in ("oneOf", "anyOf", "allOf"):
        for option in schema.get(key, []):
            found |= member_fields(doc, option, depth + 1)
    return found


def member_inputs(doc: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for path, method, op in operations(doc):
        named = {p["name"] for p in op.get("parameters", []) if p["in"] in ("path", "query")}
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            named |= member_fields(doc, body["schema"])
        if named & MEMBER_FIELDS:
            found.add((method, path))
    return found


async def assert_the_sweep_covers_every_member_input(client: httpx.AsyncClient, dba: Dba) -> None:
    """A new endpoint or SQL function taking a member's id fails here until the sweep runs it too."""
    doc = (await client.get("/schema/openapi.json")).json()
    assert member_inputs(doc) == SWEPT_INPUTS
    functions = dba.execute(
        """
        SELECT p.oid::regprocedure::text
        FROM pg_proc AS p
        WHERE p.pronamespace = 'callmaster'::regnamespace
          AND p.proargnames && ARRAY['user_id', 'crew_user_id']
          AND has_function_privilege('keel_api', p.oid, 'EXECUTE')
        """
    ).fetchall()
    assert {f for (f,) in functions} == SWEPT_FUNCTIONS


class Recorder:
    """What a manager gets back, step by step, with what differs between two runs by construction masked:
    the member's id and address, the run's own names, ids, times and share-link tokens."""

    def __init__(self, member: str, email: str, run: str) -> None:
        self.member, self.email, self.run = member, email, run
        self.steps: list[tuple[str, int, str]] = []

    def mask(self, text: str) -> str:
        text = text.replace(self.member, "<member>").replace(self.email, "<email>").replace(self.run, "<run>")
        return TIMESTAMP.sub("<time>", UUID.sub("<id>", TOKEN.sub("<token>", text)))

    def __call__(self, step: str, response: httpx.Response, status: int) -> Any:
        self.steps.append((step, response.status_code, self.mask(response.text)))
        assert response.status_code == status, (self.run, step, response.text)
        if status >= 400:
            assert_problem(response, status)
        return response.json() if response.content else None


async def sweep(
    client: httpx.AsyncClient,
    manager: dict[str, str],
    viewer: tuple[str, dict[str, str]],
    member: str,
    email: str,
    run: str,
) -> Recorder:
    """Everything a manager can do to or read about one crew member, on a show, script and department of
    its own (named after `run`), and what another crew member of that show (`viewer`) reads of it."""
    rec = Recorder(member, email, run)
    show = rec("show", await client.post("/api/shows", json={"name": f"Hamlet {run}"}, headers=manager), 201)
    crew_url = f"/api/shows/{show['id']}/crew"
    dept = rec(
        "department", await client.post("/api/departments", json={"name": f"Lx {run}"}, headers=manager), 201
    )
    script = rec(
        "script",
        await client.post(f"/api/shows/{show['id']}/scripts", json={"name": "Main"}, headers=manager),
        201,
    )
    assignment = {"user_id": member, "department_id": dept["id"], "show_role": "caller"}
    rec("assign", await client.post(crew_url, json=assignment, headers=manager), 201)
    rec("assign again", await client.post(crew_url, json=assignment, headers=manager), 409)
    rec("assign bare", await client.post(crew_url, json={"user_id": member}, headers=manager), 201)
    rec("show crew", await client.get(crew_url, headers=manager), 200)
    rec("assign viewer", await client.post(crew_url, json={"user_id": viewer[0]}, headers=manager), 201)
    rec("crew's view", await client.get(crew_url, headers=viewer[1]), 200)

    elements = f"/api/scripts/{script['id']}/elements"
    crew = [{"crew_user_id": member, "assignment_role": "op", "is_lead": True}]
    performers = [{"performer_id": member, "character_name": "Ophelia"}]
    cue = rec(
        "element",
        await client.post(
            elements,
            json={"element_type": "cue", "cue_id": "Q1", "crew_assignments": crew,
                  "performer_assignments": performers},
            headers=manager,
        ),
        201,
    )  # fmt: skip
    rec(
        "element twice",
        await client.post(
            elements, json={"element_type": "cue", "crew_assignments": crew * 2}, headers=manager
        ),
        409,
    )
    rec(
        "patch element",
        await client.patch(
            f"/api/elements/{cue['id']}",
            json={
                "base_version": 1,
                "crew_assignments": [{"crew_user_id": member, "assignment_role": "fly"}],
            },
            headers=manager,
        ),
        200,
    )
    rec("get element", await client.get(f"/api/elements/{cue['id']}", headers=manager), 200)
    rec("crew's element view", await client.get(f"/api/elements/{cue['id']}", headers=viewer[1]), 200)
    edits = [
        {
            "op": "create",
            "temp_id": "n",
            "data": {"element_type": "note", "performer_assignments": performers},
        },
        {"op": "update", "id": cue["id"], "data": {"performer_assignments": []}},
    ]
    rec("edits", await client.post(f"/api/scripts/{script['id']}/edits", json={"operations": edits},
                                   headers=manager), 200)  # fmt: skip
    rec("elements", await client.get(elements, headers=manager), 200)
    copy = rec(
        "duplicate",
        await client.post(f"/api/scripts/{script['id']}/duplicate", json={"name": "Copy"}, headers=manager),
        201,
    )
    rec("copied elements", await client.get(f"/api/scripts/{copy['id']}/elements", headers=manager), 200)

    link = rec(
        "share link", await client.post(f"/api/shows/{show['id']}/share-links", json={}, headers=manager), 201
    )
    rec("shared show", await client.get(f"/api/shared/{link['token']}"), 200)
    rec("shared script", await client.get(f"/api/shared/{link['token']}/scripts/{script['id']}"), 200)
    rec("presence", await client.get(f"/api/scripts/{script['id']}/live/presence", headers=manager), 200)
    async with follow(client, f"/api/scripts/{script['id']}/live", manager, last_event_id="0") as live:
        events = [await live.next()]  # the state, then the replay up to the script's feed position
        while events[-1].id != str(events[0].data["script"]["version"]):
            events.append(await live.next())
    feed = [event.__dict__ for event in events]
    rec.steps.append(("live feed", 200, rec.mask(json.dumps(feed, sort_keys=True))))

    rec("patch member", await client.patch(f"/api/crew/{member}", json={"notes": "n", "is_active": False},
                                           headers=manager), 200)  # fmt: skip
    # The department goes; its assignment merges into the one without a department.
    rec("delete department", await client.delete(f"/api/departments/{dept['id']}", headers=manager), 204)
    rec("show crew after", await client.get(crew_url, headers=manager), 200)
    rec("unassign", await client.delete(crew_url, params={"user_id": member}, headers=manager), 204)
    rec("unassign again", await client.delete(crew_url, params={"user_id": member}, headers=manager), 404)
    again = rec("reassign", await client.post(crew_url, json={"user_id": member}, headers=manager), 201)
    rec("unassign one", await client.delete(f"{crew_url}/{again['id']}", headers=manager), 204)

    listed = (await client.get("/api/crew", headers=manager)).json()
    rec.steps.append(
        ("listed", 200, rec.mask(json.dumps([m for m in listed["items"] if m["user_id"] == member])))
    )
    rec("remove", await client.delete(f"/api/crew/{member}", headers=manager), 204)
    rec("remove again", await client.delete(f"/api/crew/{member}", headers=manager), 404)
    rec("patch removed", await client.patch(f"/api/crew/{member}", json={"notes": "x"}, headers=manager), 404)
    # Removed from the crew, still a record of the manager's: assignable, and back when added again.
    rec("assign removed", await client.post(crew_url, json={"user_id": member}, headers=manager), 201)
    rec("element of removed", await client.get(f"/api/elements/{cue['id']}", headers=manager), 200)
    listed = (await client.get("/api/crew", headers=manager)).json()
    rec.steps.append(
        ("unlisted", 200, rec.mask(json.dumps([m for m in listed["items"] if m["user_id"] == member])))
    )
    back = {"email": email, **PERSON, "notes": "back"}
    rec("add again", await client.post("/api/crew/guests", json=back, headers=manager), 201)
    rec("add again twice", await client.post("/api/crew/guests", json=back, headers=manager), 409)
    rec("show crew at end", await client.get(crew_url, headers=manager), 200)
    rec("crew's view at end", await client.get(crew_url, headers=viewer[1]), 200)
    return rec


async def test_finding15_a_pending_member_answers_as_a_guest_to_every_call(
    client: httpx.AsyncClient, dba: Dba, bearer: Bearer
) -> None:
    await assert_the_sweep_covers_every_member_input(client, dba)
    add_user(dba, "user_m", "manager@example.com")
    ivy_id = add_user(dba, "user_ivy", INVITEE_EMAIL)
    viewer_id = add_user(dba, "user_crew", "crew@example.com")
    manager, ivy, viewer = bearer("user_m"), bearer("user_ivy"), bearer("user_crew")
    # Another member of the manager's crew (invited, accepted), assigned to each show of the sweep.
    await client.post("/api/crew/guests", json={"email": "crew@example.com"}, headers=manager)
    [invitation] = (await client.get("/api/crew/invitations", headers=viewer)).json()["items"]
    assert (
        await client.post(f"/api/crew/invitations/{invitation['id']}/accept", headers=viewer)
    ).status_code == 200
    guest = await client.post("/api/crew/guests", json={"email": GUEST_EMAIL, **PERSON}, headers=manager)
    pending = await client.post("/api/crew/guests", json={"email": INVITEE_EMAIL, **PERSON}, headers=manager)
    assert guest.status_code == pending.status_code == 201
    pending_id = pending.json()["user_id"]
    assert one(dba, "SELECT count(*) FROM callmaster.crew_invitations WHERE id = %s", (pending_id,)) == 1

    runs = {}
    for run, member, email in (
        ("Run-g", guest.json()["user_id"], GUEST_EMAIL),
        ("Run-p", pending_id, INVITEE_EMAIL),
    ):
        runs[run] = (await sweep(client, manager, (viewer_id, viewer), member, email, run)).steps
    assert len(runs["Run-g"]) == len(runs["Run-p"]) > 30
    for as_guest, as_pending in zip(runs["Run-g"], runs["Run-p"], strict=True):
        assert as_guest == as_pending
    # The crew of the show see the pending member as a guest too (what the manager typed, nothing of Ivy).
    seen = {step: body for step, _, body in runs["Run-p"]}["crew's view"]
    assert '"first_name":"Sam"' in seen and "User_Ivy" not in seen

    # The same calls tell an unknown id apart (the comparison can fail): 422 where a member is 201.
    show = (await client.post("/api/shows", json={"name": "Control"}, headers=manager)).json()
    r = await client.post(
        f"/api/shows/{show['id']}/crew", json={"user_id": str(uuid.uuid4())}, headers=manager
    )
    assert_problem(r, 422)

    # Nothing of it reached Ivy: the pending assignments name the invitation, not her, and grant nothing.
    assert one(dba, "SELECT count(*) FROM callmaster.crew_assignments WHERE user_id = %s", (ivy_id,)) == 0
    assert (
        one(dba, "SELECT count(*) FROM callmaster.crew_assignments WHERE invitation_id = %s", (pending_id,))
        == 1
    )
    shows = dba.execute("SELECT id FROM callmaster.shows WHERE name = 'Hamlet Run-p'").fetchone()
    assert_problem(await client.get(f"/api/shows/{shows[0]}", headers=ivy), 404)
    assert (await client.get("/api/shows", headers=ivy)).json()["total"] == 0
    # Added again, the invitation is hers to see (and accept) once more.
    assert (await client.get("/api/crew/invitations", headers=ivy)).json()["total"] == 1


def invite(dba: Dba, manager: str, clerk_id: str, email: str) -> tuple[str, str]:
    """A user with an account and their pending invitation into the manager's crew (as POST
    /api/crew/guests makes it for an address held outside the crew): (user id, invitation id)."""
    user = add_user(dba, clerk_id, email)
    invitation = one(
        dba,
        "INSERT INTO callmaster.crew_invitations (manager_user_id, invitee_user_id, email, first_name)"
        " VALUES (%s, %s, %s, 'Pending') RETURNING id",
        (manager, user, email),
    )
    return user, str(invitation)


@pytest.fixture
def stage(dba: Dba) -> dict[str, str]:
    """A manager (user_m) with a show, a script with one cue and a department."""
    manager = add_user(dba, "user_m", "manager@example.com")
    show = one(
        dba, "INSERT INTO callmaster.shows (owner_id, name) VALUES (%s, 'Hamlet') RETURNING id", (manager,)
    )
    script = one(
        dba, "INSERT INTO callmaster.scripts (show_id, name) VALUES (%s, 'Main') RETURNING id", (show,)
    )
    cue = one(
        dba,
        "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id)"
        " VALUES (%s, 'cue', 'Q1') RETURNING id",
        (script,),
    )
    dept = one(
        dba, "INSERT INTO callmaster.departments (owner_id, name) VALUES (%s, 'Lx') RETURNING id", (manager,)
    )
    return {"manager": manager, "show": str(show), "script": str(script), "cue": str(cue), "dept": str(dept)}


async def assign_everywhere(
    client: httpx.AsyncClient, manager: dict[str, str], stage: dict[str, str], members: list[str]
) -> None:
    """Each member on the show (in the department as caller, and without one), on the cue's crew and as a
    performer of it."""
    for member in members:
        for body in (
            {"user_id": member, "department_id": stage["dept"], "show_role": "caller"},
            {"user_id": member},
        ):
            r = await client.post(f"/api/shows/{stage['show']}/crew", json=body, headers=manager)
            assert r.status_code == 201, r.text
    r = await client.patch(
        f"/api/elements/{stage['cue']}",
        json={"crew_assignments": [{"crew_user_id": m, "is_lead": True} for m in members],
              "performer_assignments": [{"performer_id": m, "character_name": "Ophelia"} for m in members]},
        headers=manager,
    )  # fmt: skip
    assert r.status_code == 200, r.text


async def test_finding15_accepting_makes_the_assignments_the_users_declining_leaves_nothing(
    client: httpx.AsyncClient, dba: Dba, bearer: Bearer, stage: dict[str, str]
) -> None:
    ivy_id, ivy_invitation = invite(dba, stage["manager"], "user_ivy", INVITEE_EMAIL)
    dan_id, dan_invitation = invite(dba, stage["manager"], "user_dan", "dan@example.com")
    manager, ivy, dan = bearer("user_m"), bearer("user_ivy"), bearer("user_dan")
    await assign_everywhere(client, manager, stage, [ivy_invitation, dan_invitation])
    # Ivy already holds two of them (a DBA's rows): hers are kept, once.
    dba.execute(
        "INSERT INTO callmaster.crew_assignments (show_id, user_id, is_active) VALUES (%s, %s, false)",
        (stage["show"], ivy_id),
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_performer_assignments"
        " (element_id, performer_id, character_name) VALUES (%s, %s, 'Hamlet')",
        (stage["cue"], ivy_id),
    )
    # An element row names only its owner's pending members, however written (here a DBA's INSERT).
    other = add_user(dba, "user_other", "other@example.com")
    _, not_theirs = invite(dba, other, "user_x", "x@example.com")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        dba.execute(
            "INSERT INTO callmaster.script_element_crew_assignments (element_id, invitation_id)"
            " VALUES (%s, %s)",
            (stage["cue"], not_theirs),
        )
    script = f"/api/scripts/{stage['script']}"
    readable = (f"/api/shows/{stage['show']}", script, f"{script}/elements", f"/api/elements/{stage['cue']}",
                f"/api/shows/{stage['show']}/crew", f"{script}/live", f"{script}/live/presence")  # fmt: skip
    views = (f"/api/shows/{stage['show']}/crew", f"/api/elements/{stage['cue']}", "/api/crew")
    before = [(await client.get(url, headers=manager)).json() for url in views]

    # Dan declines: he reads nothing, and his manager sees no change (his assignments stay pending).
    assert (
        await client.post(f"/api/crew/invitations/{dan_invitation}/decline", headers=dan)
    ).status_code == 204
    assert [(await client.get(url, headers=manager)).json() for url in views] == before
    for url in readable:
        assert_problem(await client.get(url, headers=ivy), 404)

    # Ivy accepts: she reads the show, its script and its live feed, and the assignments are hers.
    r = await client.post(f"/api/crew/invitations/{ivy_invitation}/accept", headers=ivy)
    assert r.status_code == 200, r.text
    for url in readable[:-2]:
        assert (await client.get(url, headers=ivy)).status_code == 200, url
    async with follow(client, f"{script}/live", ivy) as live:
        assert (await live.next()).event == "state"
    [element] = (await client.get(f"{script}/elements", headers=ivy)).json()["items"]
    assert element["crew_assignments"] == [
        {"crew_user_id": m, "assignment_role": None, "is_lead": True}
        for m in sorted([ivy_id, dan_invitation])
    ]
    assert {(p["performer_id"], p["character_name"]) for p in element["performer_assignments"]} == {
        (ivy_id, "Hamlet"),  # hers already: kept
        (dan_invitation, "Ophelia"),
    }
    crew = (await client.get(f"/api/shows/{stage['show']}/crew", headers=manager)).json()
    assert {(a["user_id"], a["department_id"], a["show_role"], a["is_active"]) for a in crew["items"]} == {
        (ivy_id, stage["dept"], "caller", True),
        (ivy_id, None, None, False),  # hers already: kept
        (dan_invitation, stage["dept"], "caller", True),
        (dan_invitation, None, None, True),
    }
    assert {a["user"]["first_name"] for a in crew["items"] if a["user_id"] == ivy_id} == {"User_Ivy"}
    for table in (
        "crew_assignments",
        "script_element_crew_assignments",
        "script_element_performer_assignments",
    ):
        query = sql.SQL("SELECT count(*) FROM callmaster.{} WHERE invitation_id = %s").format(
            sql.Identifier(table)
        )
        assert one(dba, query, (ivy_invitation,)) == 0
    assert one(
        dba,
        "SELECT array_agg(id::text) FROM callmaster.crew_invitations WHERE manager_user_id = %s",
        (stage["manager"],),
    ) == [dan_invitation]
    # Dan still reads nothing of it.
    for url in readable:
        assert_problem(await client.get(url, headers=dan), 404)
    assert one(dba, "SELECT count(*) FROM callmaster.crew_assignments WHERE user_id = %s", (dan_id,)) == 0


@contextlib.contextmanager
def as_user(db_url: str, clerk_id: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection acting as the API does for one user (claims, keel_api), outside autocommit."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "SELECT set_config('request.jwt.claims', %s, false), set_config('role', 'keel_api', false)",
            (json.dumps({"sub": clerk_id}),),
        )
        conn.commit()
        yield conn


def race(
    dba: Dba, db_url: str, first: tuple[str, str, tuple[Any, ...]], second: tuple[str, str, tuple[Any, ...]]
) -> Any:
    """(user, call, arguments) each, on connections of their own: `first` runs its call and holds its
    transaction open; `second` runs its own on a thread, which must wait for `first`; then `first` commits.
    Returns the second call's outcome: its result, or its SQLSTATE."""
    outcome: dict[str, Any] = {}
    with as_user(db_url, first[0]) as one_conn, as_user(db_url, second[0]) as other:
        one_conn.execute(first[1], first[2])

        def run_second() -> None:
            try:
                outcome["second"] = other.execute(second[1], second[2]).fetchone()[0]  # type: ignore[index]
                other.commit()
            except psycopg.Error as exc:
                other.rollback()
                outcome["second"] = exc.sqlstate

        thread = threading.Thread(target=run_second)
        thread.start()
        try:
            wait_until_blocked(dba, other.info.backend_pid)
        finally:
            one_conn.commit()
            thread.join(timeout=30)
        assert not thread.is_alive()
    return outcome["second"]


ACCEPT = "SELECT callmaster.accept_crew_invitation(%s)"
ADD_SHOW_CREW = "SELECT callmaster.add_show_crew(%s, %s)"
UPDATE_ELEMENT = "SELECT callmaster.update_element(%s, %s, NULL)"
REMOVE_MEMBER = "SELECT callmaster.remove_crew_member(%s)"


def assignments(dba: Dba, user: str, invitation: str) -> list[tuple[Any, ...]]:
    """(kind, user_id, invitation_id) of every show or element crew row naming the user or the invitation."""
    return dba.execute(
        "SELECT 'show', user_id::text, invitation_id::text FROM callmaster.crew_assignments"
        " WHERE %(u)s IN (user_id, invitation_id) OR %(i)s IN (user_id, invitation_id)"
        " UNION ALL SELECT 'element', crew_user_id::text, invitation_id::text"
        " FROM callmaster.script_element_crew_assignments"
        " WHERE %(u)s IN (crew_user_id, invitation_id) OR %(i)s IN (crew_user_id, invitation_id)",
        {"u": user, "i": invitation},
    ).fetchall()


def test_finding15_assignments_and_removals_racing_the_acceptance(
    dba: Dba, db_url: str, stage: dict[str, str]
) -> None:
    """Real parallel transactions; whichever commits first wins, and nothing is lost or orphaned."""
    # Assigned first (show crew, element crew), accepted meanwhile: the acceptance waits and moves it.
    for n, (call, args) in enumerate(
        [
            (ADD_SHOW_CREW, lambda member: (stage["show"], Jsonb({"user_id": member}))),
            (
                UPDATE_ELEMENT,
                lambda member: (stage["cue"], Jsonb({"crew_assignments": [{"crew_user_id": member}]})),
            ),
        ]
    ):
        user, invitation = invite(dba, stage["manager"], f"user_{n}", f"user{n}@example.com")
        accepted = race(dba, db_url, ("user_m", call, args(invitation)), (f"user_{n}", ACCEPT, (invitation,)))
        assert accepted["manager_user_id"] == stage["manager"]
        assert assignments(dba, user, invitation) == [("show" if n == 0 else "element", user, None)]

    # Accepted first: the assignment waits, then finds no pending member (422, as for an unknown user).
    user, invitation = invite(dba, stage["manager"], "user_late", "late@example.com")
    refused = race(
        dba, db_url, ("user_late", ACCEPT, (invitation,)),
        ("user_m", ADD_SHOW_CREW, (stage["show"], Jsonb({"user_id": invitation}))),
    )  # fmt: skip
    assert refused == "23503"
    assert assignments(dba, user, invitation) == []

    # Removed from the crew first: the acceptance is refused, the assignment stays pending (grants nothing).
    user, invitation = invite(dba, stage["manager"], "user_gone", "gone@example.com")
    with as_user(db_url, "user_m") as manager:
        manager.execute(ADD_SHOW_CREW, (stage["show"], Jsonb({"user_id": invitation})))
        manager.commit()
    assert (
        race(dba, db_url, ("user_m", REMOVE_MEMBER, (invitation,)), ("user_gone", ACCEPT, (invitation,)))
        == "P0002"
    )
    assert assignments(dba, user, invitation) == [("show", None, invitation)]
    # Back in the crew (same id), and now the acceptance commits first: the removal finds no pending member.
    dba.execute("UPDATE callmaster.crew_invitations SET removed_at = NULL WHERE id = %s", (invitation,))
    assert (
        race(dba, db_url, ("user_gone", ACCEPT, (invitation,)), ("user_m", REMOVE_MEMBER, (invitation,)))
        == "P0002"
    )
    assert assignments(dba, user, invitation) == [("show", user, None)]

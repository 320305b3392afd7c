"""Issue 13, finding 15: email enumeration through `POST /api/crew/guests`.

Adding a guest whose email belonged to somebody outside the caller's crew answered "a user with email …
already exists", and later a generic 409 — still telling a taken address from a free one. Now such an
address is answered exactly as a new one (201, same headers, same body shape and fields, made of what the
caller typed), and becomes an invitation: the existing user joins the crew only by accepting it. Only the
caller's own data (themself, their crew, their invitations) answers 409.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tests.factories import assert_problem
from tests.test_callmaster_webhook import clerk_user, deliver, event, settings_overrides

__all__ = ["settings_overrides"]

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d")
# Headers whose values differ between any two answers (or follow from the body's length).
PER_ANSWER = {"date", "x-request-id", "content-length"}
GUEST = {"first_name": "Sam", "last_name": "Reyes", "phone": "+1 555 0100", "notes": "follow spot"}


def shape(response: httpx.Response, email: str) -> tuple[int, list[tuple[str, str]], str]:
    """Everything the caller gets, with ids, timestamps and the address it sent masked."""
    headers = sorted((k, v) for k, v in response.headers.items() if k not in PER_ANSWER)
    body = TIMESTAMP.sub("<time>", UUID.sub("<id>", response.text.replace(email, "<email>")))
    return response.status_code, headers, body


def crew_link(dba: psycopg.Connection[Any], manager: str, member: str) -> int:
    return dba.execute(
        "SELECT count(*) FROM callmaster.crew_relationships AS cr"
        " JOIN callmaster.users AS m ON m.id = cr.manager_user_id"
        " JOIN callmaster.users AS c ON c.id = cr.crew_user_id"
        " WHERE m.clerk_user_id = %s AND c.clerk_user_id = %s",
        (manager, member),
    ).fetchone()[0]


async def test_finding15_another_users_address_is_answered_as_a_new_one_and_needs_consent(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    # Alice has an account; her address is as long as the new one, so even the lengths match.
    await deliver(client, event("user.created", clerk_user("user_a", "alice@example.com", first="Alice")))
    await deliver(client, event("user.created", clerk_user("user_b", "bob@example.com", first="Bob")))
    alice_id = str(dba.execute("SELECT id FROM callmaster.users WHERE clerk_user_id = 'user_a'").fetchone()[0])
    alice, bob = bearer("user_a"), bearer("user_b")
    users_before = dba.execute("SELECT count(*) FROM callmaster.users").fetchone()

    answers = {}
    for email in ("zorro@example.com", "alice@example.com"):
        r = await client.post("/api/crew/guests", json={"email": email, **GUEST}, headers=bob)
        assert r.status_code == 201, r.text
        answers[email] = r
    fresh, taken = answers["zorro@example.com"], answers["alice@example.com"]
    assert shape(fresh, "zorro@example.com") == shape(taken, "alice@example.com")
    assert taken.json()["first_name"] == "Sam" and taken.json()["status"] == "guest"
    # Nothing of Alice reaches Bob: not her id, her name, her status.
    assert alice_id not in taken.text and "Alice" not in taken.text and "verified" not in taken.text
    listed = (await client.get("/api/crew", headers=bob)).json()
    assert listed["total"] == 3 and alice_id not in str(listed) and "Alice" not in str(listed)
    assert {m["user_id"] for m in listed["items"]} >= {fresh.json()["user_id"], taken.json()["user_id"]}

    # Only the new address made a user; Alice is in nobody's crew until she accepts.
    assert dba.execute("SELECT count(*) FROM callmaster.users").fetchone()[0] == users_before[0] + 1
    assert crew_link(dba, "user_b", "user_a") == 0

    # Adding either again is the caller's own data: the same 409 for both.
    again = {}
    for email in ("zorro@example.com", "alice@example.com"):
        r = await client.post("/api/crew/guests", json={"email": email}, headers=bob)
        assert_problem(r, 409)
        assert "member of your crew" in r.json()["detail"]
        again[email] = shape(r, email)
    assert again["zorro@example.com"] == again["alice@example.com"]

    # The pending member is Bob's to change like any guest.
    pending = taken.json()["user_id"]
    r = await client.patch(f"/api/crew/{pending}", json={"notes": "lead follow spot"}, headers=bob)
    assert r.status_code == 200 and r.json()["relationship"]["notes"] == "lead follow spot"
    assert shape(r, "alice@example.com")[2] == shape(
        await client.patch(
            f"/api/crew/{fresh.json()['user_id']}", json={"notes": "lead follow spot"}, headers=bob
        ),
        "zorro@example.com",
    )[2]

    # Alice sees who invites her, and accepts.
    invitations = (await client.get("/api/crew/invitations", headers=alice)).json()
    assert invitations["total"] == 1
    [invitation] = invitations["items"]
    assert invitation["manager"]["email"] == "bob@example.com" and "notes" not in str(invitation)
    assert (await client.get("/api/crew/invitations", headers=bob)).json()["total"] == 0
    # Nobody else can accept it.
    assert_problem(await client.post(f"/api/crew/invitations/{invitation['id']}/accept", headers=bob), 404)
    r = await client.post(f"/api/crew/invitations/{invitation['id']}/accept", headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["relationship_id"] == taken.json()["relationship"]["id"]
    assert crew_link(dba, "user_b", "user_a") == 1
    # Now, with her consent, Bob's crew shows Alice herself, with the notes he wrote.
    members = {m["user_id"]: m for m in (await client.get("/api/crew", headers=bob)).json()["items"]}
    assert pending not in members and members[alice_id]["first_name"] == "Alice"
    assert members[alice_id]["relationship"]["notes"] == "lead follow spot"
    assert (await client.get("/api/crew/invitations", headers=alice)).json()["total"] == 0
    assert_problem(await client.post(f"/api/crew/invitations/{invitation['id']}/accept", headers=alice), 404)


async def test_finding15_declined_or_withdrawn_invitations(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    for clerk_id, email in (("user_c", "carol@example.com"), ("user_d", "dave@example.com")):
        await deliver(client, event("user.created", clerk_user(clerk_id, email)))
    carol, dave = bearer("user_c"), bearer("user_d")

    key = {"Idempotency-Key": "invite-dave"}
    first = await client.post("/api/crew/guests", json={"email": "dave@example.com"}, headers={**carol, **key})
    replayed = await client.post("/api/crew/guests", json={"email": "dave@example.com"}, headers={**carol, **key})
    assert first.status_code == replayed.status_code == 201 and replayed.json() == first.json()
    [invitation] = (await client.get("/api/crew/invitations", headers=dave)).json()["items"]

    # Dave declines: nothing changes on Carol's side (she learns nothing); Dave no longer sees it.
    before = (await client.get("/api/crew", headers=carol)).json()
    r = await client.post(f"/api/crew/invitations/{invitation['id']}/decline", headers=dave)
    assert r.status_code == 204
    assert (await client.get("/api/crew", headers=carol)).json() == before
    assert (await client.get("/api/crew/invitations", headers=dave)).json()["total"] == 0
    assert_problem(await client.post(f"/api/crew/invitations/{invitation['id']}/accept", headers=dave), 404)
    assert crew_link(dba, "user_c", "user_d") == 0

    # Carol withdraws her pending member like any guest; Dave invites Carol, who sees it.
    assert (await client.delete(f"/api/crew/{first.json()['user_id']}", headers=carol)).status_code == 204
    assert (await client.get("/api/crew", headers=carol)).json()["total"] == 1
    r = await client.post("/api/crew/guests", json={"email": "Carol@Example.com"}, headers=dave)
    assert r.status_code == 201 and r.json()["email"] == "carol@example.com"
    [to_carol] = (await client.get("/api/crew/invitations", headers=carol)).json()["items"]
    r = await client.delete(f"/api/crew/{r.json()['user_id']}", headers=dave)
    assert r.status_code == 204
    assert (await client.get("/api/crew/invitations", headers=carol)).json()["total"] == 0
    assert_problem(await client.post(f"/api/crew/invitations/{to_carol['id']}/decline", headers=carol), 404)


async def test_finding15_a_guest_of_ones_own_comes_back_to_the_crew(
    client: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> None:
    """A guest the manager created and later removed from the crew is their own record, not an account
    of someone else's: adding the address again puts that guest back."""
    await deliver(client, event("user.created", clerk_user("user_e", "erin@example.com")))
    erin = bearer("user_e")
    guest = (await client.post("/api/crew/guests", json={"email": "gus@example.com"}, headers=erin)).json()
    assert (await client.delete(f"/api/crew/{guest['user_id']}", headers=erin)).status_code == 204
    r = await client.post("/api/crew/guests", json={"email": "gus@example.com", "notes": "back"}, headers=erin)
    assert r.status_code == 201 and r.json()["user_id"] == guest["user_id"]
    assert r.json()["relationship"]["notes"] == "back"

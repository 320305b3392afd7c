"""Issue 13, finding 4: account takeover by email.

A new Clerk user claimed a guest record (and so the guest's crews and shows) when *any* of its listed
addresses matched, verified or not. Now only the primary address claims, and only when Clerk marks it
verified; anything else claims nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tests.test_callmaster_webhook import clerk_user, counts, deliver, event, settings_overrides, user_row

__all__ = ["settings_overrides"]

GUEST_EMAIL = "lights@example.com"


async def _guest_on_a_show(
    client: httpx.AsyncClient, bearer: Callable[..., dict[str, str]]
) -> tuple[str, str]:
    """A manager, a guest in their crew assigned to one of their shows: (guest id, show id)."""
    await deliver(client, event("user.created", clerk_user("user_sm", "sm@example.com")))
    manager = bearer("user_sm")
    r = await client.post(
        "/api/crew/guests", json={"email": GUEST_EMAIL, "first_name": "Lee"}, headers=manager
    )
    assert r.status_code == 201, r.text
    guest_id = r.json()["user_id"]
    r = await client.post("/api/shows", json={"name": "Hamlet"}, headers=manager)
    assert r.status_code == 201, r.text
    show_id = r.json()["id"]
    r = await client.post(f"/api/shows/{show_id}/crew", json={"user_id": guest_id}, headers=manager)
    assert r.status_code == 201, r.text
    return guest_id, show_id


async def _has_no_access(
    client: httpx.AsyncClient, headers: dict[str, str], guest_id: str, show_id: str
) -> None:
    me = await client.get("/api/me", headers=headers)
    assert me.status_code != 200 or me.json()["id"] != guest_id
    # A user CallMaster does not know gets 403 everywhere; a known one 404 for a show that is not theirs.
    assert (await client.get(f"/api/shows/{show_id}", headers=headers)).status_code in (403, 404)


async def test_finding4_unverified_primary_email_claims_no_guest(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    guest_id, show_id = await _guest_on_a_show(client, bearer)
    users_before = counts(dba)[0]

    r = await deliver(client, event("user.created", clerk_user("user_evil", GUEST_EMAIL, verified=False)))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "unverified" and guest_id not in r.text
    assert user_row(dba, "user_evil") is None
    assert counts(dba)[0] == users_before
    guest = dba.execute(
        "SELECT status, clerk_user_id FROM callmaster.users WHERE id = %s", (guest_id,)
    ).fetchone()
    assert guest == ("guest", None)
    await _has_no_access(client, bearer("user_evil"), guest_id, show_id)

    # Once Clerk has verified the address (user.updated), its owner claims the record.
    r = await deliver(client, event("user.updated", clerk_user("user_evil", GUEST_EMAIL, verified=True)))
    assert r.json()["outcome"] == "claimed" and r.json()["user_id"] == guest_id


async def test_finding4_a_matching_secondary_address_is_a_separate_user(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    guest_id, show_id = await _guest_on_a_show(client, bearer)
    data = clerk_user("user_evil", "evil@example.net", verified=True)
    # The guest's address listed too (verified or not), but not as the primary one.
    data["email_addresses"].append(
        {"id": "idn_guest", "email_address": GUEST_EMAIL, "verification": {"status": "verified"}}
    )
    r = await deliver(client, event("user.created", data))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "created" and r.json()["user_id"] != guest_id
    assert user_row(dba, "user_evil")["email"] == "evil@example.net"
    await _has_no_access(client, bearer("user_evil"), guest_id, show_id)


async def test_finding4_relinking_a_deleted_user_needs_a_verified_primary_address(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    await deliver(client, event("user.created", clerk_user("user_old", "old@example.com")))
    await deliver(client, event("user.deleted", {"id": "user_old", "deleted": True}))
    r = await deliver(
        client, event("user.created", clerk_user("user_new", "old@example.com", verified=False))
    )
    assert r.json()["outcome"] == "unverified"
    assert user_row(dba, "user_new") is None and user_row(dba, "user_old")["is_active"] is False

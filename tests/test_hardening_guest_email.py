"""Issue 13, finding 15: email enumeration through `POST /api/crew/guests`.

Adding a guest whose email belongs to somebody outside the caller's crew answered "a user with email …
already exists", confirming the account. Now the answer for an address the caller does not already know
is the same whether an account holds it or not (409, no name, no "exists"); only the caller and their own
crew are named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tests.test_callmaster_webhook import clerk_user, deliver, event, settings_overrides

__all__ = ["settings_overrides"]


async def test_finding15_another_tenants_email_is_not_disclosed(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    await deliver(client, event("user.created", clerk_user("user_a", "alice@example.com")))
    await deliver(client, event("user.created", clerk_user("user_b", "bob@example.com")))
    bob = bearer("user_b")
    r = await client.post(
        "/api/crew/guests", json={"email": "hidden-guest@example.com"}, headers=bearer("user_a")
    )
    assert r.status_code == 201

    users_before = dba.execute("SELECT count(*) FROM callmaster.users").fetchone()
    answers = {}
    for email in ("alice@example.com", "hidden-guest@example.com"):
        r = await client.post("/api/crew/guests", json={"email": email}, headers=bob)
        assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert "exist" not in body["detail"] and "Alice" not in r.text and "user_a" not in r.text
        answers[email] = (
            body["status"],
            body["title"],
            body["detail"].replace(email, "<email>"),
            body.get("code"),
        )
    # Alice's account and Alice's guest look exactly alike to Bob: nothing tells them apart.
    assert answers["alice@example.com"] == answers["hidden-guest@example.com"]
    assert dba.execute("SELECT count(*) FROM callmaster.users").fetchone() == users_before
    assert dba.execute(
        "SELECT count(*) FROM callmaster.crew_relationships AS cr JOIN callmaster.users AS m"
        " ON m.id = cr.manager_user_id WHERE m.clerk_user_id = 'user_b'"
    ).fetchone() == (0,)

    # The caller's own crew is named as such.
    r = await client.post("/api/crew/guests", json={"email": "carol@example.com"}, headers=bob)
    assert r.status_code == 201
    r = await client.post("/api/crew/guests", json={"email": "carol@example.com"}, headers=bob)
    assert r.status_code == 409 and "member of your crew" in r.json()["detail"]

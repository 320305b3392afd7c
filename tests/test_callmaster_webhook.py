"""The Clerk webhook, real Svix signatures: create/update/deactivate, rejections, replays, guest claims."""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from svix.webhooks import Webhook

from api.app import create_app
from api.settings import Settings
from tests.conftest import live_server

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
URL = "/api/webhooks/clerk"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"clerk_webhook_secret": SECRET}


def clerk_user(
    clerk_id: str,
    email: str,
    *,
    first: str | None = "Ada",
    last: str | None = "Lovelace",
    phone: str | None = None,
    updated_ms: int | None = None,
    verified: bool = True,
) -> dict[str, Any]:
    """A Clerk user object as Clerk sends it (the fields CallMaster reads, plus some it ignores);
    `verified`: whether Clerk has verified the primary address."""
    data: dict[str, Any] = {
        "id": clerk_id,
        "object": "user",
        "email_addresses": [
            {
                "id": "idn_other",
                "email_address": f"other+{clerk_id}@example.org",
                "verification": {"status": "unverified", "strategy": "email_code"},
            },
            {
                "id": "idn_primary",
                "email_address": email,
                "verification": {
                    "status": "verified" if verified else "unverified",
                    "strategy": "email_code",
                },
            },
        ],
        "primary_email_address_id": "idn_primary",
        "first_name": first,
        "last_name": last,
        "image_url": f"https://img.clerk.com/{clerk_id}.png",
        "phone_numbers": [{"id": "idn_phone", "phone_number": phone}] if phone else [],
        "primary_phone_number_id": "idn_phone" if phone else None,
        "public_metadata": {},
        "created_at": 1_700_000_000_000,
    }
    if updated_ms is not None:
        data["updated_at"] = updated_ms
    return data


def event(event_type: str, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {"object": "event", "type": event_type, "data": data, "timestamp": 1_700_000_000_000}
    ).encode()


def sign(
    body: bytes, *, msg_id: str | None = None, secret: str = SECRET, at: datetime | None = None
) -> dict[str, str]:
    """Svix headers for `body`, signed with the svix library itself."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id, at, body.decode())
    return {
        "svix-id": msg_id,
        "svix-timestamp": str(int(at.timestamp())),
        "svix-signature": signature,
        "content-type": "application/json",
    }


async def deliver(client: httpx.AsyncClient, body: bytes, **kwargs: Any) -> httpx.Response:
    return await client.post(URL, content=body, headers=sign(body, **kwargs))


def user_row(dba: psycopg.Connection[Any], clerk_id: str) -> dict[str, Any] | None:
    cur = dba.execute(
        "SELECT id, email, first_name, last_name, phone, image_url, status, is_active, created_by"
        " FROM callmaster.users WHERE clerk_user_id = %s",
        (clerk_id,),
    )
    row = cur.fetchone()
    return None if row is None else dict(zip([c.name for c in cur.description], row, strict=True))


def counts(dba: psycopg.Connection[Any]) -> tuple[int, int]:
    users = dba.execute("SELECT count(*) FROM callmaster.users").fetchone()[0]
    events = dba.execute("SELECT count(*) FROM keel.webhook_events").fetchone()[0]
    return users, events


async def test_created_updated_deleted(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    r = await deliver(
        client, event("user.created", clerk_user("user_ada", "Ada@Example.com", updated_ms=1_000))
    )
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "created"
    row = user_row(dba, "user_ada")
    assert row is not None
    assert (row["email"], row["first_name"], row["last_name"], row["status"], row["is_active"]) == (
        "Ada@Example.com",
        "Ada",
        "Lovelace",
        "verified",
        True,
    )
    assert row["image_url"] == "https://img.clerk.com/user_ada.png"

    me = await client.get("/api/me", headers=bearer("user_ada"))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(row["id"]) and me.json()["clerk_user_id"] == "user_ada"

    updated = clerk_user(
        "user_ada", "ada@example.com", first="Augusta", phone="+44 20 7946 0000", updated_ms=2_000
    )
    r = await deliver(client, event("user.updated", updated))
    assert r.json()["outcome"] == "updated"
    row = user_row(dba, "user_ada")
    assert (row["first_name"], row["phone"], row["email"]) == (
        "Augusta",
        "+44 20 7946 0000",
        "ada@example.com",
    )

    # An older event delivered late does not overwrite newer data.
    stale = clerk_user("user_ada", "ada@example.com", first="Stale", updated_ms=1_500)
    r = await deliver(client, event("user.updated", stale))
    assert r.status_code == 200 and r.json()["outcome"] == "stale"
    assert user_row(dba, "user_ada")["first_name"] == "Augusta"

    r = await deliver(client, event("user.deleted", {"id": "user_ada", "object": "user", "deleted": True}))
    assert r.json()["outcome"] == "deactivated"
    row = user_row(dba, "user_ada")
    assert row is not None and row["is_active"] is False  # history kept
    me = await client.get("/api/me", headers=bearer("user_ada"))
    assert me.status_code == 403
    assert "deactivated" in me.json()["detail"]

    types = [
        t
        for (t,) in dba.execute("SELECT event_type FROM keel.webhook_events ORDER BY received_at, event_type")
    ]
    assert sorted(types) == sorted(["user.created", "user.updated", "user.updated", "user.deleted"])


async def test_replay_changes_nothing(client: httpx.AsyncClient, dba: psycopg.Connection[Any]) -> None:
    created = event("user.created", clerk_user("user_rep", "rep@example.com"))
    first = await deliver(client, created, msg_id="msg_replayed")
    assert first.json()["outcome"] == "created"
    await deliver(client, event("user.updated", clerk_user("user_rep", "rep@example.com", first="Changed")))
    before = user_row(dba, "user_rep")
    before_counts = counts(dba)

    # Svix retries the same message id (re-signed, as Svix does on each attempt).
    again = await deliver(client, created, msg_id="msg_replayed")
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert user_row(dba, "user_rep") == before
    assert counts(dba) == before_counts


async def test_rejected_deliveries_write_nothing(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any]
) -> None:
    body = event("user.created", clerk_user("user_evil", "evil@example.com"))
    good = sign(body)

    tampered = body.replace(b"evil@example.com", b"boss@example.com")
    r = await client.post(URL, content=tampered, headers=good)
    assert r.status_code == 401 and r.json()["code"] == "webhook_signature_invalid"

    wrong_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    r = await client.post(URL, content=body, headers=sign(body, secret=wrong_secret))
    assert r.status_code == 401

    old = sign(body, at=datetime.now(tz=UTC) - timedelta(minutes=10))
    r = await client.post(URL, content=body, headers=old)
    assert r.status_code == 401 and "too old" in r.json()["detail"]

    future = sign(body, at=datetime.now(tz=UTC) + timedelta(minutes=10))
    assert (await client.post(URL, content=body, headers=future)).status_code == 401

    for header in ("svix-id", "svix-timestamp", "svix-signature"):
        partial = {k: v for k, v in good.items() if k != header}
        r = await client.post(URL, content=body, headers=partial)
        assert r.status_code == 400, (header, r.text)
        assert header in r.json()["detail"]
        assert r.headers["content-type"].startswith("application/problem+json")

    for garbage in ("v1", "v1,not-base64!!", "v2,abc", "nonsense", "v1,"):
        r = await client.post(URL, content=body, headers={**good, "svix-signature": garbage})
        assert r.status_code == 401, (garbage, r.text)
    r = await client.post(URL, content=body, headers={**good, "svix-timestamp": "yesterday"})
    assert r.status_code == 401

    # Another message id under the same signature does not verify either.
    r = await client.post(URL, content=body, headers={**good, "svix-id": "msg_other"})
    assert r.status_code == 401

    # Correctly signed, but not a Clerk event, or not UTF-8.
    for bad_body in (b"not json", b'{"type": "user.created"}', b'{"type": 1, "data": {}}', b"[]"):
        r = await client.post(URL, content=bad_body, headers=sign(bad_body))
        assert r.status_code == 400, (bad_body, r.text)
        assert r.json()["code"] == "webhook_body_invalid"
    r = await client.post(URL, content=b"\xff\xfe", headers=good)
    assert r.status_code == 401
    # A user event without a user id is refused by the database (422), and not recorded.
    no_id = event("user.created", {"object": "user", "email_addresses": []})
    r = await deliver(client, no_id)
    assert r.status_code == 422, r.text

    assert counts(dba) == (0, 0)


async def test_unknown_event_types_are_acknowledged_and_ignored(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any]
) -> None:
    r = await deliver(client, event("session.created", {"id": "sess_1", "user_id": "user_x"}))
    assert r.status_code == 200
    assert r.json() == {"received": True, "outcome": "ignored"}
    r = await deliver(client, event("user.deleted", {"id": "user_never_seen", "deleted": True}))
    assert r.status_code == 200 and r.json()["outcome"] == "ignored"
    # A Clerk user without any email (phone sign-up) is skipped until an update adds one.
    no_email = clerk_user("user_phone", "x@example.com")
    no_email["email_addresses"] = []
    r = await deliver(client, event("user.created", no_email))
    assert r.json()["outcome"] == "skipped"
    r = await deliver(client, event("user.updated", clerk_user("user_phone", "phone@example.com")))
    assert r.json()["outcome"] == "created"
    assert counts(dba)[0] == 1


async def test_sign_up_claims_the_guest_record(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    await deliver(client, event("user.created", clerk_user("user_sm", "sm@example.com")))
    r = await client.post(
        "/api/crew/guests",
        json={"email": "Lights@Example.com", "first_name": "Lee", "notes": "board op"},
        headers=bearer("user_sm"),
    )
    assert r.status_code == 201, r.text
    guest_id = r.json()["user_id"]
    assert r.json()["status"] == "guest"
    users_before = counts(dba)[0]

    r = await deliver(
        client,
        event("user.created", clerk_user("user_lee", "lights@example.COM", first=None, last="Lightfoot")),
    )
    assert r.status_code == 200
    assert r.json() == {"received": True, "outcome": "claimed", "user_id": guest_id}
    assert counts(dba)[0] == users_before  # no second user
    row = user_row(dba, "user_lee")
    assert str(row["id"]) == guest_id
    assert (row["status"], row["first_name"], row["last_name"]) == ("verified", "Lee", "Lightfoot")

    # The claimed user logs in as themself; the manager still has them in the crew.
    me = await client.get("/api/me", headers=bearer("user_lee"))
    assert me.status_code == 200 and me.json()["id"] == guest_id
    crew = (await client.get("/api/crew", headers=bearer("user_sm"))).json()
    member = next(m for m in crew["items"] if m["user_id"] == guest_id)
    assert member["status"] == "verified" and member["relationship"]["notes"] == "board op"


async def test_email_of_an_active_clerk_user_is_not_taken_over(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any]
) -> None:
    await deliver(client, event("user.created", clerk_user("user_one", "same@example.com")))
    r = await deliver(client, event("user.created", clerk_user("user_two", "same@example.com")))
    assert r.status_code == 409
    assert r.json()["code"] == "23505"
    assert user_row(dba, "user_two") is None
    assert counts(dba) == (1, 1)  # the refused event is not recorded, so Svix's retry is applied later


async def test_unconfigured_secret_answers_503(settings: Settings, dba: psycopg.Connection[Any]) -> None:
    app = create_app(dataclasses.replace(settings, clerk_webhook_secret=None))
    body = event("user.created", clerk_user("user_x", "x@example.com"))
    async with live_server(app) as client:
        r = await client.post(URL, content=body, headers=sign(body))
    assert r.status_code == 503
    assert "KEEL_CLERK_WEBHOOK_SECRET" in r.json()["detail"]
    assert counts(dba) == (0, 0)

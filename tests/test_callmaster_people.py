"""Identity, preferences, crews and guests: the API and the DBA's `callmaster.create_guest_user`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

Bearer = Callable[..., dict[str, str]]


def add_user(dba: psycopg.Connection[Any], clerk_id: str, email: str | None = None) -> str:
    """A verified user as the webhook would have created it."""
    row = dba.execute(
        "INSERT INTO callmaster.users (clerk_user_id, email, first_name, status) VALUES (%s, %s, %s, 'verified')"
        " RETURNING id",
        (clerk_id, email or f"{clerk_id}@example.com", clerk_id.title()),
    ).fetchone()
    return str(row[0])


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def user_count(dba: psycopg.Connection[Any]) -> int:
    return dba.execute("SELECT count(*) FROM callmaster.users").fetchone()[0]


async def test_unknown_or_missing_identity(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    for method, path in [
        ("GET", "/api/me"),
        ("GET", "/api/crew"),
        ("GET", "/api/venues"),
        ("GET", "/api/departments"),
    ]:
        assert_problem(await client.request(method, path), 401)
        body = assert_problem(await client.request(method, path, headers=bearer("user_stranger")), 403)
        assert body["code"] == "42501"
        assert "user_stranger" in body["detail"] and "not known" in body["detail"]
    r = await client.post("/api/venues", json={"name": "Nowhere"}, headers=bearer("user_stranger"))
    assert_problem(r, 403)
    r = await client.post(
        "/api/crew/guests", json={"email": "g@example.com"}, headers=bearer("user_stranger")
    )
    assert_problem(r, 403)
    assert user_count(dba) == 0


async def test_me_and_preferences(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    me_id = add_user(dba, "user_me")
    auth = bearer("user_me")
    r = await client.get("/api/me", headers=auth)
    assert r.status_code == 200
    assert r.json()["id"] == me_id and r.json()["preferences"] == {} and r.json()["status"] == "verified"

    r = await client.patch(
        "/api/me/preferences",
        json={"dark_mode": True, "lookahead_seconds": 30, "timezone": "Europe/London"},
        headers=auth,
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"dark_mode": True, "lookahead_seconds": 30, "timezone": "Europe/London"}
    r = await client.patch(
        "/api/me/preferences", json={"dark_mode": None, "auto_sort_cues": False}, headers=auth
    )
    assert r.json() == {"lookahead_seconds": 30, "timezone": "Europe/London", "auto_sort_cues": False}

    for bad, status in [
        ({"colour_scheme": "dark"}, 400),
        ({"dark_mode": "yes"}, 400),
        ({"lookahead_seconds": -1}, 400),
        ({"lookahead_seconds": 10**6}, 400),
        ({"language": "English"}, 400),
        ({"timezone": "Mars/Olympus"}, 422),
        ([], 400),
    ]:
        assert_problem(await client.patch("/api/me/preferences", json=bad, headers=auth), status)
    assert_problem(await client.patch("/api/me/preferences", content=b"{", headers=auth), 400)

    stored = dba.execute("SELECT preferences FROM callmaster.users WHERE id = %s", (me_id,)).fetchone()[0]
    assert stored == {"lookahead_seconds": 30, "timezone": "Europe/London", "auto_sort_cues": False}


async def test_guests_and_crew(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    sm_id = add_user(dba, "user_sm")
    other_id = add_user(dba, "user_other")
    sm, other = bearer("user_sm"), bearer("user_other")

    r = await client.post(
        "/api/crew/guests",
        headers=sm,
        json={
            "email": "Fly.Op@Example.com",
            "first_name": "Fran",
            "last_name": "Flyer",
            "phone": "+1 555 0100",
            "notes": "rail",
        },
    )
    assert r.status_code == 201, r.text
    guest = r.json()
    assert guest["email"] == "fly.op@example.com" and guest["status"] == "guest" and guest["is_self"] is False
    assert guest["relationship"]["notes"] == "rail" and guest["relationship"]["is_active"] is True
    row = dba.execute(
        "SELECT created_by, clerk_user_id FROM callmaster.users WHERE id = %s", (guest["user_id"],)
    ).fetchone()
    assert (str(row[0]), row[1]) == (sm_id, None)
    await client.post("/api/crew/guests", headers=sm, json={"email": "abe@example.com", "last_name": "Able"})

    crew = (await client.get("/api/crew", headers=sm)).json()
    assert crew["total"] == 3 and crew["limit"] == 50 and crew["offset"] == 0
    assert [m["is_self"] for m in crew["items"]] == [True, False, False]
    assert crew["items"][0]["user_id"] == sm_id
    assert [m["email"] for m in crew["items"][1:]] == ["abe@example.com", "fly.op@example.com"]
    page = (await client.get("/api/crew?limit=1&offset=2", headers=sm)).json()
    assert page["total"] == 3 and [m["email"] for m in page["items"]] == ["fly.op@example.com"]

    # The other user sees only themself, and cannot touch this crew.
    theirs = (await client.get("/api/crew", headers=other)).json()
    assert [m["user_id"] for m in theirs["items"]] == [other_id]
    path = f"/api/crew/{guest['user_id']}"
    assert_problem(await client.patch(path, json={"notes": "mine"}, headers=other), 404)
    assert_problem(await client.delete(path, headers=other), 404)

    r = await client.patch(path, json={"notes": "fly rail, SL", "is_active": False}, headers=sm)
    assert r.status_code == 200, r.text
    assert (
        r.json()["relationship"]["notes"] == "fly rail, SL" and r.json()["relationship"]["is_active"] is False
    )
    r = await client.patch(path, json={"notes": None}, headers=sm)
    assert r.json()["relationship"] == {**r.json()["relationship"], "notes": None, "is_active": False}

    r = await client.delete(path, headers=sm)
    assert r.status_code == 204
    assert_problem(await client.delete(path, headers=sm), 404)
    assert_problem(await client.patch(path, json={"notes": "x"}, headers=sm), 404)
    # The relationship ended; the user remains.
    assert (
        dba.execute("SELECT count(*) FROM callmaster.users WHERE id = %s", (guest["user_id"],)).fetchone()[0]
        == 1
    )
    assert (await client.get("/api/crew", headers=sm)).json()["total"] == 2


async def test_guest_input_errors_write_nothing(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    add_user(dba, "user_sm", "sm@example.com")
    sm = bearer("user_sm")
    r = await client.post("/api/crew/guests", json={"email": "taken@example.com"}, headers=sm)
    assert r.status_code == 201
    before = user_count(dba), dba.execute("SELECT count(*) FROM callmaster.crew_relationships").fetchone()[0]

    body = assert_problem(
        await client.post("/api/crew/guests", json={"email": "TAKEN@example.com"}, headers=sm), 409
    )
    assert body["code"] == "23505" and "taken@example.com" in body["detail"]
    assert_problem(await client.post("/api/crew/guests", json={"email": "sm@example.com"}, headers=sm), 409)
    for bad in [
        {},
        {"email": "not-an-email"},
        {"email": "a@b.c", "role": "admin"},
        {"email": 7},
        {"email": "a@example.com", "first_name": "x" * 101},
        {"email": "a" * 320 + "@example.com"},
    ]:
        assert_problem(await client.post("/api/crew/guests", json=bad, headers=sm), 400)
    assert_problem(await client.post("/api/crew/guests", content=b"email=a@b.c", headers=sm), 400)
    weird = {"email": "nul@example.com", "first_name": "a\u0000b"}
    assert_problem(await client.post("/api/crew/guests", json=weird, headers=sm), 422)

    path = f"/api/crew/{uuid.uuid4()}"
    assert_problem(await client.patch(path, json={"notes": "x"}, headers=sm), 404)
    assert_problem(await client.delete(path, headers=sm), 404)
    assert_problem(await client.patch("/api/crew/not-a-uuid", json={"notes": "x"}, headers=sm), 404)
    crew_id = dba.execute("SELECT id FROM callmaster.users WHERE email = 'taken@example.com'").fetchone()[0]
    for bad in [{"is_active": "no"}, {"is_active": None}, {"user_id": str(uuid.uuid4())}, {"notes": 5}]:
        assert_problem(await client.patch(f"/api/crew/{crew_id}", json=bad, headers=sm), 400)
    for query in ("limit=0", "limit=501", "offset=-1", "limit=abc"):
        assert_problem(await client.get(f"/api/crew?{query}", headers=sm), 400)

    after = user_count(dba), dba.execute("SELECT count(*) FROM callmaster.crew_relationships").fetchone()[0]
    assert after == before


async def test_guest_creation_is_idempotent_by_key(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    add_user(dba, "user_sm")
    headers = {**bearer("user_sm"), "Idempotency-Key": "guest-1"}
    first = await client.post("/api/crew/guests", json={"email": "once@example.com"}, headers=headers)
    again = await client.post("/api/crew/guests", json={"email": "once@example.com"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (
        dba.execute("SELECT count(*) FROM callmaster.users WHERE email = 'once@example.com'").fetchone()[0]
        == 1
    )


FAIL_RELATIONSHIPS = """
CREATE FUNCTION public.refuse_relationship() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = '23514', MESSAGE = 'relationship insert refused by test';
END $$;
CREATE TRIGGER refuse_relationship BEFORE INSERT ON callmaster.crew_relationships
    FOR EACH ROW EXECUTE FUNCTION public.refuse_relationship();
"""


async def test_guest_creation_is_atomic(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    manager = add_user(dba, "user_sm")
    dba.execute(FAIL_RELATIONSHIPS)
    before = user_count(dba)

    with pytest.raises(psycopg.errors.CheckViolation):
        dba.execute("SELECT callmaster.create_guest_user(%s, 'half@example.com', 'Half', 'Made')", (manager,))
    r = await client.post("/api/crew/guests", json={"email": "half@example.com"}, headers=bearer("user_sm"))
    assert_problem(r, 422)
    assert user_count(dba) == before
    assert (
        dba.execute("SELECT count(*) FROM callmaster.users WHERE email = 'half@example.com'").fetchone()[0]
        == 0
    )


def test_create_guest_user_from_psql(dba: psycopg.Connection[Any]) -> None:
    manager = add_user(dba, "user_sm")
    guest = dba.execute(
        "SELECT callmaster.create_guest_user(manager_user_id => %s, email => ' Sound@Example.com ',"
        " first_name => 'Sam', last_name => 'Sound', notes => 'A1')",
        (manager,),
    ).fetchone()[0]
    row = dba.execute(
        "SELECT u.email, u.status, u.created_by, r.manager_user_id, r.notes FROM callmaster.users u"
        " JOIN callmaster.crew_relationships r ON r.crew_user_id = u.id WHERE u.id = %s",
        (guest,),
    ).fetchone()
    assert (row[0], row[1], str(row[2]), str(row[3]), row[4]) == (
        "sound@example.com",
        "guest",
        manager,
        manager,
        "A1",
    )

    with pytest.raises(psycopg.errors.UniqueViolation, match="member of your crew"):
        dba.execute("SELECT callmaster.create_guest_user(%s, 'sound@example.com', 'S', 'S')", (manager,))
    with pytest.raises(psycopg.errors.NoDataFound, match="does not exist"):
        dba.execute(
            "SELECT callmaster.create_guest_user(%s, 'x@example.com', 'X', 'Y')", (str(uuid.uuid4()),)
        )
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        dba.execute("SELECT callmaster.create_guest_user(%s, 'nope', 'X', 'Y')", (manager,))
    comment = dba.execute(
        "SELECT obj_description('callmaster.create_guest_user(uuid, text, text, text, text, text)'::regprocedure)"
    ).fetchone()[0]
    assert "atomically" in comment

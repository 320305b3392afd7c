"""What a deactivated CallMaster user handed out stops granting anything (stale authority, issue 13 finding
14, for issue 16's share links and the pending members of finding 15).

A user whose Clerk account is deleted is deactivated (`callmaster.apply_clerk_event`, user.deleted; a DBA's
raw UPDATE of `is_active` does the same). Their own requests stop at once; what they delegated must stop
too: a share link they created no longer opens the show (and its live followers are disconnected within
the relay's check interval), and an invitation they sent, which the invitee no longer sees listed,
cannot be accepted (it would bring the invitee into the crew of a deactivated account and its shows).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.callmaster_live_support import follow, live_stage
from tests.contract_support import build_request, operations, product, seed_world, table_checksums
from tests.factories import KEYS_ONE, Bearer, add_script, add_show, add_user, assert_problem, one


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "live_check_interval": 0.3,
        "live_linger": 0.5,
        "share_link_rate_limit": 1000,
        "encryption_keys": KEYS_ONE,  # seed_world writes leads
    }


def clerk_deletes(dba: psycopg.Connection[Any], clerk_id: str) -> None:
    """The verified webhook's call for a Clerk user.deleted event."""
    outcome = one(
        dba,
        "SELECT callmaster.apply_clerk_event(%s, 'user.deleted', %s)",
        (f"msg_deleted_{clerk_id}", json.dumps({"id": clerk_id})),
    )
    assert outcome["outcome"] == "deactivated"


async def test_share_links_of_a_deactivated_owner_grant_nothing(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    stage = live_stage(dba)
    show, script = stage["show"], stage["script"]
    r = await client.post(f"/api/shows/{show}/share-links", json={}, headers=bearer("user_a"))
    token = r.json()["token"]
    urls = [
        f"/api/shared/{token}",
        f"/api/shared/{token}/scripts/{script}",
        f"/api/shared/{token}/scripts/{script}/live/presence",
    ]
    for url in urls:
        assert (await client.get(url)).status_code == 200, url

    async with follow(client, f"/api/shared/{token}/scripts/{script}/live") as guest:
        assert (await guest.next()).event == "state"
        clerk_deletes(dba, "user_a")
        assert (await guest.next(timeout=5)).event == "revoked"
    for url in [*urls, f"/api/shared/{token}/scripts/{script}/live"]:
        assert assert_problem(await client.get(url), 404)["code"] == "P0002", url
    # The link itself is unchanged (a relinked account gets its unexpired links back, as its shows).
    assert one(dba, "SELECT revoked_at IS NULL FROM callmaster.share_links WHERE show_id = %s", (show,))


async def test_an_invitation_of_a_deactivated_manager_cannot_be_accepted(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    manager = add_user(dba, "user_m")
    add_user(dba, "user_i", "ivy@example.com")
    show = add_show(dba, manager)
    r = await client.post(
        "/api/crew/guests",
        json={"email": "ivy@example.com", "first_name": "Ivy", "last_name": "Invited"},
        headers=bearer("user_m"),
    )
    assert r.status_code == 201, r.text
    pending = r.json()["user_id"]
    r = await client.post(f"/api/shows/{show}/crew", json={"user_id": pending}, headers=bearer("user_m"))
    assert r.status_code == 201, r.text
    ivy = bearer("user_i")
    [invitation] = (await client.get("/api/crew/invitations", headers=ivy)).json()["items"]

    clerk_deletes(dba, "user_m")
    assert (await client.get("/api/crew/invitations", headers=ivy)).json()["total"] == 0
    for verb in ("accept", "decline"):
        r = await client.post(f"/api/crew/invitations/{invitation['id']}/{verb}", headers=ivy)
        assert assert_problem(r, 404)["code"] == "P0002", verb
    assert_problem(await client.get(f"/api/shows/{show}", headers=ivy), 404)
    assert (
        one(dba, "SELECT count(*) FROM callmaster.crew_relationships WHERE manager_user_id = %s", (manager,))
        == 0
    )
    assert (
        one(
            dba,
            "SELECT count(*) FROM callmaster.crew_assignments WHERE show_id = %s AND invitation_id = %s",
            (show, invitation["id"]),
        )
        == 1
    )


async def test_idempotent_replays_of_a_deactivated_user_answer_as_any_other_call(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    """A retry with an Idempotency-Key re-reads what it answers with the caller's current rights: after
    Clerk's user.deleted it is refused like every other call (it used to replay the stored answer), and a
    record keeps the created row's id only."""
    script = add_script(dba, add_show(dba, add_user(dba, "user_d")))
    owner = bearer("user_d")
    calls = [
        (f"/api/scripts/{script}/duplicate", {"name": "Copy"}),
        ("/api/crew/guests", {"email": "gus@example.com", "first_name": "Gus", "last_name": "Guest"}),
    ]
    for url, body in calls:
        first = await client.post(url, json=body, headers={**owner, "Idempotency-Key": url})
        assert first.status_code == 201, first.text
        replay = await client.post(url, json=body, headers={**owner, "Idempotency-Key": url})
        assert (replay.status_code, replay.json()) == (201, first.json())
        assert replay.headers["Idempotent-Replayed"] == "true"
    clerk_deletes(dba, "user_d")
    for url, body in calls:
        r = await client.post(url, json=body, headers={**owner, "Idempotency-Key": url})
        assert assert_problem(r, 403)["code"] == "42501", url
    stored = dba.execute(
        "SELECT path, array(SELECT jsonb_object_keys(response_body)) FROM keel.idempotency_keys ORDER BY path"
    ).fetchall()
    assert stored == [("/api/crew/guests", ["user_id"]), (f"/api/scripts/{script}/duplicate", ["id"])]


def test_every_callmaster_idempotent_call_replays_through_a_reader() -> None:
    """The class: a CallMaster request's standing is checked by the functions it calls (no context check
    as clinic.request_claims), so a replay that answered from the stored record alone would skip it.
    Every run_idempotent call under api/callmaster passes `replay=` (a reader re-checking the caller)."""
    calls = []
    for path in sorted((Path(__file__).resolve().parents[1] / "api" / "callmaster").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "run_idempotent":
                calls.append((path.name, node.lineno, any(k.arg == "replay" for k in node.keywords)))
    assert len(calls) >= 2
    assert [call for call in calls if not call[2]] == []


async def test_a_deactivated_user_is_refused_by_every_callmaster_operation(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    """Every CallMaster operation of the OpenAPI document (live streams included), called by its owner
    right after Clerk's user.deleted with a token that is still valid, answers 403 (42501) and changes
    nothing: no endpoint keeps answering on the token's authority."""
    world = await seed_world(dba, client, bearer)
    doc = (await client.get("/schema/openapi.json")).json()
    owned = [
        (path, method, op)
        for path, method, op in operations(doc)
        if product(op) == "callmaster" and op.get("security") != [{}]
    ]
    assert len(owned) >= 45, "the document lost its CallMaster operations"
    clerk_deletes(dba, "user_owner_a")
    before = table_checksums(dba)
    answers = {}
    for path, method, op in owned:
        request = build_request(doc, path, op, world)
        response = await client.request(
            method,
            request["url"],
            params=request["params"],
            json=request.get("json"),
            headers={**request["headers"], **world.headers["owner"]},
        )
        answers[f"{method} {path}"] = (response.status_code, response.json().get("code"))
    assert {op: answer for op, answer in answers.items() if answer != (403, "42501")} == {}
    assert table_checksums(dba) == before

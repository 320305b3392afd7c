"""Shows and show crew over HTTP: CRUD, venue ownership, crew assignments, who may read and write."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from tests.factories import (
    Bearer,
    add_crew,
    add_department,
    add_script,
    add_show,
    add_user,
    assert_problem,
    assign,
    one,
)


async def test_show_crud(client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer) -> None:
    owner = add_user(dba, "user_a")
    auth = bearer("user_a")
    venue = str(
        one(dba, "INSERT INTO callmaster.venues (owner_id, name) VALUES (%s, 'Globe') RETURNING id", (owner,))
    )

    r = await client.post(
        "/api/shows",
        json={
            "name": "Hamlet",
            "venue_id": venue,
            "show_date": "2026-05-01T19:30:00+00:00",
            "show_end": "2026-05-01T22:00:00Z",
            "deadline": "2026-04-01",
            "notes": "opening",
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    show = r.json()
    assert show["owner_id"] == owner and show["venue_id"] == venue and show["venue_name"] == "Globe"
    assert show["show_date"].startswith("2026-05-01T19:30:00") and show["script_count"] == 0
    await client.post("/api/shows", json={"name": "Macbeth", "show_date": "2026-06-01"}, headers=auth)
    await client.post("/api/shows", json={"name": "Lear"}, headers=auth)

    assert (await client.get(f"/api/shows/{show['id']}", headers=auth)).json() == show
    listing = (await client.get("/api/shows", headers=auth)).json()
    assert [s["name"] for s in listing["items"]] == ["Hamlet", "Macbeth", "Lear"]
    assert (listing["total"], listing["limit"], listing["offset"]) == (3, 50, 0)
    page = (await client.get("/api/shows?limit=1&offset=1&q=ET", headers=auth)).json()
    assert page["total"] == 2 and [s["name"] for s in page["items"]] == ["Macbeth"]

    r = await client.patch(
        f"/api/shows/{show['id']}", json={"name": "Hamlet (revival)", "venue_id": None}, headers=auth
    )
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (
        changed["name"] == "Hamlet (revival)"
        and changed["venue_id"] is None
        and changed["notes"] == "opening"
    )

    r = await client.delete(f"/api/shows/{show['id']}", headers=auth)
    assert r.status_code == 204
    assert_problem(await client.get(f"/api/shows/{show['id']}", headers=auth), 404)
    assert_problem(await client.delete(f"/api/shows/{show['id']}", headers=auth), 404)


async def test_show_bad_input(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    add_user(dba, "user_a")
    other = add_user(dba, "user_b")
    auth = bearer("user_a")
    foreign_venue = one(
        dba, "INSERT INTO callmaster.venues (owner_id, name) VALUES (%s, 'Other') RETURNING id", (other,)
    )

    body = assert_problem(
        await client.post("/api/shows", json={"name": "X", "venue_id": str(foreign_venue)}, headers=auth), 422
    )
    assert body["code"] == "23503" and str(foreign_venue) in body["detail"]
    for bad in (
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "X", "show_date": "tomorrow"},
        {"name": "X", "colour": "red"},
        {"name": "X", "venue_id": "not-a-uuid"},
    ):
        assert_problem(await client.post("/api/shows", json=bad, headers=auth), (400, 422))
    impossible = assert_problem(  # refused before PostgreSQL's cast, in Keel's words (issue 14)
        await client.post("/api/shows", json={"name": "X", "show_date": "2026-02-30"}, headers=auth), 422
    )
    assert impossible["detail"] == "'2026-02-30' is not a calendar date or time."
    body = assert_problem(
        await client.post(
            "/api/shows",
            json={"name": "X", "show_date": "2026-05-02", "show_end": "2026-05-01"},
            headers=auth,
        ),
        422,
    )
    assert body["code"] == "23514"
    show = (await client.post("/api/shows", json={"name": "Ok"}, headers=auth)).json()
    assert_problem(
        await client.patch(f"/api/shows/{show['id']}", json={"venue_id": str(foreign_venue)}, headers=auth),
        422,
    )
    assert_problem(
        await client.patch(f"/api/shows/{show['id']}", json={"name": None}, headers=auth), (400, 422)
    )
    assert_problem(await client.get("/api/shows/not-a-uuid", headers=auth), (400, 404))
    assert_problem(await client.get("/api/shows", headers=bearer("nobody")), 403)
    assert_problem(await client.get("/api/shows"), 401)


async def test_show_crew_assignments(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    owner = add_user(dba, "user_a")
    stranger = add_user(dba, "user_b")
    crew = add_crew(dba, owner, "sam@example.com")
    lights = add_department(dba, owner, "Lights")
    foreign_department = add_department(dba, stranger, "Sound")
    show = add_show(dba, owner)
    auth = bearer("user_a")

    r = await client.post(
        f"/api/shows/{show}/crew",
        json={"user_id": crew, "department_id": lights, "show_role": "Board op"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    assignment = r.json()
    assert assignment["user"]["email"] == "sam@example.com" and assignment["department"]["name"] == "Lights"
    r = await client.post(f"/api/shows/{show}/crew", json={"user_id": owner}, headers=auth)
    assert r.status_code == 201, r.text

    listing = (await client.get(f"/api/shows/{show}/crew", headers=auth)).json()
    assert listing["total"] == 2 and {a["user_id"] for a in listing["items"]} == {crew, owner}

    assert_problem(
        await client.post(
            f"/api/shows/{show}/crew", json={"user_id": crew, "department_id": lights}, headers=auth
        ),
        409,
    )
    body = assert_problem(
        await client.post(f"/api/shows/{show}/crew", json={"user_id": stranger}, headers=auth), 422
    )
    assert stranger in body["detail"]
    assert_problem(
        await client.post(
            f"/api/shows/{show}/crew",
            json={"user_id": crew, "department_id": foreign_department},
            headers=auth,
        ),
        422,
    )
    assert_problem(await client.post(f"/api/shows/{show}/crew", json={"user": crew}, headers=auth), 400)

    r = await client.delete(f"/api/shows/{show}/crew", params={"user_id": crew}, headers=auth)
    assert r.status_code == 204
    assert_problem(
        await client.delete(f"/api/shows/{show}/crew", params={"user_id": crew}, headers=auth), 404
    )
    own = next(a for a in listing["items"] if a["user_id"] == owner)
    r = await client.delete(f"/api/shows/{show}/crew/{own['id']}", headers=auth)
    assert r.status_code == 204
    assert (await client.get(f"/api/shows/{show}/crew", headers=auth)).json()["total"] == 0
    assert_problem(await client.delete(f"/api/shows/{show}/crew", headers=auth), 400)


async def test_crew_read_only_and_strangers_404(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    owner = add_user(dba, "user_a")
    crew = add_user(dba, "user_crew")
    add_user(dba, "user_stranger")
    show = add_show(dba, owner)
    script = add_script(dba, show)
    element = str(
        one(
            dba,
            "INSERT INTO callmaster.script_elements (script_id, element_type, cue_id) "
            "VALUES (%s, 'cue', 'LX1') RETURNING id",
            (script,),
        )
    )
    dba.execute(
        "INSERT INTO callmaster.script_element_equipment (element_id, equipment_name) VALUES (%s, 'spot')",
        (element,),
    )
    assign(dba, show, crew)
    as_crew, as_stranger = bearer("user_crew"), bearer("user_stranger")

    reads = [
        f"/api/shows/{show}",
        f"/api/shows/{show}/crew",
        f"/api/shows/{show}/scripts",
        f"/api/scripts/{script}",
        f"/api/scripts/{script}/elements",
        f"/api/elements/{element}",
    ]
    for path in reads:
        r = await client.get(path, headers=as_crew)
        assert r.status_code == 200, (path, r.text)
        assert_problem(await client.get(path, headers=as_stranger), 404)
    assert [s["id"] for s in (await client.get("/api/shows", headers=as_crew)).json()["items"]] == [show]
    assert (await client.get("/api/shows", headers=as_stranger)).json()["total"] == 0
    listed = (await client.get(f"/api/scripts/{script}/elements", headers=as_crew)).json()["items"]
    assert listed[0]["equipment"] == [{"equipment_name": "spot", "is_required": True, "notes": None}]

    writes: list[tuple[str, str, Any]] = [
        ("PATCH", f"/api/shows/{show}", {"name": "mine now"}),
        ("DELETE", f"/api/shows/{show}", None),
        ("POST", f"/api/shows/{show}/crew", {"user_id": crew}),
        ("POST", f"/api/shows/{show}/scripts", {"name": "extra"}),
        ("PATCH", f"/api/scripts/{script}", {"name": "renamed"}),
        ("DELETE", f"/api/scripts/{script}", None),
        ("POST", f"/api/scripts/{script}/duplicate", {}),
        ("POST", f"/api/scripts/{script}/elements", {"element_type": "cue"}),
        ("PATCH", f"/api/scripts/{script}/elements", [{"id": element, "cue_id": "LX9"}]),
        ("POST", f"/api/scripts/{script}/elements/auto-sort", None),
        ("POST", f"/api/scripts/{script}/edits", {"operations": [{"op": "delete", "id": element}]}),
        ("PATCH", f"/api/elements/{element}", {"cue_id": "LX9"}),
        ("DELETE", f"/api/elements/{element}", None),
    ]
    for method, path, body in writes:
        assert_problem(await client.request(method, path, json=body, headers=as_crew), 403)
        assert_problem(await client.request(method, path, json=body, headers=as_stranger), 404)

    assert one(dba, "SELECT count(*) FROM callmaster.scripts") == 1
    assert one(dba, "SELECT cue_id FROM callmaster.script_elements") == "LX1"
    assert one(dba, "SELECT name FROM callmaster.shows") == "Hamlet"

    # An inactive assignment no longer grants access.
    dba.execute("UPDATE callmaster.crew_assignments SET is_active = false")
    assert_problem(await client.get(f"/api/scripts/{script}/elements", headers=as_crew), 404)

"""Venues and departments: CRUD, validation, owner isolation, and `callmaster.delete_venue`."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.factories import Bearer, add_user, assert_problem

GLOBE = {
    "name": "The Globe",
    "address": "21 New Globe Walk",
    "city": "London",
    "state": "LDN",
    "capacity": 1570,
    "venue_type": "thrust",
    "contact_name": "Box Office",
    "contact_email": "box@globe.example",
    "contact_phone": "+44 20 7401 9919",
    "stage_width": 13.5,
    "stage_depth": 8.25,
    "fly_height": 0,
    "equipment": ["trap", "gallery"],
    "notes": "open air",
    "rental_rate": 2500.5,
    "minimum_rental": 1000,
}


def table_counts(dba: psycopg.Connection[Any]) -> tuple[int, int]:
    return (
        dba.execute("SELECT count(*) FROM callmaster.venues").fetchone()[0],
        dba.execute("SELECT count(*) FROM callmaster.departments").fetchone()[0],
    )


async def test_venue_crud(client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer) -> None:
    owner = add_user(dba, "user_a")
    auth = bearer("user_a")
    r = await client.post("/api/venues", json=GLOBE, headers=auth)
    assert r.status_code == 201, r.text
    venue = r.json()
    assert venue["owner_id"] == owner
    assert {k: venue[k] for k in GLOBE} == GLOBE
    await client.post("/api/venues", json={"name": "Almeida", "city": "Islington"}, headers=auth)
    await client.post("/api/venues", json={"name": "barbican"}, headers=auth)

    r = await client.get(f"/api/venues/{venue['id']}", headers=auth)
    assert r.status_code == 200 and r.json() == venue

    listing = (await client.get("/api/venues", headers=auth)).json()
    assert [v["name"] for v in listing["items"]] == ["Almeida", "barbican", "The Globe"]
    assert (listing["total"], listing["limit"], listing["offset"]) == (3, 50, 0)
    page = (await client.get("/api/venues?limit=1&offset=1", headers=auth)).json()
    assert [v["name"] for v in page["items"]] == ["barbican"] and page["total"] == 3
    found = (await client.get("/api/venues?q=LONDON", headers=auth)).json()
    assert [v["name"] for v in found["items"]] == ["The Globe"] and found["total"] == 1
    assert (await client.get("/api/venues?q=100%25_", headers=auth)).json()["total"] == 0

    r = await client.patch(f"/api/venues/{venue['id']}", json={"capacity": 1600, "notes": None}, headers=auth)
    assert r.status_code == 200, r.text
    patched = r.json()
    assert patched["capacity"] == 1600 and patched["notes"] is None and patched["name"] == "The Globe"
    assert patched["equipment"] == ["trap", "gallery"]
    r = await client.patch(f"/api/venues/{venue['id']}", json={}, headers=auth)
    assert r.status_code == 200 and r.json()["capacity"] == 1600

    assert (await client.delete(f"/api/venues/{venue['id']}", headers=auth)).status_code == 204
    assert_problem(await client.get(f"/api/venues/{venue['id']}", headers=auth), 404)
    assert_problem(await client.delete(f"/api/venues/{venue['id']}", headers=auth), 404)
    assert (await client.get("/api/venues", headers=auth)).json()["total"] == 2


async def test_department_crud(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    add_user(dba, "user_a")
    auth = bearer("user_a")
    r = await client.post(
        "/api/departments",
        json={"name": "Lighting", "color": "#FFAA00", "initials": "LX", "description": "electrics"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    lx = r.json()
    assert (lx["name"], lx["color"], lx["initials"], lx["description"]) == (
        "Lighting",
        "#FFAA00",
        "LX",
        "electrics",
    )
    sound = (await client.post("/api/departments", json={"name": "Sound"}, headers=auth)).json()

    body = assert_problem(await client.post("/api/departments", json={"name": "lighting"}, headers=auth), 409)
    assert body["code"] == "23505"
    body = assert_problem(
        await client.patch(f"/api/departments/{sound['id']}", json={"name": "LIGHTING"}, headers=auth), 409
    )
    assert body["code"] == "23505"

    listing = (await client.get("/api/departments", headers=auth)).json()
    assert [d["name"] for d in listing["items"]] == ["Lighting", "Sound"] and listing["total"] == 2
    assert (await client.get("/api/departments?q=lx", headers=auth)).json()["items"][0]["id"] == lx["id"]

    r = await client.patch(
        f"/api/departments/{lx['id']}", json={"color": "#00ff00", "initials": None}, headers=auth
    )
    assert r.status_code == 200 and r.json()["color"] == "#00ff00" and r.json()["initials"] is None
    assert (await client.get(f"/api/departments/{lx['id']}", headers=auth)).json()["color"] == "#00ff00"

    assert (await client.delete(f"/api/departments/{lx['id']}", headers=auth)).status_code == 204
    assert_problem(await client.get(f"/api/departments/{lx['id']}", headers=auth), 404)
    assert (await client.get("/api/departments", headers=auth)).json()["total"] == 1


async def test_owners_cannot_reach_each_others_rows(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    add_user(dba, "user_a")
    add_user(dba, "user_b")
    a, b = bearer("user_a"), bearer("user_b")
    venue = (await client.post("/api/venues", json={"name": "A's venue"}, headers=a)).json()
    dept = (await client.post("/api/departments", json={"name": "A's dept"}, headers=a)).json()
    b_venue = (await client.post("/api/venues", json={"name": "B's venue"}, headers=b)).json()
    b_dept = (await client.post("/api/departments", json={"name": "B's dept"}, headers=b)).json()
    for kind, row in (("venues", b_venue), ("departments", b_dept)):  # and the other way round
        path = f"/api/{kind}/{row['id']}"
        assert_problem(await client.get(path, headers=a), 404)
        assert_problem(await client.patch(path, json={"name": "A's now"}, headers=a), 404)
        assert_problem(await client.delete(path, headers=a), 404)
        assert (await client.get(path, headers=b)).json() == row

    for kind, row in (("venues", venue), ("departments", dept)):
        path = f"/api/{kind}/{row['id']}"
        missing = f"/api/{kind}/{uuid.uuid4()}"
        for target in (path, missing):
            assert_problem(await client.get(target, headers=b), 404)
            assert_problem(await client.patch(target, json={"name": "mine now"}, headers=b), 404)
            assert_problem(await client.delete(target, headers=b), 404)
        listed = (await client.get(f"/api/{kind}", headers=b)).json()
        assert row["id"] not in [item["id"] for item in listed["items"]]
        still = (await client.get(path, headers=a)).json()
        assert still == row  # untouched

    # Same-named departments of different owners are fine.
    assert (await client.post("/api/departments", json={"name": "A's dept"}, headers=b)).status_code == 201


async def test_bad_input_answers_problems_and_writes_nothing(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    add_user(dba, "user_a")
    auth = bearer("user_a")
    venue = (await client.post("/api/venues", json={"name": "Kept", "capacity": 10}, headers=auth)).json()
    dept = (
        await client.post("/api/departments", json={"name": "Kept", "color": "#123456"}, headers=auth)
    ).json()
    before = table_counts(dba)
    v_path, d_path = f"/api/venues/{venue['id']}", f"/api/departments/{dept['id']}"

    cases: list[tuple[str, str, Any, int | tuple[int, ...]]] = [
        ("POST", "/api/venues", {}, 400),
        ("POST", "/api/venues", {"name": ""}, 400),
        ("POST", "/api/venues", {"name": "   "}, 422),
        ("POST", "/api/venues", {"name": "x", "capacity": -1}, 400),
        ("POST", "/api/venues", {"name": "x", "capacity": 1.5}, 400),
        ("POST", "/api/venues", {"name": "x", "capacity": "many"}, 400),
        ("POST", "/api/venues", {"name": "x", "contact_email": "box office"}, 400),
        ("POST", "/api/venues", {"name": "x", "stage_width": -2}, 400),
        ("POST", "/api/venues", {"name": "x", "rental_rate": 1e20}, 400),
        ("POST", "/api/venues", {"name": "x", "venue_type": "Black Box"}, 400),
        ("POST", "/api/venues", {"name": "x", "equipment": "fly"}, 400),
        ("POST", "/api/venues", {"name": "x", "equipment": [""]}, 400),
        ("POST", "/api/venues", {"name": "x", "owner_id": str(uuid.uuid4())}, 400),
        ("POST", "/api/venues", {"name": "x" * 201}, 400),
        ("POST", "/api/venues", {"name": "nul\u0000"}, 422),
        ("POST", "/api/venues", [{"name": "x"}], 400),
        ("POST", "/api/venues", b"name=x", 400),
        ("PATCH", v_path, {"name": None}, 400),
        ("PATCH", v_path, {"capacity": -5}, 400),
        ("PATCH", v_path, {"equipment": None}, 400),
        ("PATCH", v_path, {"id": str(uuid.uuid4())}, 400),
        ("PATCH", v_path, {"contact_email": "@"}, 400),
        ("PATCH", "/api/venues/not-a-uuid", {"name": "x"}, (400, 404)),
        ("GET", "/api/venues/12345", None, (400, 404)),
        ("DELETE", "/api/venues/12345", None, (400, 404)),
        ("GET", "/api/venues?limit=0", None, 400),
        ("GET", "/api/venues?offset=-1", None, 400),
        ("GET", "/api/venues?q=%00", None, 400),
        ("GET", "/api/venues?q=" + "x" * 201, None, 400),
        ("POST", "/api/departments", {}, 400),
        ("POST", "/api/departments", {"name": "x", "color": "red"}, 400),
        ("POST", "/api/departments", {"name": "x", "color": "#12345G"}, 400),
        ("POST", "/api/departments", {"name": "x", "initials": "TOOLONG"}, 400),
        ("POST", "/api/departments", {"name": "x", "initials": "L-X"}, 400),
        ("POST", "/api/departments", {"name": "x", "owner_id": str(uuid.uuid4())}, 400),
        ("POST", "/api/departments", {"name": "kept"}, 409),
        ("PATCH", d_path, {"name": None}, 400),
        ("PATCH", d_path, {"color": "#FFF"}, 400),
        ("PATCH", d_path, {"description": 1}, 400),
        ("GET", "/api/departments?limit=100000", None, 400),
        ("GET", "/api/departments/zzz", None, (400, 404)),
    ]
    for method, path, body, status in cases:
        if isinstance(body, bytes):
            r = await client.request(
                method, path, content=body, headers={**auth, "content-type": "application/json"}
            )
        else:
            r = await client.request(method, path, json=body, headers=auth)
        try:
            assert_problem(r, status)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {body!r}: {exc}") from exc

    assert table_counts(dba) == before
    assert (await client.get(v_path, headers=auth)).json() == venue
    assert (await client.get(d_path, headers=auth)).json() == dept


def _seed_shows(dba: psycopg.Connection[Any], owner: str, venue: str, other_venue: str) -> None:
    dba.execute(
        "INSERT INTO callmaster.shows (owner_id, venue_id, name) VALUES"
        " (%(o)s, %(v)s, 'Hamlet'), (%(o)s, %(v)s, 'Lear'), (%(o)s, %(w)s, 'Tempest'), (%(o)s, NULL, 'Touring')",
        {"o": owner, "v": venue, "w": other_venue},
    )


def _venue(dba: psycopg.Connection[Any], owner: str, name: str) -> str:
    return str(
        dba.execute(
            "INSERT INTO callmaster.venues (owner_id, name) VALUES (%s, %s) RETURNING id", (owner, name)
        ).fetchone()[0]
    )


def _shows_by_venue(dba: psycopg.Connection[Any]) -> dict[str, str | None]:
    return {
        name: (str(v) if v else None)
        for name, v in dba.execute("SELECT name, venue_id FROM callmaster.shows")
    }


def test_delete_venue_from_psql(dba: psycopg.Connection[Any]) -> None:
    owner = add_user(dba, "user_a")
    venue, other = _venue(dba, owner, "Old Vic"), _venue(dba, owner, "Young Vic")
    _seed_shows(dba, owner, venue, other)

    detached = dba.execute("SELECT callmaster.delete_venue(%s)", (venue,)).fetchone()[0]
    assert detached == 2
    assert _shows_by_venue(dba) == {"Hamlet": None, "Lear": None, "Tempest": other, "Touring": None}
    assert dba.execute("SELECT count(*) FROM callmaster.venues WHERE id = %s", (venue,)).fetchone()[0] == 0
    assert dba.execute("SELECT callmaster.delete_venue(venue_id => %s)", (other,)).fetchone()[0] == 1
    with pytest.raises(psycopg.errors.NoDataFound, match="not found"):
        dba.execute("SELECT callmaster.delete_venue(%s)", (venue,))


async def test_delete_venue_from_the_api(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    owner = add_user(dba, "user_a")
    add_user(dba, "user_b")
    venue, other = _venue(dba, owner, "Old Vic"), _venue(dba, owner, "Young Vic")
    _seed_shows(dba, owner, venue, other)

    assert_problem(await client.delete(f"/api/venues/{venue}", headers=bearer("user_b")), 404)
    assert _shows_by_venue(dba)["Hamlet"] == venue

    r = await client.delete(f"/api/venues/{venue}", headers=bearer("user_a"))
    assert r.status_code == 204
    assert _shows_by_venue(dba) == {"Hamlet": None, "Lear": None, "Tempest": other, "Touring": None}
    assert dba.execute("SELECT count(*) FROM callmaster.shows").fetchone()[0] == 4


def test_a_show_cannot_use_another_owners_venue(dba: psycopg.Connection[Any]) -> None:
    a, b = add_user(dba, "user_a"), add_user(dba, "user_b")
    venue = _venue(dba, a, "A's")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        dba.execute(
            "INSERT INTO callmaster.shows (owner_id, venue_id, name) VALUES (%s, %s, 'x')", (b, venue)
        )


async def test_crew_read_the_venue_and_departments_of_their_show(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Bearer
) -> None:
    owner, crew = add_user(dba, "user_a"), add_user(dba, "user_b")
    add_user(dba, "user_c")
    venue = _venue(dba, owner, "Lyric")
    dept = str(
        dba.execute(
            "INSERT INTO callmaster.departments (owner_id, name) VALUES (%s, 'Sound') RETURNING id", (owner,)
        ).fetchone()[0]
    )
    show = dba.execute(
        "INSERT INTO callmaster.shows (owner_id, venue_id, name) VALUES (%s, %s, 'Hamlet') RETURNING id",
        (owner, venue),
    ).fetchone()[0]
    dba.execute("INSERT INTO callmaster.crew_assignments (show_id, user_id) VALUES (%s, %s)", (show, crew))

    for path in (f"/api/venues/{venue}", f"/api/departments/{dept}"):
        assert (await client.get(path, headers=bearer("user_b"))).status_code == 200
        body = assert_problem(await client.patch(path, json={"name": "Ours"}, headers=bearer("user_b")), 403)
        assert body["code"] == "42501" and "only read" in body["detail"]
        assert_problem(await client.delete(path, headers=bearer("user_b")), 403)
        for verb in ("get", "delete"):
            assert_problem(await client.request(verb.upper(), path, headers=bearer("user_c")), 404)
    # Lists stay the user's own rows.
    assert (await client.get("/api/venues", headers=bearer("user_b"))).json()["total"] == 0
    assert table_counts(dba) == (1, 1)
    assert _shows_by_venue(dba) == {"Hamlet": venue}

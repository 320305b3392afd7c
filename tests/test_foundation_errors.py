"""Every SQLSTATE of DESIGN §6 maps to its HTTP status as a problem document; bad requests are 4xx."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import pytest
from litestar import Litestar, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.app import create_app
from api.deps import Db, Page
from api.errors import SQLSTATES, is_retried, is_transient, status_for_sqlstate
from tests.conftest import live_server

TEST_SQL = """
CREATE SEQUENCE public.keel_test_attempts;
CREATE FUNCTION public.keel_test_raise(code text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('public.keel_test_attempts');
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = 'raised ' || code, HINT = 'a hint for ' || code;
END $$;
CREATE TABLE public.keel_test_parent (id uuid PRIMARY KEY DEFAULT gen_random_uuid());
CREATE TABLE public.keel_test_child (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    parent_id uuid NOT NULL REFERENCES public.keel_test_parent (id)
);
GRANT USAGE ON SEQUENCE public.keel_test_attempts TO keel_api;
GRANT SELECT, INSERT, DELETE ON public.keel_test_parent, public.keel_test_child TO keel_api;
"""


class Thing(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    count: int


@get("/test/raise/{code:str}")
async def raise_code(code: FromPath[str], db: Db) -> None:
    await db.execute(None, "SELECT public.keel_test_raise(%s)", (code,))


@get("/test/sleep/{seconds:float}")
async def sleep(seconds: FromPath[float], db: Db) -> dict[str, Any]:
    await db.execute(None, "SELECT pg_sleep(%s)", (seconds,))
    return {"slept": seconds}


@post("/test/children/{parent_id:uuid}")
async def add_child(parent_id: FromPath[UUID], db: Db) -> dict[str, Any]:
    return await db.fetch_one(
        None, "INSERT INTO public.keel_test_child (parent_id) VALUES (%s) RETURNING id", (parent_id,)
    )


@delete("/test/parents/{parent_id:uuid}")
async def delete_parent(parent_id: FromPath[UUID], db: Db) -> None:
    await db.execute(None, "DELETE FROM public.keel_test_parent WHERE id = %s", (parent_id,))


@post("/test/things")
async def create_thing(data: JSONBody[Thing]) -> dict[str, Any]:
    return msgspec.to_builtins(data)


@get("/test/echo")
async def echo(text: FromQuery[str], db: Db) -> dict[str, Any]:
    return await db.fetch_one(None, "SELECT %s::text AS text", (text,))


@get("/test/page")
async def page(pagination: Page) -> dict[str, Any]:
    return pagination.page([], 0)


@get("/test/crash")
async def crash() -> None:
    raise RuntimeError("internal detail that must not leak")


def _with_test_routes(app: Litestar) -> Litestar:
    for handler in (raise_code, sleep, add_child, delete_parent, create_thing, echo, page, crash):
        app.register(handler)
    return app


@pytest.fixture
def prepared(dba) -> None:
    dba.execute(TEST_SQL)


@pytest.fixture
async def test_client(settings, prepared):
    app = _with_test_routes(create_app(replace(settings, max_body_bytes=4096, max_json_body_bytes=4096)))
    async with live_server(app) as client:
        yield client


def _is_problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("P0002", 404),
        ("23505", 409),
        ("23P01", 409),
        ("23514", 422),
        ("22023", 422),
        ("22P02", 422),
        ("42501", 403),
        ("57014", 504),
    ],
)
async def test_raised_sqlstates_map_to_problems(test_client, code: str, status: int):
    body = _is_problem(await test_client.get(f"/test/raise/{code}"), status)
    assert body["code"] == code
    if status < 500:
        assert body["detail"] == f"raised {code}"
        assert body["hint"] == f"a hint for {code}"


@pytest.mark.parametrize("code", ["40001", "40P01"])
async def test_serialization_failures_are_retried_then_503(test_client, dba, code: str):
    response = await test_client.get(f"/test/raise/{code}")
    body = _is_problem(response, 503)
    assert body["code"] == code
    assert response.headers["retry-after"]
    attempts = dba.execute("SELECT last_value FROM public.keel_test_attempts").fetchone()[0]
    assert attempts == 4  # the first try and three retries


async def test_foreign_key_violation_is_422_for_request_reference_and_409_when_still_referenced(
    test_client, dba
):
    missing = "00000000-0000-0000-0000-0000000000aa"
    body = _is_problem(await test_client.post(f"/test/children/{missing}"), 422)
    assert body["code"] == "23503"
    assert dba.execute("SELECT count(*) FROM public.keel_test_child").fetchone()[0] == 0

    parent = dba.execute("INSERT INTO public.keel_test_parent DEFAULT VALUES RETURNING id").fetchone()[0]
    assert (await test_client.post(f"/test/children/{parent}")).status_code == 201
    body = _is_problem(await test_client.delete(f"/test/parents/{parent}"), 409)
    assert body["code"] == "23503"
    assert dba.execute("SELECT count(*) FROM public.keel_test_parent").fetchone()[0] == 1


async def test_statement_timeout_is_504(settings, prepared):
    app = _with_test_routes(create_app(replace(settings, statement_timeout_ms=200)))
    async with live_server(app) as client:
        body = _is_problem(await client.get("/test/sleep/2"), 504)
        assert body["code"] == "57014"


async def test_pool_exhaustion_is_503_with_retry_after(settings, prepared):
    app = _with_test_routes(create_app(replace(settings, pool_min_size=1, pool_max_size=1, pool_timeout=0.2)))
    async with live_server(app) as client:
        slow, starved = await asyncio.gather(
            client.get("/test/sleep/1"), _after(0.1, client.get("/test/sleep/0"))
        )
        assert slow.status_code == 200
        _is_problem(starved, 503)
        assert starved.headers["retry-after"]


async def _after(delay: float, awaitable: Any) -> Any:
    await asyncio.sleep(delay)
    return await awaitable


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"name": "x", "count": ', "application/json"),  # malformed JSON
        (b'{"name": "x", "count": "three"}', "application/json"),  # wrong type
        (b'{"name": "x", "count": 3, "extra": true}', "application/json"),  # unknown field
        (b'{"count": 3}', "application/json"),  # missing field
        (b"[1, 2]", "application/json"),  # not an object
    ],
)
async def test_invalid_bodies_are_400_problems(test_client, body: bytes, content_type: str):
    response = await test_client.post("/test/things", content=body, headers={"content-type": content_type})
    _is_problem(response, 400)


async def test_valid_body_passes(test_client):
    response = await test_client.post("/test/things", json={"name": "x", "count": 3})
    assert response.status_code == 201 and response.json() == {"name": "x", "count": 3}


async def test_oversize_body_is_413(test_client):
    response = await test_client.post("/test/things", json={"name": "x" * 10_000, "count": 1})
    _is_problem(response, 413)


async def test_nul_character_is_422_not_a_database_outage(test_client):
    assert (await test_client.get("/test/echo", params={"text": "ok"})).json() == {"text": "ok"}
    _is_problem(await test_client.get("/test/echo", params={"text": "a\x00b"}), 422)


async def test_pagination_bounds(test_client, bearer):
    auth = bearer()
    assert (await test_client.get("/test/page", params={"limit": 10, "offset": 5}, headers=auth)).json() == {
        "items": [],
        "total": 0,
        "limit": 10,
        "offset": 5,
    }
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"offset": 2**31}, {"limit": "ten"}):
        _is_problem(await test_client.get("/test/page", params=params, headers=auth), 400)
    # Pagination follows the principal (api.deps.app_dependencies): every list needs a token.
    _is_problem(await test_client.get("/test/page", params={"limit": 10}), 401)


async def test_unknown_route_and_method_are_problems(test_client):
    _is_problem(await test_client.get("/api/nope"), 404)
    _is_problem(await test_client.delete("/api/health"), 405)


async def test_unexpected_error_is_a_500_problem_without_internals(test_client):
    body = _is_problem(await test_client.get("/test/crash"), 500)
    assert "internal detail" not in str(body)


def test_status_table_covers_design_contract():
    expected = {
        "P0002": 404,
        "23505": 409,
        "23P01": 409,
        "23514": 422,
        "22001": 422,
        "22P02": 422,
        "42501": 403,
        "40001": 503,
        "40P01": 503,
        "57014": 504,
        "08006": 503,
        "53300": 503,
    }
    assert {code: status_for_sqlstate(code) for code in expected} == expected
    assert status_for_sqlstate("23503", 'Key (x)=(1) is not present in table "t".') == 422
    assert status_for_sqlstate("23503", 'Key (x)=(1) is still referenced from table "t".') == 409
    assert status_for_sqlstate("XX000") is None


def test_one_table_answers_whether_a_database_error_is_transient():
    # A statement timeout is the request's fault (504), not an outage: workers and tools must not retry it
    # as "database down" (the assistant's tools once counted all of class 57 as an outage).
    transient = {"40001": True, "40P01": True, "08006": True, "53300": True, "57P01": True, "57014": False}
    transient |= {"23505": False, "22P02": False, "P0002": False, "XX000": False}
    assert {code: is_transient(psycopg.errors.lookup(code)()) for code in transient} == transient
    assert is_transient(psycopg.OperationalError("connection lost"))  # no SQLSTATE: the connection is gone
    assert not is_transient(
        psycopg.DataError("NUL character")
    )  # refused by psycopg, never reaches the server
    codes = [code if len(code) == 5 else code + "000" for code in SQLSTATES]  # a class: its generic code
    assert [code for code in codes if is_retried(psycopg.errors.lookup(code)())] == ["40001", "40P01"]
    for code, rule in zip(codes, SQLSTATES.values(), strict=True):
        assert rule.status == status_for_sqlstate(code), code

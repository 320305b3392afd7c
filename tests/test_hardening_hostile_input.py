"""No input produces a 500, and no input makes the server spend without bound (DESIGN §6; issue 13
review). Each test names the input it proves harmless; the sweeps walk the app's routes or its OpenAPI
document rather than a hand-made list, so a new route is covered by the same rule.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from litestar import Litestar

from api.errors import sqlstate_rule, status_for_sqlstate
from tests.callmaster_live_support import Follower, live_stage
from tests.contract_support import operations, product, seed_world, table_checksums
from tests.factories import KEYS_ONE, assert_problem, count, one
from tests.test_callmaster_webhook import SECRET, sign


SMALL_BODY = 64 * 1024  # max_json_body_bytes here (max_body_bytes stays 20 MB)
BULK = {
    ("POST", "/api/leads/import"),
    ("POST", "/api/scripts/{script_id}/elements"),
    ("PATCH", "/api/scripts/{script_id}/elements"),
    ("POST", "/api/scripts/{script_id}/edits"),
    ("PATCH", "/api/elements/{element_id}"),
}
LIMIT = 3  # streams per caller and process (live_max_streams, assistant_max_streams)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Everything configured, so no route answers 503 for a missing setting before reading its body."""
    return {
        "encryption_keys": KEYS_ONE,
        "clerk_webhook_secret": SECRET,
        "openai_api_key": "unused",
        "openai_base_url": "http://127.0.0.1:9/v1",
        "max_json_body_bytes": SMALL_BODY,
        "live_max_streams": LIMIT,
        "assistant_max_streams": LIMIT,
    }


def static_prefixes(app: Litestar) -> list[str]:
    """The path prefix of every static files router of the app (`/console`, the Swagger UI's assets)."""
    suffix = "/{file_path}"
    return sorted({r.path_format[: -len(suffix)] for r in app.routes if r.path_format.endswith(suffix)})


async def test_static_paths_that_cannot_name_a_file_are_404_not_500(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A file name over the file system's limit, a file used as a directory and a NUL byte: Litestar
    answered 500 to each (its file system adapter turns any OSError but "not found" into one)."""
    prefixes = static_prefixes(app)
    assert "/console" in prefixes and "/console/vendor/swagger-ui" in prefixes
    wrong: list[Any] = []
    for prefix in prefixes:
        for path in (
            "a" * 300,  # NAME_MAX is 255
            "/".join(["d" * 200] * 30),  # PATH_MAX is 4096
            "index.html/x",
            "swagger-ui.css/x",
            "a%00b",
            "app.js%00.html",
        ):
            response = await client.get(f"{prefix}/{path}")
            if response.status_code != 404:
                wrong.append((prefix, path[:40], response.status_code))
            else:
                assert_problem(response, 404)
    assert wrong == []
    assert (await client.get("/console/app.js")).status_code == 200


def deep_json(levels: int) -> bytes:
    """An object whose one member is `levels` nested arrays: a Clerk event's shape until the nesting."""
    return b'{"type": "user.created", "data": {"x": ' + b"[" * levels + b"]" * levels + b"}}"


async def test_json_nested_beyond_the_decoders_depth_is_a_4xx_on_every_operation(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    """msgspec refuses nesting past its depth limit with a RecursionError, which no JSON body route
    caught: 500 from every one (Litestar's own decoding, lead import, the signed Clerk webhook)."""
    world = await seed_world(dba, client, bearer)
    doc = (await client.get("/schema/openapi.json")).json()
    body = deep_json(5_000)  # msgspec gives up before 1,000 levels
    before = table_checksums(dba)
    tried, wrong = [], []
    for path, method, op in operations(doc):
        if "application/json" not in op.get("requestBody", {}).get("content", {}):
            continue
        url = re.sub(r"\{([^}]+)\}", lambda m: world.ids[m.group(1)], path)
        who = "clinic_admin" if product(op) == "clinic" else "owner"
        headers = {**world.headers[who], **sign(body)}  # content-type: JSON
        response = await client.request(method, url, content=body, headers=headers)
        tried.append(path)
        if not 400 <= response.status_code < 500 or "problem+json" not in response.headers["content-type"]:
            wrong.append((method, path, response.status_code, response.text[:100]))
    assert wrong == []
    assert {"/api/leads/import", "/api/webhooks/clerk", "/api/scripts/{script_id}/edits"} <= set(tried)
    assert table_checksums(dba) == before


async def test_a_csv_header_of_a_million_columns_is_refused_at_once(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    """The header checks were quadratic in its columns (`columns.count` per column): 40,000 columns (80 KB)
    took 17 s of an import-pool process, this 2 MB header hours, stalling every clinic's imports."""
    world = await seed_world(dba, client, bearer)
    admin = {**world.headers["clinic_admin"], "Content-Type": "text/csv"}
    upload = b"name,phone" + b",x" * 1_000_000 + b"\nAnn,+91 98470 12345\n"
    before = count(dba, "leads")
    refused = assert_problem(
        await client.post("/api/leads/import", content=upload, headers=admin, timeout=20), 422
    )
    assert "1,000,002 columns" in refused["detail"] and "phone" in refused["allowed_columns"]
    # The pool is free: the next import goes through at once.
    done = await client.post(
        "/api/leads/import", content=b"name,phone\nAnn,+91 98470 12345\n", headers=admin, timeout=20
    )
    assert done.status_code == 201 and done.json()["imported"] == 1, done.text
    assert count(dba, "leads") == before + 1


SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
ERRCODE = re.compile(r"ERRCODE\s*=\s*('[0-9A-Z]{5}'|[a-z_]+)")
RERAISED = {"v_state", "first_failure"}
"""The variables a RAISE passes on: the SQLSTATE of an error the function caught (apply_script_edits
names the failing operation; refresh_control_tower logs the failure first)."""


def test_every_sqlstate_raised_in_sql_answers_a_mapped_status() -> None:
    """Every `ERRCODE = '…'` of sql/ is in api.errors.SQLSTATES (else the API answers 500), and is a client's
    answer (4xx) or a transient one (503); a variable ERRCODE only re-raises a caught error."""
    raised: dict[str, list[str]] = {}
    for path in sorted(SQL_DIR.rglob("*.sql")):
        for code in ERRCODE.findall(path.read_text()):
            raised.setdefault(code.strip("'"), []).append(path.name)
    variables = {code for code in raised if code.islower()}
    assert variables == RERAISED
    literals = {code: files for code, files in raised.items() if code not in variables}
    assert {"P0002", "22023", "42501", "23505"} <= set(literals)
    unmapped = {code: files for code, files in literals.items() if sqlstate_rule(code) is None}
    assert unmapped == {}
    statuses = {code: status_for_sqlstate(code) for code in literals}
    assert all(s is not None and (400 <= s < 500 or sqlstate_rule(c).transient) for c, s in statuses.items())


async def open_streams(
    client: httpx.AsyncClient, followers: list[Follower], url: str, headers: dict[str, str], n: int
) -> list[int]:
    """Open n streams at once; their statuses (the followers are kept for closing)."""
    batch = [Follower(client, url, headers) for _ in range(n)]
    followers.extend(batch)
    return list(await asyncio.gather(*(f.start() for f in batch)))


async def assert_stream_limit(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], others: list[tuple[str, dict[str, str]]]
) -> None:
    """A burst of ten opens gets exactly LIMIT streams and 429s (problem, Retry-After); each of `others`
    (url, headers) still gets its own LIMIT; a stream that ends frees its place."""
    followers: list[Follower] = []
    try:
        burst = await open_streams(client, followers, url, headers, 10)  # at once
        assert sorted(burst) == [200] * LIMIT + [429] * (10 - LIMIT)
        assert json.loads(followers[burst.index(429)].body)["status"] == 429
        async with client.stream("GET", url, headers=headers) as response:
            await response.aread()
            assert_problem(response, 429)
            assert response.headers["retry-after"].isdigit()
        for other_url, other_headers in others:
            opened = await open_streams(client, followers, other_url, other_headers, LIMIT + 1)
            assert sorted(opened) == [200] * LIMIT + [429]
        await followers[burst.index(200)].close()  # the server sees the disconnect
        for _ in range(50):
            if await open_streams(client, followers, url, headers, 1) == [200]:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("a closed stream never freed its place")
    finally:
        await asyncio.gather(*(f.close() for f in followers))


async def test_live_streams_past_the_limit_of_a_user_or_a_link_answer_429(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    """One token (or one share link) could hold any number of live streams open: each a connection, a
    presence row and a heartbeat entry of its API process. Now `live_max_streams` per follower (a user,
    or a share link) and process."""
    stage = live_stage(dba)
    url = f"/api/scripts/{stage['script']}/live"
    owner = bearer("user_a")
    link = (await client.post(f"/api/shows/{stage['show']}/share-links", headers=owner, json={})).json()
    shared = f"/api/shared/{link['token']}/scripts/{stage['script']}/live"
    await assert_stream_limit(client, url, owner, [(url, bearer("caller_c")), (shared, {})])


async def test_reply_streams_past_the_limit_of_a_staff_member_answer_429(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    """The same for the assistant's reply streams, where each open stream also re-reads its reply from
    the database on every wake-up: `assistant_max_streams` per staff member and process."""
    world = await seed_world(dba, client, bearer)
    admin = world.headers["clinic_admin"]
    message = one(
        dba,
        "INSERT INTO assistant.messages (clinic_id, staff_id, conversation_id, role, content, status)"
        " SELECT clinic_id, staff_id, id, 'assistant', '', 'queued' FROM assistant.conversations"
        " WHERE id = %s RETURNING id",
        (world.ids["conversation_id"],),
    )  # queued, and no worker runs: its streams stay open
    url = f"/api/internal-assistant/messages/{message}/events"
    await assert_stream_limit(client, url, admin, [])


async def test_a_body_is_not_read_before_the_token_is_verified(client: httpx.AsyncClient) -> None:
    """Litestar extracts the body before it resolves the `principal` dependency, so an anonymous caller
    had every JSON body read and decoded: a 20 MB one held the event loop for seconds and took half a
    gigabyte, only to be answered 401. Now every operation that needs a token answers 401 to a body it
    never reads (malformed JSON would otherwise be a 400)."""
    doc = (await client.get("/schema/openapi.json")).json()
    tried, wrong = 0, []
    for path, method, op in operations(doc):
        anonymous = op.get("security") == [{}]
        if anonymous or "application/json" not in op.get("requestBody", {}).get("content", {}):
            continue
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)  # refused before any parameter is read
        for auth in ({}, {"Authorization": "Bearer not.a.token"}):
            response = await client.request(
                method, url, content=b'{"unfinished": ', headers={**auth, "Content-Type": "application/json"}
            )
            tried += 1
            if response.status_code != 401:
                wrong.append((method, path, bool(auth), response.status_code))
    assert tried > 40 and wrong == []


async def test_bodies_past_the_json_limit_are_413_except_on_the_bulk_routes(
    client: httpx.AsyncClient, dba: psycopg.Connection[Any], bearer: Callable[..., dict[str, str]]
) -> None:
    """Every route took bodies up to 20 MB, and decodes JSON on the event loop before validating it: an
    authenticated 20 MB body to `POST /api/venues` held the loop for 3 s and took ~0.5 GB to be told it
    was a bad venue. Now only the bulk routes take max_body_bytes; every other one answers 413 past
    max_json_body_bytes, before reading the body."""
    world = await seed_world(dba, client, bearer)
    doc = (await client.get("/schema/openapi.json")).json()
    body = b'{"x": "' + b"a" * SMALL_BODY + b'"}'  # one byte per character: past the limit
    before = table_checksums(dba)
    statuses: dict[tuple[str, str], int] = {}
    for path, method, op in operations(doc):
        if "application/json" not in op.get("requestBody", {}).get("content", {}):
            continue
        url = re.sub(r"\{([^}]+)\}", lambda m: world.ids[m.group(1)], path)
        who = "clinic_admin" if product(op) == "clinic" else "owner"
        headers = {**world.headers[who], **sign(body)}
        response = await client.request(method, url, content=body, headers=headers)
        assert_problem(response, (400, 413, 422))
        statuses[(method, path)] = response.status_code
    assert {key for key, status in statuses.items() if status != 413} == BULK
    assert table_checksums(dba) == before

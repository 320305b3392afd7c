"""Secrets in URLs (issue 16's share links, reviewed under issue 13): a share link's token is the bearer
credential of a show and travels in the request path (`/api/shared/{token}…`). No log line the server
writes may carry it: uvicorn's access line (every request, matched or not) and the unhandled-error line
show the path redacted (`api.redaction.redact_path`).

Nor may a cache keep a share link's answer (it is fetched without credentials, so a CDN or the browser
could serve it after the link is revoked): `Cache-Control: no-store`.

The class: every free-form path parameter of the OpenAPI document (ids are uuids) is a possible secret.
The sweep takes them from the served document, so a new one must be listed here as a secret (and is then
checked) or as public (`PUBLIC_STRING_PARAMS`, with a reason).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import psycopg
import pytest

from api.redaction import redact_path
from tests.callmaster_live_support import follow, live_stage
from tests.factories import Bearer

SECRET_PARAMS = {"token": "a share link's bearer credential"}
PUBLIC_STRING_PARAMS: dict[str, str] = {}
CLIENT_LOGGERS = ("httpx", "httpcore")  # the test's own HTTP client logs the URLs it requests


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"share_link_rate_limit": 1000}


def string_path_params(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, parameter) for every path parameter that is not a uuid or an integer."""
    found = []
    for path, item in doc["paths"].items():
        for op in item.values():
            for param in op.get("parameters", []):
                schema = param.get("schema", {})
                if (
                    param["in"] == "path"
                    and schema.get("type") == "string"
                    and schema.get("format") != "uuid"
                ):
                    found.append((path, param["name"]))
    return sorted(set(found))


def server_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}" for r in caplog.records if r.name.split(".")[0] not in CLIENT_LOGGERS
    ]


async def test_share_link_tokens_reach_no_server_log_line(
    client: httpx.AsyncClient,
    dba: psycopg.Connection[Any],
    bearer: Bearer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    stage = live_stage(dba)
    owner = bearer("user_a")
    r = await client.post(f"/api/shows/{stage['show']}/share-links", json={}, headers=owner)
    token = r.json()["token"]
    doc = (await client.get("/schema/openapi.json")).json()
    params = string_path_params(doc)
    assert {name for _, name in params} <= set(SECRET_PARAMS) | set(PUBLIC_STRING_PARAMS), params
    secret_paths = [path for path, name in params if name in SECRET_PARAMS]
    assert len(secret_paths) >= 4  # the share-link routes: show, script, live feed, presence

    ids = {"token": token, "script_id": stage["script"]}
    for path in secret_paths:
        url = path.format(**ids)
        if path.endswith("/live"):
            async with follow(client, url) as feed:
                assert (await feed.next()).event == "state"
        else:
            r = await client.get(url)
            assert r.status_code == 200, url
            # Fetched without credentials: no cache may keep the answer past the link's revocation.
            assert r.headers["cache-control"] == "no-store", url
    # A path no route matches (not a uuid where one goes) is logged too, and a guessed token like a real one.
    assert (await client.get(f"/api/shared/{token}/scripts/not-a-uuid")).status_code == 404
    guess = "sl_" + "G" * 43
    assert (await client.get(f"/api/shared/{guess}")).status_code == 404

    lines = server_log_lines(caplog)
    access = [line for line in lines if line.startswith("uvicorn.access") and "/api/shared/" in line]
    assert len(access) >= len(secret_paths) + 2  # the requests were logged…
    assert all("/api/shared/…" in line for line in access), access
    assert [line for line in lines if token in line or guess in line] == []  # …without the token


def test_redacted_paths_keep_what_is_not_secret() -> None:
    """What the access line and the unhandled-error line show: the route's shape, ids kept, no query
    string, no token."""
    assert redact_path("/api/shared/sl_abc/scripts/6b1d/live") == "/api/shared/…/scripts/6b1d/live"
    assert redact_path("/api/shared/sl_abc?x=1") == "/api/shared/…?…"
    assert redact_path("/api/leads?phone=98111&q=Zubeida") == "/api/leads?…"
    assert redact_path("/api/scripts/6b1d/live") == "/api/scripts/6b1d/live"

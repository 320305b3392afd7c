"""Test harness: a real PostgreSQL, migrated once into a template, one fresh copy per test.

Which server, and the scratch databases on it, are `tests/database.py` (shared with `bench/`); shared
fixtures beyond these are in `tests/fixtures.py`, records come from `tests/factories.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import uvicorn
from litestar import Litestar

from api.app import create_app
from api.auth import TokenVerifier
from api.serving import server_config
from api.settings import Settings
from tests.database import (
    DatabaseSupply,
    create_database,
    drop_database,
    harness_settings,
    migrated_database,
    postgres_server,
    url_for_database,
)

# Shared fixtures (clinic_a/clinic_b, clinic_setup, llm, worker, staff): request them by name, never import them.
pytest_plugins = ["tests.fixtures"]

TEST_JWT_SECRET = "keel-test-secret-0123456789abcdef0123456789"

# Schemathesis over the whole API runs on demand: KEEL_FUZZ=1 (CI sets it on the PostgreSQL 18 leg).
collect_ignore = [] if os.environ.get("KEEL_FUZZ") else ["test_reliability_fuzz.py"]


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """Admin URL of the test server (database `postgres` or whatever the env URL names); a server started
    here runs without fsync."""
    with postgres_server(durable=False) as url:
        yield url


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    """A database migrated once per session; each test gets a copy of it."""
    with migrated_database(pg_admin_url) as name:
        yield name


@pytest.fixture(scope="session")
def database_supply(pg_admin_url: str, template_db: str) -> Iterator[DatabaseSupply]:
    supply = DatabaseSupply(pg_admin_url, template_db)
    yield supply
    supply.close()


@pytest.fixture
def db_url(pg_admin_url: str, database_supply: DatabaseSupply) -> Iterator[str]:
    """URL (as the admin/DBA account) of a freshly migrated database for this test only."""
    name = database_supply.take()
    yield url_for_database(pg_admin_url, name)
    database_supply.give_back(name)


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """URL of a new, never migrated database."""
    name = create_database(pg_admin_url)
    yield url_for_database(pg_admin_url, name)
    drop_database(pg_admin_url, name)


@pytest.fixture
def embedded_data_dir() -> Iterator[Any]:
    """A KEEL_DATA_DIR outside pytest's tmp dirs: those are private to root, and the embedded
    PostgreSQL runs as its own user."""
    path = tempfile.mkdtemp(prefix="keel-serve-test-")
    os.chmod(path, 0o755)
    yield Path(path) / "data"
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dba(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """The DBA's psql: a superuser connection in autocommit (tuple rows)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app (e.g. an LLM base URL)."""
    return {}


@pytest.fixture
def settings(db_url: str, tmp_path: Any, settings_overrides: dict[str, Any]) -> Settings:
    """The app's settings: defaults, the test database and secrets, then `settings_overrides`.

    Built from the defaults, never from the environment, so `KEEL_*` variables exported in a developer's
    shell cannot change what a test sees."""
    values: dict[str, Any] = {"jwt_secret": TEST_JWT_SECRET}
    pooler = os.environ.get("KEEL_TEST_POOLER_URL")
    if pooler:
        # The API's requests through the transaction pooler in front of the test server (CI's PG 15
        # leg); whatever needs a session (LISTEN, session locks, the DBA fixture) stays direct.
        values.update(
            database_url=url_for_database(pooler, urlsplit(db_url).path.lstrip("/")),
            database_direct_url=db_url,
            prepare_threshold=None,
        )
    values |= settings_overrides
    return harness_settings(values.pop("database_url", db_url), tmp_path, **values)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@contextlib.asynccontextmanager
async def live_server(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """Serve `app` with uvicorn on a free loopback port; yield an httpx client for it.

    Real HTTP, so concurrent requests really run concurrently and streams (SSE) arrive as sent,
    which an in-process test transport cannot do.
    """
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on such sockets, and without it every
    # response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, app.state.settings, timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # startup failed: raise its error
            await asyncio.sleep(0.01)
        # The client drops an idle connection (2 s) well before the server does (uvicorn: 5 s): with equal
        # timeouts a request could go out on a connection the server is closing at that very moment
        # ("Server disconnected without sending a response", seen under load).
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=2.0)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as http:
            yield http
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the app served on loopback (lifespan run around the test)."""
    async with live_server(app) as http:
        yield http


@pytest.fixture
def make_token(settings: Settings) -> Callable[..., str]:
    """`make_token(sub=…, clinic_id=…, role=…, ttl=…, **claims)` → a signed HS256 bearer token."""
    verifier = TokenVerifier(settings)

    def make(sub: str = "test-user", *, ttl: int = 3600, **claims: Any) -> str:
        clean = {key: str(value) for key, value in claims.items() if value is not None}
        return verifier.mint({"sub": str(sub), **clean}, ttl_seconds=ttl)

    return make


@pytest.fixture
def bearer(make_token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """`bearer(sub=…, clinic_id=…)` → an Authorization header dict."""

    def headers(sub: str = "test-user", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(sub, **claims)}"}

    return headers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fault-injection suites (marker `reliability`) run only when KEEL_RELIABILITY is set
    (`ci`: bounded, as .ci/run does on its PostgreSQL 18 leg; `full`: `make reliability`)."""
    if os.environ.get("KEEL_RELIABILITY"):
        return
    kept = [item for item in items if item.get_closest_marker("reliability") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept

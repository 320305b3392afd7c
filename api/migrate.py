"""Schema migrations: bootstrap, yoyo history, then every file of `sql/` reloaded.

`migrate()` is safe to run concurrently: a session advisory lock serialises whole runs (yoyo's
own lock table does not exist yet on an empty database), and yoyo's lock guards its history.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

from api.locks import LOCKS, registry_sql
from api.resources import MIGRATIONS_DIR, SQL_DIR

log = logging.getLogger(__name__)

# Schemas in dependency order; files inside each are loaded in name order.
SQL_SCHEMA_ORDER = ("keel", "clinic", "assistant", "callmaster")
MIGRATION_TABLE = "_yoyo_migration"
MIGRATION_LOCK = "SELECT pg_advisory_lock(%(key)s, 0)"
MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(%(key)s, 0)"
OWNER_ROLE = "SET LOCAL ROLE keel_owner"
OWNER_PATH = "SET LOCAL search_path TO keel, public"
SOURCES_RECORDED = "SELECT to_regclass('keel.sql_sources') IS NOT NULL"
RECORDED_DIGEST = "SELECT digest FROM keel.sql_sources"
TABLE_EXISTS = "SELECT to_regclass(%(table)s) IS NOT NULL"
V1_CIPHERTEXTS = "SELECT clinic.count_v1_ciphertexts()"
RECORD_SOURCES = (
    "INSERT INTO keel.sql_sources (digest) VALUES (%(digest)s)"
    " ON CONFLICT (singleton) DO UPDATE SET digest = EXCLUDED.digest, reloaded_at = now()"
)


# Every object a migration creates, yoyo's own bookkeeping included, is owned by keel_owner and
# lands in schema keel unless qualified: set at connection start, so it holds before yoyo's first query.
OWNER_SESSION_OPTIONS = "-c role=keel_owner -c search_path=keel,public"


def yoyo_url(url: str) -> str:
    """The URL as yoyo wants it: psycopg 3 named in the scheme, the owner session options added."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            parts = urlsplit("postgresql+psycopg://" + url[len(prefix) :])
            query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
            query.append(("options", OWNER_SESSION_OPTIONS))
            return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    raise ValueError(f"not a PostgreSQL URL: {url!r}")


def sql_files() -> list[Path]:
    files: list[Path] = []
    for schema in SQL_SCHEMA_ORDER:
        files.extend(sorted((SQL_DIR / schema).glob("*.sql")))
    return files


def sql_digest() -> str:
    """A digest of every `sql/` source (names and contents) and the lock registry, recorded by each reload."""
    digest = hashlib.sha256(repr(sorted(LOCKS.items())).encode())  # keel.advisory_lock_key comes from it
    for path in sql_files():
        digest.update(path.relative_to(SQL_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def migration_ids() -> list[str]:
    return [m.id for m in read_migrations(str(MIGRATIONS_DIR))]


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    with psycopg.connect(url, autocommit=True) as conn:
        key = {"key": LOCKS["migrate"].key}
        conn.execute(MIGRATION_LOCK, key)
        try:
            yield
        finally:
            conn.execute(MIGRATION_UNLOCK, key)


def _bootstrap(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((SQL_DIR / "bootstrap.sql").read_text())


def reload_sql(url: str) -> int:
    """Re-apply every function, trigger and policy file in one transaction; returns the count."""
    files = sql_files()
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(OWNER_ROLE)
        conn.execute(OWNER_PATH)
        conn.execute(registry_sql())  # keel.advisory_lock_key, which the files below call
        for path in files:
            try:
                conn.execute(path.read_text())
            except psycopg.Error as exc:
                raise RuntimeError(f"{path.relative_to(SQL_DIR.parent)}: {exc}") from exc
        conn.execute(RECORD_SOURCES, {"digest": sql_digest()})
    return len(files)


def migrate(url: str, rollback: int = 0) -> dict[str, object]:
    """Apply pending migrations, then reload `sql/`; or roll back the last `rollback` migrations."""
    with _migration_lock(url):
        _bootstrap(url)
        backend = get_backend(yoyo_url(url), migration_table=MIGRATION_TABLE)
        try:
            migrations = read_migrations(str(MIGRATIONS_DIR))
            with backend.lock(timeout=600):
                if rollback:
                    applied = backend.to_rollback(migrations)[:rollback]
                    backend.rollback_migrations(applied)
                    changed = [m.id for m in applied]
                else:
                    pending = backend.to_apply(migrations)
                    backend.apply_migrations(pending)
                    changed = [m.id for m in pending]
        finally:
            backend.connection.close()
        # After a rollback the sources may name tables that are gone; the next migrate reloads them.
        reloaded = 0 if rollback else reload_sql(url)
    log.info("migrate done", extra={"changed": changed, "sql_files": reloaded, "rollback": bool(rollback)})
    if rollback:
        return {"rolled_back": changed, "sql_files": reloaded}
    return {"applied": changed, "sql_files": reloaded, "v1_ciphertext_leads": v1_ciphertext_leads(url)}


def v1_ciphertext_leads(url: str) -> int:
    """Leads still holding v1 ciphertexts (not bound to their clinic and row); warns when there are any."""
    with psycopg.connect(url) as conn:
        row = conn.execute(V1_CIPHERTEXTS).fetchone()
    count = int(row[0]) if row else 0
    if count:
        log.warning(
            "%s lead(s) still hold v1 ciphertexts (encrypted before values were bound to their clinic and "
            "row): run `keel keys rotate`. Until then the API reads those fields as unreadable, unless "
            "KEEL_ACCEPT_V1_CIPHERTEXTS is set.",
            count,
        )
    return count


def sql_sources_current(conn: psycopg.Connection) -> bool:
    """Whether the database's functions were loaded from this tree's `sql/` (see `sql_digest`)."""
    if not conn.execute(SOURCES_RECORDED).fetchone()[0]:
        return False
    row = conn.execute(RECORDED_DIGEST).fetchone()
    return row is not None and row[0] == sql_digest()


def pending_migrations(conn: psycopg.Connection) -> list[str]:
    """Migration ids present in `migrations/` but not applied to the connected database."""
    exists = conn.execute(TABLE_EXISTS, {"table": f"keel.{MIGRATION_TABLE}"}).fetchone()
    applied: set[str] = set()
    if exists and exists[0]:
        query = sql.SQL("SELECT migration_id FROM keel.{}").format(sql.Identifier(MIGRATION_TABLE))
        applied = {row[0] for row in conn.execute(query)}
    return [mid for mid in migration_ids() if mid not in applied]

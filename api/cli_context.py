"""What every `keel` command needs: settings, a database URL, a current schema.

A leaf for the command modules (`api/commands.py`, `api/clinic/cli.py`, `api/clinic/metrics_cli.py`):
it imports none of them, and `api/cli.py`, which assembles them, imports it only through them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
import psycopg

from api.settings import Settings


def load_settings() -> Settings:
    from api.observability import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    return settings


@contextmanager
def database_url(settings: Settings, *, owner: bool = False) -> Iterator[str]:
    """The direct URL (`DATABASE_DIRECT_URL`, else `DATABASE_URL`), or the embedded server's URL
    (started for this command if not running). Commands need a session: migrations and refreshes
    hold session advisory locks, workers LISTEN; never a transaction pooler's URL."""
    if settings.direct_url:
        yield settings.direct_url
        return
    from api.embedded import EmbeddedError, embedded_database

    try:
        with embedded_database(settings.data_dir, owner=owner) as url:
            yield url
    except EmbeddedError as exc:
        raise click.ClickException(str(exc)) from exc


def ensure_schema_current(url: str) -> None:
    from api.migrate import pending_migrations, sql_sources_current

    with psycopg.connect(url) as conn:
        pending = pending_migrations(conn)
        sources_current = sql_sources_current(conn)
    if pending:
        raise click.ClickException(
            f"the database schema is behind ({len(pending)} pending migration(s): {', '.join(pending)}); "
            "run `keel migrate` first"
        )
    if not sources_current:
        raise click.ClickException(
            "the database's functions were not loaded from this version's sql/; run `keel migrate` first"
        )

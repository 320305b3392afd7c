"""The core `keel` commands: serve, worker, migrate, db-url, token (assembled by `api/cli.py`)."""

from __future__ import annotations

import json
import logging
import signal

import click

from api.cli_context import database_url, ensure_schema_current, load_settings
from api.console.links import DEFAULT_BASE_URL, console_link
from api.settings import Settings

log = logging.getLogger("keel")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--no-workers", is_flag=True, help="Do not run the background workers.")
@click.option(
    "--workers",
    "processes",
    default=None,
    type=click.IntRange(min=1),
    help="API processes sharing the port [default: KEEL_WEB_CONCURRENCY or 1]. With more than one, the "
    "background workers run in one process of their own.",
)
def serve(host: str, port: int, no_workers: bool, processes: int | None) -> None:
    """Serve the HTTP API (and, by default, the background workers).

    Embedded mode migrates its private database first; with DATABASE_URL the schema must be current.
    """
    import uvicorn

    from api.app import create_app
    from api.migrate import migrate
    from api.serving import server_config

    settings = load_settings()
    processes = processes or settings.web_concurrency
    with database_url(settings, owner=True) as url:
        if settings.embedded:
            migrate(url)
        else:
            ensure_schema_current(url)
        app_url = settings.database_url or url  # the API's requests may go through a pooler
        if processes > 1:
            from api.serving import serve_processes

            serve_processes(
                settings, app_url, host=host, port=port, processes=processes, run_workers=not no_workers
            )
            return
        app = create_app(settings, database_url=app_url, run_workers=not no_workers)
        log.info("serving on http://%s:%s", host, port)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal into the handler
        # it found: this one, so the embedded database is stopped on the way out and a stop asked for
        # exits 0, as `keel worker` and `keel serve --workers N` do (not 143, nor click's "Aborted!").
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, _exit_when_stopped)
        uvicorn.Server(server_config(app, settings, host=host, port=port)).run()


def _exit_when_stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


@click.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics (deliveries, the worker's pool) on this port at /metrics. Unset: none.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Interface for --metrics-port.")
def worker(metrics_port: int | None, metrics_host: str) -> None:
    """Run only the background workers (outbox dispatcher, assistant replies) until interrupted."""
    import asyncio

    from api.observability import serve_metrics
    from api.workers import run_worker_process

    settings = load_settings()
    with database_url(settings) as url:
        ensure_schema_current(url)
        if metrics_port is not None:
            serve_metrics(metrics_host, metrics_port)
            log.info("metrics on http://%s:%s/metrics", metrics_host, metrics_port)
        asyncio.run(run_worker_process(settings, url))


@click.command()
@click.option(
    "--rollback", default=0, type=click.IntRange(min=0), help="Roll back the last N migrations instead."
)
def migrate(rollback: int) -> None:
    """Apply pending migrations, then reload every function, trigger and policy of sql/."""
    from api.migrate import migrate as run_migrate

    settings = load_settings()
    with database_url(settings) as url:
        result = run_migrate(url, rollback=rollback)
    click.echo(json.dumps(result))


@click.command("db-url")
def db_url() -> None:
    """Print the URL of the database in use, e.g. psql "$(keel db-url)"."""
    settings = Settings.from_env()
    if settings.direct_url:
        click.echo(settings.direct_url)
        return
    from api.embedded import running_url

    url = running_url(settings.data_dir)
    if url is None:
        raise click.ClickException(
            f"the embedded PostgreSQL under {settings.data_dir} is not running; start `keel serve` "
            "(or set DATABASE_URL)"
        )
    click.echo(url)


@click.command()
@click.option("--sub", required=True, help="Subject: staff id (Clinic) or Clerk user id (CallMaster).")
@click.option("--clinic", "clinic_id", default=None, help="clinic_id claim.")
@click.option("--role", default=None, help="role claim: admin, doctor, front_desk or cro.")
@click.option(
    "--ttl", default=3600, show_default=True, type=click.IntRange(min=1), help="Lifetime in seconds."
)
@click.option("--console", "as_link", is_flag=True, help="Print a console sign-in link instead of the token.")
@click.option(
    "--base-url",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="Where `keel serve` listens (with --console).",
)
def token(sub: str, clinic_id: str | None, role: str | None, ttl: int, as_link: bool, base_url: str) -> None:
    """Mint a development JWT signed with KEEL_JWT_SECRET (or the embedded data dir's secret).

    With --console, print a link that signs the browser console in: the token rides in the URL fragment,
    which the browser never sends to the server.
    """
    from api.auth import TokenVerifier

    verifier = TokenVerifier(Settings.from_env())
    if not verifier.secret:
        raise click.ClickException("no signing secret: set KEEL_JWT_SECRET (JWKS tokens are issued by Clerk)")
    claims = {
        "sub": sub,
        **({"clinic_id": clinic_id} if clinic_id else {}),
        **({"role": role} if role else {}),
    }
    minted = verifier.mint(claims, ttl_seconds=ttl)
    click.echo(console_link(minted, base_url) if as_link else minted)

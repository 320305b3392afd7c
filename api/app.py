"""The Litestar application: a thin layer over the database's functions."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api import assistant, callmaster, clinic, ops
from api.auth import TokenVerifier
from api.console import web as console
from api.db import Database
from api.deps import app_dependencies
from api.errors import exception_handlers, problem_plugin
from api.migrate import migration_ids, sql_digest
from api.observability import (
    MULTIPROCESS,
    pool_collector,
    publish_multiprocess_metrics,
    request_middleware,
    send_request_id,
)
from api.openapi import StrictStructSchemaPlugin, document_routes, repair_default_options
from api.replica import ReplicaDatabase
from api.settings import Settings

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Take what startup allocated (modules, routes, schemas, pools) out of the garbage collector's
    scans. Otherwise the first full collection under load walks all of it: the bench saw a
    200-300 ms pause on the first requests of a fresh process."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, database_url: str | None = None, run_workers: bool = False) -> Litestar:
    """Build the app for `database_url` (default: `settings.database_url`).

    With `run_workers`, the background workers (outbox dispatcher, assistant replies) run in the
    same event loop for the app's lifetime.
    """
    url = database_url or settings.database_url
    if url is None:
        raise ValueError("create_app needs a database URL")
    db = Database(settings, url)
    read_db = ReplicaDatabase(settings, settings.database_read_url, db) if settings.database_read_url else db

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.open()
        if read_db is not db:
            await read_db.open()
        pool_collector.databases["primary"] = db
        if read_db is not db:
            pool_collector.databases["read"] = read_db
        else:
            pool_collector.databases.pop("read", None)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(publish_multiprocess_metrics(stop))] if MULTIPROCESS else []
        if run_workers:
            from api.workers import run_workers as run_all

            tasks.append(asyncio.create_task(run_all(settings, db, stop)))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if read_db is not db:
                await read_db.close()
            await db.close()

    verifier = TokenVerifier(settings)

    def on_app_init(config: AppConfig) -> AppConfig:
        config.state.update(
            settings=settings,
            read_db=read_db,
            verifier=verifier,
            migration_ids=migration_ids(),
            sql_digest=sql_digest(),
        )
        return config

    app = Litestar(
        route_handlers=[*ops.routes, *clinic.routes, *assistant.routes, *callmaster.routes, *console.routes],
        dependencies=app_dependencies(settings, db, read_db),
        lifespan=[lifespan],
        on_startup=[*clinic.on_startup, freeze_startup_heap],
        on_shutdown=clinic.on_shutdown,
        on_app_init=[on_app_init],
        middleware=[request_middleware],
        before_send=[send_request_id],
        plugins=[problem_plugin(), StrictStructSchemaPlugin()],
        exception_handlers=exception_handlers,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Keel",
            version="0.1.0",
            description="Clinic and CallMaster on one PostgreSQL-centric backend.",
            path="/schema",
            # Swagger UI from the swagger-ui-bundle-v2 wheel, served by the app: /schema renders offline.
            render_plugins=[
                SwaggerRenderPlugin(
                    path="/swagger",
                    js_url=f"{console.SWAGGER_UI_URL}/swagger-ui-bundle.js",
                    css_url=f"{console.SWAGGER_UI_URL}/swagger-ui.css",
                    standalone_preset_js_url=f"{console.SWAGGER_UI_URL}/swagger-ui-standalone-preset.js",
                    favicon=f"<link rel='icon' type='image/png' href='{console.SWAGGER_UI_URL}/favicon-32x32.png'>",
                )
            ],
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"BearerToken": []}],
        ),
        logging_config=None,
        debug=False,
    )
    document_routes(app)
    repair_default_options(app)
    return app

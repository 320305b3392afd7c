"""Annotated types for the app-level dependencies, so handlers name what they need.

async def get_lead(lead_id: UUID, db: Db, principal: CurrentPrincipal) -> dict: ...
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers import BaseRouteHandler

from api.auth import Principal, provide_principal
from api.db import Database
from api.pagination import Pagination, provide_pagination
from api.settings import Settings

Db = NamedDependency[Database]
"""The primary database (parameter name `db`)."""

ReadDb = NamedDependency[Database]
"""A replica for dashboard reads when DATABASE_READ_URL is set, else the primary (name `read_db`)."""

CurrentPrincipal = NamedDependency[Principal]
"""The verified token's claims (name `principal`); declaring it makes the route require a token."""

Page = NamedDependency[Pagination]
"""`limit`/`offset` query parameters (name `pagination`)."""

AppSettings = NamedDependency[Settings]
"""The process settings (name `settings`)."""


LARGE_BODY = {"large_body": True}
"""Route `opt` of the bulk routes, whose bodies may be up to `max_body_bytes`; every other route takes
`max_json_body_bytes` (api.app.create_app mounts the two groups with their limits; it reads the
key `large_body`)."""


async def token_before_body(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """App guard: a route that takes a token and a JSON body (`principal` and `data`) verifies the token
    before the body is read. Litestar extracts a request's body before it resolves the dependencies, so an
    anonymous 20 MB JSON body was read and decoded on the event loop (seconds, half a gigabyte) only to
    answer 401. The dependency then finds the token in the verifier's cache."""
    parameters = handler.parsed_fn_signature.parameters
    if "data" in parameters and "principal" in parameters:
        await provide_principal(connection)  # type: ignore[arg-type]  # reads only headers and app state


def app_dependencies(settings: Settings, db: Database, read_db: Database) -> dict[str, Provide]:
    """The app-level dependencies, declared as one chain: settings → db → principal → read_db → pagination.

    Litestar resolves dependencies that do not depend on one another concurrently, in an anyio task
    group per request (litestar#4563). Measured on this app's shape (db + principal), that cost
    ~70–100 µs per request, about a tenth of a whole `GET` by id. Chained, every batch holds one
    dependency and resolves inline. The links carry no data: each provider still returns what it did.
    A route resolves its dependencies and every link before them: `settings` and `db` come first (routes
    without a token use them: webhooks, share links), then `principal`, so `GET`/`POST` by id resolve
    three links, not four; `read_db` follows `principal` (every dashboard read needs a token; `/api/ready`
    reads the replica from the app's state) and `pagination`, which reads `limit`/`offset`, comes last.
    """

    def provide_settings() -> Settings:
        return settings

    def provide_db(settings: NamedDependency[Any]) -> Database:
        return db

    async def provide_principal_after(request: Request[Any, Any, Any], db: NamedDependency[Any]) -> Principal:
        return await provide_principal(request)

    def provide_read_db(principal: NamedDependency[Any]) -> Database:
        return read_db

    return {
        "settings": Provide(provide_settings, sync_to_thread=False),
        "db": Provide(provide_db, sync_to_thread=False),
        "principal": Provide(provide_principal_after),
        "read_db": Provide(provide_read_db, sync_to_thread=False),
        "pagination": Provide(provide_pagination),
    }

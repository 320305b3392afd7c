"""Annotated types for the app-level dependencies, so handlers name what they need.

async def get_lead(lead_id: UUID, db: Db, principal: CurrentPrincipal) -> dict: ...
"""

from __future__ import annotations

from litestar.di import NamedDependency

from api.auth import Principal
from api.db import Database
from api.pagination import Pagination
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

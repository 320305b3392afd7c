"""`limit`/`offset` query parameters and the list envelope every list endpoint answers with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar.di import NamedDependency
from litestar.params import QueryParameter

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_OFFSET = 2_147_483_647  # PostgreSQL integer: larger offsets are a client error, not a cast failure


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int

    def page(self, items: list[Any], total: int) -> dict[str, Any]:
        return {"items": items, "total": total, "limit": self.limit, "offset": self.offset}


async def provide_pagination(
    read_db: NamedDependency[Any],
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size")] = DEFAULT_LIMIT,
    offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET, description="Rows to skip")] = 0,
) -> Pagination:
    """Dependency `pagination` (the chain's last link, after `read_db`: see `api.deps.app_dependencies`)."""
    return Pagination(limit=limit, offset=offset)

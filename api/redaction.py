"""What a log line may show of a request: `redact_path` (uvicorn's access line, the unhandled-error line)."""

from __future__ import annotations

import re

# Path segments that are secrets: a share link's token is its bearer credential (`/api/shared/{token}…`),
# so whoever reads a log line holding it can read the show. The only free-form path parameter of the API
# (tests/test_hardening_secret_paths.py checks the OpenAPI document for new ones).
_SECRET_SEGMENT = re.compile(r"^(/api/shared/)[^/?]+")


def redact_path(path: str) -> str:
    """A request path as a log line may show it: no query string (searches put phones and names there:
    `GET /api/leads?phone=…&q=…`) and no secret path segment (`/api/shared/…`)."""
    path, query, _ = path.partition("?")
    return _SECRET_SEGMENT.sub(r"\1…", path) + ("?…" if query else "")

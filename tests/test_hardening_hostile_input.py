"""No input produces a 500, and no input makes the server spend without bound (DESIGN §6; issue 13
review). Each test names the input it proves harmless; the sweeps walk the app's routes or its OpenAPI
document rather than a hand-made list, so a new route is covered by the same rule.
"""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar

from tests.factories import assert_problem


def static_prefixes(app: Litestar) -> list[str]:
    """The path prefix of every static files router of the app (`/console`, the Swagger UI's assets)."""
    suffix = "/{file_path}"
    return sorted({r.path_format[: -len(suffix)] for r in app.routes if r.path_format.endswith(suffix)})


async def test_static_paths_that_cannot_name_a_file_are_404_not_500(
    app: Litestar, client: httpx.AsyncClient
) -> None:
    """A file name over the file system's limit, a file used as a directory and a NUL byte: Litestar
    answered 500 to each (its file system adapter turns any OSError but "not found" into one)."""
    prefixes = static_prefixes(app)
    assert "/console" in prefixes and "/console/vendor/swagger-ui" in prefixes
    wrong: list[Any] = []
    for prefix in prefixes:
        for path in (
            "a" * 300,  # NAME_MAX is 255
            "/".join(["d" * 200] * 30),  # PATH_MAX is 4096
            "index.html/x",
            "swagger-ui.css/x",
            "a%00b",
            "app.js%00.html",
        ):
            response = await client.get(f"{prefix}/{path}")
            if response.status_code != 404:
                wrong.append((prefix, path[:40], response.status_code))
            else:
                assert_problem(response, 404)
    assert wrong == []
    assert (await client.get("/console/app.js")).status_code == 200

"""The console on the web: static pages under /console/, `/` redirecting there, the Swagger UI's
assets served locally (so /schema renders offline), and the operations endpoints the console calls.

The pages are plain HTML, CSS and JavaScript modules written by hand (api/console/static/): no build
step, no CDN; they call the public API with the bearer token the user pasted (kept in sessionStorage).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.file_system import BaseLocalFileSystem
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types.file_types import FileInfo

from api.console.routes import routes as operation_routes

STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_UI_DIR = Path(swagger_ui_bundle.swagger_ui_path)
SWAGGER_UI_URL = "/console/vendor/swagger-ui"

# The console holds a bearer token in sessionStorage, so it may run nothing but its own files: no inline
# script or style attribute (app.js sets styles through CSSOM, which CSP allows), no other origin, no
# framing (clickjacking), no referrer carrying a path out.
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


NOT_A_FILE_HERE = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP})


class StaticFiles(BaseLocalFileSystem):
    """The local file system of the static routers, where a path that cannot name a file answers like a
    missing file (404): a name longer than the file system allows (`/console/aaa…`, ENAMETOOLONG), a file
    used as a directory (`/console/index.html/x`, ENOTDIR), a NUL byte (`/console/a%00b`, ValueError).
    Litestar's adapter turns every OSError but FileNotFoundError into a 500, and a NUL escapes it."""

    async def info(self, path: Any, **kwargs: Any) -> FileInfo:
        try:
            return await super().info(path, **kwargs)
        except ValueError as exc:  # "embedded null byte"
            raise FileNotFoundError(errno.ENOENT, "no such file") from exc
        except OSError as exc:
            if exc.errno in NOT_A_FILE_HERE:
                raise FileNotFoundError(errno.ENOENT, "no such file") from exc
            raise


async def console_headers(response: Response[Any]) -> Response[Any]:
    """Add CONSOLE_HEADERS to every file the console serves."""
    response.headers.update(CONSOLE_HEADERS)
    return response


@get("/", include_in_schema=False)
async def root() -> Redirect:
    return Redirect("/console/", status_code=302)


routes: list[Any] = [
    root,
    # Revalidate on every load (ETag/Last-Modified make it cheap), so an upgrade shows at once.
    create_static_files_router(
        "/console",
        [STATIC_DIR],
        file_system=StaticFiles(),
        html_mode=True,
        name="console",
        cache_control=CacheControlHeader(no_cache=True),
        after_request=console_headers,
    ),
    create_static_files_router(
        SWAGGER_UI_URL,
        [SWAGGER_UI_DIR],
        file_system=StaticFiles(),
        name="swagger-ui",
        cache_control=CacheControlHeader(max_age=86_400),
    ),
    *operation_routes,
]

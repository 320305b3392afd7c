"""Console sign-in links printed by the CLI (`keel token --console`, `keel clinic create`).

The token rides in the URL fragment (`/console/#token=…`): browsers never send a fragment to the server,
so it reaches no access log or proxy; the console moves it to sessionStorage and drops it from the
address bar and history at once.
"""

from __future__ import annotations

from urllib.parse import quote

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def console_link(token: str, base_url: str = DEFAULT_BASE_URL) -> str:
    return f"{base_url.rstrip('/')}/console/#token={quote(token, safe='')}"

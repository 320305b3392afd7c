"""Issue 13, finding 2: JWKS fetch storm.

With `KEEL_JWT_JWKS_URL` set, every token with an unknown `kid` made `PyJWKClient` download the key set
synchronously, on the event loop, before any signature check: anonymous callers could stall the whole
process. Now the key set is downloaded at most once per interval, one download at a time, in a thread;
an unknown `kid` meanwhile is a 401.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from dataclasses import replace
from typing import Self

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from api.app import create_app
from tests.conftest import live_server
from tests.jwks_server import serve_jwks

JWKS_DELAY = 2.0  # a slow identity provider: each download takes this long
REQUESTS = 50


def _token(key: rsa.RSAPrivateKey, kid: str) -> str:
    now = int(time.time())
    claims = {"sub": "user_2abc", "iat": now, "exp": now + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def _random_kids(client: httpx.AsyncClient, key: rsa.RSAPrivateKey) -> list[httpx.Response]:
    """REQUESTS concurrent authenticated requests, each token naming a random key id."""
    tokens = [_token(key, uuid.uuid4().hex) for _ in range(REQUESTS)]
    return await asyncio.gather(
        *(client.get("/api/ready", headers={"Authorization": f"Bearer {token}"}) for token in tokens)
    )


class HealthProbe:
    """GET /api/health in a loop from a thread of its own: the server's event loop is shared with the test's
    client, so only an outside clock sees it stall (an in-loop sampler simply is not running meanwhile)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                assert http.get("/api/health").status_code == 200
                self.latencies.append(time.perf_counter() - started)
                self._stop.wait(0.01)

    async def __aenter__(self) -> Self:
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        # Joined off the event loop: the probe's last request needs the loop (the server runs on it).
        await asyncio.to_thread(self._thread.join, 40)


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


async def test_finding2_random_kids_cost_at_most_one_jwks_fetch_and_never_block(settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    hits: list[float] = []
    with serve_jwks(key.public_key(), kid="clerk-1", delay=JWKS_DELAY, hits=hits) as jwks_url:
        app = create_app(replace(settings, jwt_jwks_url=jwks_url))
        async with live_server(app) as client:
            base_url = str(client.base_url)
            async with HealthProbe(base_url) as idle_probe:
                await asyncio.sleep(1.0)
            idle = idle_probe.latencies

            async with HealthProbe(base_url) as probe:
                await asyncio.sleep(0.2)
                started = time.perf_counter()
                answers = await _random_kids(client, key)
                storm_seconds = time.perf_counter() - started
                await asyncio.sleep(0.2)
            during = probe.latencies

            # The one key set downloaded meanwhile serves the real key without another download.
            good = await client.get(
                "/api/ready", headers={"Authorization": f"Bearer {_token(key, 'clerk-1')}"}
            )
            # More unknown kids within the interval: 401 without a download.
            later = time.perf_counter()
            again = await _random_kids(client, key)
            later_seconds = time.perf_counter() - later

    print(
        f"\njwks: {len(hits)} fetch(es) for {2 * REQUESTS} random kids; storm {storm_seconds:.2f} s, "
        f"then {later_seconds:.3f} s; /api/health p99 idle {p99(idle) * 1000:.1f} ms, "
        f"during {p99(during) * 1000:.1f} ms (max {max(during) * 1000:.1f} ms, n={len(during)})"
    )
    assert [r.status_code for r in answers] == [401] * REQUESTS
    assert [r.status_code for r in again] == [401] * REQUESTS
    assert good.status_code == 200 and good.json()["authenticated_as"] == "user_2abc"
    assert len(hits) <= 1
    # Nothing waited for a download on the event loop: /api/health never stalled for the fetch's 2 s.
    assert max(during) < JWKS_DELAY / 2, during

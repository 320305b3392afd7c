"""The share-link lookup limit is per client, also behind a load balancer (DESIGN §11, docs/scaling.md).

`callmaster.shared_lookup` counts lookups per client address. Behind a load balancer the address the API
sees is the balancer's: unless the balancer is trusted (`KEEL_FORWARDED_ALLOW_IPS`) and its
`X-Forwarded-For` believed, every viewer of every share link shares one bucket, and one guesser (or one
venue's worth of phones) gets everybody 429. A client that is not a trusted proxy cannot choose its bucket
by sending the header itself.

The balancer here is loopback address 127.0.0.2 (the app is served on 127.0.0.1; the test's default client
connects from 127.0.0.1, which is then not trusted).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.factories import assert_problem

GUESS = "/api/shared/sl_" + "Z" * 43


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"share_link_rate_limit": 3, "forwarded_allow_ips": "127.0.0.2"}


async def test_behind_a_trusted_balancer_each_client_has_its_own_share_link_limit(
    client: httpx.AsyncClient,
) -> None:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=client.base_url, transport=transport) as balancer:

        async def lookup(http: httpx.AsyncClient, forwarded_for: str | None = None) -> int:
            headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
            return (await http.get(GUESS, headers=headers)).status_code

        alice = [await lookup(balancer, "203.0.113.7") for _ in range(4)]
        assert alice == [404, 404, 404, 429]
        assert_problem(await balancer.get(GUESS, headers={"X-Forwarded-For": "203.0.113.7"}), 429)
        # Another viewer behind the same balancer is not held back by Alice's guesses.
        assert await lookup(balancer, "198.51.100.9") == 404
        # An untrusted client naming Alice (or anybody) is counted as itself.
        assert [await lookup(client, "203.0.113.7") for _ in range(3)] == [404, 404, 404]
        assert await lookup(client, "198.51.100.10") == 429

"""Bearer-token authentication: every way a token can be wrong answers 401 with WWW-Authenticate."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.exceptions import NotAuthorizedException

from api.app import create_app
from api.auth import TokenVerifier
from tests.conftest import TEST_JWT_SECRET, live_server
from tests.jwks_server import serve_jwks

CLINIC = "11111111-1111-1111-1111-111111111111"


def _hs(claims: dict, secret: str = TEST_JWT_SECRET, **headers: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers or None)


def _claims(**extra: object) -> dict:
    now = int(time.time())
    return {"sub": "staff-1", "clinic_id": CLINIC, "role": "admin", "iat": now, "exp": now + 600, **extra}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def _ready(client, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await client.get("/api/ready", headers=headers)


async def test_valid_token_is_accepted(client, make_token):
    response = await _ready(client, make_token("staff-1", clinic_id=CLINIC, role="admin"))
    assert response.status_code == 200
    assert response.json()["authenticated_as"] == "staff-1"


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("garbage", "not-a-jwt"),
        ("expired", _hs(_claims(exp=int(time.time()) - 120))),
        ("not yet valid", _hs(_claims(nbf=int(time.time()) + 600))),
        ("forged", _hs(_claims(), secret="someone-elses-secret-0123456789abcdef")),
        ("alg none", f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."),
        ("no exp", _hs({"sub": "staff-1"})),
        ("no sub", _hs({"exp": int(time.time()) + 60})),
        ("HS512 not allowed", jwt.encode(_claims(), TEST_JWT_SECRET, algorithm="HS512")),
    ],
)
async def test_bad_tokens_answer_401(client, name: str, token: str):
    response = await _ready(client, token)
    assert response.status_code == 401, name
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["detail"]


async def test_missing_or_wrong_scheme_answers_401(client):
    for headers in ({"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = await client.get("/api/ready", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


async def test_audience_and_issuer_are_enforced(settings):
    app = create_app(replace(settings, jwt_audience="keel-api", jwt_issuer="https://issuer.test"))
    async with live_server(app) as client:
        right = _hs(_claims(aud="keel-api", iss="https://issuer.test"))
        assert (await _ready(client, right)).status_code == 200
        wrong_aud = _hs(_claims(aud="other-api", iss="https://issuer.test"))
        wrong_iss = _hs(_claims(aud="keel-api", iss="https://evil.test"))
        no_aud = _hs(_claims(iss="https://issuer.test"))
        for token in (wrong_aud, wrong_iss, no_aud):
            assert (await _ready(client, token)).status_code == 401


async def test_rs256_tokens_verified_against_jwks(settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with serve_jwks(key.public_key(), kid="clerk-1") as jwks_url:
        app = create_app(replace(settings, jwt_jwks_url=jwks_url))
        async with live_server(app) as client:
            good = jwt.encode(_claims(sub="user_2abc"), key, algorithm="RS256", headers={"kid": "clerk-1"})
            bad = jwt.encode(_claims(sub="user_2abc"), other, algorithm="RS256", headers={"kid": "clerk-1"})
            response = await _ready(client, good)
            assert response.status_code == 200 and response.json()["authenticated_as"] == "user_2abc"
            assert (await _ready(client, bad)).status_code == 401
            # With both configured, HS256 tokens signed with the shared secret still verify.
            assert (await _ready(client, _hs(_claims()))).status_code == 200
            unknown_kid = jwt.encode(_claims(), key, algorithm="RS256", headers={"kid": "nope"})
            assert (await _ready(client, unknown_kid)).status_code == 401


async def test_verified_tokens_are_remembered_only_until_they_expire(settings):
    verifier = TokenVerifier(settings)
    token = _hs(_claims(exp=int(time.time()) + 1))
    principal = await verifier.principal(token)
    assert principal.sub == "staff-1"
    assert json.loads(principal.claims_json) == principal.claims  # what the transaction's claims are set to
    assert await verifier.principal(token) is principal  # remembered, with its claims encoded once
    assert token in verifier._verified
    await asyncio.sleep(1.2)
    assert token not in verifier._verified  # the next request verifies it afresh (and soon refuses it)
    forged = _hs(_claims(), secret="someone-elses-secret-0123456789abcdef")
    with pytest.raises(NotAuthorizedException):
        await verifier.principal(forged)
    assert forged not in verifier._verified

"""Bearer-token authentication: HS256 with a shared secret, or RS256 from a JWKS (Clerk)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt
from cachetools import TLRUCache
from litestar import Request
from litestar.exceptions import NotAuthorizedException

from api.settings import Settings

HS_ALGORITHMS = ["HS256"]
RS_ALGORITHMS = ["RS256"]
LEEWAY_SECONDS = 5
VERIFIED_CACHE_SIZE = 10_000
JWKS_REFRESH_SECONDS = 300.0
"""At most one JWKS download per this many seconds, whatever tokens arrive."""
JWKS_TIMEOUT_SECONDS = 10.0
JWKS_RETRY_SECONDS = 30.0
"""After a failed download, the next may start this soon (not a whole refresh interval later)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified claims of the request's token."""

    claims: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def claims_json(self) -> str:
        """The claims as JSON for the request's transaction (api.db.CONTEXT_SQL): encoded once per
        verified token, which the verifier keeps (one encoding per request cost more than the rest of
        the token check)."""
        return json.dumps(self.claims)

    @property
    def sub(self) -> str:
        return str(self.claims.get("sub", ""))

    @property
    def clinic_id(self) -> str | None:
        value = self.claims.get("clinic_id")
        return str(value) if value else None

    @property
    def role(self) -> str | None:
        value = self.claims.get("role")
        return str(value) if value else None


class JwksKeys:
    """The signing keys of a JWKS URL (Clerk), downloaded off the event loop and rate-limited.

    A token's `kid` is chosen by whoever sends it, so an unknown `kid` must not cost a download (that
    was a fetch storm: `PyJWKClient` fetched synchronously, on the event loop, for every unknown `kid`).
    The key set is downloaded at most once per `refresh_seconds`, by one task at a time, in a worker
    thread; meanwhile an unknown `kid` is simply unknown (401). Only before the first key set has
    arrived does a request wait for the download in flight (the event loop keeps serving others).
    """

    def __init__(self, url: str, refresh_seconds: float = JWKS_REFRESH_SECONDS) -> None:
        self.client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=JWKS_TIMEOUT_SECONDS)
        self.refresh_seconds = refresh_seconds
        self.keys: dict[str, Any] | None = None
        self._last_attempt = float("-inf")
        self._in_flight: asyncio.Task[None] | None = None

    async def key_for(self, kid: str | None) -> Any | None:
        """The key for `kid`; None when the current key set has no such key."""
        if self.keys is None:
            refresh = self._refresh()
            if refresh is not None:
                await asyncio.shield(refresh)
        elif kid not in self.keys:
            self._refresh()  # in the background; this request is answered now
        return (self.keys or {}).get(kid or "")

    def _refresh(self) -> asyncio.Task[None] | None:
        """The download in flight, starting one if the interval has passed; None when none may run."""
        if self._in_flight is not None:
            return self._in_flight
        if time.monotonic() - self._last_attempt < self.refresh_seconds:
            return None
        self._last_attempt = time.monotonic()
        self._in_flight = asyncio.get_running_loop().create_task(self._download())
        return self._in_flight

    async def _download(self) -> None:
        try:
            jwk_set = await asyncio.to_thread(self.client.get_jwk_set, True)
            self.keys = {key.key_id: key.key for key in jwk_set.keys if key.key_id}
        except jwt.PyJWTError as exc:
            retry = min(JWKS_RETRY_SECONDS, self.refresh_seconds)
            self._last_attempt = time.monotonic() - self.refresh_seconds + retry
            log.warning("cannot load the JWKS key set (next try in %.0f s at the earliest): %s", retry, exc)
        finally:
            self._in_flight = None


class TokenVerifier:
    """Verifies tokens per the settings; JWKS keys are kept between requests (see JwksKeys)."""

    def __init__(self, settings: Settings) -> None:
        self.secret = settings.resolved_jwt_secret()
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self.jwks = JwksKeys(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        # A token's signature and claims do not change: verifying it again on every request only costs
        # CPU. Entries (by the token's exact text, only once verified) leave the cache when the token
        # expires (or to make room).
        self._verified: TLRUCache[str, Principal] = TLRUCache(
            maxsize=VERIFIED_CACHE_SIZE, ttu=_token_expiry, timer=time.time
        )

    async def principal(self, token: str) -> Principal:
        """The caller the token names; verified once, then remembered until the token expires."""
        principal = self._verified.get(token)
        if principal is None:
            principal = Principal(claims=await self._verify(token))
            self._verified[token] = principal
        return principal

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _unauthorized("The bearer token is malformed.") from exc
        alg = header.get("alg")
        options = {"require": ["exp", "sub"], "verify_aud": self.audience is not None}
        try:
            if alg in HS_ALGORITHMS and self.secret:
                key: Any = self.secret
                algorithms = HS_ALGORITHMS
            elif alg in RS_ALGORITHMS and self.jwks:
                key = await self.jwks.key_for(header.get("kid"))
                if key is None:
                    raise _unauthorized("The bearer token is signed with an unknown key.")
                algorithms = RS_ALGORITHMS
            else:
                raise _unauthorized(f"Tokens signed with {alg!r} are not accepted.")
            return jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options=options,
            )
        except jwt.ExpiredSignatureError as exc:
            raise _unauthorized("The bearer token has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise _unauthorized("The bearer token is not valid yet.") from exc
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"The bearer token is invalid: {exc}.") from exc

    def mint(self, claims: dict[str, Any], ttl_seconds: int = 3600) -> str:
        """A development token signed with the local secret (embedded mode, tests, `keel token`)."""
        if not self.secret:
            raise RuntimeError("no KEEL_JWT_SECRET configured: cannot mint HS256 tokens")
        now = int(time.time())
        payload = {"iat": now, "nbf": now, "exp": now + ttl_seconds, "jti": uuid.uuid4().hex, **claims}
        if self.audience:
            payload.setdefault("aud", self.audience)
        if self.issuer:
            payload.setdefault("iss", self.issuer)
        return jwt.encode(payload, self.secret, algorithm="HS256")


def _token_expiry(token: str, principal: Principal, now: float) -> float:
    return float(principal.claims["exp"])


def _unauthorized(detail: str) -> NotAuthorizedException:
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """Dependency `principal`: declaring it makes a route require a valid bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException(
            detail="A bearer token is required.", headers={"WWW-Authenticate": "Bearer"}
        )
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.principal(token.strip())

"""The requesting CallMaster user: `GET /api/me`, `PATCH /api/me/preferences`.

CallMaster endpoints read the token's `sub` as the Clerk user id; a user the webhook has not created
yet (or deactivated) gets 403 from the SQL side (`callmaster.require_user_id`).
"""

from __future__ import annotations

import functools
import zoneinfo
from typing import Annotated, Any

import msgspec
from litestar import get, patch
from litestar.params import JSONBody
from msgspec import UNSET, Meta, UnsetType
from psycopg.types.json import Jsonb

from api.deps import CurrentPrincipal, Db
from api.errors import Problem

ME = "SELECT callmaster.me()"
UPDATE_MY_PREFERENCES = "SELECT callmaster.update_my_preferences(%(patch)s)"

Language = Annotated[str, Meta(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$", max_length=6)]
Timezone = Annotated[str, Meta(min_length=1, max_length=64)]
Lookahead = Annotated[int, Meta(ge=0, le=3600)]


class PreferencesPatch(msgspec.Struct, forbid_unknown_fields=True):
    """A JSON merge patch of the user's preferences: listed keys only; `null` resets a key to its default."""

    dark_mode: bool | None | UnsetType = UNSET
    colorize_department_names: bool | None | UnsetType = UNSET
    auto_sort_cues: bool | None | UnsetType = UNSET
    show_clock_times: bool | None | UnsetType = UNSET
    use_military_time: bool | None | UnsetType = UNSET
    lookahead_seconds: Lookahead | None | UnsetType = UNSET
    timezone: Timezone | None | UnsetType = UNSET
    language: Language | None | UnsetType = UNSET


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def merge_patch(data: msgspec.Struct) -> dict[str, Any]:
    """The fields the client sent (UNSET left out), `None` kept: an RFC 7396 merge patch."""
    return {field: value for field in data.__struct_fields__ if (value := getattr(data, field)) is not UNSET}


def search_term(q: str | None) -> str | None:
    """A `q` search parameter as given; 400 when it holds a NUL character (PostgreSQL text cannot)."""
    if q is not None and "\x00" in q:
        raise Problem(400, "q must not contain NUL characters.", code="22021")
    return q


@get("/api/me", tags=["callmaster"], summary="The requesting user's CallMaster profile")
async def get_me(db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_val(principal, ME)


@patch(
    "/api/me/preferences",
    tags=["callmaster"],
    summary="Merge-patch the requesting user's preferences",
    description="JSON merge patch (RFC 7396) over the stored preferences; answers the resulting object.",
)
async def patch_preferences(
    data: JSONBody[PreferencesPatch], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    changes = merge_patch(data)
    timezone = changes.get("timezone")
    if timezone is not None and timezone not in _timezones():
        raise Problem(422, f"timezone {timezone!r} is not an IANA time zone name.", code="22023")
    return await db.fetch_val(principal, UPDATE_MY_PREFERENCES, {"patch": Jsonb(changes)})


routes = [get_me, patch_preferences]

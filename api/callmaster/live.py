"""CallMaster live: calling a show in real time (issue 16, DESIGN §12).

- `GET /api/scripts/{id}/live` (owner and assigned crew) and `GET /api/shared/{token}/scripts/{id}/live`
  (share link): Server-Sent Events. First `state` (`{script: {…, version}, run}`), then every feed event
  as it commits, in commit order: `element.created|updated|deleted` (`{element_id, fields?, at}`) and
  `command` (`{command, element_id?, run_id, run, at}`). Ids are the script's feed positions;
  `Last-Event-ID` replays exactly what was missed, or answers `reset` (reload the script) when the log
  no longer holds it. A subscriber whose access ends gets `revoked` and is disconnected.
- `POST /api/scripts/{id}/live/commands` `{"command": standby|go|hold|resume|stop, "element_id"?}`.
- `POST/GET /api/shows/{id}/share-links`, `DELETE /api/shows/{id}/share-links/{link_id}`,
  `GET /api/shared/{token}`, `GET /api/shared/{token}/scripts/{id}`.
- `GET /api/scripts/{id}/live/presence`, `GET /api/shared/{token}/scripts/{id}/live/presence`: devices
  following, by department.

SQL: sql/callmaster/700_live_*.sql; the fan-out: api/callmaster/live_relay.py.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.response import ServerSentEvent
from msgspec import Meta

from api.callmaster.live_relay import (
    LiveResponse,
    LiveStream,
    Message,
    Reopen,
    Subscriber,
    db_event,
    relay_for,
    reset_message,
)
from api.db import Database
from api.deps import AppSettings, CurrentPrincipal, Db
from api.errors import Problem
from api.settings import Settings

TAGS = ["callmaster live"]
SHARED_LOOKUP = {"error_statuses": (429,)}  # share-link lookups are rate-limited per client (OpenAPI)
# A share link's answer is fetched without credentials (the token is in the URL), so a cache between the
# viewer and Keel (a CDN in front of the balancer, the browser's disk) could keep and serve it after the
# link is revoked or expires: none may store it.
SHARED_NO_STORE = CacheControlHeader(no_store=True)

OPEN = "SELECT callmaster.live_open(%(script)s, %(after)s)"
OPEN_SHARED = "SELECT callmaster.live_open_shared(%(token)s, %(script)s, %(after)s)"
PRESENCE = "SELECT callmaster.live_presence(%(script)s)"
COMMANDS = {
    "standby": "SELECT callmaster.live_standby(%(script)s, %(element)s)",
    "go": "SELECT callmaster.live_go(%(script)s, %(element)s)",
    "hold": "SELECT callmaster.live_hold(%(script)s)",
    "resume": "SELECT callmaster.live_resume(%(script)s)",
    "stop": "SELECT callmaster.live_stop(%(script)s)",
}
CREATE_LINK = "SELECT callmaster.share_link_create(%(show)s, %(hours)s)"
LIST_LINKS = "SELECT callmaster.share_link_list(%(show)s)"
REVOKE_LINK = "SELECT callmaster.share_link_revoke(%(show)s, %(link)s)"
SHARED_LOOKUP_SQL = (
    "SELECT callmaster.shared_lookup(%(client)s, %(limit)s, %(lookup)s, %(token)s, %(script)s, %(after)s)"
)

_TOKEN = re.compile(r"^sl_[A-Za-z0-9_-]{43}$")
_POSITION = re.compile(r"^\d{1,18}$")

Token = Annotated[str, Meta(max_length=200)]


class Command(msgspec.Struct, forbid_unknown_fields=True):
    command: Literal["standby", "go", "hold", "resume", "stop"]
    element_id: UUID | None = None


class ShareLinkCreate(msgspec.Struct, forbid_unknown_fields=True):
    expires_in_hours: Annotated[int, Meta(ge=1, le=720)] = 24


def parse_last_event_id(value: str | None) -> int | None:
    """A feed position from Last-Event-ID; None when absent. Anything else is older than any log."""
    text = (value or "").strip()
    if not text:
        return None
    return int(text) if _POSITION.match(text) else -1


async def shared_call(
    request: Request[Any, Any, Any], db: Database, lookup: str, token: str, **params: Any
) -> Any:
    """A share-link lookup (`callmaster.shared_lookup`: show, script, presence or live) behind its
    client's rate limit, in one call: 429 past the limit, 404 for any link that is not valid now.
    A string that cannot be a token is looked up as the empty one: counted, then 404."""
    answer = await db.fetch_val(
        None,
        SHARED_LOOKUP_SQL,
        {
            "client": request.client.host if request.client else "unknown",
            "limit": request.app.state.settings.share_link_rate_limit,
            "lookup": lookup,
            "token": token if _TOKEN.match(token) else "",
            "script": params.get("script"),
            "after": params.get("after"),
        },
    )
    if "retry_after" in answer:
        raise Problem(
            429,
            "Too many share-link lookups from this client; slow down.",
            headers={"Retry-After": str(answer["retry_after"])},
        )
    if "not_found" in answer:
        raise Problem(404, answer["not_found"], code="P0002")
    return answer["found"]


def live_response(
    request: Request[Any, Any, Any],
    db: Database,
    settings: Settings,
    opened: dict[str, Any],
    after: int | None,
    subscriber: Subscriber,
    reopen: Reopen,
) -> LiveResponse:
    """The stream: state, the replay (or reset), then live events from the relay until revoked."""
    relay = relay_for(request.app.state, settings, db.pool.conninfo)
    if opened["events"]:  # the replay stops at live_open's limit: the stream catches up from there
        subscriber.position = int(opened["events"][-1]["id"])
    replaying = after is not None and not opened["reset"]
    state_id = after if replaying else subscriber.position
    opening = [Message(state_id, "state", json.dumps(opened["state"]))]
    if opened["reset"]:
        opening.append(reset_message(subscriber.position))
    opening += map(db_event, opened["events"])
    return LiveResponse(LiveStream(relay, subscriber, opening, reopen))


@get(
    "/api/scripts/{script_id:uuid}/live",
    tags=TAGS,
    opt={"error_statuses": (429,)},  # past live_max_streams of the user (live_relay.TooManyStreams)
    summary="Follow a script live (Server-Sent Events)",
    description="First `state`, then element changes and show commands as they commit, in commit order. "
    "`Last-Event-ID` replays what was missed (or `reset` when the log no longer holds it); `revoked` "
    "ends the stream when your access ends.",
)
async def follow_script(
    request: Request[Any, Any, Any],
    script_id: FromPath[UUID],
    db: Db,
    principal: CurrentPrincipal,
    settings: AppSettings,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
) -> ServerSentEvent:
    after = parse_last_event_id(last_event_id)

    async def reopen(position: int) -> dict[str, Any]:
        return await db.fetch_val(principal, OPEN, {"script": script_id, "after": position})

    opened = await db.fetch_val(
        principal, OPEN, {"script": script_id, "after": after}
    )  # 404 before streaming
    subscriber = Subscriber(script_id, opened["state"]["script"]["version"], sub=str(principal.claims["sub"]))
    return live_response(request, db, settings, opened, after, subscriber, reopen)


@get(
    "/api/shared/{token:str}/scripts/{script_id:uuid}/live",
    tags=TAGS,
    opt=SHARED_LOOKUP,
    summary="Follow a script live through a share link (read-only)",
    description="The same stream as `/api/scripts/{id}/live`; 404 when the link is revoked or expired.",
)
async def follow_shared_script(
    request: Request[Any, Any, Any],
    token: FromPath[Token],
    script_id: FromPath[UUID],
    db: Db,
    settings: AppSettings,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID", required=False)] = None,
) -> ServerSentEvent:
    after = parse_last_event_id(last_event_id)

    async def reopen(position: int) -> dict[str, Any]:
        return await db.fetch_val(None, OPEN_SHARED, {"token": token, "script": script_id, "after": position})

    opened = await shared_call(request, db, "live", token, script=script_id, after=after)
    subscriber = Subscriber(script_id, opened["state"]["script"]["version"], link_id=opened["link_id"])
    return live_response(request, db, settings, opened, after, subscriber, reopen)


@post(
    "/api/scripts/{script_id:uuid}/live/commands",
    tags=TAGS,
    summary="Call the show: standby, go, hold, resume or stop",
    description="For the script's owner and crew with a caller role (show_role caller or stage_manager; other "
    "crew → 403). `element_id` (standby, go) names the cue; by default the cue in standby or the next one. "
    "Answers the new live state; 409 when the run's state forbids the command, 422 for an element that is "
    "not an active cue of the script.",
    status_code=200,
)
async def live_command(
    script_id: FromPath[UUID], data: JSONBody[Command], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    if data.element_id is not None and data.command not in ("standby", "go"):
        raise Problem(422, f"{data.command} takes no element_id", code="22023")
    return await db.fetch_val(
        principal, COMMANDS[data.command], {"script": script_id, "element": data.element_id}
    )


@get(
    "/api/scripts/{script_id:uuid}/live/presence",
    tags=TAGS,
    summary="Devices following a script, by department",
)
async def presence(script_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    return await db.fetch_val(principal, PRESENCE, {"script": script_id})


@post(
    "/api/shows/{show_id:uuid}/share-links",
    tags=TAGS,
    summary="Create a read-only share link to a show",
    description="Owner only. The token is in this answer only (the database keeps its hash); the link "
    "expires after `expires_in_hours` (1–720, default 24) unless revoked earlier.",
    status_code=201,
)
async def create_share_link(
    request: Request[Any, Any, Any],
    show_id: FromPath[UUID],
    db: Db,
    principal: CurrentPrincipal,
    data: JSONBody[ShareLinkCreate | None] = None,
) -> dict[str, Any]:
    hours = data.expires_in_hours if data is not None else ShareLinkCreate().expires_in_hours
    link = await db.fetch_val(principal, CREATE_LINK, {"show": show_id, "hours": hours})
    link["url"] = str(request.base_url).rstrip("/") + f"/api/shared/{link['token']}"
    return link


@get("/api/shows/{show_id:uuid}/share-links", tags=TAGS, summary="The share links of a show (no tokens)")
async def list_share_links(show_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> dict[str, Any]:
    items = await db.fetch_val(principal, LIST_LINKS, {"show": show_id})
    return {"items": items, "total": len(items), "limit": len(items), "offset": 0}


@delete(
    "/api/shows/{show_id:uuid}/share-links/{link_id:uuid}",
    tags=TAGS,
    summary="Revoke a share link",
    description="Its lookups answer 404 from now on and its live streams end within seconds.",
    status_code=204,
)
async def revoke_share_link(
    show_id: FromPath[UUID], link_id: FromPath[UUID], db: Db, principal: CurrentPrincipal
) -> None:
    await db.execute(principal, REVOKE_LINK, {"show": show_id, "link": link_id})


@get(
    "/api/shared/{token:str}",
    tags=TAGS,
    summary="A share link's show and its scripts",
    opt=SHARED_LOOKUP,
    cache_control=SHARED_NO_STORE,
)
async def shared_show(request: Request[Any, Any, Any], token: FromPath[Token], db: Db) -> dict[str, Any]:
    return await shared_call(request, db, "show", token)


@get(
    "/api/shared/{token:str}/scripts/{script_id:uuid}",
    tags=TAGS,
    opt=SHARED_LOOKUP,
    cache_control=SHARED_NO_STORE,
    summary="A script of a share link's show, with its elements",
)
async def shared_script(
    request: Request[Any, Any, Any], token: FromPath[Token], script_id: FromPath[UUID], db: Db
) -> dict[str, Any]:
    return await shared_call(request, db, "script", token, script=script_id)


@get(
    "/api/shared/{token:str}/scripts/{script_id:uuid}/live/presence",
    tags=TAGS,
    opt=SHARED_LOOKUP,
    cache_control=SHARED_NO_STORE,
    summary="Devices following a script, by department (share link)",
)
async def shared_presence(
    request: Request[Any, Any, Any], token: FromPath[Token], script_id: FromPath[UUID], db: Db
) -> dict[str, Any]:
    counts = await shared_call(request, db, "presence", token, script=script_id)
    if counts is None:
        raise Problem(404, f"script {script_id} not found", code="P0002")
    return counts


routes = [
    follow_script,
    follow_shared_script,
    live_command,
    presence,
    create_share_link,
    list_share_links,
    revoke_share_link,
    shared_show,
    shared_script,
    shared_presence,
]

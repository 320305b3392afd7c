"""Crews and guests: `GET /api/crew`, `POST /api/crew/guests`, `PATCH/DELETE /api/crew/{user_id}`; the
invitations of users who already have an account: `GET /api/crew/invitations`,
`POST /api/crew/invitations/{id}/accept|decline`."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody
from msgspec import UNSET, Meta, UnsetType
from psycopg import sql
from psycopg.types.json import Jsonb

from api.callmaster.identity import merge_patch
from api.deps import CurrentPrincipal, Db, Page
from api.idempotency import Replay, run_idempotent
from api.patterns import EMAIL

LIST_CREW = "SELECT callmaster.list_crew(%(limit)s, %(offset)s)"
UPDATE_CREW_MEMBER = "SELECT callmaster.update_crew_member(%(user_id)s, %(patch)s)"
REMOVE_CREW_MEMBER = "SELECT callmaster.remove_crew_member(%(user_id)s)"
LIST_INVITATIONS = "SELECT callmaster.list_crew_invitations(%(limit)s, %(offset)s)"
ACCEPT_INVITATION = "SELECT callmaster.accept_crew_invitation(%(invitation_id)s)"
DECLINE_INVITATION = "SELECT callmaster.decline_crew_invitation(%(invitation_id)s)"

Email = Annotated[str, Meta(pattern=EMAIL, max_length=320)]
PersonName = Annotated[str, Meta(max_length=100)]
Phone = Annotated[str, Meta(max_length=50)]
Notes = Annotated[str, Meta(max_length=4000)]

ADD_GUEST = sql.SQL("callmaster.add_guest(%(data)s)")
# An Idempotency-Key record keeps the guest's id only (email and name are personal data).
REPLAY_GUEST = Replay(sql.SQL("callmaster.get_crew_member"), ref="user_id")


class GuestCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A crew member without a Clerk account yet; signing up with this email claims the record."""

    email: Email
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    phone: Phone | None = None
    notes: Notes | None = None


class CrewPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Changes to the crew relationship (the member's own profile is theirs to edit)."""

    notes: Notes | None | UnsetType = UNSET
    is_active: bool | UnsetType = UNSET


@get("/api/crew", tags=["callmaster"], summary="The requesting user and the crew they manage")
async def list_crew(db: Db, principal: CurrentPrincipal, pagination: Page) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        LIST_CREW,
        {"limit": pagination.limit, "offset": pagination.offset},
    )


@post(
    "/api/crew/guests",
    tags=["callmaster"],
    summary="Create a guest crew member",
    description="Guest user and crew relationship in one transaction. An address that is you, your crew "
    "or an invitation you sent → 409. An address held by a user outside your crew is answered exactly as "
    "a new one (a pending guest made of what you typed, which you assign and change like any guest), and "
    "that user joins your crew only when they accept the invitation "
    "(`POST /api/crew/invitations/{id}/accept`). Adding the address of a member you removed puts it back. "
    "Honours Idempotency-Key.",
    status_code=201,
)
async def create_guest(
    request: Request[Any, Any, Any], data: JSONBody[GuestCreate], db: Db, principal: CurrentPrincipal
) -> Response[Any]:
    payload = msgspec.to_builtins(data)
    outcome = await run_idempotent(
        db,
        principal,
        request,
        payload=payload,
        call=ADD_GUEST,
        params={"data": Jsonb(payload)},
        replay=REPLAY_GUEST,
    )
    return Response(outcome.body, status_code=outcome.status_code, headers=outcome.headers)


@patch("/api/crew/{user_id:uuid}", tags=["callmaster"], summary="Change a crew relationship (notes, active)")
async def update_crew_member(
    user_id: FromPath[UUID], data: JSONBody[CrewPatch], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(
        principal,
        UPDATE_CREW_MEMBER,
        {"user_id": user_id, "patch": Jsonb(merge_patch(data))},
    )


@delete(
    "/api/crew/{user_id:uuid}",
    tags=["callmaster"],
    summary="End a crew relationship (the user remains)",
    description="A pending member (an invitation) is withdrawn: the invitee no longer sees it; like a "
    "removed guest it keeps its assignments and stays assignable.",
    status_code=204,
)
async def remove_crew_member(user_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> None:
    await db.execute(principal, REMOVE_CREW_MEMBER, {"user_id": user_id})


@get(
    "/api/crew/invitations",
    tags=["callmaster"],
    summary="Invitations into other users' crews addressed to the requesting user",
)
async def list_invitations(db: Db, principal: CurrentPrincipal, pagination: Page) -> dict[str, Any]:
    return await db.fetch_val(
        principal, LIST_INVITATIONS, {"limit": pagination.limit, "offset": pagination.offset}
    )


@post(
    "/api/crew/invitations/{invitation_id:uuid}/accept",
    tags=["callmaster"],
    summary="Accept an invitation: join the inviting manager's crew",
    description="The assignments the manager gave you while you were pending (shows, elements) become "
    "yours in the same transaction: you then read those shows, their scripts and live feeds.",
    status_code=200,
)
async def accept_invitation(
    invitation_id: FromPath[UUID], db: Db, principal: CurrentPrincipal
) -> dict[str, Any]:
    return await db.fetch_val(principal, ACCEPT_INVITATION, {"invitation_id": invitation_id})


@post(
    "/api/crew/invitations/{invitation_id:uuid}/decline",
    tags=["callmaster"],
    summary="Decline an invitation (the manager is not told)",
    status_code=204,
)
async def decline_invitation(invitation_id: FromPath[UUID], db: Db, principal: CurrentPrincipal) -> None:
    await db.execute(principal, DECLINE_INVITATION, {"invitation_id": invitation_id})


routes = [
    list_crew,
    create_guest,
    update_crew_member,
    remove_crew_member,
    list_invitations,
    accept_invitation,
    decline_invitation,
]

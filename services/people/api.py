"""HTTP endpoints of the people service (reached through the gateway)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from services.people import service
from services.people.service import RelationKind
from shared.api import Me, PersonPage, Profile, ProfileUpdate
from shared.auth import CurrentUser

router = APIRouter()

PersonId = Annotated[str, Path(min_length=1, max_length=200)]
PageLimit = Annotated[int, Query(ge=1, le=100)]
_STATE_NAMES: dict[str, str] = {"follow": "following", "mute": "muted", "block": "blocked"}


@router.get("/me")
async def me(request: Request, user: CurrentUser) -> Me:
    return await service.sync_from_claims(request.app.state.pool, user)


@router.put("/me/claims")
async def sync_claims(request: Request, user: CurrentUser) -> Me:
    """Called by the gateway the first time it sees a user's claims, and when they change."""
    return await service.sync_from_claims(request.app.state.pool, user)


@router.patch("/me")
async def update_me(request: Request, body: ProfileUpdate, user: CurrentUser) -> Profile:
    return await service.update_profile(request.app.state.pool, user=user, update=body)


@router.get("/people/{person_id}")
async def profile(request: Request, person_id: PersonId, user: CurrentUser) -> Profile:
    return await service.get_profile(request.app.state.pool, person_id=person_id, viewer=user)


async def _relation(request: Request, person_id: str, user: CurrentUser, kind: RelationKind, active: bool) -> dict:
    state = await service.set_relation(request.app.state.pool, user=user, target_id=person_id, kind=kind, active=active)
    return {_STATE_NAMES[kind]: state}


@router.put("/people/{person_id}/{kind}")
async def relate(request: Request, person_id: PersonId, kind: RelationKind, user: CurrentUser) -> dict[str, bool]:
    return await _relation(request, person_id, user, kind, True)


@router.delete("/people/{person_id}/{kind}")
async def unrelate(request: Request, person_id: PersonId, kind: RelationKind, user: CurrentUser) -> dict[str, bool]:
    return await _relation(request, person_id, user, kind, False)


@router.get("/people/{person_id}/followers")
async def followers(
    request: Request, person_id: PersonId, user: CurrentUser, cursor: str | None = None, limit: PageLimit = 20
) -> PersonPage:
    return await service.follow_list(
        request.app.state.pool, person_id=person_id, outgoing=False, cursor=cursor, limit=limit
    )


@router.get("/people/{person_id}/following")
async def following(
    request: Request, person_id: PersonId, user: CurrentUser, cursor: str | None = None, limit: PageLimit = 20
) -> PersonPage:
    return await service.follow_list(
        request.app.state.pool, person_id=person_id, outgoing=True, cursor=cursor, limit=limit
    )

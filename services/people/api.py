"""HTTP endpoints of the people service (reached through the gateway)."""

from fastapi import APIRouter, Request

from services.people import service
from shared.api import Me
from shared.auth import CurrentUser

router = APIRouter()


@router.get("/me")
async def me(request: Request, user: CurrentUser) -> Me:
    return await service.sync_from_claims(request.app.state.pool, user)


@router.put("/me/claims")
async def sync_claims(request: Request, user: CurrentUser) -> Me:
    """Called by the gateway the first time it sees a user's claims, and when they change."""
    return await service.sync_from_claims(request.app.state.pool, user)

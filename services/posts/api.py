"""HTTP endpoints of the posts service (reached through the gateway)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.posts import service
from services.posts.campaigns_api import router as campaigns_router
from shared.api import ChangeAudience, CreatePost, Post
from shared.auth import CurrentUser

router = APIRouter()


@router.post("/posts", status_code=201)
async def create_post(request: Request, body: CreatePost, user: CurrentUser) -> Post:
    return await service.create_post(request.app.state.pool, author=user, request=body)


@router.get("/posts")
async def get_posts(
    request: Request, user: CurrentUser, ids: Annotated[list[uuid.UUID], Query(max_length=200)]
) -> list[Post]:
    return await service.get_posts(request.app.state.pool, ids, viewer=user)


@router.get("/posts/{post_id}")
async def get_post(request: Request, post_id: uuid.UUID, user: CurrentUser) -> Post:
    return await service.get_post(request.app.state.pool, post_id, viewer=user)


@router.delete("/posts/{post_id}", status_code=204)
async def delete_post(request: Request, post_id: uuid.UUID, user: CurrentUser) -> Response:
    await service.delete_post(request.app.state.pool, post_id=post_id, user=user)
    return Response(status_code=204)


@router.patch("/posts/{post_id}")
async def change_audience(request: Request, post_id: uuid.UUID, body: ChangeAudience, user: CurrentUser) -> Post:
    return await service.change_audience(request.app.state.pool, post_id=post_id, user=user, audience=body.audience)


router.include_router(campaigns_router)

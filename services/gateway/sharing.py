"""Comments, mentions, praise, questions and moderation: the posts service's sharing features."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")

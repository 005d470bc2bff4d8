"""Contribution scores, leaderboards and participation insight for leaders."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")

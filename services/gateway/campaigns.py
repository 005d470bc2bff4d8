"""Idea campaigns and live Q&A with a leader."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api")

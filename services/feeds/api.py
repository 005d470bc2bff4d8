"""HTTP endpoints of the feeds service (reached through the gateway)."""

from fastapi import APIRouter

router = APIRouter()

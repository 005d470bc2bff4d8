"""HTTP endpoints of the search service (reached through the gateway)."""

from fastapi import APIRouter

router = APIRouter()

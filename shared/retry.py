"""What counts as a transient failure, and how long to wait before trying again."""

from __future__ import annotations

import random

import aiormq
import asyncpg

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes ConnectionError: the database or broker cannot be reached
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # e.g. the connection was closed under us
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def backoff_seconds(attempt: int, *, base: float = 0.1, cap: float = 5.0) -> float:
    """Exponential backoff with full jitter, so replicas that failed together do not retry together."""
    return random.uniform(0, min(cap, base * 2 ** max(0, attempt - 1)))

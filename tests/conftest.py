from collections.abc import AsyncIterator

import pytest

from tests.harness import System


@pytest.fixture(scope="session")
async def system() -> AsyncIterator[System]:
    """The whole system, started once for the session's end-to-end tests."""
    running = System()
    try:
        await running.start()
        yield running
    finally:
        await running.stop()

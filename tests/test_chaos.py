"""The bounded chaos round of CI: under a steady mixed load through the gateway, the notifications service
killed with SIGKILL, RabbitMQ and PostgreSQL each stopped and started (through the round's own proxies);
then every projection held against the owners' tables and every answer against what was stored. Any lost
or duplicated item fails. The full round, with every fault and its figures, is `make chaos`
(tests/chaos/, docs/reliability.md)."""

from __future__ import annotations

import pytest

from tests.chaos.report import render
from tests.chaos.run import bounded_plan, chaos_round

# Selected with `-m slow` among the fault tests, or alone with `-k chaos`; `make test` runs it by default.
pytestmark = pytest.mark.slow


async def test_a_bounded_chaos_round_loses_and_duplicates_nothing() -> None:
    result = await chaos_round(bounded_plan(), log=lambda line: None)
    report = render(result, command="pytest tests/test_chaos.py")
    print(report)
    assert result.lost == 0 and result.duplicated == 0, report
    assert result.wrong == 0, report
    # The faults did bite: the gateway refused or failed some writes while the database was away, and the
    # round held real traffic throughout.
    assert result.load["writes"] > 200, report
    assert result.client is not None and result.client.accepted > 200, report
    assert result.pipeline["dead_letters"] == 0, report

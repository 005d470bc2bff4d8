"""The chaos suite: a steady mixed load through the gateway while faults are injected in turn (kill -9 and
SIGTERM of each consumer service, RabbitMQ and PostgreSQL cut, the outbox relay killed between publish and
mark, two replicas of every consumer), then every projection held against the truth recomputed from the
owners' tables and against what the client was told. `make chaos` runs the full round and prints the report;
tests/test_chaos.py runs a bounded one in `make test`. How it works and the last figures: docs/reliability.md.

- load.py: the people of the load and the client's record of every request.
- faults.py: the faults, and the probe that measures how long each projection takes to recover.
- truth.py: the owners' facts, the projections, and what differs between them.
- report.py: the report as Markdown.
- run.py: one round: start a system, hold the load, inject the plan's faults, settle, compare.
"""

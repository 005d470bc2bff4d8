"""Prometheus metrics of every service, served at GET /metrics (docs/operations.md, "Observability").

One registry per process: each replica counts for itself and is scraped on its own (Prometheus sums across
replicas at query time); no multiprocess mode, since every service runs one process per container. Labels
are bounded sets (method, route template, status, consumer, event type, outcome): never a user or post id.

Counters and histograms below are updated where things happen (HTTP middleware, consumer, relay). What is a
state rather than a count (the outbox backlog, a worker's counters) is read when Prometheus scrapes, by the
collectors at the end of this module, registered in a registry of the app's own.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.responses import Response

REGISTRY = CollectorRegistry(auto_describe=False)

# From a fast like (~1 ms) to a request that times out upstream (15 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)

HTTP_REQUEST_DURATION = Histogram(
    "tillit_http_request_duration_seconds",
    "HTTP requests served, by method, route template and status; the _count is the request count",
    ("method", "route", "status"),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

EVENTS_CONSUMED = Counter(
    "tillit_events_consumed",
    "Events taken by a consumer, by event type and outcome: applied, duplicate (already in the inbox), retried "
    "(a transient failure held its batch), requeued (its handler failed; redelivered), dead_lettered",
    ("consumer", "type", "outcome"),
    registry=REGISTRY,
)

HANDLER_DURATION = Histogram(
    "tillit_event_handler_duration_seconds",
    "Time to apply one batch of events in one transaction (inbox claim, handler, commit), per consumer",
    ("consumer",),
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)

BATCH_SIZE = Histogram(
    "tillit_event_batch_size",
    "Events per batch applied, per consumer",
    ("consumer",),
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
    registry=REGISTRY,
)

DEAD_LETTERS = Counter(
    "tillit_dead_letters",
    "Messages moved to a dead-letter queue, per consumer and cause: malformed or handler_failed",
    ("consumer", "cause"),
    registry=REGISTRY,
)

OUTBOX_PUBLISHED = Counter(
    "tillit_outbox_published",
    "Events published from this service's outbox with a broker confirm, by event type",
    ("type",),
    registry=REGISTRY,
)

OUTBOX_PUBLISH_DURATION = Histogram(
    "tillit_outbox_publish_duration_seconds",
    "Time to publish one batch of outbox rows and delete them (confirms included)",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)


@dataclasses.dataclass
class OutboxState:
    """The outbox as last read, just before a scrape (the relay's `refresh_state`)."""

    backlog: int | None = None
    oldest_age_seconds: float = 0.0
    read_at: float = 0.0


class OutboxCollector:
    def __init__(self, state: Callable[[], OutboxState | None]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        if state is None or state.backlog is None:
            return  # not read (yet, or the database was away): no sample rather than a wrong one
        backlog = GaugeMetricFamily("tillit_outbox_backlog", "Events in the outbox waiting to be published")
        backlog.add_metric([], state.backlog)
        yield backlog
        lag = GaugeMetricFamily(
            "tillit_outbox_lag_seconds", "Age of the oldest event waiting in the outbox; 0 when it is empty"
        )
        lag.add_metric([], state.oldest_age_seconds)
        yield lag


class WorkerStatsCollector:
    """Counters of the background workers that keep a `stats` dataclass (the notifications mailer, say),
    read at scrape time so the workers need not know about Prometheus."""

    def __init__(self, workers: Callable[[], Iterable[object]]) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        generic = CounterMetricFamily(
            "tillit_worker_operations",
            "What a background worker did, by worker and counter (the fields of its stats)",
            labels=("worker", "counter"),
        )
        smtp = CounterMetricFamily(
            "tillit_smtp_sends",
            "Emails handed to the SMTP server, by outcome: sent, failed (for good), retried (will try again)",
            labels=("outcome",),
        )
        has_smtp = False
        for worker in self._workers():
            stats = getattr(worker, "stats", None)
            if stats is None or not dataclasses.is_dataclass(stats):
                continue
            name = type(worker).__name__.lower()
            values = {
                f.name: getattr(stats, f.name)
                for f in dataclasses.fields(stats)
                if isinstance(getattr(stats, f.name), int | float) and not isinstance(getattr(stats, f.name), bool)
            }
            for counter, value in values.items():
                generic.add_metric([name, counter], value)
            if name == "mailer":
                has_smtp = True
                for outcome in ("sent", "failed", "retried"):
                    smtp.add_metric([outcome], values.get(outcome, 0))
        yield generic
        if has_smtp:
            yield smtp


def app_registry(*collectors: object) -> CollectorRegistry:
    """A registry for collectors that read one app's state; served beside the process's REGISTRY."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)  # type: ignore[arg-type]
    return registry


def metrics_response(extra: Sequence[CollectorRegistry] = ()) -> Response:
    body = generate_latest(REGISTRY) + b"".join(generate_latest(registry) for registry in extra)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def observe_since(histogram: Histogram, started: float, *labels: str) -> None:
    (histogram.labels(*labels) if labels else histogram).observe(time.perf_counter() - started)

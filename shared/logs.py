"""Structured JSON logs. Every line carries the service; a line written while handling a request or an event
carries the trace (`trace_id`, `span_id`, shared/tracing.py), and one written while handling an event its
`event_id`."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import uuid
from collections.abc import Iterator

from pythonjsonlogger.json import JsonFormatter

from shared import tracing

_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
_service: contextvars.ContextVar[str | None] = contextvars.ContextVar("service", default=None)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        event_id = _event_id.get()
        if event_id is not None and not hasattr(record, "event_id"):
            record.event_id = event_id
        span = tracing.current()
        if span is not None and not hasattr(record, "trace_id"):
            record.trace_id = span.trace_id
            record.span_id = span.span_id
        return True


@contextlib.contextmanager
def event_context(event_id: uuid.UUID | str) -> Iterator[None]:
    token = _event_id.set(str(event_id))
    try:
        yield
    finally:
        _event_id.reset(token)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter("{asctime}{levelname}{name}{message}", style="{", rename_fields={"levelname": "level"})
    )
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

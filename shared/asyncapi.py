"""The AsyncAPI 3 description of Tillit's events, generated from the contracts and the consumers.

FastStream builds the document: its broker is used here only to describe (it never connects); the
services publish and consume with aio-pika for the reasons in README.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field, create_model

from shared.consumer import EventConsumer
from shared.events import DATA_MODELS, PUBLISHERS, Contract, EventType

DESCRIBED_SERVER = "amqp://rabbitmq:5672/"


class _EnvelopeFields(BaseModel):
    specversion: Literal["1.0"] = Field(description="CloudEvents version")
    id: uuid.UUID = Field(description="unique per event and the AMQP message_id; deduplicate on it")
    source: str = Field(description="the service that published the event")
    subject: str = Field(description="what the event is about, e.g. the post id")
    time: datetime = Field(description="when the event was published")
    datacontenttype: Literal["application/json"] = Field(description="always application/json")
    traceparent: str | None = Field(
        None,
        description="W3C traceparent of the trace the event belongs to (CloudEvents Distributed Tracing "
        "extension; also the AMQP header traceparent); absent when untraced",
    )


def _envelope_model(event_type: EventType) -> type[BaseModel]:
    data_model: type[Contract] = DATA_MODELS[event_type]
    model: type[BaseModel] = create_model(
        f"{data_model.__name__}Event",
        __base__=_EnvelopeFields,
        __doc__=f"The CloudEvents envelope of {event_type}.",
        type=(
            Literal[event_type.value],  # type: ignore[arg-type]
            Field(description="event type with version; also the routing key"),
        ),
        data=(data_model, Field(description=data_model.__doc__ or f"the payload of {event_type}")),
    )
    return model


def build_asyncapi(consumers: Mapping[str, Sequence[EventConsumer]], *, namespace: str = "tillit") -> dict[str, Any]:
    broker = RabbitBroker(DESCRIBED_SERVER)
    exchange = RabbitExchange(f"{namespace}.events", type=ExchangeType.TOPIC, durable=True)
    for event_type in EventType:
        broker.publisher(
            exchange=exchange,
            routing_key=event_type.value,
            schema=_envelope_model(event_type),
            title=event_type.value,
            description=f"Published by the {PUBLISHERS[event_type]} service, persistent, with publisher confirms.",
            persistent=True,
        )
    for service, service_consumers in sorted(consumers.items()):
        for consumer in service_consumers:
            for event_type in consumer.event_types:
                queue = RabbitQueue(
                    f"{namespace}.{consumer.name}",
                    routing_key=event_type.value,
                    queue_type=QueueType.QUORUM,
                    durable=True,
                )

                async def described_only(event: Any) -> None:  # never called: the broker never connects
                    raise NotImplementedError

                described_only.__annotations__["event"] = _envelope_model(event_type)
                broker.subscriber(
                    queue,
                    exchange,
                    title=f"{consumer.name}:{event_type.value}",
                    description=f"The {service} service's queue {queue.name} (dead letters in {queue.name}.dlq).",
                )(described_only)
    spec = AsyncAPI(
        broker,
        title="Tillit events",
        version="1",
        description="Events of Tillit on one durable topic exchange; the routing key is the event type with its "
        "version. See docs/events.md for the guarantees (at least once, no order, versions).",
        schema_version="3.0.0",
    )
    document: dict[str, Any] = orjson.loads(spec.to_specification().to_json())
    return document

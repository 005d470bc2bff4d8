"""Every event consumer (tillit/catalog.py) against malformed and hostile messages published straight to the
exchange, as a broken or hostile producer with access to the broker would.

For each event type some consumer takes: bodies that are not JSON, not UTF-8, of the wrong types, missing
fields, 10,000 arrays deep, of an unknown version or CloudEvents version, and envelopes whose data is valid
but hostile (SQL, HTML, control characters, U+0000, 1 MB of text). Valid events of the same type go between
them. Every consumer bound to the type must:

- dead-letter each malformed message on its first delivery, with an x-tillit-reason that says why;
- apply each valid neighbour (its inbox row appears);
- either apply or dead-letter (with a reason) each hostile one: none is stuck, lost silently or redelivered
  forever;

and afterwards every service is still running and ready. The gateway's live-notification listener takes
notification.changed.v1 and must survive the same. docs/reliability.md ("Bad input") has the figures.
"""

from __future__ import annotations

import types
import typing
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal, get_args, get_origin

import httpx
import orjson
import pytest
from pydantic import BaseModel

from shared.events import DATA_MODELS, EventType
from tests.harness import System, eventually, random_id
from tests.test_reliability import db, publish_raw, take_dead_letters
from tillit.catalog import all_consumers

MEGABYTE_TEXT = "Tillit " * (1024 * 1024 // 7)
# The 1 MB messages go to a few types only: each is copied into every queue bound to its type.
HEAVY_TYPES = {EventType.POST_CREATED, EventType.POST_LIKED, EventType.PERSON_UPDATED, EventType.COMMENT_CREATED}
SQL = "'; DROP TABLE inbox; -- \" OR 1=1 /* $1 %s"
HTML = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'
CONTROL = "\x01\x07\x08\x1b[31m\r\n\t\u202e\ufeff\u2028 emoji 🦆"


# Valid data for each contract, built from its fields -------------------------------------------------------


def _value(annotation: Any, name: str) -> Any:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _value(get_args(annotation)[0], name)
    if origin in (typing.Union, types.UnionType):
        choices = [arg for arg in get_args(annotation) if arg is not type(None)]
        return None if len(choices) < len(get_args(annotation)) else _value(choices[0], name)
    if origin is Literal:
        return get_args(annotation)[0]
    if origin is list:
        return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {field: _value(info.annotation, field) for field, info in annotation.model_fields.items()}
    if annotation is uuid.UUID:
        return str(uuid.uuid4())
    if annotation is datetime:
        return datetime.now(UTC).isoformat()
    if annotation is bool:
        return False
    if annotation is int:
        return 1
    if annotation is str:
        return random_id(name.replace("_", "-"))
    raise TypeError(f"no sample for {name}: {annotation!r}")


def valid_data(event_type: EventType) -> dict[str, Any]:
    data: dict[str, Any] = _value(DATA_MODELS[event_type], "data")
    DATA_MODELS[event_type].model_validate(data)
    return data


def envelope(event_type: EventType | str, data: Any, **overrides: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": str(event_type),
        "source": "fuzz",
        "subject": random_id("subject"),
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        **overrides,
    }


def _with_every_string(data: Any, text: str) -> Any:
    """The data with `text` appended to every string that is not a uuid, an enum or a date (ids included)."""
    if isinstance(data, dict):
        return {key: _with_every_string(value, text) for key, value in data.items()}
    if isinstance(data, list):
        return [_with_every_string(value, text) for value in data]
    if isinstance(data, str) and "-" in data and not _is_uuid_or_time(data):
        return data + text
    return data


def _is_uuid_or_time(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except ValueError:
        pass
    try:
        datetime.fromisoformat(value)
        return True
    except ValueError:
        return False


# The messages ----------------------------------------------------------------------------------------------


def malformed(event_type: EventType) -> dict[str, bytes]:
    """Messages no consumer can read: name -> body. Each gets its own message id."""
    good = envelope(event_type, valid_data(event_type))
    encoded = orjson.dumps(good)
    deep = b"[" * 10_000 + b"]" * 10_000
    wrong_types = {key: [1, {"nested": None}] for key in good["data"]}
    missing_envelope = {key: value for key, value in good.items() if key not in ("id", "type")}
    bodies = {
        "not JSON": b"this is not json {",
        "empty body": b"",
        "invalid UTF-8": encoded.replace(b'"source":"fuzz"', b'"source":"fu\xff\xfezz"'),
        "a JSON array": b"[1, 2, 3]",
        "data of wrong types": orjson.dumps({**good, "data": wrong_types}),
        "data a string": orjson.dumps({**good, "data": "not an object"}),
        "data missing every field": orjson.dumps({**good, "data": {}}),
        "envelope without id and type": orjson.dumps(missing_envelope),
        "id not a uuid": orjson.dumps({**good, "id": "1 OR 1=1"}),
        "10,000 nested arrays": encoded.replace(b'"source":"fuzz"', b'"source":' + deep),
        "10,000 nested arrays as data": orjson.dumps({**good, "data": None}).replace(b'"data":null', b'"data":' + deep),
        "unknown event version": orjson.dumps({**good, "type": str(event_type).rsplit(".", 1)[0] + ".v99"}),
        "unknown CloudEvents version": orjson.dumps({**good, "specversion": "2.0"}),
    }
    if event_type in HEAVY_TYPES:
        strings = [key for key, value in good["data"].items() if isinstance(value, str) and "-" in value]
        limited = [key for key in strings if DATA_MODELS[event_type].model_fields[key].metadata]
        if limited:
            bodies["1 MB in a limited field"] = orjson.dumps(
                {**good, "data": {**good["data"], limited[0]: MEGABYTE_TEXT}}
            )
    return bodies


def hostile(event_type: EventType) -> dict[str, bytes]:
    """Envelopes that may well be valid but carry hostile text: applied or dead-lettered, never stuck."""
    data = valid_data(event_type)
    bodies = {
        "SQL in every string": orjson.dumps(envelope(event_type, _with_every_string(data, SQL))),
        "HTML in every string": orjson.dumps(envelope(event_type, _with_every_string(data, HTML))),
        "control characters in every string": orjson.dumps(envelope(event_type, _with_every_string(data, CONTROL))),
        "U+0000 in every string": orjson.dumps(envelope(event_type, _with_every_string(data, "nul\x00byte"))),
        "SQL in the subject": orjson.dumps(envelope(event_type, data, subject=SQL)),
    }
    if event_type in HEAVY_TYPES:
        bodies["1 MB subject"] = orjson.dumps(envelope(event_type, data, subject=MEGABYTE_TEXT))
        bodies["1 MB in every string"] = orjson.dumps(envelope(event_type, _with_every_string(data, MEGABYTE_TEXT)))
    return bodies


# The test -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def fuzzed() -> AsyncIterator[System]:
    """A system of its own: its dead-letter queues fill on purpose."""
    running = System()
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


async def applied(system: System, service: str, consumer: str, event_ids: set[str]) -> set[str]:
    async with db(system, service) as conn:
        rows = await conn.fetch(
            "SELECT event_id::text AS id FROM inbox WHERE consumer = $1 AND event_id = ANY($2::uuid[])",
            consumer,
            list(event_ids),
        )
    return {row["id"] for row in rows}


async def settle(
    system: System, service: str, consumer: str, sent: set[str]
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Wait until the consumer has dead-lettered or applied every message sent to it: (dead letters' headers
    by message id, ids applied)."""
    letters: dict[str, dict[str, Any]] = {}
    done: set[str] = set()

    async def settled() -> bool:
        for letter in await take_dead_letters(system.namespace, consumer, sent - set(letters)):
            assert letter.message_id is not None
            letters[letter.message_id] = letter.headers
        done.update(await applied(system, service, consumer, sent - set(letters) - done))
        return set(letters) | done >= sent

    await eventually(settled, timeout=90, interval=0.25, message=f"{consumer} takes every message")
    return letters, done


async def test_every_consumer_dead_letters_malformed_events_and_applies_their_neighbours(fuzzed: System) -> None:
    system = fuzzed
    consumers = [(service, c) for service, cs in all_consumers().items() for c in cs]
    bound = sorted({t for _, c in consumers for t in c.event_types} | {EventType.NOTIFICATION_CHANGED})
    messages: list[tuple[str, bytes, str]] = []
    kinds: dict[str, tuple[str, str]] = {}  # message id -> ("malformed" | "hostile" | "valid", name)
    for event_type in bound:
        key = str(event_type)

        def add(kind: str, name: str, body: bytes, key: str = key) -> None:
            message_id = str(uuid.uuid4())
            if kind in ("valid", "hostile"):
                # The envelope's id is the message id, as the outbox relay sends it.
                parsed = orjson.loads(body)
                parsed["id"] = message_id
                body = orjson.dumps(parsed)
            kinds[message_id] = (kind, name)
            messages.append((key, body, message_id))

        add("valid", "first neighbour", orjson.dumps(envelope(event_type, valid_data(event_type))))
        for name, body in malformed(event_type).items():
            add("malformed", name, body)
        add("valid", "middle neighbour", orjson.dumps(envelope(event_type, valid_data(event_type))))
        for name, body in hostile(event_type).items():
            add("hostile", name, body)
        add("valid", "last neighbour", orjson.dumps(envelope(event_type, valid_data(event_type))))

    await publish_raw(system.namespace, messages)

    # Each consumer gets the messages sent with the types it binds.
    outcomes: Counter[tuple[str, str]] = Counter()
    hostile_dead: Counter[tuple[str, str]] = Counter()  # (name, reason's start) of hostile ones dead-lettered
    problems: list[str] = []
    for service, consumer in consumers:
        keys = {str(t) for t in consumer.event_types}
        sent = {message_id: kinds[message_id] for key, _, message_id in messages if key in keys}
        expect_dead = {m for m, (kind, _) in sent.items() if kind == "malformed"}
        expect_applied = {m for m, (kind, _) in sent.items() if kind == "valid"}
        either = {m for m, (kind, _) in sent.items() if kind == "hostile"}
        letters, done = await settle(system, service, consumer.name, set(sent))
        for message_id, (kind, name) in sent.items():
            reason = str(letters.get(message_id, {}).get("x-tillit-reason", ""))
            outcome = "dead-lettered" if message_id in letters else "applied"
            outcomes[(kind, outcome)] += 1
            if message_id in letters and message_id in done:
                problems.append(f"{consumer.name}: {kind} '{name}' both applied and dead-lettered")
            if message_id in expect_dead and not reason.startswith("malformed event"):
                problems.append(f"{consumer.name}: malformed '{name}' {outcome}, reason {reason[:120]!r}")
            if message_id in expect_applied and outcome != "applied":
                problems.append(f"{consumer.name}: valid '{name}' dead-lettered: {reason[:200]!r}")
            if message_id in either and outcome == "dead-lettered":
                hostile_dead[(name, reason.split(":")[0])] += 1
                if not reason:
                    problems.append(f"{consumer.name}: hostile '{name}' dead-lettered without a reason")
    print(f"\nconsumer fuzz: {len(messages)} messages over {len(bound)} types, per consumer: {dict(outcomes)}")
    print(f"hostile messages dead-lettered (message, reason): {dict(hostile_dead)}")
    assert not problems, "\n".join(problems)

    # Nobody crashed: every process runs, every service is ready, and the gateway still streams.
    for name, process in system.processes.items():
        assert process.poll() is None, f"{name} exited with {process.returncode}:\n{system.log_tail(name)}"
    async with httpx.AsyncClient(timeout=10) as client:
        ready = await client.get(f"{system.base_url}/api/ready")
    assert ready.status_code == 200, ready.text
    await _a_like_still_reaches_its_author(system)


async def _a_like_still_reaches_its_author(system: System) -> None:
    author_token = system.token(author := random_id("author"))
    async with system.client(author_token) as client:
        post = (await client.post("/api/posts", json={"body": "etter fuzz"})).json()

    async def liked() -> bool:
        async with system.client(system.token()) as liker:
            return (await liker.put(f"/api/posts/{post['id']}/like")).status_code == 200

    await eventually(liked, timeout=30, message="a like after the fuzz")

    async def notified() -> bool:
        async with system.client(author_token) as client:
            return bool((await client.get("/api/notifications")).json()["items"])

    await eventually(notified, timeout=30, message=f"{author} is told of the like")

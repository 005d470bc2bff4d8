"""The search service's pure logic: query checks, prefix words, cursors, and how event batches fold."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from services.search import repository, service
from shared.api import encode_cursor
from shared.events import Envelope, Event, EventType, PersonUpdatedV1, PostDeletedV1, new_envelope
from shared.http import ProblemError


def field_of(error: ProblemError) -> str:
    assert error.status == 422
    [entry] = error.extra["errors"]
    field: str = entry["field"]
    return field


@pytest.mark.parametrize("q", ["", "   ", "\n\t", "x" * 201, "  " + "x" * 201])
def test_an_empty_or_oversized_query_is_422_naming_query_q(q: str) -> None:
    with pytest.raises(ProblemError) as caught:
        service.checked_query(q)
    assert field_of(caught.value) == "query.q"


def test_a_query_is_trimmed_and_may_be_200_characters() -> None:
    assert service.checked_query("  bilene  ") == "bilene"
    assert service.checked_query(" " + "x" * 200 + " ") == "x" * 200


def test_prefix_words_are_letters_and_digits_only_lowercased_and_unique() -> None:
    assert service.prefix_words("Kar") == ["kar"]
    assert service.prefix_words("Åse  Ørn-Berg") == ["åse", "ørn", "berg"]
    # Nothing of tsquery syntax survives: quotes, operators, colons, stars, backslashes, underscores.
    assert service.prefix_words("o'brien & !x | (y) :* \\z a_b kar KAR") == [
        "o",
        "brien",
        "x",
        "y",
        "z",
        "a",
        "b",
        "kar",
    ]
    assert service.prefix_words("!!! ---") == []
    assert len(service.prefix_words(" ".join(f"w{i}" for i in range(100)))) == service.MAX_PREFIX_WORDS


def test_cursors_round_trip_and_belong_to_one_listing() -> None:
    at = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    post_id = uuid.uuid4()
    posts_cursor = encode_cursor("posts", 0.25, at.isoformat(), str(post_id))
    assert service.post_cursor_position(posts_cursor) == (0.25, at, post_id)
    assert service.post_cursor_position(None) is None
    people_cursor = encode_cursor("people", 0.5, "Kari Nordmann", "kari")
    assert service.person_cursor_position(people_cursor) == (0.5, "Kari Nordmann", "kari")

    foreign = [
        "garbage!",
        encode_cursor("posts"),
        encode_cursor("posts", "high", at.isoformat(), str(post_id)),
        encode_cursor("posts", True, at.isoformat(), str(post_id)),
        encode_cursor("posts", 0.25, "yesterday", str(post_id)),
        encode_cursor("posts", 0.25, at.isoformat(), "not-a-uuid"),
        encode_cursor("posts", 0.25, None, str(post_id)),
        people_cursor,
    ]
    for cursor in foreign:
        with pytest.raises(ProblemError) as caught:
            service.post_cursor_position(cursor)
        assert field_of(caught.value) == "query.cursor", cursor
    for cursor in [posts_cursor, encode_cursor("people", 0.5, 7, "kari"), encode_cursor("people", None, "K", "k")]:
        with pytest.raises(ProblemError) as caught:
            service.person_cursor_position(cursor)
        assert field_of(caught.value) == "query.cursor", cursor


def event(envelope: Envelope) -> Event:
    return Event(envelope=envelope, data=envelope.payload())


def person_updated(person_id: str, name: str, version: int) -> Event:
    data = PersonUpdatedV1(person_id=person_id, name=name, version=version)
    return event(new_envelope(EventType.PERSON_UPDATED, source="people", subject=person_id, data=data))


async def test_a_batch_of_person_updates_keeps_each_persons_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Any] = []

    async def upsert_people(conn: Any, people: Any) -> None:
        written.extend(people)

    monkeypatch.setattr(repository, "upsert_people", upsert_people)
    batch = [person_updated("kari", "Kari 2", 2), person_updated("ola", "Ola", 1), person_updated("kari", "Kari 1", 1)]
    await service.apply_person_updates(None, batch)  # type: ignore[arg-type]
    assert sorted((p.person_id, p.name, p.version) for p in written) == [("kari", "Kari 2", 2), ("ola", "Ola", 1)]


async def test_a_batch_of_post_events_is_one_state_per_post(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[Any] = []

    async def upsert_posts(conn: Any, states: Any) -> None:
        written.extend(states)

    monkeypatch.setattr(repository, "upsert_posts", upsert_posts)
    post_id = uuid.uuid4()
    deleted = PostDeletedV1(post_id=post_id, author_id="ada", version=2)
    envelope = new_envelope(EventType.POST_DELETED, source="posts", subject=str(post_id), data=deleted)
    await service.apply_post_changes(None, [event(envelope), event(envelope)])  # type: ignore[arg-type]
    [state] = written
    assert state.deleted and state.version == 2

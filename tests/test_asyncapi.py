"""The AsyncAPI document is generated from the code; the committed snapshot makes a change deliberate."""

from shared.events import EventType
from tillit.asyncapi import SNAPSHOT, render, system_asyncapi


def test_the_committed_snapshot_matches_the_code() -> None:
    assert SNAPSHOT.read_bytes() == render(system_asyncapi()), (
        "the event contracts or consumers changed: review, then run `python -m tillit asyncapi`"
    )


def test_every_event_type_is_described_with_its_fields() -> None:
    document = system_asyncapi()
    assert document["asyncapi"] == "3.0.0"
    for event_type in EventType:
        channel = document["channels"][event_type.value]
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "tillit.events"
    schemas = document["components"]["schemas"]
    liked = schemas["PostLikedV1"]
    assert liked["properties"]["version"]["description"].startswith("per-post reaction version")
    assert "data" in schemas["PostLikedV1Event"]["properties"]

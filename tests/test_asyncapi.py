"""The AsyncAPI document is generated from the code; the committed snapshot makes a change deliberate."""

import re

import httpx

from services.gateway.main import create_app
from shared.events import EventType
from shared.settings import Settings
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


async def test_the_gateway_serves_the_snapshot_and_a_read_only_page_of_it() -> None:
    app = create_app(Settings())
    # No lifespan: these routes read a file and need neither the broker nor the services.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        served = await client.get("/asyncapi.json")
        page = await client.get("/asyncapi")

    assert served.status_code == 200 and served.headers["content-type"] == "application/json"
    assert served.content == SNAPSHOT.read_bytes()

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    document = system_asyncapi()
    for event_type in EventType:
        assert f'id="event-{event_type.value}"' in html, f"{event_type} is not on the page"
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in html, f"schema {name} is not on the page"
    for channel in document["channels"].values():
        queue = channel["bindings"]["amqp"].get("queue")
        assert queue is None or f"<code>{queue['name']}</code>" in html
    # Read-only and self-contained: nothing to send with, nothing loaded from elsewhere (no CDN here or offline).
    for forbidden in ("<form", "<button", "<input", "<script", "<link", "<iframe", "try it"):
        assert forbidden not in html.lower(), f"the page contains {forbidden!r}"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page loads something from elsewhere"

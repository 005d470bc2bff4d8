"""The AsyncAPI document of the whole system: every service's consumers beside the event contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from services.notifications.handlers import CONSUMERS as NOTIFICATIONS
from services.people.handlers import CONSUMERS as PEOPLE
from services.posts.handlers import CONSUMERS as POSTS
from services.reactions.handlers import CONSUMERS as REACTIONS
from shared.asyncapi import build_asyncapi

SNAPSHOT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"


def system_asyncapi() -> dict[str, Any]:
    return build_asyncapi({"people": PEOPLE, "posts": POSTS, "reactions": REACTIONS, "notifications": NOTIFICATIONS})


def render(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

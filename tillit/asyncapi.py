"""The AsyncAPI document of the whole system: every service's consumers beside the event contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shared.asyncapi import build_asyncapi
from tillit.catalog import all_consumers

SNAPSHOT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"


def system_asyncapi() -> dict[str, Any]:
    return build_asyncapi(all_consumers())


def render(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

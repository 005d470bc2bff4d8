"""The AsyncAPI document of Tillit's events, served by the gateway: `/asyncapi.json` as committed, `/asyncapi` as a
page for people.

The gateway serves the committed snapshot docs/asyncapi.json, the very document tests/test_asyncapi.py holds
against the code, rather than generating one: generating needs every service's consumers, and the gateway
imports no other service. The page is rendered here from that document, self-contained (no CDN, no script),
and read-only: it describes the events and offers no way to publish one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from shared.http import problem_response

# Beside the source tree in development and tests; the working directory (/app) in a container image.
DOCUMENT_NAME = Path("docs") / "asyncapi.json"
DOCUMENT_PLACES = (Path(__file__).resolve().parents[2] / DOCUMENT_NAME, Path.cwd() / DOCUMENT_NAME)

router = APIRouter(tags=["events"])


@lru_cache(maxsize=1)
def document_bytes() -> bytes | None:
    for place in DOCUMENT_PLACES:
        if place.is_file():
            return place.read_bytes()
    return None


def _missing() -> Response:
    return problem_response(
        503,
        "The AsyncAPI document is not installed",
        f"{DOCUMENT_NAME} was found neither beside the source nor in the working directory",
    )


@router.get("/asyncapi.json", include_in_schema=False)
async def asyncapi_json() -> Response:
    document = document_bytes()
    if document is None:
        return _missing()
    return Response(document, media_type="application/json")


@router.get("/asyncapi", include_in_schema=False)
async def asyncapi_page() -> Response:
    page = rendered_page()
    if page is None:
        return _missing()
    return HTMLResponse(page)


@lru_cache(maxsize=1)
def rendered_page() -> str | None:
    document = document_bytes()
    if document is None:
        return None
    return render_page(orjson.loads(document))


# The page ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    type: Markup
    required: bool
    description: str
    constraints: str


@dataclass(frozen=True)
class Schema:
    name: str
    description: str
    fields: list[Field]


@dataclass(frozen=True)
class Consumer:
    queue: str
    description: str


@dataclass(frozen=True)
class EventView:
    type: str
    description: str
    exchange: str
    exchange_type: str
    payload: Markup
    consumers: list[Consumer]


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return dict(node)


def _type_of(schema: dict[str, Any]) -> Markup:
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return Markup('<a href="#schema-{0}">{0}</a>').format(name)
    for union in ("oneOf", "anyOf"):
        if union in schema:
            return Markup(" | ").join(_type_of(option) for option in schema[union])
    if "const" in schema:
        return Markup("<code>{}</code>").format(orjson.dumps(schema["const"]).decode())
    if "enum" in schema:
        return Markup(" | ").join(
            Markup("<code>{}</code>").format(orjson.dumps(value).decode()) for value in schema["enum"]
        )
    kind = schema.get("type", "any")
    if kind == "array":
        return Markup("array of ") + _type_of(schema.get("items", {}))
    if "format" in schema:
        return escape(f"{kind} ({schema['format']})")
    return escape(str(kind))


_CONSTRAINTS = {
    "minimum": "≥ {}",
    "maximum": "≤ {}",
    "minLength": "at least {} characters",
    "maxLength": "at most {} characters",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
    "pattern": "matches {}",
    "default": "default {}",
}


def _constraints(schema: dict[str, Any]) -> str:
    found = []
    for option in [schema, *schema.get("anyOf", [])]:
        for key, text in _CONSTRAINTS.items():
            if key in option:
                value = option[key]
                found.append(text.format(orjson.dumps(value).decode() if key == "default" else value))
    return ", ".join(found)


def _schema(name: str, schema: dict[str, Any]) -> Schema:
    required = set(schema.get("required", []))
    fields = [
        Field(
            name=field_name,
            type=_type_of(field),
            required=field_name in required,
            description=str(field.get("description", "")),
            constraints=_constraints(field),
        )
        for field_name, field in schema.get("properties", {}).items()
    ]
    return Schema(name=name, description=str(schema.get("description", "")), fields=fields)


def render_page(document: dict[str, Any]) -> str:
    channels: dict[str, dict[str, Any]] = document.get("channels", {})
    events: dict[str, EventView] = {}
    consumers: dict[str, list[Consumer]] = {}
    for channel in channels.values():
        amqp = channel.get("bindings", {}).get("amqp", {})
        address = str(channel.get("address", ""))
        if amqp.get("is") == "queue":
            queue = str(amqp.get("queue", {}).get("name", ""))
            consumers.setdefault(address, []).append(Consumer(queue, str(channel.get("description", ""))))
            continue
        payloads = [_resolve(document, m["$ref"]).get("payload", {}) for m in channel.get("messages", {}).values()]
        exchange = amqp.get("exchange", {})
        events[address] = EventView(
            type=address,
            description=str(channel.get("description", "")),
            exchange=str(exchange.get("name", "")),
            exchange_type=str(exchange.get("type", "")),
            payload=Markup(", ").join(_type_of(payload) for payload in payloads),
            consumers=[],
        )
    views = [
        EventView(**{**view.__dict__, "consumers": sorted(consumers.get(address, []), key=lambda c: c.queue)})
        for address, view in sorted(events.items())
    ]
    schemas = [
        _schema(name, schema) for name, schema in sorted(document.get("components", {}).get("schemas", {}).items())
    ]
    return _TEMPLATE.render(
        info=document.get("info", {}),
        asyncapi=document.get("asyncapi", ""),
        servers=document.get("servers", {}),
        events=views,
        schemas=schemas,
    )


_ENVIRONMENT = Environment(autoescape=select_autoescape(default=True), undefined=StrictUndefined)
_TEMPLATE = _ENVIRONMENT.from_string(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ info.title }} {{ info.version }} · AsyncAPI</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 70rem; padding: 1rem 2rem; color: #1d1d1f; }
h1, h2, h3 { line-height: 1.2; } h3 { margin-top: 2rem; }
code, .type { font-family: ui-monospace, monospace; font-size: 0.92em; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1rem; }
th, td { text-align: left; vertical-align: top; padding: 0.3rem 0.6rem; border-bottom: 1px solid #ddd; }
th { background: #f4f4f6; } nav ul { columns: 3; } .muted { color: #666; } section { margin-bottom: 2rem; }
</style>
</head>
<body>
<header>
<h1>{{ info.title }} <span class="muted">version {{ info.version }}</span></h1>
<p>{{ info.description }}</p>
<p class="muted">AsyncAPI {{ asyncapi }}. The document itself: <a href="/asyncapi.json">/asyncapi.json</a>.
This page only describes the events; nothing can be sent from it. How to subscribe: docs/events.md.</p>
</header>
<section id="servers">
<h2>Servers</h2>
<table>
<tr><th>name</th><th>protocol</th><th>host</th><th>virtual host</th></tr>
{% for name, server in servers.items() %}
<tr><td>{{ name }}</td><td>{{ server.protocol }} {{ server.protocolVersion }}</td>
<td><code>{{ server.host }}</code></td><td><code>{{ server.pathname }}</code></td></tr>
{% endfor %}
</table>
</section>
<nav id="contents">
<h2>Events</h2>
<ul>
{% for event in events %}<li><a href="#event-{{ event.type }}"><code>{{ event.type }}</code></a></li>
{% endfor %}
</ul>
</nav>
<section id="channels">
<h2>Channels and operations</h2>
{% for event in events %}
<article id="event-{{ event.type }}">
<h3><code>{{ event.type }}</code></h3>
<p>{{ event.description }}</p>
<table>
<tr><th>exchange</th><td><code>{{ event.exchange }}</code> ({{ event.exchange_type }}),
routing key <code>{{ event.type }}</code></td></tr>
<tr><th>operation</th><td>send: published by Tillit</td></tr>
<tr><th>message payload</th><td class="type">{{ event.payload }}</td></tr>
<tr><th>received by</th><td>
{% for consumer in event.consumers %}<code>{{ consumer.queue }}</code><br>{% else %}no Tillit service{% endfor %}
</td></tr>
</table>
</article>
{% endfor %}
</section>
<section id="schemas">
<h2>Message and payload schemas</h2>
{% for schema in schemas %}
<article id="schema-{{ schema.name }}">
<h3>{{ schema.name }}</h3>
{% if schema.description %}<p>{{ schema.description }}</p>{% endif %}
{% if schema.fields %}
<table>
<tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>
{% for field in schema.fields %}
<tr><td><code>{{ field.name }}</code></td><td class="type">{{ field.type }}</td>
<td>{{ "yes" if field.required else "no" }}</td>
<td>{{ field.description }}
{%- if field.constraints %} <span class="muted">({{ field.constraints }})</span>{% endif %}</td></tr>
{% endfor %}
</table>
{% endif %}
</article>
{% endfor %}
</section>
</body>
</html>
"""
)

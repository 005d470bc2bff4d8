"""The gateway's use cases: keep profiles in step with tokens, and compose replies from several services."""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Response
from fastapi.responses import HTMLResponse

from services.gateway.upstream import UpstreamReply, Upstreams
from shared.auth import Claims
from shared.http import ProblemError

log = logging.getLogger(__name__)


class ProfileSync:
    """Tells the people service about a user's claims the first time this process sees them, and when
    they change; afterwards a request costs no extra call."""

    def __init__(self, upstreams: Upstreams, *, capacity: int = 50_000) -> None:
        self._upstreams = upstreams
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    @staticmethod
    def _fingerprint(claims: Claims) -> str:
        # The teams are claims too: they decide who sees team posts and team feeds. Without them here a
        # person moved to another team kept reading the old team's posts (and missed the new team's) until
        # they happened to call GET /api/me, the one route that syncs by itself.
        return hashlib.blake2b(
            orjson.dumps([claims.name, claims.email, claims.locale, sorted(set(claims.groups))]), digest_size=12
        ).hexdigest()

    async def ensure(self, claims: Claims, token: str) -> None:
        fingerprint = self._fingerprint(claims)
        if self._seen.get(claims.sub) == fingerprint:
            self._seen.move_to_end(claims.sub)
            return
        try:
            reply = await self._upstreams.call("people", "PUT", "/me/claims", token=token)
        except Exception as exc:
            # The request itself can still be served; the profile catches up on the next one.
            log.warning("could not sync profile", extra={"sub": claims.sub, "error": repr(exc)})
            return
        if reply.status == 200:
            self._seen[claims.sub] = fingerprint
            if len(self._seen) > self._capacity:
                self._seen.popitem(last=False)


def _with_my_reactions(post: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    state = mine.get(post["id"], {})
    post["liked_by_me"] = bool(state.get("liked"))
    post["favourited_by_me"] = bool(state.get("favourited"))
    return post


async def post_for_viewer(upstreams: Upstreams, *, post_id: str, token: str) -> Response:
    post_reply, mine_reply = await asyncio.gather(
        upstreams.call("posts", "GET", f"/posts/{post_id}", token=token),
        upstreams.call("reactions", "GET", "/me/reactions", token=token, params=[("post_ids", post_id)]),
    )
    if post_reply.status != 200:
        return post_reply.to_response()
    mine = mine_reply.json() if mine_reply.status == 200 else {}
    return _json(_with_my_reactions(post_reply.json(), mine))


async def posts_for_viewer(upstreams: Upstreams, *, post_ids: list[str], token: str) -> dict[str, dict[str, Any]]:
    """The posts the viewer may see, by id, with their own reactions. The posts service decides who sees
    what: a post it does not return is left out wherever it was referred to."""
    if not post_ids:
        return {}
    unique = list(dict.fromkeys(post_ids))
    posts_reply, mine_reply = await asyncio.gather(
        upstreams.call("posts", "GET", "/posts", token=token, params=[("ids", i) for i in unique]),
        upstreams.call("reactions", "GET", "/me/reactions", token=token, params=[("post_ids", i) for i in unique]),
    )
    if posts_reply.status != 200:
        raise ProblemError(502, "Bad Gateway", f"the posts service answered {posts_reply.status}")
    mine = mine_reply.json() if mine_reply.status == 200 else {}
    return {post["id"]: _with_my_reactions(post, mine) for post in posts_reply.json()}


async def feed_for_viewer(upstreams: Upstreams, *, path: str, token: str, params: list[tuple[str, str]]) -> Response:
    """A page of a feed with each entry's post in full, as the viewer may see it."""
    reply = await upstreams.call("feeds", "GET", path, token=token, params=params)
    if reply.status != 200:
        return reply.to_response()
    page = reply.json()
    posts = await posts_for_viewer(upstreams, post_ids=[e["post_id"] for e in page["items"]], token=token)
    items = [
        {
            "id": entry["id"],
            "post": posts[entry["post_id"]],
            "reason": entry["reason"],
            "actors": entry["actors"],
            "actor_count": entry["actor_count"],
            "at": entry["at"],
        }
        for entry in page["items"]
        if entry["post_id"] in posts
    ]
    return _json({"items": items, "next_cursor": page["next_cursor"]})


async def search_for_viewer(upstreams: Upstreams, *, token: str, params: list[tuple[str, str]]) -> Response:
    reply = await upstreams.call("search", "GET", "/search", token=token, params=params)
    if reply.status != 200 or dict(params).get("type", "posts") != "posts":
        return reply.to_response()
    page = reply.json()
    posts = await posts_for_viewer(upstreams, post_ids=[hit["post_id"] for hit in page["items"]], token=token)
    items = [
        {"post": posts[hit["post_id"]], "headline": hit["headline"], "rank": hit["rank"]}
        for hit in page["items"]
        if hit["post_id"] in posts
    ]
    return _json({"items": items, "next_cursor": page["next_cursor"]})


async def favourites_for_viewer(upstreams: Upstreams, *, token: str, cursor: str | None, limit: int) -> Response:
    params = [("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
    refs_reply = await upstreams.call("reactions", "GET", "/me/favourites", token=token, params=params)
    if refs_reply.status != 200:
        return refs_reply.to_response()
    refs = refs_reply.json()
    post_ids = [item["post_id"] for item in refs["items"]]
    if not post_ids:
        return _json({"items": [], "next_cursor": refs["next_cursor"]})
    posts_reply, mine_reply = await asyncio.gather(
        upstreams.call("posts", "GET", "/posts", token=token, params=[("ids", i) for i in post_ids]),
        upstreams.call("reactions", "GET", "/me/reactions", token=token, params=[("post_ids", i) for i in post_ids]),
    )
    if posts_reply.status != 200:
        return posts_reply.to_response()
    mine = mine_reply.json() if mine_reply.status == 200 else {}
    items = [_with_my_reactions(post, mine) for post in posts_reply.json()]
    return _json({"items": items, "next_cursor": refs["next_cursor"]})


def _json(body: Any, status: int = 200) -> Response:
    return Response(content=orjson.dumps(body), status_code=status, media_type="application/json")


def passthrough(reply: UpstreamReply) -> Response:
    return reply.to_response()


# The pages an email's unsubscribe link leads to, in the reader's language. Small on purpose: the frontend's
# preferences page (/settings/notifications) is where settings are chosen.
PREFERENCES_PATH = "/settings/notifications"
_PAGE_TEXT: dict[str, dict[str, str]] = {
    "nb": {
        "title": "Avslutt e-postvarsler",
        "ask": "Vil du slutte å få denne typen e-post fra Tillit? Varslene finner du fortsatt i Tillit.",
        "button": "Ja, meld meg av",
        "preferences": "Velg selv hvilke varsler du får",
        "done": "Du får ikke lenger e-post om {kind}. Varslene finner du fortsatt i Tillit.",
        "failed": "Lenken er utløpt eller ugyldig, så ingenting er endret.",
    },
    "en": {
        "title": "Unsubscribe from emails",
        "ask": "Stop getting this kind of email from Tillit? You will still see these notifications in Tillit.",
        "button": "Yes, unsubscribe",
        "preferences": "Choose which notifications you get",
        "done": "You will no longer get emails about {kind}. You will still see them in Tillit.",
        "failed": "This link has expired or is not valid, so nothing was changed.",
    },
}
_KIND_NAMES: dict[str, dict[str, str]] = {
    "nb": {
        "like": "likerklikk på innleggene dine",
        "favourite": "favorittmarkeringer av innleggene dine",
        "comment": "kommentarer",
        "mention": "når noen nevner deg",
        "follow": "nye følgere",
        "praise": "skryt",
        "campaign_update": "kampanjeoppdateringer",
        "digest": "oppsummeringen på e-post",
    },
    "en": {
        "like": "likes of your posts",
        "favourite": "favourites of your posts",
        "comment": "comments",
        "mention": "mentions of you",
        "follow": "new followers",
        "praise": "praise",
        "campaign_update": "campaign updates",
        "digest": "the summary email",
    },
}
_PAGE_LANGUAGES = {"nb": "nb", "nn": "nb", "no": "nb", "en": "en"}


def preferred_language(accept_language: str | None, *, default: str) -> str:
    """nb or en, whichever the Accept-Language header ranks higher (Nynorsk and plain "no" read Bokmål)."""
    best, best_quality = default, 0.0
    for entry in (accept_language or "").split(","):
        tag, *params = (part.strip() for part in entry.split(";"))
        language = _PAGE_LANGUAGES.get(tag.lower().partition("-")[0])
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if language and quality > best_quality:
            best, best_quality = language, quality
    return best


def _page(language: str, body: str, *, status: int = 200) -> HTMLResponse:
    text = _PAGE_TEXT[language]
    document = (
        f'<!doctype html><html lang="{language}"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(text['title'])} · Tillit</title>"
        f"<h1>{html.escape(text['title'])}</h1>{body}"
        f'<p><a href="{PREFERENCES_PATH}">{html.escape(text["preferences"])}</a></p></html>'
    )
    return HTMLResponse(
        document,
        status_code=status,
        headers={
            # The token is in this page's URL: keep it out of Referer headers, caches and search engines.
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Robots-Tag": "noindex",
        },
    )


def unsubscribe_page(token: str, *, language: str) -> HTMLResponse:
    text = _PAGE_TEXT[language]
    action = html.escape(f"/api/unsubscribe?token={quote(token, safe='')}")
    return _page(
        language,
        f"<p>{html.escape(text['ask'])}</p>"
        f'<form method="post" action="{action}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{html.escape(text["button"])}</button></form>',
    )


def unsubscribed_page(reply: UpstreamReply, *, language: str) -> HTMLResponse:
    """The answer to the page's button: what was turned off, or that the link no longer works."""
    text = _PAGE_TEXT[language]
    if reply.status != 200:
        return _page(language, f"<p>{html.escape(text['failed'])}</p>", status=reply.status)
    kind = str(reply.json().get("kind", ""))
    kind_name = _KIND_NAMES[language].get(kind, kind)
    return _page(language, f"<p>{html.escape(text['done'].format(kind=kind_name))}</p>")

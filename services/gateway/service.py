"""The gateway's use cases: keep profiles in step with tokens, and compose replies from several services."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from typing import Any

import orjson
from fastapi import Response

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

"""The feeds service over the real system: people, follows, posts and likes made through the gateway and the
people and posts services, feeds read from the feeds service's own port with the reader's token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tests.harness import System, eventually, random_id

EVERYONE = {"type": "everyone"}


class Person:
    """Someone using Tillit: known to the people service, with a token for every service."""

    def __init__(self, system: System, name: str, *, groups: list[str] | None = None) -> None:
        self.system = system
        self.id = random_id(name.lower())
        self.name = f"{name} {self.id[-4:]}"
        self.token = system.token(self.id, name=self.name, groups=groups or [])

    def client(self, service: str | None = None) -> httpx.AsyncClient:
        if service is None:
            return self.system.client(self.token)
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.system.ports[service]}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=15,
        )

    async def sign_in(self) -> Person:
        async with self.client() as client:
            reply = await client.get("/api/me")
        assert reply.status_code == 200, reply.text
        return self

    async def post(self, audience: dict[str, Any] = EVERYONE, body: str = "Halvferdig idé: felles ukeplan?") -> str:
        async with self.client() as client:
            reply = await client.post("/api/posts", json={"body": body, "kind": "idea", "audience": audience})
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])

    async def like(self, post_id: str, *, on: bool = True) -> None:
        async with self.client() as client:
            reply = await (client.put if on else client.delete)(f"/api/posts/{post_id}/like")
        assert reply.status_code == 200, reply.text

    async def delete(self, post_id: str) -> None:
        async with self.client() as client:
            assert (await client.delete(f"/api/posts/{post_id}")).status_code == 204

    async def change_audience(self, post_id: str, audience: dict[str, Any]) -> None:
        async with self.client("posts") as client:
            reply = await client.patch(f"/posts/{post_id}", json={"audience": audience})
        assert reply.status_code == 200, reply.text

    async def relate(self, kind: str, other: Person, *, on: bool = True) -> None:
        async with self.client("people") as client:
            path = f"/people/{other.id}/{kind}"
            reply = await (client.put(path) if on else client.delete(path))
        assert reply.status_code == 200, reply.text

    async def follow(self, other: Person) -> None:
        await self.relate("follow", other)

    async def read(self, path: str = "/feed", **params: Any) -> httpx.Response:
        async with self.client("feeds") as client:
            return await client.get(path, params={k: v for k, v in params.items() if v is not None})

    async def feed(self, path: str = "/feed", **params: Any) -> dict[str, Any]:
        reply = await self.read(path, **params)
        assert reply.status_code == 200, reply.text
        page: dict[str, Any] = reply.json()
        return page

    async def entries(self, path: str = "/feed") -> dict[str, dict[str, Any]]:
        """Every entry of a feed by post id, across its pages."""
        found: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            page = await self.feed(path, cursor=cursor, limit=100)
            found.update({item["post_id"]: item for item in page["items"]})
            cursor = page["next_cursor"]
            if cursor is None:
                return found


async def people(system: System, *names: str) -> list[Person]:
    return [await Person(system, name).sign_in() for name in names]


def actors(entry: dict[str, Any]) -> list[str]:
    return [actor["id"] for actor in entry["actors"]]


async def until(check: Callable[[], Awaitable[Any]], message: str) -> Any:
    return await eventually(check, timeout=15, message=message)


async def test_a_like_reaches_the_likers_followers_within_the_posts_audience(system: System) -> None:
    """The seed's promise: the liker's followers see what they liked, and nobody outside its audience does."""
    author, liker, follower, outsider = await people(system, "Astrid", "Bente", "Carl", "Dina")
    await liker.follow(author)  # so the liker may see (and like) the author's followers-only post
    await follower.follow(liker)
    await outsider.follow(liker)
    await outsider.feed()  # the outsider reads now and then: fan-out keeps their feed
    public = await author.post(EVERYONE)
    followers_only = await author.post({"type": "followers"})
    await liker.like(followers_only)
    await liker.like(public)

    async def liked_in_outsiders_feed() -> dict[str, Any] | None:
        return (await outsider.entries()).get(public)

    entry = await until(liked_in_outsiders_feed, "the public post liked by someone the outsider follows")
    conn = await system.db("feeds")
    try:

        async def followers_only_like_applied() -> bool:
            query = "SELECT active FROM likes WHERE post_id = $1::text::uuid AND actor_id = $2"
            return bool(await conn.fetchval(query, followers_only, liker.id))

        await until(followers_only_like_applied, "the like of the followers-only post reached the feeds service")
    finally:
        await conn.close()
    assert followers_only not in await outsider.entries(), "outside the post's audience: nothing about it"

    # The follower never read a feed: their first read builds it from the replicas.
    entries = await follower.entries()
    assert set(entries) == {public}
    [seen] = entries.values()
    assert seen["reason"] == "liked_by_followed" and entry["reason"] == "liked_by_followed"
    assert seen["actors"] == [{"id": liker.id, "name": liker.name}] and seen["actor_count"] == 1
    assert seen["id"] and seen["at"]


async def test_likes_of_several_followed_people_fold_into_one_entry(system: System) -> None:
    author, first, second, third, reader = await people(system, "Astrid", "Bente", "Berit", "Bjørn", "Carl")
    for liker in (first, second, third):
        await reader.follow(liker)
    await reader.feed()
    post = await author.post()
    for liker in (first, second, third):
        await liker.like(post)

    async def folded() -> dict[str, Any] | None:
        entry = (await reader.entries()).get(post)
        return entry if entry and entry["actor_count"] == 3 else None

    entry = await until(folded, "three likes folded into one entry")
    assert entry["reason"] == "liked_by_followed"
    assert actors(entry) == [third.id, second.id, first.id], "newest first"
    assert [a["name"] for a in entry["actors"]] == [third.name, second.name, first.name]
    assert list(await reader.entries()) == [post]

    await second.like(post, on=False)

    async def without_second() -> dict[str, Any] | None:
        entry = (await reader.entries()).get(post)
        return entry if entry and entry["actor_count"] == 2 else None

    entry = await until(without_second, "the unliker leaves the entry")
    assert actors(entry) == [third.id, first.id]
    assert entry["at"] == (await reader.entries())[post]["at"]

    await first.like(post, on=False)
    await third.like(post, on=False)

    async def gone() -> bool:
        return post not in await reader.entries()

    await until(gone, "the entry goes with its last actor")


async def test_unfollow_mute_and_block_take_entries_out(system: System) -> None:
    reader, unfollowed, muted, blocked, blocker, friend = await people(
        system, "Carl", "Ulla", "Mats", "Bodil", "Kasper", "Frida"
    )
    for other in (unfollowed, muted, blocked, blocker, friend):
        await reader.follow(other)
    await blocker.follow(reader)
    await reader.feed()
    posts = {person.id: await person.post() for person in (unfollowed, muted, blocked, blocker, friend)}
    stranger_post = await (await Person(system, "Stian").sign_in()).post()
    await muted.like(stranger_post)  # the activity of a muted person goes too
    readers_post = await reader.post()

    async def everything_arrived() -> bool:
        entries = await reader.entries()
        return set(posts.values()) | {stranger_post, readers_post} <= set(entries)

    await until(everything_arrived, "every post in the reader's feed")

    async def blockers_feed_has_the_readers_post() -> bool:
        return readers_post in await blocker.entries()

    await until(blockers_feed_has_the_readers_post, "the reader's post in the feed of a follower")

    await reader.relate("follow", unfollowed, on=False)
    await reader.relate("mute", muted)
    await reader.relate("block", blocked)
    await blocker.relate("block", reader)

    async def only_the_friend_left() -> dict[str, dict[str, Any]] | None:
        entries = await reader.entries()
        return entries if set(entries) == {posts[friend.id], readers_post} else None

    entries = await until(only_the_friend_left, "unfollowed, muted and blocked (either way) leave the feed")
    assert entries[posts[friend.id]]["reason"] == "followed" and entries[readers_post]["reason"] == "own"
    assert readers_post not in await blocker.entries(), "a block hides the blocked person's posts from the blocker"
    conn = await system.db("feeds")
    try:
        stored = {
            str(row["post_id"])
            for row in await conn.fetch("SELECT post_id FROM feed_entries WHERE owner_id = $1", reader.id)
        }
    finally:
        await conn.close()
    assert stored == {posts[friend.id], readers_post}, "taken out of the stored feed, not only hidden at read"


async def test_delete_and_a_narrowed_audience_take_the_post_out(system: System) -> None:
    author, follower = await people(system, "Astrid", "Carl")
    await follower.follow(author)
    await follower.feed()
    doomed, narrowed = await author.post(), await author.post()

    async def both_arrived() -> bool:
        return {doomed, narrowed} <= set(await follower.entries())

    await until(both_arrived, "both posts in the follower's feed")
    await author.delete(doomed)
    await author.change_audience(narrowed, {"type": "private"})

    async def both_gone() -> bool:
        return not {doomed, narrowed} & set(await follower.entries())

    await until(both_gone, "a deleted and a now-private post leave the feed")
    assert set(await author.entries()) == {narrowed}, "the author still has their own private post"

    await author.change_audience(narrowed, {"type": "followers"})

    async def back() -> bool:
        return narrowed in await follower.entries()

    await until(back, "a widened audience reaches the active follower again")


async def test_pages_stay_stable_while_new_posts_arrive(system: System) -> None:
    author, reader = await people(system, "Astrid", "Carl")
    await reader.follow(author)
    await reader.feed()
    posts = [await author.post(body=f"Innlegg {i}") for i in range(7)]

    async def all_arrived() -> bool:
        return set(posts) <= set(await reader.entries())

    await until(all_arrived, "seven posts in the feed")
    first = await reader.feed(limit=3)
    newer = [await author.post(body=f"Nyere {i}") for i in range(3)]

    async def newer_arrived() -> bool:
        return set(newer) <= set(await reader.entries())

    await until(newer_arrived, "newer posts in the feed")
    second = await reader.feed(cursor=first["next_cursor"], limit=3)
    third = await reader.feed(cursor=second["next_cursor"], limit=3)

    paged = [item["post_id"] for page in (first, second, third) for item in page["items"]]
    assert paged == list(reversed(posts)), "the new posts shift no later page"
    assert third["next_cursor"] is None
    assert [item["post_id"] for item in (await reader.feed(limit=3))["items"]] == list(reversed(newer))


async def test_a_team_feed_is_for_its_members(system: System) -> None:
    team = random_id("team")
    author = await Person(system, "Astrid", groups=[team]).sign_in()
    member = await Person(system, "Mona", groups=[team]).sign_in()
    outsider = await Person(system, "Olav", groups=[random_id("team")]).sign_in()
    first, second = await author.post({"type": "team", "team": team}), await author.post({"type": "team", "team": team})
    await author.post(EVERYONE)

    async def both_in_the_team_feed() -> dict[str, Any] | None:
        reply = await member.read(f"/teams/{team}/feed")
        page: dict[str, Any] = reply.json()
        return page if reply.status_code == 200 and len(page["items"]) == 2 else None

    page = await until(both_in_the_team_feed, "the team's posts in its feed")
    assert [item["post_id"] for item in page["items"]] == [second, first]
    assert {item["reason"] for item in page["items"]} == {"team"}
    assert page["items"][0]["actors"] == [{"id": author.id, "name": author.name}]
    first_page = await member.feed(f"/teams/{team}/feed", limit=1)
    second_page = await member.feed(f"/teams/{team}/feed", limit=1, cursor=first_page["next_cursor"])
    assert [item["post_id"] for item in second_page["items"]] == [first]

    reply = await outsider.read(f"/teams/{team}/feed")
    assert reply.status_code == 404 and reply.headers["content-type"] == "application/problem+json"
    # The member's home feed has the team's posts too, for the team.
    entries = await member.entries()
    assert entries[first]["reason"] == entries[second]["reason"] == "team"
    assert first not in await outsider.entries()


async def test_trending_orders_posts_by_distinct_backers(system: System) -> None:
    author, viewer = await people(system, "Astrid", "Vera")
    backers = await people(system, "Bente", "Berit", "Bjørn", "Brage")
    most, middle, least, hidden_post = [await author.post() for _ in range(4)]
    for backer in backers[:4]:
        await backer.like(most)
    for backer in backers[:2]:
        await backer.like(middle)
    await backers[0].like(least)
    await backers[0].like(hidden_post)
    await author.change_audience(hidden_post, {"type": "private"})
    await backers[3].relate("block", viewer)  # a backer blocked with the viewer neither counts nor shows

    async def ranked() -> list[dict[str, Any]] | None:
        entries = await viewer.entries("/feed/trending")
        mine = [entries[p] for p in (most, middle, least) if p in entries]
        return mine if len(mine) == 3 and mine[0]["actor_count"] == 3 and hidden_post not in entries else None

    most_entry, middle_entry, least_entry = await until(ranked, "three posts ranked by backers")
    entries = await viewer.entries("/feed/trending")
    order = [post for post in entries if post in (most, middle, least)]
    assert order == [most, middle, least]
    assert [e["actor_count"] for e in (most_entry, middle_entry, least_entry)] == [3, 2, 1]
    assert actors(most_entry) == [backers[2].id, backers[1].id, backers[0].id]
    assert {e["reason"] for e in (most_entry, middle_entry, least_entry)} == {"trending"}


async def test_feed_routes_need_a_token_and_refuse_a_cursor_not_theirs(system: System) -> None:
    reader = (await people(system, "Carl"))[0]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.ports['feeds']}", timeout=15) as client:
        for path in ("/feed", "/feed/trending", "/teams/anything/feed"):
            reply = await client.get(path)
            assert reply.status_code == 401 and reply.headers["content-type"] == "application/problem+json"
    for path in ("/feed", "/feed/trending"):
        reply = await reader.read(path, cursor="bm90IG91cnM")
        assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "query.cursor"
        assert (await reader.read(path, limit=0)).status_code == 422


async def test_the_gateway_serves_the_feed_with_each_post_in_full(system: System) -> None:
    """The same promise through the public API only: follow, post and like at /api, the feed at /api/feed."""
    author, liker, reader = await people(system, "Astrid", "Bente", "Carl")
    async with reader.client() as client:
        assert (await client.put(f"/api/people/{liker.id}/follow")).json() == {"following": True}
        await client.get("/api/feed")
    post = await author.post(body="Forslag: felles lunsj på fredager")
    await liker.like(post)

    async def in_the_feed() -> dict[str, Any] | None:
        async with reader.client() as client:
            page: dict[str, Any] = (await client.get("/api/feed")).json()
        return next((item for item in page["items"] if item["post"]["id"] == post), None)

    item = await until(in_the_feed, "the liked post in the reader's feed through the gateway")
    assert item["reason"] == "liked_by_followed" and item["actors"] == [{"id": liker.id, "name": liker.name}]
    assert item["post"]["body"] == "Forslag: felles lunsj på fredager"
    assert item["post"]["author"] == {"id": author.id, "name": author.name}

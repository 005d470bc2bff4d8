"""Search end to end over the real system: posts written through the gateway (or events published to the
broker), the search projection fed by events, and GET /search on the search service with the viewer's token.

The database is shared by the whole session, so every test puts a nonsense word of its own into what it
writes and searches for it too: a search finds only that test's posts and people.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
import httpx

from shared.events import (
    Envelope,
    EventType,
    EveryoneAudience,
    PersonRef,
    PostAudienceChangedV1,
    PostCreatedV1,
    PostDeletedV1,
    PrivateAudience,
    new_envelope,
)
from tests.harness import AMQP_URL, System, eventually, random_id

Audience = dict[str, Any]
EVERYONE: Audience = {"type": "everyone"}


def nonce() -> str:
    """A word no dictionary and no stemmer knows, different in every test."""
    return "".join(random.choices("bcdfghjklmnpqrstvwxz", k=10))


def search_url(system: System) -> str:
    return f"http://127.0.0.1:{system.ports['search']}/search"


async def search(system: System, token: str | None, q: str | None, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    query = {**({"q": q} if q is not None else {}), **params}
    async with httpx.AsyncClient(timeout=15, headers=headers) as client:
        return await client.get(search_url(system), params=query)


async def found_posts(system: System, token: str, q: str) -> list[str]:
    reply = await search(system, token, q, limit=50)
    assert reply.status_code == 200, reply.text
    return [item["post_id"] for item in reply.json()["items"]]


async def found_people(system: System, token: str, q: str) -> list[str]:
    reply = await search(system, token, q, type="people", limit=50)
    assert reply.status_code == 200, reply.text
    return [item["person"]["id"] for item in reply.json()["items"]]


async def until_found_posts(system: System, token: str, q: str, expected: list[str], *, message: str) -> None:
    async def matches() -> bool:
        return await found_posts(system, token, q) == expected

    await eventually(matches, timeout=15, message=message)


async def until_found_post_set(system: System, token: str, q: str, expected: set[str], *, message: str) -> None:
    async def matches() -> bool:
        return set(await found_posts(system, token, q)) == expected

    await eventually(matches, timeout=15, message=message)


async def write_post(system: System, token: str, body: str, audience: Audience = EVERYONE) -> str:
    async with system.client(token) as client:
        reply = await client.post("/api/posts", json={"body": body, "kind": "post", "audience": audience})
    assert reply.status_code == 201, reply.text
    post_id: str = reply.json()["id"]
    return post_id


async def sign_in(system: System, token: str) -> None:
    """The people service learns of someone (and their teams) the first time it sees their token."""
    async with system.client(token) as client:
        assert (await client.get("/api/me")).status_code == 200


async def relate(system: System, token: str, target_id: str, kind: str, *, active: bool = True) -> None:
    url = f"http://127.0.0.1:{system.ports['people']}/people/{target_id}/{kind}"
    async with httpx.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {token}"}) as client:
        reply = await (client.put(url) if active else client.delete(url))
    assert reply.status_code == 200, reply.text


async def change_audience(system: System, token: str, post_id: str, audience: Audience) -> None:
    url = f"http://127.0.0.1:{system.ports['posts']}/posts/{post_id}"
    async with httpx.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {token}"}) as client:
        reply = await client.patch(url, json={"audience": audience})
    assert reply.status_code == 200, reply.text


async def update_profile(system: System, token: str, **fields: Any) -> None:
    url = f"http://127.0.0.1:{system.ports['people']}/me"
    async with httpx.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {token}"}) as client:
        reply = await client.patch(url, json=fields)
    assert reply.status_code == 200, reply.text


async def publish(system: System, envelopes: list[Envelope]) -> None:
    """Publish events to the system's exchange as the posts service's relay would, in the order given."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(f"{system.namespace}.events", ensure=False)
        for envelope in envelopes:
            message = aio_pika.Message(
                body=envelope.model_dump_json().encode(),
                message_id=str(envelope.id),
                type=str(envelope.type),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, routing_key=str(envelope.type))
    finally:
        await connection.close()


# Language and ranking ------------------------------------------------------------------------------------


async def test_norwegian_and_english_words_are_found_by_their_other_forms(system: System) -> None:
    word = nonce()
    token = system.token(random_id("writer"))
    car = await write_post(system, token, f"Vi har kjøpt en ny bil til avdelingen {word}")
    cars = await write_post(system, token, f"Alle bilene står på parkeringen {word}")
    runs = await write_post(system, token, f"We run the release train every Friday {word}")

    await until_found_post_set(system, token, f"bilene {word}", {car, cars}, message="'bilene' finds 'bil'")
    assert set(await found_posts(system, token, f"bil {word}")) == {car, cars}, "'bil' finds 'bilene'"
    assert await found_posts(system, token, f"running {word}") == [runs], "'running' finds 'run'"
    assert await found_posts(system, token, f"runs {word}") == [runs]
    assert await found_posts(system, token, f"sykkel {word}") == []


async def test_the_better_match_ranks_first_and_equal_matches_newest_first(system: System) -> None:
    word = nonce()
    token = system.token(random_id("writer"))
    weak = await write_post(
        system,
        token,
        f"Referat fra møtet om budsjettet for neste kvartal, med mange punkter og til slutt litt kaffe {word}",
    )
    strong = await write_post(system, token, f"Kaffe! Kaffemaskinen gir oss kaffe igjen, god kaffe {word}")
    await until_found_posts(system, token, f"kaffe {word}", [strong, weak], message="the better match first")
    reply = (await search(system, token, f"kaffe {word}")).json()
    assert reply["items"][0]["rank"] > reply["items"][1]["rank"] > 0

    older = await write_post(system, token, f"Lunsj i kantina {word} i dag")
    newer = await write_post(system, token, f"Lunsj i kantina {word} i dag")
    await until_found_posts(system, token, f"lunsj {word}", [newer, older], message="equal rank: newest first")


async def test_the_headline_marks_the_match_and_escapes_html_from_the_body(system: System) -> None:
    word = nonce()
    token = system.token(random_id("writer"))
    body = f"<script>alert('x')</script> Kaffemaskinen er <b>ødelagt</b> igjen & \"ingen\" vet hvorfor {word}"
    post_id = await write_post(system, token, body)
    await until_found_posts(system, token, f"ødelagt {word}", [post_id], message="post indexed")
    [item] = (await search(system, token, f"ødelagt {word}")).json()["items"]
    headline = item["headline"]
    assert "<mark>ødelagt</mark>" in headline
    assert f"<mark>{word}</mark>" in headline
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in headline
    assert "&lt;b&gt;<mark>ødelagt</mark>&lt;/b&gt;" in headline
    assert "&amp; &quot;ingen&quot;" in headline
    # The only markup left is ours.
    assert headline.replace("<mark>", "").replace("</mark>", "").count("<") == 0
    assert set(item) == {"post_id", "headline", "rank", "created_at"}

    long_body = " ".join(["fyllord"] * 200 + [f"nøkkelordet {word}"] + ["fyllord"] * 200)
    long_post = await write_post(system, token, long_body)
    await until_found_posts(system, token, f"nøkkelordet {word}", [long_post], message="long post indexed")
    [item] = (await search(system, token, f"nøkkelordet {word}")).json()["items"]
    assert "<mark>nøkkelordet</mark>" in item["headline"]
    assert len(item["headline"]) < 500, "a long post is cut to the fragments around its matches"


# Who may see what ----------------------------------------------------------------------------------------


async def test_posts_are_found_only_by_those_in_their_audience(system: System) -> None:
    word, team = nonce(), f"team-{nonce()}"
    author, follower, member, stranger = (random_id(r) for r in ("author", "follower", "member", "stranger"))
    author_token = system.token(author, groups=[team])
    follower_token, member_token = system.token(follower), system.token(member, groups=[team])
    stranger_token = system.token(stranger)
    for token in (author_token, follower_token, member_token, stranger_token):
        await sign_in(system, token)
    await relate(system, follower_token, author, "follow")

    everyone = await write_post(system, author_token, f"Til alle {word}")
    private = await write_post(system, author_token, f"Et utkast {word}", {"type": "private"})
    followers = await write_post(system, author_token, f"Til følgerne {word}", {"type": "followers"})
    team_post = await write_post(system, author_token, f"Til teamet {word}", {"type": "team", "team": team})

    await until_found_post_set(
        system, author_token, word, {everyone, private, followers, team_post}, message="the author finds all"
    )
    await until_found_post_set(system, follower_token, word, {everyone, followers}, message="a follower")
    await until_found_post_set(system, member_token, word, {everyone, team_post}, message="a team member")
    assert set(await found_posts(system, stranger_token, word)) == {everyone}

    # Following is read at the time of the search: an unfollow takes the followers' post away.
    await relate(system, follower_token, author, "follow", active=False)
    await until_found_post_set(system, follower_token, word, {everyone}, message="after unfollowing")


async def test_a_blocked_authors_posts_are_not_found_either_way(system: System) -> None:
    word = nonce()
    author, blocker, blocked = random_id("author"), random_id("blocker"), random_id("blocked")
    author_token, blocker_token, blocked_token = system.token(author), system.token(blocker), system.token(blocked)
    for token in (author_token, blocker_token, blocked_token):
        await sign_in(system, token)
    post_id = await write_post(system, author_token, f"Åpent for alle {word}")
    await until_found_posts(system, blocker_token, word, [post_id], message="found before the block")
    await until_found_posts(system, blocked_token, word, [post_id], message="found before the block")

    await relate(system, blocker_token, author, "block")  # the viewer blocks the author
    await relate(system, author_token, blocked, "block")  # the author blocks the viewer
    await until_found_posts(system, blocker_token, word, [], message="the blocker no longer finds it")
    await until_found_posts(system, blocked_token, word, [], message="the blocked no longer finds it")
    assert await found_posts(system, author_token, word) == [post_id]


async def test_a_deleted_post_vanishes(system: System) -> None:
    word = nonce()
    author_token, reader_token = system.token(random_id("author")), system.token(random_id("reader"))
    post_id = await write_post(system, author_token, f"Snart borte {word}")
    await until_found_posts(system, reader_token, word, [post_id], message="found before deletion")
    async with system.client(author_token) as client:
        assert (await client.delete(f"/api/posts/{post_id}")).status_code == 204
    await until_found_posts(system, reader_token, word, [], message="gone for readers")
    assert await found_posts(system, author_token, word) == [], "gone for the author too"

    conn = await system.db("search")
    try:
        row = await conn.fetchrow("SELECT body, deleted FROM posts WHERE id = $1", uuid.UUID(post_id))
    finally:
        await conn.close()
    assert row is not None and row["deleted"] and row["body"] is None, "a deleted post's text is not kept"


async def test_narrowing_the_audience_removes_a_post_from_others_results(system: System) -> None:
    word = nonce()
    author_token, reader_token = system.token(random_id("author")), system.token(random_id("reader"))
    post_id = await write_post(system, author_token, f"Først for alle {word}")
    await until_found_posts(system, reader_token, word, [post_id], message="found while open to everyone")
    await change_audience(system, author_token, post_id, {"type": "private"})
    await until_found_posts(system, reader_token, word, [], message="gone once private")
    assert await found_posts(system, author_token, word) == [post_id]
    await change_audience(system, author_token, post_id, EVERYONE)
    await until_found_posts(system, reader_token, word, [post_id], message="back once widened again")


async def test_post_events_shuffled_and_repeated_converge_and_a_late_created_does_not_resurrect(
    system: System,
) -> None:
    word = nonce()
    author, reader = random_id("author"), random_id("reader")
    author_token, reader_token = system.token(author), system.token(reader)

    def created(post_id: uuid.UUID) -> Envelope:
        data = PostCreatedV1(
            post_id=post_id,
            author=PersonRef(id=author, name="Author"),
            kind="post",
            body=f"Hendelser i feil rekkefølge {word}",
            audience=EveryoneAudience(type="everyone"),
            created_at=datetime.now(UTC),
            version=1,
        )
        return new_envelope(EventType.POST_CREATED, source="posts", subject=str(post_id), data=data)

    def narrowed(post_id: uuid.UUID, version: int) -> Envelope:
        data = PostAudienceChangedV1(
            post_id=post_id, author_id=author, audience=PrivateAudience(type="private"), version=version
        )
        return new_envelope(EventType.POST_AUDIENCE_CHANGED, source="posts", subject=str(post_id), data=data)

    def deleted(post_id: uuid.UUID, version: int) -> Envelope:
        data = PostDeletedV1(post_id=post_id, author_id=author, version=version)
        return new_envelope(EventType.POST_DELETED, source="posts", subject=str(post_id), data=data)

    # Deleted before it was created, twice, then created twice: stays deleted.
    gone = uuid.uuid4()
    gone_created, gone_deleted = created(gone), deleted(gone, 2)
    # Made private before it was created: the older audience of post.created does not win.
    private = uuid.uuid4()
    private_created, private_narrowed = created(private), narrowed(private, 2)
    # An ordinary post, its creation delivered three times.
    shown = uuid.uuid4()
    shown_created = created(shown)
    deliveries = [gone_deleted, private_narrowed, gone_deleted, shown_created, gone_created, private_created]
    await publish(system, [*deliveries, gone_created, shown_created, private_narrowed, shown_created])

    await until_found_post_set(system, author_token, word, {str(shown), str(private)}, message="the author's view")
    await until_found_post_set(system, reader_token, word, {str(shown)}, message="the reader's view")
    conn = await system.db("search")
    try:
        rows = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, body, deleted, audience_version, version FROM posts WHERE id = ANY($1::uuid[])",
                [gone, private, shown],
            )
        }
    finally:
        await conn.close()
    assert rows[gone]["deleted"] and rows[gone]["body"] is None and rows[gone]["version"] == 2
    assert rows[private]["audience_version"] == 2 and not rows[private]["deleted"]
    assert rows[shown]["version"] == 1


# People --------------------------------------------------------------------------------------------------


async def test_people_are_found_by_name_prefix_title_and_expertise(system: System) -> None:
    surname, title_word, skill = nonce(), nonce(), nonce()
    person = random_id("person")
    token = system.token(person, name=f"Kari {surname.capitalize()}")
    await sign_in(system, token)
    await update_profile(system, token, title=f"Arkitekt for {title_word}", expertise=["PostgreSQL", skill])
    viewer_token = system.token(random_id("viewer"))

    async def found(q: str) -> bool:
        return await found_people(system, viewer_token, q) == [person]

    await eventually(lambda: found(surname[:4]), timeout=15, message="a name prefix finds the person")
    assert await found(f"kar {surname[:3]}"), "every word a prefix of a name"
    await eventually(lambda: found(title_word), timeout=15, message="the title finds the person")
    assert await found(skill), "an expertise tag finds the person"
    assert await found(f"postgresql {surname}")

    [hit] = (await search(system, viewer_token, f"Kar {surname[:5]}", type="people")).json()["items"]
    assert hit["person"] == {"id": person, "name": f"Kari {surname.capitalize()}"}
    assert hit["title"] == f"Arkitekt for {title_word}"
    assert hit["expertise"] == ["PostgreSQL", skill]
    assert hit["rank"] > 0
    assert f"<mark>Kari</mark> <mark>{surname.capitalize()}</mark>" in hit["headline"]

    # The newest profile wins: an old title no longer finds the person.
    await update_profile(system, token, title="Rådgiver")
    await eventually(lambda: found("rådgiver " + surname), timeout=15, message="the new title")
    assert await found_people(system, viewer_token, title_word) == []


async def test_a_name_match_ranks_above_expertise_above_title_and_blocks_hide_people(system: System) -> None:
    word = nonce()
    by_name, by_expertise, by_title = random_id("name"), random_id("expertise"), random_id("title")
    name_token = system.token(by_name, name=f"{word.capitalize()} Olsen")
    expertise_token = system.token(by_expertise, name="Ola Hansen")
    title_token = system.token(by_title, name="Siri Berg")
    for token in (name_token, expertise_token, title_token):
        await sign_in(system, token)
    await update_profile(system, expertise_token, expertise=[word])
    await update_profile(system, title_token, title=f"Ansvarlig for {word}")
    viewer = random_id("viewer")
    viewer_token = system.token(viewer)
    await sign_in(system, viewer_token)

    expected = [by_name, by_expertise, by_title]

    async def ranked() -> bool:
        return await found_people(system, viewer_token, word) == expected

    await eventually(ranked, timeout=15, message="name, then expertise, then title")
    ranks = [item["rank"] for item in (await search(system, viewer_token, word, type="people")).json()["items"]]
    assert ranks[0] > ranks[1] > ranks[2] > 0, "ranked by the weight of the field, not by name"

    await relate(system, viewer_token, by_expertise, "block")
    await relate(system, title_token, viewer, "block")

    async def hidden() -> bool:
        return await found_people(system, viewer_token, word) == [by_name]

    await eventually(hidden, timeout=15, message="people blocked either way are not found")


# The contract --------------------------------------------------------------------------------------------


def assert_problem(reply: httpx.Response, status: int, field: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert field in [error["field"] for error in reply.json()["errors"]], reply.text


async def test_bad_queries_cursors_and_limits_are_422_naming_the_field(system: System) -> None:
    token = system.token(random_id("viewer"))
    for q in ("", "   ", "x" * 201, " " + "y" * 201 + " "):
        assert_problem(await search(system, token, q), 422, "query.q")
        assert_problem(await search(system, token, q, type="people"), 422, "query.q")
    assert_problem(await search(system, token, None), 422, "query.q")
    assert (await search(system, token, "  " + "z" * 200 + "  ")).status_code == 200, "200 after trimming is fine"
    assert_problem(await search(system, token, "kaffe", type="comments"), 422, "query.type")
    assert_problem(await search(system, token, "kaffe", limit=0), 422, "query.limit")
    assert_problem(await search(system, token, "kaffe", limit=51), 422, "query.limit")
    for cursor in ("not-a-cursor", "WyJwb3N0cyJd", "WzEsMiwzLDRd"):  # garbage, ["posts"], [1,2,3,4]
        assert_problem(await search(system, token, "kaffe", cursor=cursor), 422, "query.cursor")
        assert_problem(await search(system, token, "kaffe", type="people", cursor=cursor), 422, "query.cursor")
    reply = await search(system, None, "kaffe")
    assert reply.status_code == 401 and reply.headers["content-type"].startswith("application/problem+json")
    # Only punctuation: a valid query without a word to look for, which finds nothing.
    for kind in ("posts", "people"):
        reply = await search(system, token, "!!! ---", type=kind)
        assert reply.status_code == 200 and reply.json() == {"items": [], "next_cursor": None}, reply.text


async def test_a_cursor_of_one_listing_is_refused_by_the_other(system: System) -> None:
    word = nonce()
    token = system.token(random_id("writer"), name=f"{word.capitalize()} Writer")
    other_token = system.token(random_id("writer"), name=f"{word.capitalize()} Other")
    for t in (token, other_token):
        await sign_in(system, t)
        await write_post(system, t, f"Et innlegg {word}")

    async def paged(kind: str) -> str | None:
        reply = await search(system, token, word, type=kind, limit=1)
        cursor: str | None = reply.json()["next_cursor"]
        return cursor

    people_cursor = await eventually(lambda: paged("people"), timeout=15, message="two people found")
    posts_cursor = await eventually(lambda: paged("posts"), timeout=15, message="two posts found")
    assert_problem(await search(system, token, word, type="posts", cursor=people_cursor), 422, "query.cursor")
    assert_problem(await search(system, token, word, type="people", cursor=posts_cursor), 422, "query.cursor")


async def test_pages_of_posts_and_people_follow_each_other_without_gaps_or_repeats(system: System) -> None:
    word = nonce()
    token = system.token(random_id("writer"))
    # Different ranks (the word once or twice, in shorter or longer posts) and equal ones.
    bodies = [f"{word}", f"{word} {word}", f"Et lengre innlegg som nevner {word} bare én gang", f"{word}", f"{word}"]
    posts = {await write_post(system, token, body) for body in bodies}
    await until_found_post_set(system, token, word, posts, message="all posts indexed")
    everything = [item["post_id"] for item in (await search(system, token, word)).json()["items"]]

    seen: list[str] = []
    ranks: list[float] = []
    cursor = None
    pages = 0
    while True:
        reply = await search(system, token, word, limit=2, **({"cursor": cursor} if cursor else {}))
        assert reply.status_code == 200, reply.text
        page = reply.json()
        pages += 1
        seen += [item["post_id"] for item in page["items"]]
        ranks += [item["rank"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == everything and set(seen) == posts
    assert ranks == sorted(ranks, reverse=True)

    people = [random_id("person") for _ in range(3)]
    for person in people:
        await sign_in(system, system.token(person, name=f"Per {word.capitalize()}"))

    async def all_people() -> bool:
        return set(await found_people(system, token, word)) == set(people)

    await eventually(all_people, timeout=15, message="all people indexed")
    seen_people: list[str] = []
    cursor = None
    while True:
        reply = await search(system, token, word, type="people", limit=2, **({"cursor": cursor} if cursor else {}))
        page = reply.json()
        seen_people += [item["person"]["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen_people) == sorted(people) and len(seen_people) == 3

"""Idea campaigns over the real system: a leader asks, people answer with ideas, likes back them (the reactions
service tells the posts service by event), the owner closes the loop on each idea, and the campaign closes
once, on its date or early, announcing the ranking."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

from tests.harness import System, eventually, random_id

EVERYONE = {"type": "everyone"}


class Person:
    def __init__(self, system: System, name: str, *, groups: list[str] | None = None) -> None:
        self.system = system
        self.id = random_id(name.lower())
        self.name = f"{name} {self.id[-4:]}"
        self.token = system.token(self.id, name=self.name, groups=groups or [])

    def client(self) -> httpx.AsyncClient:
        return self.system.client(self.token)

    async def sign_in(self) -> Person:
        async with self.client() as client:
            reply = await client.get("/api/me")
        assert reply.status_code == 200, reply.text
        return self

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with self.client() as client:
            return await client.request(method, path, **kwargs)

    async def like(self, post_id: str) -> None:
        async def liked() -> bool:
            return (await self.call("PUT", f"/api/posts/{post_id}/like")).status_code == 200

        # The reactions service learns of the idea by event.
        await eventually(liked, message=f"{self.name} likes {post_id}")


class EventTap:
    """Every event of one type published in the system under test, from an exclusive queue bound to its exchange."""

    def __init__(self, system: System, routing_key: str) -> None:
        self.system = system
        self.routing_key = routing_key
        self.received: list[dict[str, Any]] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None

    async def __aenter__(self) -> EventTap:
        self._connection = await aio_pika.connect_robust(self.system.rabbitmq_url)
        channel = await self._connection.channel()
        exchange = await channel.get_exchange(f"{self.system.namespace}.events")
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=self.routing_key)

        async def keep(message: AbstractIncomingMessage) -> None:
            self.received.append({**json.loads(message.body), "raw": message.body.decode()})

        await queue.consume(keep, no_ack=True)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    def about(self, key: str, value: str) -> list[dict[str, Any]]:
        return [event for event in self.received if str(event["data"].get(key)) == value]


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def _open_campaign(
    leader: Person, *, closes_in: float = 3600, audience: dict[str, Any] = EVERYONE, title: str = "Bedre møter"
) -> dict[str, Any]:
    reply = await leader.call(
        "POST",
        "/api/campaigns",
        json={
            "title": title,
            "question": "Hvordan kan vi gjøre fredagsmøtet nyttigere?",
            "audience": audience,
            "closes_at": _in(closes_in),
        },
    )
    assert reply.status_code == 201, reply.text
    campaign: dict[str, Any] = reply.json()
    return campaign


async def _idea(person: Person, campaign_id: str, body: str = "Kortere møter, stående") -> dict[str, Any]:
    reply = await person.call("POST", f"/api/campaigns/{campaign_id}/ideas", json={"body": body})
    assert reply.status_code == 201, reply.text
    idea: dict[str, Any] = reply.json()
    return idea


async def _ranking(person: Person, campaign_id: str) -> list[tuple[str, int]]:
    reply = await person.call("GET", f"/api/campaigns/{campaign_id}/ideas")
    assert reply.status_code == 200, reply.text
    return [(item["post"]["id"], item["backers"]) for item in reply.json()["items"]]


async def test_ideas_are_ranked_by_backers_and_each_status_change_is_published_once(system: System) -> None:
    leader = await Person(system, "Leder", groups=["leaders"]).sign_in()
    alice, bob, carol, dave = [await Person(system, name).sign_in() for name in ("Alice", "Bob", "Carol", "Dave")]

    refused = await alice.call(
        "POST", "/api/campaigns", json={"title": "t", "question": "q", "audience": EVERYONE, "closes_at": _in(60)}
    )
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"

    campaign = await _open_campaign(leader)
    assert campaign["owner"] == {"id": leader.id, "name": leader.name}
    assert campaign["closed_at"] is None and campaign["idea_count"] == 0 and campaign["audience"] == EVERYONE
    as_post = await alice.call("GET", f"/api/posts/{campaign['id']}")
    assert as_post.status_code == 200 and as_post.json()["kind"] == "campaign"

    first = await _idea(alice, campaign["id"], "Agenda dagen før")
    second = await _idea(bob, campaign["id"], "Kortere møter, stående")
    assert first["kind"] == "idea" and first["campaign_id"] == campaign["id"] and first["audience"] == EVERYONE
    for backer in (carol, dave):
        await backer.like(second["id"])
    await carol.like(second["id"])  # twice is one backer
    await carol.like(first["id"])

    async def ranked() -> bool:
        return await _ranking(leader, campaign["id"]) == [(second["id"], 2), (first["id"], 1)]

    await eventually(ranked, message="ideas ranked by distinct backers")
    listed = (await carol.call("GET", f"/api/campaigns/{campaign['id']}/ideas")).json()["items"]
    assert [item["post"]["liked_by_me"] for item in listed] == [True, True]
    assert listed[0]["status"] == "new" and listed[0]["status_reason"] is None
    assert (await alice.call("GET", f"/api/campaigns/{campaign['id']}")).json()["idea_count"] == 2
    paged = await leader.call("GET", f"/api/campaigns/{campaign['id']}/ideas", params={"limit": 1})
    rest = await leader.call(
        "GET", f"/api/campaigns/{campaign['id']}/ideas", params={"limit": 1, "cursor": paged.json()["next_cursor"]}
    )
    assert [i["post"]["id"] for i in paged.json()["items"] + rest.json()["items"]] == [second["id"], first["id"]]
    assert rest.json()["next_cursor"] is None

    status_path = f"/api/ideas/{second['id']}/status"
    async with EventTap(system, "idea.status_changed.v1") as tap:
        await asyncio.sleep(0.3)
        not_owner = await bob.call("PUT", status_path, json={"status": "adopted", "reason": "my own idea"})
        assert not_owner.status_code == 403 and not_owner.headers["content-type"] == "application/problem+json"
        no_reason = await leader.call("PUT", status_path, json={"status": "declined"})
        assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "body.reason"

        adopted = await leader.call("PUT", status_path, json={"status": "adopted", "reason": "Vi prøver fra mandag"})
        assert adopted.status_code == 200, adopted.text
        assert adopted.json()["status"] == "adopted" and adopted.json()["status_reason"] == "Vi prøver fra mandag"
        again = await leader.call("PUT", status_path, json={"status": "adopted", "reason": "Vi prøver fra mandag"})
        assert again.status_code == 200 and again.json()["status_changed_at"] == adopted.json()["status_changed_at"]
        review = await leader.call("PUT", status_path, json={"status": "under_review", "reason": "Ser på det igjen"})
        assert review.status_code == 200

        async def both() -> list[dict[str, Any]]:
            events = tap.about("post_id", second["id"])
            return events if len(events) >= 2 else []

        await eventually(both, message="two status changes published")
        await asyncio.sleep(1.5)  # anything published twice would have arrived by now
    events = tap.about("post_id", second["id"])
    assert [e["data"]["status"] for e in events] == ["adopted", "under_review"]
    data = events[0]["data"]
    assert data["campaign_id"] == campaign["id"] and data["idea_author_id"] == bob.id
    assert data["changed_by"] == {"id": leader.id, "name": leader.name} and data["reason"] == "Vi prøver fra mandag"
    assert events[1]["data"]["version"] > data["version"]
    assert events[0]["source"] == "posts" and events[0]["subject"] == second["id"]


async def test_an_early_close_announces_the_ranking_once_and_refuses_further_ideas(system: System) -> None:
    leader = await Person(system, "Leder", groups=["leaders"]).sign_in()
    other_leader = await Person(system, "Annen", groups=["leaders"]).sign_in()
    alice, bob, carol = [await Person(system, name).sign_in() for name in ("Alice", "Bob", "Carol")]
    campaign = await _open_campaign(leader)
    quiet = await _idea(alice, campaign["id"], "Færre møter")
    backed = await _idea(bob, campaign["id"], "Felles notater")
    await carol.like(backed["id"])
    await alice.like(backed["id"])

    async def counted() -> bool:
        return await _ranking(leader, campaign["id"]) == [(backed["id"], 2), (quiet["id"], 0)]

    await eventually(counted, message="backers counted")

    async with EventTap(system, "campaign.closed.v1") as tap:
        await asyncio.sleep(0.3)
        assert (await other_leader.call("POST", f"/api/campaigns/{campaign['id']}/close")).status_code == 403
        closed = await leader.call("POST", f"/api/campaigns/{campaign['id']}/close")
        assert closed.status_code == 200, closed.text
        assert closed.json()["closed_at"] is not None
        again = await leader.call("POST", f"/api/campaigns/{campaign['id']}/close")
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
        late = await carol.call("POST", f"/api/campaigns/{campaign['id']}/ideas", json={"body": "For sent"})
        assert late.status_code == 409 and late.headers["content-type"] == "application/problem+json"

        async def announced() -> list[dict[str, Any]]:
            return tap.about("campaign_id", campaign["id"])

        await eventually(announced, message="campaign.closed.v1 published")
        await asyncio.sleep(1.5)
    events = tap.about("campaign_id", campaign["id"])
    assert len(events) == 1
    data = events[0]["data"]
    assert data["owner_id"] == leader.id and data["title"] == campaign["title"]
    assert [(i["post_id"], i["author_id"], i["backers"], i["status"]) for i in data["ideas"]] == [
        (backed["id"], bob.id, 2, "new"),
        (quiet["id"], alice.id, 0, "new"),
    ]
    # The loop can still be closed on each idea after the campaign has closed.
    status = await leader.call("PUT", f"/api/ideas/{quiet['id']}/status", json={"status": "declined", "reason": "Nei"})
    assert status.status_code == 200


async def test_a_campaign_closes_by_itself_on_its_date_once(system: System) -> None:
    leader = await Person(system, "Leder", groups=["leaders"]).sign_in()
    alice = await Person(system, "Alice").sign_in()
    async with EventTap(system, "campaign.closed.v1") as tap:
        await asyncio.sleep(0.3)
        campaign = await _open_campaign(leader, closes_in=2)
        idea = await _idea(alice, campaign["id"])

        async def announced() -> list[dict[str, Any]]:
            # Nobody reads the campaign meanwhile: the posts service's closer job does it.
            return tap.about("campaign_id", campaign["id"])

        await eventually(announced, timeout=20, message="closed by the closer job")
        reply = await alice.call("GET", f"/api/campaigns/{campaign['id']}")
        assert reply.json()["closed_at"] is not None
        late = await alice.call("POST", f"/api/campaigns/{campaign['id']}/ideas", json={"body": "For sent"})
        assert late.status_code == 409
        await asyncio.sleep(6)  # one more round of the closer job
    events = tap.about("campaign_id", campaign["id"])
    assert len(events) == 1
    assert [i["post_id"] for i in events[0]["data"]["ideas"]] == [idea["id"]]


async def test_a_team_campaign_and_its_ideas_do_not_exist_for_others(system: System) -> None:
    team = f"team-{random_id('t')}"
    leader = await Person(system, "Leder", groups=["leaders", team]).sign_in()
    member = await Person(system, "Medlem", groups=[team]).sign_in()
    outsider = await Person(system, "Utenfor").sign_in()

    not_mine = await leader.call(
        "POST",
        "/api/campaigns",
        json={"title": "t", "question": "q", "audience": {"type": "team", "team": "other"}, "closes_at": _in(60)},
    )
    assert not_mine.status_code == 422
    past = await leader.call(
        "POST", "/api/campaigns", json={"title": "t", "question": "q", "audience": EVERYONE, "closes_at": _in(-60)}
    )
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "body.closes_at"

    audience = {"type": "team", "team": team}
    campaign = await _open_campaign(leader, audience=audience, title="Teamets neste kvartal")

    async def member_sees() -> bool:
        return (await member.call("GET", f"/api/campaigns/{campaign['id']}")).status_code == 200

    await eventually(member_sees, message="the member's team reached the posts service")
    idea = await _idea(member, campaign["id"])
    assert idea["audience"] == audience

    path = f"/api/campaigns/{campaign['id']}"
    assert (await outsider.call("GET", path)).status_code == 404
    assert (await outsider.call("GET", f"{path}/ideas")).status_code == 404
    assert (await outsider.call("POST", f"{path}/ideas", json={"body": "Jeg vil også"})).status_code == 404
    assert (await outsider.call("GET", f"/api/posts/{idea['id']}")).status_code == 404
    assert (await outsider.call("POST", f"{path}/close")).status_code == 404
    listed = (await outsider.call("GET", "/api/campaigns", params={"limit": 100})).json()["items"]
    assert campaign["id"] not in [c["id"] for c in listed]
    assert campaign["id"] in [
        c["id"] for c in (await member.call("GET", "/api/campaigns", params={"limit": 100})).json()["items"]
    ]

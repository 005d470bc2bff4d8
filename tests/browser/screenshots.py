"""`make screenshots`: start a System, seed demo content as the demo users, and save PNGs of the main screens
at desktop (1280x800) and phone (390x844) widths into docs/screenshots/."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, async_playwright

from shared.demo import DEMO_USERS
from tests.browser.conftest import CHROMIUM, DESKTOP, PHONE
from tests.harness import ROOT, System, eventually

OUT = ROOT / "docs" / "screenshots"


async def seed(system: System) -> dict[str, Any]:
    tokens = {
        u.sub: system.token(u.sub, name=u.name, email=u.email, locale=u.locale, groups=u.groups) for u in DEMO_USERS
    }

    async def call(who: str, method: str, path: str, **kwargs: Any) -> Any:
        async with system.client(tokens[who]) as client:
            reply = await client.request(method, path, **kwargs)
        assert reply.status_code < 300, f"{method} {path}: {reply.status_code} {reply.text}"
        return reply.json() if reply.content else None

    for who in tokens:
        await call(who, "GET", "/api/me")
    await call("demo-ada", "PATCH", "/api/me", json={"title": "Engineer", "department": "Platform", "location": "Oslo"})
    for who, whom in [
        ("demo-ada", "demo-kari"),
        ("demo-kari", "demo-ada"),
        ("demo-ola", "demo-ada"),
        ("demo-ada", "demo-grace"),
    ]:
        await call(who, "PUT", f"/api/people/{whom}/follow")
    week = await call(
        "demo-ada",
        "POST",
        "/api/posts",
        json={
            "kind": "idea",
            "body": "Half-finished idea: a shared weekly plan for the team, so nobody double-books the rig.",
        },
    )
    question = await call(
        "demo-kari",
        "POST",
        "/api/posts",
        json={"kind": "question", "body": "Hvem kan hjelpe meg med budsjettmalen for neste kvartal?"},
    )
    await call(
        "demo-ola",
        "POST",
        "/api/posts",
        json={
            "kind": "praise",
            "recipients": ["demo-ada"],
            "body": "Takk for at du tok deg tid til å forklare deploy-løypa i går, det hjalp hele salgsteamet!",
        },
    )
    await call(
        "demo-grace",
        "POST",
        "/api/posts",
        json={"body": "Reminder: the all-hands Q&A is open now. Ask anything, anonymously if you like."},
    )
    for who in ("demo-kari", "demo-ola", "demo-grace"):
        await call(who, "PUT", f"/api/posts/{week['id']}/like")
    await call("demo-kari", "PUT", f"/api/posts/{week['id']}/favourite")
    await call(
        "demo-kari",
        "POST",
        f"/api/posts/{week['id']}/comments",
        json={"body": "Good idea! @demo-ola had a spreadsheet for this once."},
    )
    comment = await call(
        "demo-ada",
        "POST",
        f"/api/posts/{question['id']}/comments",
        json={"body": "I can help, the template is in the finance wiki."},
    )
    await call(
        "demo-kari", "POST", f"/api/posts/{question['id']}/comments", json={"body": "Takk!", "parent_id": comment["id"]}
    )
    closes = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    campaign = await call(
        "demo-grace",
        "POST",
        "/api/campaigns",
        json={
            "title": "How do we make meetings better?",
            "question": "Which one change would give you back an hour a week?",
            "closes_at": closes,
        },
    )
    ideas = []
    for who, body in [
        ("demo-kari", "No-meeting Wednesdays"),
        ("demo-ola", "Every meeting has an agenda, or it is cancelled"),
        ("demo-ada", "Standing meetings end after 15 minutes"),
    ]:
        ideas.append(await call(who, "POST", f"/api/campaigns/{campaign['id']}/ideas", json={"body": body}))
    for who in ("demo-ada", "demo-ola", "demo-grace"):
        await call(who, "PUT", f"/api/posts/{ideas[0]['id']}/like")
    await call(
        "demo-grace",
        "PUT",
        f"/api/ideas/{ideas[0]['id']}/status",
        json={"status": "adopted", "reason": "We try it from next month."},
    )
    await call(
        "demo-grace",
        "PUT",
        f"/api/ideas/{ideas[1]['id']}/status",
        json={"status": "under_review", "reason": "Looking at calendars first."},
    )
    qna = await call(
        "demo-grace",
        "POST",
        "/api/qna",
        json={
            "title": "All-hands Q&A",
            "starts_at": datetime.now(UTC).isoformat(),
            "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
    )
    q1 = await call(
        "demo-kari",
        "POST",
        f"/api/qna/{qna['id']}/questions",
        json={"body": "Will we keep working from home on Fridays?", "anonymous": True},
    )
    await call("demo-ola", "POST", f"/api/qna/{qna['id']}/questions", json={"body": "When does the new office open?"})
    await call("demo-ada", "PUT", f"/api/qna/{qna['id']}/questions/{q1['id']}/upvote")
    await call(
        "demo-grace",
        "POST",
        f"/api/qna/{qna['id']}/questions/{q1['id']}/answer",
        json={"answer": "Yes, nothing changes there."},
    )

    async def notified() -> bool:
        return len((await call("demo-ada", "GET", "/api/notifications"))["items"]) >= 3

    await eventually(notified, timeout=20, message="Ada's notifications")
    return {"tokens": tokens, "post": week, "campaign": campaign, "qna": qna}


async def shoot(browser: Browser, system: System, seeded: dict[str, Any]) -> list[Path]:
    screens = [
        ("feed", "demo-ada", "/"),
        ("post", "demo-ada", f"/posts/{seeded['post']['id']}"),
        ("notifications", "demo-ada", "/notifications"),
        ("profile", "demo-ada", "/people/demo-ada"),
        ("campaign", "demo-grace", f"/campaigns/{seeded['campaign']['id']}"),
        ("qna", "demo-kari", f"/qna/{seeded['qna']['id']}"),
        ("leaderboards", "demo-ada", "/leaderboards"),
        ("settings", "demo-kari", "/settings/notifications"),
        ("sign-in", None, "/"),
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    written = []
    for width_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        for name, who, path in screens:
            context = await browser.new_context(base_url=system.base_url, viewport=viewport)  # type: ignore[arg-type]
            if who:
                await context.add_init_script(f"sessionStorage.setItem('tillit.token', {seeded['tokens'][who]!r});")
            page = await context.new_page()
            await page.goto(path)
            await page.wait_for_selector("body[data-ready='true']")
            await page.wait_for_timeout(600)  # the bell's count arrives over the event stream
            target = OUT / f"{name}-{width_name}.png"
            await page.screenshot(path=str(target))
            written.append(target)
            await context.close()
    return written


async def main() -> int:
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1
    system = System()
    await system.start()
    try:
        seeded = await seed(system)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            try:
                written = await shoot(browser, system, seeded)
            finally:
                await browser.close()
    finally:
        await system.stop()
    for path in written:
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

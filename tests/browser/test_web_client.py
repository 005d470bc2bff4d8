"""The main flows of the reference web client in a real browser, against the running system."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import open_page
from tests.harness import System, eventually

LIVE = 15_000  # ms: how long a live change may take to show, far above what it takes


async def unread(page: Page) -> int:
    return int(await page.locator("#bell").get_attribute("data-unread") or 0)


async def test_sign_in_post_and_see_a_colleagues_like_arrive_on_the_bell_live(
    system: System, browser: Browser, people: Any
) -> None:
    context = await browser.new_context(base_url=system.base_url)
    try:
        page = await context.new_page()
        await open_page(page, "/")
        await page.get_by_role("button", name="Sign in as Ada Lovelace").click()
        await expect(page.get_by_role("heading", name="Your feed")).to_be_visible()
        await expect(page.locator("#bell")).to_have_attribute("data-unread", "0", timeout=LIVE)
        before = await unread(page)

        await page.get_by_label("What do you want to share?").fill("Halvferdig idé: felles ukeplan?")
        await page.get_by_role("radio", name="Idea").check()
        await page.get_by_role("button", name="Publish").click()
        card = page.locator("article.post", has_text="felles ukeplan")
        await expect(card).to_be_visible()
        post_id = await card.first.get_attribute("data-post-id")

        kari = people("Kari Test")
        kari_page = await kari.page(f"/posts/{post_id}")
        like = kari_page.locator("article.post .react-like")
        await like.click()
        await expect(like).to_have_attribute("aria-pressed", "true")
        await expect(like.locator(".count")).to_have_text("1")

        # Ada's bell counts it without a reload, over the open event stream.
        await expect(page.locator("#bell")).to_have_attribute("data-unread", str(before + 1), timeout=LIVE)
        await expect(page.locator("#bell-label")).to_have_text(f"Notifications, {before + 1} unread")
        await page.locator("#bell").click()
        await expect(page.get_by_role("heading", name="Notifications")).to_be_focused()
        await expect(page.get_by_role("link", name="Unread: Kari Test liked your post")).to_be_visible()
    finally:
        await context.close()


async def test_favourite_in_the_browser_and_the_author_gets_the_email(system: System, people: Any) -> None:
    author = await people("Åse Author").sign_in()
    post = await author.post("Forslag: felles lunsj på fredager")
    fan = people("Frida Fan")
    page = await fan.page(f"/posts/{post['id']}")
    favourite = page.locator("article.post .react-favourite")
    await favourite.click()
    await expect(favourite).to_have_attribute("aria-pressed", "true")
    await expect(favourite.locator(".count")).to_have_text("1")

    async def mail() -> list[Any]:
        return [m for m in system.smtp.messages if m["To"].addresses[0].addr_spec == f"{author.id}@tillit.test"]

    [message] = await eventually(mail, timeout=15, message="the favourite's email")
    assert "Frida Fan" in message["Subject"]


async def test_a_like_that_fails_is_rolled_back(people: Any) -> None:
    author = await people("Gone Author").sign_in()
    post = await author.post("Snart borte")
    page = await people("Late Liker").page(f"/posts/{post['id']}")
    async with author.api() as client:
        assert (await client.delete(f"/api/posts/{post['id']}")).status_code == 204
    like = page.locator("article.post .react-like")
    await like.click()
    await expect(like).to_have_attribute("aria-pressed", "false")
    await expect(like.locator(".count")).to_have_text("0")
    await expect(page.locator(".toast-error")).to_contain_text("That did not work")


async def test_follow_someone_and_their_posts_come_into_the_feed(people: Any) -> None:
    writer = await people("Wenche Writer").sign_in()
    reader = people("Rolf Reader")
    page = await reader.page(f"/people/{writer.id}")
    follow = page.get_by_role("button", name="Follow")
    await follow.click()
    following = page.get_by_role("button", name="Following")
    await expect(following).to_have_attribute("aria-pressed", "true")
    await expect(page.locator(".counts")).to_contain_text("1 followers")

    await writer.post("Nytt fra Wenche etter at Rolf fulgte")
    await page.get_by_role("link", name="Home", exact=True).first.click()
    entry = page.locator("article.post", has_text="Nytt fra Wenche")
    for _ in range(40):
        if await entry.count():
            break
        await page.wait_for_timeout(250)
        await page.reload()
        await page.wait_for_selector("body[data-ready='true']")
    await expect(entry).to_be_visible()
    await expect(entry.get_by_role("link", name="Wenche Writer")).to_be_visible()


async def test_an_ideas_new_status_reaches_its_backer_live(people: Any) -> None:
    leader = await people("Lea Leader", groups=["leaders"]).sign_in()
    author = await people("Ivar Idea").sign_in()
    closes = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    async with leader.api() as client:
        reply = await client.post(
            "/api/campaigns", json={"title": "Bedre møter", "question": "Hva bør vi endre?", "closes_at": closes}
        )
        assert reply.status_code == 201, reply.text
        campaign = reply.json()
    async with author.api() as client:
        reply = await client.post(f"/api/campaigns/{campaign['id']}/ideas", json={"body": "Ståmøter på fredag"})
        assert reply.status_code == 201, reply.text
        idea = reply.json()

    backer = people("Bente Backer")
    page = await backer.page(f"/campaigns/{campaign['id']}")
    back = page.locator(f"[data-idea-id='{idea['id']}'] .react-like")
    await back.click()
    await expect(back).to_have_attribute("aria-pressed", "true")
    await expect(page.locator(f"[data-idea-id='{idea['id']}'] .backers")).to_have_text("1 backers")

    async def author_told_of_the_backing() -> bool:
        async with author.api() as client:
            items = (await client.get("/api/notifications")).json()["items"]
        return any(n["kind"] == "post.liked" and n["post_id"] == idea["id"] for n in items)

    # The notifications service knows the backer once it has the like: only then is the backer told of a change.
    await eventually(author_told_of_the_backing, timeout=15, message="the like reached the notifications")
    before = await unread(page)

    leader_page = await leader.page(f"/campaigns/{campaign['id']}")
    item = leader_page.locator(f"[data-idea-id='{idea['id']}']")
    await item.get_by_label("Status").select_option("adopted")
    await item.get_by_label("Reason").fill("Vi prøver det fra neste uke")
    await item.get_by_role("button", name="Set status").click()
    await expect(leader_page.locator(f"[data-idea-id='{idea['id']}'] .badge")).to_have_text("Adopted")

    await expect(page.locator("#bell")).to_have_attribute("data-unread", str(before + 1), timeout=LIVE)
    await page.locator("#bell").click()
    await expect(page.locator(".notification.unread a").first).to_have_attribute("href", f"/posts/{idea['id']}")

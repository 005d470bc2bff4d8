"""Keyboard only (Tab, Enter, Space and the arrow keys of a suggestion list), axe-core's WCAG A and AA rules, the
phone width and the Norwegian texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.conftest import PHONE, axe_violations, open_page


async def tab_to(page: Page, selector: str, *, most: int = 60) -> None:
    """Press Tab until the element matching `selector` has the focus."""
    for _ in range(most):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


async def focus_is_visible(page: Page) -> bool:
    return bool(
        await page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }"
        )
    )


async def test_the_main_flows_work_with_the_keyboard_alone(people: Any) -> None:
    colleague = await people("Kåre Kollega").sign_in()
    me = people("Tastatur Tove")
    page = await me.page("/")

    # The skip link comes first and leads to the content.
    await page.keyboard.press("Tab")
    await expect(page.locator(".skip-link")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()

    # Write a question that mentions a colleague, picked from the suggestions with the arrow keys and Enter.
    await tab_to(page, "form.composer textarea")
    assert await focus_is_visible(page)
    await page.keyboard.type("Hvem kan hjelpe med budsjettet? @Kåre")
    await expect(page.get_by_role("option", name="Kåre Kollega")).to_be_visible()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowUp")
    await page.keyboard.press("Enter")
    written = f"Hvem kan hjelpe med budsjettet? @{colleague.id} "
    await expect(page.locator("form.composer textarea")).to_have_value(written)
    await tab_to(page, "form.composer input[value='post']")
    await page.keyboard.press("ArrowRight")  # radio buttons move with the arrow keys
    await expect(page.get_by_role("radio", name="Question")).to_be_checked()
    await tab_to(page, "form.composer button[type='submit']")
    await page.keyboard.press("Enter")
    card = page.locator("article.post", has_text="budsjettet")
    await expect(card).to_be_visible()
    await expect(card.get_by_role("link", name="@Kåre Kollega")).to_be_visible()

    # Like it with Space, open who liked it with Enter.
    await tab_to(page, "article.post .react-like")
    assert await focus_is_visible(page)
    await page.keyboard.press("Space")
    await expect(card.locator(".react-like")).to_have_attribute("aria-pressed", "true")
    await tab_to(page, "article.post .link-button[aria-expanded]")
    await page.keyboard.press("Enter")
    await expect(card.locator(".likers")).to_contain_text("Tastatur Tove")

    # Open the post, comment on it, reply.
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    await page.keyboard.press("Shift+Tab")
    await tab_to(page, "article.post a.comments-link")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{me.system.base_url}/posts/{await card_id(page)}#comments")
    await tab_to(page, "form.comment-form textarea")
    await page.keyboard.type("Jeg kan se på det.")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    comment = page.locator("li.comment", has_text="Jeg kan se på det.")
    await expect(comment).to_be_visible()
    await tab_to(page, "li.comment .link-button")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Reply to Tastatur Tove")).to_be_focused()
    await page.keyboard.type("Takk!")
    await tab_to(page, "li.comment form.comment-form button[type='submit']")
    await page.keyboard.press("Enter")
    await expect(comment.locator(".replies")).to_contain_text("Takk!")

    # The bell and the profile are reached from the header; each new page's heading takes the focus.
    await tab_to(page, "#bell")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Notifications")).to_be_focused()
    await tab_to(page, "nav a[href^='/people/']")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Tastatur Tove")).to_be_focused()
    # The completeness bar's next step leads to the field to fill in.
    await tab_to(page, ".completeness .link-button")
    await page.keyboard.press("Enter")
    await expect(page.locator("#profile-expertise")).to_be_focused()
    await page.keyboard.type("budsjett, excel")
    await tab_to(page, "#profile-form button[type='submit']")
    await page.keyboard.press("Enter")
    await expect(page.locator(".toast").last).to_have_text("Saved.")


async def card_id(page: Page) -> str:
    return str(await page.locator("article.post").first.get_attribute("data-post-id"))


async def test_no_serious_accessibility_violations_on_the_main_screens(people: Any) -> None:
    leader = await people("Aksel Access", groups=["leaders", "engineering"]).sign_in()
    other = await people("Bodil Bruker").sign_in()
    async with other.api() as client:
        assert (await client.put(f"/api/people/{leader.id}/follow")).status_code == 200
    post = await leader.post("Hva synes dere om @" + other.id + " sitt forslag?", kind="question")
    await other.post("Takk for hjelpen!", kind="praise", recipients=[leader.id])
    async with other.api() as client:
        await client.put(f"/api/posts/{post['id']}/like")
        await client.post(f"/api/posts/{post['id']}/comments", json={"body": "Godt forslag"})
    closes = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    async with leader.api() as client:
        campaign = (
            await client.post("/api/campaigns", json={"title": "Ideer", "question": "Hva nå?", "closes_at": closes})
        ).json()
        ends = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        qna = (
            await client.post(
                "/api/qna", json={"title": "Spør ledelsen", "starts_at": datetime.now(UTC).isoformat(), "ends_at": ends}
            )
        ).json()

    page = await leader.page("/")
    found = {}
    for path in (
        "/",
        f"/posts/{post['id']}",
        f"/people/{leader.id}",
        f"/people/{other.id}",
        "/notifications",
        "/settings/notifications",
        "/campaigns",
        f"/campaigns/{campaign['id']}",
        f"/qna/{qna['id']}",
        "/leaderboards",
        "/insight",
    ):
        await open_page(page, path)
        found[path] = await axe_violations(page)
    phone = await leader.page("/", viewport=PHONE)
    found["/ (phone)"] = await axe_violations(phone)
    signed_out = await leader.browser.new_context(base_url=leader.system.base_url)
    leader.contexts.append(signed_out)
    sign_in = await signed_out.new_page()
    await open_page(sign_in, "/")
    found["/sign-in"] = await axe_violations(sign_in)
    assert {path: v for path, v in found.items() if v} == {}


async def test_phone_width_has_no_sideways_scrolling(people: Any) -> None:
    me = await people("Pia Phone", groups=["engineering"]).sign_in()
    await me.post("Et ganske langt innlegg " * 20)
    page = await me.page("/", viewport={"width": 360, "height": 740})
    for path in ("/", "/settings/notifications", "/leaderboards", f"/people/{me.id}"):
        await open_page(page, path)
        assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), path


async def test_norwegian_for_a_norwegian_locale(people: Any) -> None:
    page = await people("Nora Norsk", locale="nb").page("/")
    await expect(page.locator("html")).to_have_attribute("lang", "nb")
    await expect(page.get_by_role("heading", name="Din strøm")).to_be_visible()
    await expect(page.get_by_role("link", name="Idékampanjer")).to_be_visible()
    await expect(page.get_by_role("button", name="Publiser")).to_be_visible()

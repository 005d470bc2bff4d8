"""Browser tests of the reference web client: Playwright driving Debian's Chromium against the running system.

Playwright's own browser download does not work here, so the tests use /usr/bin/chromium (`apt-get install -y
chromium`; .ci/run installs it in CI). Without it they skip, except in CI (CI=true), where they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.harness import System, random_id

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
HAVE_CHROMIUM = CHROMIUM.exists()
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium for the browser tests")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium); CI installs it and runs these tests")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


class Person:
    """Someone with a token of their own; `page()` opens the client signed in as them in a fresh context."""

    def __init__(self, system: System, browser: Browser, *, name: str, **claims: Any) -> None:
        self.id = random_id("p")
        self.name = name
        self.system = system
        self.browser = browser
        self.token = system.token(self.id, name=name, locale=claims.pop("locale", "en"), **claims)
        self.contexts: list[BrowserContext] = []

    async def page(self, path: str = "/", *, viewport: dict[str, int] | None = None) -> Page:
        context = await self.browser.new_context(base_url=self.system.base_url, viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        self.contexts.append(context)
        # Signed in as the client keeps it: the token in sessionStorage, before the app's script runs.
        await context.add_init_script(f"sessionStorage.setItem('tillit.token', {self.token!r});")
        page = await context.new_page()
        await open_page(page, path)
        return page

    def api(self) -> Any:
        return self.system.client(self.token)

    async def sign_in(self) -> Person:
        """Known to every service from now on, as after a first visit."""
        async with self.api() as client:
            assert (await client.get("/api/me")).status_code == 200
        return self

    async def post(self, body: str, **fields: Any) -> dict[str, Any]:
        async with self.api() as client:
            reply = await client.post("/api/posts", json={"body": body, **fields})
        assert reply.status_code == 201, reply.text
        created: dict[str, Any] = reply.json()
        return created

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


async def open_page(page: Page, path: str) -> None:
    await page.goto(path)
    await page.wait_for_selector("body[data-ready='true']")


@pytest.fixture
async def people(system: System, browser: Browser) -> AsyncIterator[Any]:
    """people("Ada Lovelace", groups=[...]) makes a Person; all their browser contexts close after the test."""
    made: list[Person] = []

    def make(name: str, **claims: Any) -> Person:
        person = Person(system, browser, name=name, **claims)
        made.append(person)
        return person

    yield make
    for person in made:
        await person.close()


async def axe_violations(page: Page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core's violations of WCAG 2.x A and AA rules on the page as it is, of the given impacts."""
    # Evaluated, not added as a <script>: the client's Content-Security-Policy refuses inline scripts.
    await page.evaluate("() => {\n" + AXE.read_text() + "\n}")
    result = await page.evaluate(
        """async () => {
            const tags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
            const r = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            if (!r.passes.length) throw new Error('axe checked nothing');
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }"""
    )
    return [v for v in result if v["impact"] in impacts]

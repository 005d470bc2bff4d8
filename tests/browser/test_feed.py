"""The home feed: first render with 50 entries (measured and printed, never asserted: timing belongs in
docs/web-client.md, not in a test's verdict) and infinite scroll."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import expect

from tests.harness import eventually

ENTRIES = 60


async def test_the_feed_draws_50_entries_at_once_and_scrolls_on_to_the_rest(
    people: Any, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    reader = await people("Rita Reader").sign_in()
    writers = [await people(f"Writer {n}").sign_in() for n in range(3)]
    async with reader.api() as client:
        for writer in writers:
            assert (await client.put(f"/api/people/{writer.id}/follow")).status_code == 200
    await asyncio.gather(
        *(writers[n % 3].post(f"Innlegg nummer {n}: " + "litt tekst om arbeidet vårt. " * 4) for n in range(ENTRIES))
    )

    async def all_in_feed() -> bool:
        async with reader.api() as client:
            return len((await client.get("/api/feed", params={"limit": 100})).json()["items"]) >= ENTRIES

    await eventually(all_in_feed, timeout=20, message="every post in the reader's feed")

    page = await reader.page("/")
    await expect(page.locator("article.post")).to_have_count(50)
    timing = await page.evaluate(
        """() => ({
            feed: performance.getEntriesByName('tillit:feed-rendered')[0].startTime,
            response: performance.getEntriesByType('navigation')[0].responseEnd,
            dom: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
            api: performance.getEntriesByType('resource').filter(r => r.name.includes('/api/'))
                 .map(r => `${new URL(r.name).pathname} ${r.startTime.toFixed(0)}-${r.responseEnd.toFixed(0)}`),
        })"""
    )
    record_property("first_render_ms", round(timing["feed"]))
    with capsys.disabled():
        print(
            f"\nfirst render of the feed with 50 entries: {timing['feed']:.0f} ms after navigation "
            f"(page {timing['response']:.0f} ms, modules and DOM {timing['dom']:.0f} ms; API calls {timing['api']})"
        )

    # Again in the same browser, as when someone comes back to the page.
    await page.reload()
    await expect(page.locator("article.post")).to_have_count(50)
    again = await page.evaluate("() => performance.getEntriesByName('tillit:feed-rendered')[0].startTime")
    record_property("first_render_again_ms", round(again))
    with capsys.disabled():
        print(f"the same, reloaded: {again:.0f} ms")

    # Infinite scroll: the end of the list coming into view loads the next page.
    await page.locator("article.post").last.scroll_into_view_if_needed()
    await expect(page.locator("article.post")).to_have_count(ENTRIES)
    await expect(page.locator(".feed-status")).to_have_text("That is all.")

"""The profile-completeness bar on /api/me: a percentage and the step worth most, in the reader's language."""

from __future__ import annotations

from services.people.completeness import STEPS
from tests.harness import System, random_id


async def test_me_shows_the_bar_and_the_next_step_as_the_profile_fills(system: System) -> None:
    person = random_id("person")
    async with system.client(system.token(person, locale="nb-NO")) as client:
        fresh = (await client.get("/api/me")).json()["completeness"]
        assert fresh == {
            "percent": 0,
            "next_step": {"field": "expertise", "hint": "Legg til kompetansen din"},
            "missing": [field for field, _, _, _ in STEPS],
        }
        edited = await client.patch("/api/me", json={"expertise": ["postgresql"], "title": "Utvikler"})
        assert edited.status_code == 200, edited.text
        after = (await client.get("/api/me")).json()["completeness"]
        assert after["percent"] == 25 + 15
        assert after["next_step"] == {"field": "bio", "hint": "Skriv noen ord om deg selv"}

        everything = {
            "bio": "Jeg lager databaser som tåler mye.",
            "photo_url": "https://example.org/me.jpg",
            "department": "Plattform",
            "languages": ["nb", "en"],
            "location": "Oslo",
        }
        assert (await client.patch("/api/me", json=everything)).status_code == 200
        done = (await client.get("/api/me")).json()["completeness"]
        assert done == {"percent": 100, "next_step": None, "missing": []}


async def test_the_hint_is_english_for_an_english_reader(system: System) -> None:
    async with system.client(system.token(random_id("person"), locale="en-GB")) as client:
        bar = (await client.get("/api/me")).json()["completeness"]
    assert bar["next_step"] == {"field": "expertise", "hint": "Add your expertise"}

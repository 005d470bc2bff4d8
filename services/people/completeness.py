"""How complete a profile is, and the step worth most: LinkedIn's bar, in Tillit's terms.

A colleague with expertise and a few words about themselves is one people find and ask; that is why
expertise and the bio weigh most. The weights add up to 100 and are published in docs/sharing.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.api import NextStep, ProfileCompleteness

# (field, weight, hint in English, hint in Norwegian), the most valuable first.
STEPS: tuple[tuple[str, int, str, str], ...] = (
    ("expertise", 25, "Add your expertise", "Legg til kompetansen din"),
    ("bio", 20, "Write a few words about yourself", "Skriv noen ord om deg selv"),
    ("photo_url", 15, "Add a photo", "Legg til et bilde"),
    ("title", 15, "Add your job title", "Legg til stillingstittelen din"),
    ("department", 10, "Add your department", "Legg til avdelingen din"),
    ("languages", 10, "Add the languages you speak", "Legg til språkene du snakker"),
    ("location", 5, "Add where you work", "Legg til hvor du jobber"),
)
assert sum(weight for _, weight, _, _ in STEPS) == 100


def _filled(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return bool(value)


def completeness(profile: Mapping[str, Any], *, locale: str | None) -> ProfileCompleteness:
    norwegian = (locale or "").split("-")[0].split("_")[0].lower() in ("nb", "no", "nn")
    missing = [step for step in STEPS if not _filled(profile[step[0]])]
    percent = 100 - sum(weight for _, weight, _, _ in missing)
    first = missing[0] if missing else None
    return ProfileCompleteness(
        percent=percent,
        next_step=NextStep(field=first[0], hint=first[3] if norwegian else first[2]) if first else None,
        missing=[field for field, _, _, _ in missing],
    )

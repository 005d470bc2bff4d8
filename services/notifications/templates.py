"""Email texts in Norwegian (bokmål) and English, chosen by the recipient's locale."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


_FAVOURITE = {
    "en": {
        "subject": "{actor} favourited your post",
        "lead": "{actor} favourited your post:",
        "open": "Open the post",
        "why": "You get this email because someone favourited a post you wrote on Tillit.",
    },
    "nb": {
        "subject": "{actor} la innlegget ditt til i favoritter",
        "lead": "{actor} la innlegget ditt til i favoritter:",
        "open": "Åpne innlegget",
        "why": "Du får denne e-posten fordi noen la et innlegg du skrev på Tillit, til i favoritter.",
    },
}


def language_of(locale: str | None) -> str:
    language = (locale or "").replace("_", "-").split("-")[0].lower()
    if language in ("nb", "no", "nn"):
        return "nb"
    return language if language in _FAVOURITE else DEFAULT_LANGUAGE


def render_favourite(*, locale: str | None, actor: str, excerpt: str, link: str) -> RenderedEmail:
    words = _FAVOURITE[language_of(locale)]
    lead = words["lead"].format(actor=actor)
    text = f"{lead}\n\n  {excerpt}\n\n{words['open']}: {link}\n\n--\n{words['why']}\n"
    html = (
        f"<p>{escape(lead)}</p>"
        f"<blockquote>{escape(excerpt)}</blockquote>"
        f'<p><a href="{escape(link, quote=True)}">{escape(words["open"])}</a></p>'
        f'<hr><p style="color:#555">{escape(words["why"])}</p>'
    )
    return RenderedEmail(subject=words["subject"].format(actor=actor), text=text, html=html)

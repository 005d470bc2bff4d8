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


def language_of(locale: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """nb or en for a locale (nb, nb-NO, no, nn, en-GB, ...); anything else is the deployment's default."""
    language = (locale or "").replace("_", "-").split("-")[0].lower()
    if language in ("nb", "no", "nn"):
        return "nb"
    return language if language in _FAVOURITE else default


# Notification titles per kind and language: {actor} alone, {actor} and one other, {actor} and {others} others.
_TITLES: dict[str, dict[str, tuple[str, str, str]]] = {
    "post.liked": {
        "en": (
            "{actor} liked your post",
            "{actor} and 1 other liked your post",
            "{actor} and {others} others liked your post",
        ),
        "nb": (
            "{actor} likte innlegget ditt",
            "{actor} og 1 annen likte innlegget ditt",
            "{actor} og {others} andre likte innlegget ditt",
        ),
    },
    "post.favourited": {
        "en": (
            "{actor} favourited your post",
            "{actor} and 1 other favourited your post",
            "{actor} and {others} others favourited your post",
        ),
        "nb": (
            "{actor} la innlegget ditt til i favoritter",
            "{actor} og 1 annen la innlegget ditt til i favoritter",
            "{actor} og {others} andre la innlegget ditt til i favoritter",
        ),
    },
    "person.followed": {
        "en": ("{actor} followed you", "{actor} and 1 other followed you", "{actor} and {others} others followed you"),
        "nb": ("{actor} følger deg nå", "{actor} og 1 annen følger deg nå", "{actor} og {others} andre følger deg nå"),
    },
}
_SOMEONE = {"en": "Someone", "nb": "Noen"}


def notification_title(kind: str, *, newest_actor: str | None, actor_count: int, language: str) -> str:
    """'Kari and 3 others liked your post', in nb or en."""
    alone, one_other, others = _TITLES[kind][language]
    actor = newest_actor or _SOMEONE[language]
    template = alone if actor_count <= 1 else one_other if actor_count == 2 else others
    return template.format(actor=actor, others=actor_count - 1)


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

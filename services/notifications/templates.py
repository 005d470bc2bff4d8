"""Notification titles and email texts in Norwegian (bokmål) and English, chosen by the recipient's language.

The email bodies are Jinja2 templates kept here as strings rather than files, so they travel with the module
in every install (the package data of the image holds only *.sql). The HTML templates autoescape: every
name, excerpt and title written by a person is escaped there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

DEFAULT_LANGUAGE = "en"
LANGUAGES = ("en", "nb")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def language_of(locale: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """nb or en for a locale (nb, nb-NO, no, nn, en-GB, ...); anything else is the deployment's default."""
    language = (locale or "").replace("_", "-").split("-")[0].lower()
    if language in ("nb", "no", "nn"):
        return "nb"
    return language if language in LANGUAGES else default


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
    "post.commented": {
        "en": (
            "{actor} commented on your post",
            "{actor} and 1 other commented on your post",
            "{actor} and {others} others commented on your post",
        ),
        "nb": (
            "{actor} kommenterte innlegget ditt",
            "{actor} og 1 annen kommenterte innlegget ditt",
            "{actor} og {others} andre kommenterte innlegget ditt",
        ),
    },
    "thread.commented": {
        "en": (
            "{actor} also commented on a post you commented on",
            "{actor} and 1 other also commented on a post you commented on",
            "{actor} and {others} others also commented on a post you commented on",
        ),
        "nb": (
            "{actor} kommenterte også et innlegg du har kommentert",
            "{actor} og 1 annen kommenterte også et innlegg du har kommentert",
            "{actor} og {others} andre kommenterte også et innlegg du har kommentert",
        ),
    },
    "person.mentioned": {
        "en": (
            "{actor} mentioned you",
            "{actor} and 1 other mentioned you",
            "{actor} and {others} others mentioned you",
        ),
        "nb": ("{actor} nevnte deg", "{actor} og 1 annen nevnte deg", "{actor} og {others} andre nevnte deg"),
    },
    "praise.received": {
        "en": ("{actor} praised you", "{actor} and 1 other praised you", "{actor} and {others} others praised you"),
        "nb": ("{actor} ga deg ros", "{actor} og 1 annen ga deg ros", "{actor} og {others} andre ga deg ros"),
    },
    "answer.accepted": {
        "en": ("{actor} accepted your answer",) * 3,
        "nb": ("{actor} godtok svaret ditt",) * 3,
    },
    "idea.status_changed": {
        "en": ("{actor} set an idea you took part in to “{status}”: {reason}",) * 3,
        "nb": ("{actor} satte en idé du har deltatt i til «{status}»: {reason}",) * 3,
    },
    "campaign.closed": {
        "en": ("The campaign “{title}” has closed with {ideas} ideas",) * 3,
        "nb": ("Kampanjen «{title}» er avsluttet med {ideas} idéer",) * 3,
    },
    "qna.answered": {
        "en": ("{actor} answered your question",) * 3,
        "nb": ("{actor} svarte på spørsmålet ditt",) * 3,
    },
}
_SOMEONE = {"en": "Someone", "nb": "Noen"}
_IDEA_STATUS = {
    "en": {"new": "new", "under_review": "under review", "adopted": "adopted", "declined": "declined"},
    "nb": {"new": "ny", "under_review": "til vurdering", "adopted": "tatt i bruk", "declined": "avslått"},
}


def notification_title(
    kind: str,
    *,
    newest_actor: str | None,
    actor_count: int,
    language: str,
    detail: Mapping[str, Any] | None = None,
) -> str:
    """'Kari and 3 others liked your post', in nb or en. `detail` fills what some kinds say besides who:
    an idea's status and the reason, a closed campaign's title and its number of ideas."""
    alone, one_other, others = _TITLES[kind][language]
    actor = newest_actor or _SOMEONE[language]
    template = alone if actor_count <= 1 else one_other if actor_count == 2 else others
    detail = detail or {}
    status = detail.get("status", "")
    return template.format(
        actor=actor,
        others=actor_count - 1,
        status=_IDEA_STATUS[language].get(status, status),
        reason=detail.get("reason", ""),
        title=detail.get("title", ""),
        ideas=detail.get("ideas", 0),
    ).rstrip(": ")


# The notification kind behind each settings kind that has grouped titles (shared.api.SETTINGS_KIND_OF reversed).
_GROUPED_KIND = {"like": "post.liked", "favourite": "post.favourited", "follow": "person.followed"}

# Per settings kind: the subject of an email about one actor (kinds with grouped titles use those instead),
# and why the recipient gets it. Comment, mention, praise and campaign update are ready for the sharing
# features: their notifications plug in by naming the settings kind.
_KIND_WORDS: dict[str, dict[str, dict[str, str]]] = {
    "like": {
        "en": {"why": "You get this email because you chose email for likes on Tillit."},
        "nb": {"why": "Du får denne e-posten fordi du har valgt e-post for likerklikk på Tillit."},
    },
    "favourite": {
        "en": {"why": "You get this email because someone favourited a post you wrote on Tillit."},
        "nb": {"why": "Du får denne e-posten fordi noen la et innlegg du skrev på Tillit, til i favoritter."},
    },
    "follow": {
        "en": {"why": "You get this email because you chose email for new followers on Tillit."},
        "nb": {"why": "Du får denne e-posten fordi du har valgt e-post for nye følgere på Tillit."},
    },
    "comment": {
        "en": {
            "subject": "{actor} commented on your post",
            "why": "You get this email because someone commented on a post you wrote on Tillit.",
        },
        "nb": {
            "subject": "{actor} kommenterte innlegget ditt",
            "why": "Du får denne e-posten fordi noen kommenterte et innlegg du skrev på Tillit.",
        },
    },
    "mention": {
        "en": {
            "subject": "{actor} mentioned you",
            "why": "You get this email because someone mentioned you on Tillit.",
        },
        "nb": {
            "subject": "{actor} nevnte deg",
            "why": "Du får denne e-posten fordi noen nevnte deg på Tillit.",
        },
    },
    "praise": {
        "en": {
            "subject": "{actor} praised you",
            "why": "You get this email because someone praised you on Tillit.",
        },
        "nb": {
            "subject": "{actor} ga deg ros",
            "why": "Du får denne e-posten fordi noen ga deg ros på Tillit.",
        },
    },
    "campaign_update": {
        "en": {
            "subject": "{actor} posted an update in a campaign you follow",
            "why": "You get this email because you follow this campaign on Tillit.",
        },
        "nb": {
            "subject": "{actor} la ut en oppdatering i en kampanje du følger",
            "why": "Du får denne e-posten fordi du følger denne kampanjen på Tillit.",
        },
    },
}

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "open_post": "Open the post",
        "open_profile": "See their profile",
        "open_notifications": "Open your notifications",
        "preferences": "Choose which emails you get",
        "unsubscribe": "Turn off these emails",
        "digest_subject_daily": "Your daily summary from Tillit: {count} new",
        "digest_subject_weekly": "Your weekly summary from Tillit: {count} new",
        "digest_lead_daily": "Here is what happened on Tillit since yesterday's summary:",
        "digest_lead_weekly": "Here is what happened on Tillit since last week's summary:",
        "digest_why": "You get this summary because some of your notifications go to a summary email on Tillit.",
        "digest_more": "... and {count} more in the app",
    },
    "nb": {
        "open_post": "Åpne innlegget",
        "open_profile": "Se profilen",
        "open_notifications": "Åpne varslene dine",
        "preferences": "Velg hvilke e-poster du får",
        "unsubscribe": "Slå av disse e-postene",
        "digest_subject_daily": "Din daglige oppsummering fra Tillit: {count} nye",
        "digest_subject_weekly": "Din ukentlige oppsummering fra Tillit: {count} nye",
        "digest_lead_daily": "Dette har skjedd på Tillit siden gårsdagens oppsummering:",
        "digest_lead_weekly": "Dette har skjedd på Tillit siden forrige ukes oppsummering:",
        "digest_why": "Du får denne oppsummeringen fordi noen av varslene dine går til en oppsummering på e-post.",
        "digest_more": "... og {count} til i appen",
    },
}

EMAIL_KINDS = tuple(_KIND_WORDS)

_FOOTER_TEXT = """--
{{ why }}
{{ words.preferences }}: {{ links.preferences }}
{{ words.unsubscribe }}: {{ links.unsubscribe }}
"""
_FOOTER_HTML = """<hr>
<p style="color:#555;font-size:13px">{{ why }}<br>
<a href="{{ links.preferences }}">{{ words.preferences }}</a> ·
<a href="{{ links.unsubscribe }}">{{ words.unsubscribe }}</a></p>
"""

_TEMPLATES = {
    "notification.txt": """{{ lead }}
{% if excerpt %}

  {{ excerpt }}
{% endif %}

{{ action }}: {{ links.target }}

"""
    + _FOOTER_TEXT,
    "notification.html": """<!doctype html>
<html lang="{{ language }}"><body style="font-family:sans-serif">
<p>{{ lead }}</p>
{% if excerpt %}
<blockquote>{{ excerpt }}</blockquote>
{% endif %}
<p><a href="{{ links.target }}">{{ action }}</a></p>
"""
    + _FOOTER_HTML
    + "</body></html>\n",
    "digest.txt": """{{ lead }}

{% for item in items %}
- {{ item.title }}
{% if item.excerpt %}
    {{ item.excerpt }}
{% endif %}
  {{ item.url }}
{% endfor %}
{% if more %}
{{ more }}
{% endif %}

{{ words.open_notifications }}: {{ links.target }}

"""
    + _FOOTER_TEXT,
    "digest.html": """<!doctype html>
<html lang="{{ language }}"><body style="font-family:sans-serif">
<p>{{ lead }}</p>
<ul>
{% for item in items %}
<li><a href="{{ item.url }}">{{ item.title }}</a>{% if item.excerpt %}<br><q>{{ item.excerpt }}</q>{% endif %}</li>
{% endfor %}
</ul>
{% if more %}
<p>{{ more }}</p>
{% endif %}
<p><a href="{{ links.target }}">{{ words.open_notifications }}</a></p>
"""
    + _FOOTER_HTML
    + "</body></html>\n",
}

_ENVIRONMENT = Environment(
    loader=DictLoader(_TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class EmailLinks:
    target: str = ""  # where the email leads: the post, the profile, the notifications
    preferences: str = ""  # the notification settings page
    unsubscribe: str = ""  # the one-click link also in List-Unsubscribe


@dataclass(frozen=True)
class DigestItem:
    title: str
    url: str
    excerpt: str | None = None


def email_subject(kind: str, *, actor: str | None, actor_count: int, language: str) -> str:
    """The subject of an email of a settings kind (like, favourite, comment, ...) about its actors."""
    if kind in _GROUPED_KIND:
        return notification_title(_GROUPED_KIND[kind], newest_actor=actor, actor_count=actor_count, language=language)
    return _KIND_WORDS[kind][language]["subject"].format(actor=actor or _SOMEONE[language])


def render_notification_email(
    kind: str,
    *,
    language: str,
    actor: str | None,
    actor_count: int = 1,
    excerpt: str | None,
    links: EmailLinks,
    subject: str | None = None,
) -> RenderedEmail:
    """One notification by email; `kind` is the settings kind (like, favourite, follow, comment, ...).
    `subject`: the notification's own title, where it says more than the kind does (a status, a thread)."""
    words = _WORDS[language]
    subject = subject or email_subject(kind, actor=actor, actor_count=actor_count, language=language)
    context = {
        "language": language,
        "words": words,
        "lead": subject + (":" if excerpt else "."),
        "excerpt": excerpt,
        "action": words["open_profile"] if kind == "follow" and actor_count == 1 else words["open_post"],
        "links": links,
        "why": _KIND_WORDS[kind][language]["why"],
    }
    if kind == "follow" and actor_count > 1:
        context["action"] = words["open_notifications"]
    return RenderedEmail(
        subject=subject,
        text=_ENVIRONMENT.get_template("notification.txt").render(context),
        html=_ENVIRONMENT.get_template("notification.html").render(context),
    )


def render_digest(
    *, language: str, period: str, items: Sequence[DigestItem], more: int = 0, links: EmailLinks
) -> RenderedEmail:
    """The daily or weekly summary: one line per notification, newest first; `more` not listed."""
    words = _WORDS[language]
    context = {
        "language": language,
        "words": words,
        "lead": words[f"digest_lead_{period}"],
        "items": items,
        "more": words["digest_more"].format(count=more) if more else "",
        "links": links,
        "why": words["digest_why"],
    }
    return RenderedEmail(
        subject=words[f"digest_subject_{period}"].format(count=len(items) + more),
        text=_ENVIRONMENT.get_template("digest.txt").render(context),
        html=_ENVIRONMENT.get_template("digest.html").render(context),
    )

"""Unit tests of the email side of notifications: templates, the SMTP URL, the message's headers, and the
clock arithmetic of quiet hours and digests."""

import uuid
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from services.notifications.mailer import Mailer, SmtpTarget, latest_digest_slot, quiet_until
from services.notifications.templates import (
    EMAIL_KINDS,
    LANGUAGES,
    DigestItem,
    EmailLinks,
    email_subject,
    language_of,
    render_digest,
    render_notification_email,
)
from shared.api import DEFAULT_CHANNELS
from shared.settings import Settings

OSLO, NEW_YORK = ZoneInfo("Europe/Oslo"), ZoneInfo("America/New_York")
LINKS = EmailLinks(target="https://x/posts/1", preferences="https://x/settings", unsubscribe="https://x/u?token=t")


@pytest.mark.parametrize(
    ("locale", "language"),
    [("nb", "nb"), ("nb-NO", "nb"), ("no", "nb"), ("nn_NO", "nb"), ("en-GB", "en"), (None, "en"), ("de", "en")],
)
def test_language_follows_the_locale_with_english_as_fallback(locale: str | None, language: str) -> None:
    assert language_of(locale) == language


def test_the_deployments_default_language_when_the_locale_says_nothing_known() -> None:
    assert language_of("de", "nb") == "nb" and language_of(None, "nb") == "nb" and language_of("en", "nb") == "en"


def test_every_kind_a_person_chooses_for_has_an_email_in_both_languages() -> None:
    assert set(EMAIL_KINDS) == set(DEFAULT_CHANNELS)
    for kind in EMAIL_KINDS:
        for language in LANGUAGES:
            rendered = render_notification_email(kind, language=language, actor="Kari", excerpt="Hei", links=LINKS)
            assert "Kari" in rendered.subject and "Kari" in rendered.text and "Kari" in rendered.html
            assert LINKS.unsubscribe in rendered.text and LINKS.preferences in rendered.text


def test_grouped_subjects_count_the_others() -> None:
    assert email_subject("like", actor="Kari", actor_count=4, language="en") == "Kari and 3 others liked your post"
    assert email_subject("follow", actor="Kari", actor_count=2, language="nb") == "Kari og 1 annen følger deg nå"
    assert email_subject("mention", actor=None, actor_count=1, language="en") == "Someone mentioned you"


def test_favourite_email_names_who_and_which_post_and_escapes_html() -> None:
    rendered = render_notification_email(
        "favourite", language="nb", actor="Kari <script>", excerpt="Fisk & chips?", links=LINKS
    )
    assert rendered.subject == "Kari <script> la innlegget ditt til i favoritter"
    assert "Fisk & chips?" in rendered.text and "https://x/posts/1" in rendered.text
    assert "<script>" not in rendered.html and "Kari &lt;script&gt;" in rendered.html
    assert "Fisk &amp; chips?" in rendered.html
    assert 'href="https://x/posts/1"' in rendered.html and 'href="https://x/u?token=t"' in rendered.html


def test_digest_lists_each_item_escaped_and_counts_what_it_leaves_out() -> None:
    items = [DigestItem(title="<b>Kari</b> liked your post", url="https://x/posts/1", excerpt="A & B")]
    rendered = render_digest(language="en", period="weekly", items=items, more=2, links=LINKS)
    assert rendered.subject == "Your weekly summary from Tillit: 3 new"
    assert "<b>Kari</b> liked your post" in rendered.text and "and 2 more" in rendered.text
    assert "&lt;b&gt;Kari&lt;/b&gt;" in rendered.html and "A &amp; B" in rendered.html
    assert render_digest(language="nb", period="daily", items=items, links=LINKS).subject.startswith(
        "Din daglige oppsummering"
    )


def test_smtp_url_forms() -> None:
    assert SmtpTarget.from_url("smtp://127.0.0.1:8025") == SmtpTarget("127.0.0.1", 8025, None, None, False, False)
    secure = SmtpTarget.from_url("smtps://user%40corp:p%2Fw@mail.corp:465")
    assert (secure.username, secure.password, secure.use_tls) == ("user@corp", "p/w", True)
    assert SmtpTarget.from_url("smtp://mail.corp:587?starttls=true").start_tls is True
    with pytest.raises(ValueError, match="smtp://"):
        SmtpTarget.from_url("http://mail.corp")


def test_message_has_both_parts_and_stable_headers() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    settings = Settings(PUBLIC_URL="https://intranet.example/")
    mailer = Mailer(pool=None, settings=settings, schema="notifications")  # type: ignore[arg-type]
    email_id = uuid.uuid4()
    rendered = render_notification_email("favourite", language="en", actor="Kari", excerpt="Lunch?", links=LINKS)
    message = mailer._compose(
        email_id,
        to=("Åse Author", "ase@example.org"),
        rendered=rendered,
        kind="post.favourited",
        unsubscribe="tok",
        now=now,
    )
    assert message["Message-ID"] == f"<{email_id}@tillit>"
    assert message["To"].addresses[0].addr_spec == "ase@example.org"
    assert message["Date"].datetime == now
    assert message["List-Unsubscribe"] == "<https://intranet.example/api/unsubscribe?token=tok>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = message.get_body(("plain",))
    assert plain is not None and "https://x/posts/1" in plain.get_content()
    assert message.get_body(("html",)) is not None


@pytest.mark.parametrize(
    ("local", "start", "end", "until"),
    [
        # Across midnight: 22:00 to 07:00.
        ("2026-03-02 23:30", time(22), time(7), "2026-03-03 07:00"),
        ("2026-03-03 06:59", time(22), time(7), "2026-03-03 07:00"),
        ("2026-03-03 07:00", time(22), time(7), None),
        ("2026-03-02 21:59", time(22), time(7), None),
        # Within a day: 12:00 to 13:00.
        ("2026-03-02 12:30", time(12), time(13), "2026-03-02 13:00"),
        ("2026-03-02 13:30", time(12), time(13), None),
    ],
)
def test_quiet_hours_end_in_the_persons_time_zone(local: str, start: time, end: time, until: str | None) -> None:
    now = datetime.fromisoformat(local).replace(tzinfo=OSLO).astimezone(UTC)
    expected = datetime.fromisoformat(until).replace(tzinfo=OSLO).astimezone(UTC) if until else None
    assert quiet_until(now, start=start, end=end, zone=OSLO) == expected
    assert quiet_until(now, start=None, end=None, zone=OSLO) is None


def test_digest_slots_are_the_persons_hour_in_their_time_zone() -> None:
    now = datetime(2026, 3, 4, 13, 0, tzinfo=UTC)  # a Wednesday: 14:00 in Oslo, 08:00 in New York
    assert latest_digest_slot(now, frequency="daily", hour=8, weekday=1, zone=OSLO) == datetime(
        2026, 3, 4, 7, 0, tzinfo=UTC
    )
    assert latest_digest_slot(now, frequency="daily", hour=9, weekday=1, zone=NEW_YORK) == datetime(
        2026, 3, 3, 14, 0, tzinfo=UTC
    )
    # Weekly on Monday at 08:00 Oslo time; and on Wednesday at 15:00, not reached yet: last week's.
    assert latest_digest_slot(now, frequency="weekly", hour=8, weekday=1, zone=OSLO) == datetime(
        2026, 3, 2, 7, 0, tzinfo=UTC
    )
    assert latest_digest_slot(now, frequency="weekly", hour=15, weekday=3, zone=OSLO) == datetime(
        2026, 2, 25, 14, 0, tzinfo=UTC
    )

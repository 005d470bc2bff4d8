"""Unit tests of the email side of notifications: templates, the SMTP URL and the message's headers."""

import uuid
from datetime import UTC, datetime

import pytest

from services.notifications.mailer import Mailer, SmtpTarget
from services.notifications.templates import language_of, render_favourite
from shared.settings import Settings


@pytest.mark.parametrize(
    ("locale", "language"),
    [("nb", "nb"), ("nb-NO", "nb"), ("no", "nb"), ("nn_NO", "nb"), ("en-GB", "en"), (None, "en"), ("de", "en")],
)
def test_language_follows_the_locale_with_english_as_fallback(locale: str | None, language: str) -> None:
    assert language_of(locale) == language


def test_favourite_email_names_who_and_which_post_and_escapes_html() -> None:
    rendered = render_favourite(locale="nb", actor="Kari <script>", excerpt="Fisk & chips?", link="https://x/posts/1")
    assert rendered.subject == "Kari <script> la innlegget ditt til i favoritter"
    assert "Fisk & chips?" in rendered.text and "https://x/posts/1" in rendered.text
    assert "<script>" not in rendered.html and "Kari &lt;script&gt;" in rendered.html
    assert 'href="https://x/posts/1"' in rendered.html


def test_smtp_url_forms() -> None:
    assert SmtpTarget.from_url("smtp://127.0.0.1:8025") == SmtpTarget("127.0.0.1", 8025, None, None, False, False)
    secure = SmtpTarget.from_url("smtps://user%40corp:p%2Fw@mail.corp:465")
    assert (secure.username, secure.password, secure.use_tls) == ("user@corp", "p/w", True)
    assert SmtpTarget.from_url("smtp://mail.corp:587?starttls=true").start_tls is True
    with pytest.raises(ValueError, match="smtp://"):
        SmtpTarget.from_url("http://mail.corp")


def test_message_has_both_parts_and_stable_headers() -> None:
    mailer = Mailer(pool=None, settings=Settings(PUBLIC_URL="https://intranet.example/"), schema="notifications")  # type: ignore[arg-type]
    email_id, post_id = uuid.uuid4(), uuid.uuid4()
    row = {"post_id": post_id, "actor_id": "kari", "kind": "post.favourited"}
    details = {
        "recipient_locale": "en",
        "actor_name": "Kari Nordmann",
        "post_excerpt": "Lunch on Fridays?",
        "recipient_name": "Åse Author",
        "recipient_email": "ase@example.org",
    }
    message = mailer._compose(email_id, row, details)  # type: ignore[arg-type]
    assert message["Message-ID"] == f"<{email_id}@tillit>"
    assert message["To"].addresses[0].addr_spec == "ase@example.org"
    assert message["Date"].datetime <= datetime.now(UTC)
    plain = message.get_body(("plain",))
    assert plain is not None and f"https://intranet.example/posts/{post_id}" in plain.get_content()
    assert message.get_body(("html",)) is not None

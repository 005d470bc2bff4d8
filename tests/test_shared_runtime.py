"""The shared runtime's pieces on their own: contracts, cursors, tokens, settings and migrations."""

import time
import uuid
from datetime import UTC, datetime

import asyncpg
import jwt
import pytest
from pydantic import ValidationError

from shared import db
from shared.api import CreatePost, decode_cursor, encode_cursor
from shared.auth import Claims, TokenVerifier, mint_token
from shared.events import EventType, PersonRef, PostCreatedV1, PostLikedV1, new_envelope, parse_event
from shared.http import ProblemError
from shared.settings import Settings
from tests.harness import PG_ADMIN_URL, drop_database


def test_an_event_round_trips_through_its_envelope() -> None:
    data = PostLikedV1(
        post_id=uuid.uuid4(),
        post_author_id="a",
        actor=PersonRef(id="b", name="B"),
        like_count=1,
        favourite_count=0,
        version=3,
        occurred_at=datetime.now(UTC),
    )
    envelope = new_envelope(EventType.POST_LIKED, source="reactions", subject=str(data.post_id), data=data)
    event = parse_event(envelope.model_dump_json().encode())
    assert event.id == envelope.id and event.type == "post.liked.v1" and event.data == data
    assert envelope.specversion == "1.0" and envelope.source == "reactions"


def test_an_envelope_must_carry_its_own_contract() -> None:
    data = PostLikedV1(
        post_id=uuid.uuid4(),
        post_author_id="a",
        actor=PersonRef(id="b", name="B"),
        like_count=1,
        favourite_count=0,
        version=1,
        occurred_at=datetime.now(UTC),
    )
    with pytest.raises(TypeError):
        new_envelope(EventType.POST_CREATED, source="x", subject="y", data=data)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"type": "post.exploded.v1", "source": "x", "subject": "y", "data": {}}',
        b'{"type": "post.liked.v1", "source": "x", "subject": "y", "data": {"post_id": "nope"}}',
    ],
)
def test_malformed_events_are_refused(body: bytes) -> None:
    with pytest.raises((ValidationError, ValueError)):
        parse_event(body)


def test_post_created_accepts_only_known_audiences() -> None:
    with pytest.raises(ValidationError):
        PostCreatedV1.model_validate(
            {
                "post_id": str(uuid.uuid4()),
                "author": {"id": "a", "name": "A"},
                "kind": "post",
                "body": "b",
                "audience": {"type": "galaxy"},
                "created_at": datetime.now(UTC).isoformat(),
                "version": 1,
            }
        )


def test_cursor_round_trip_and_refusal() -> None:
    cursor = encode_cursor("2026-01-01T00:00:00+00:00", "user-1")
    assert decode_cursor(cursor, arity=2) == ["2026-01-01T00:00:00+00:00", "user-1"]
    assert decode_cursor(None, arity=2) is None
    for bad in ["!!!", encode_cursor("only-one"), encode_cursor({"a": 1})[:5]]:
        with pytest.raises(ProblemError) as error:
            decode_cursor(bad, arity=2)
        assert error.value.status == 422


def test_post_body_is_trimmed_and_bounded() -> None:
    assert CreatePost(body="  hei  ").body == "hei"
    with pytest.raises(ValidationError):
        CreatePost(body=" " * 5)
    with pytest.raises(ValidationError):
        CreatePost(body="x" * 10_001)


def test_tokens_verify_with_issuer_and_audience_when_configured() -> None:
    settings = Settings(JWT_SECRET="s" * 40, JWT_ISSUER="https://idp.example", JWT_AUDIENCE="tillit")
    verifier = TokenVerifier(settings)
    token = mint_token(settings, Claims(sub="u1", name="U", email="u@example.org", groups=["a"]))
    claims = verifier.verify(token)
    assert (claims.sub, claims.groups) == ("u1", ["a"])
    wrong_audience = jwt.encode(
        {"sub": "u1", "exp": int(time.time()) + 60, "iss": "https://idp.example", "aud": "other"}, "s" * 40, "HS256"
    )
    with pytest.raises(ProblemError) as error:
        verifier.verify(wrong_audience)
    assert error.value.status == 401


def test_production_refuses_the_development_secret() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(TILLIT_ENV="production")
    with pytest.raises(ValidationError, match="UNSUBSCRIBE_SECRET"):
        Settings(TILLIT_ENV="production", JWT_SECRET="a-real-secret-of-some-length")
    production = Settings(
        TILLIT_ENV="production", JWT_SECRET="a-real-secret-of-some-length", UNSUBSCRIBE_SECRET="another-real-one"
    )
    assert production.dev_signin_enabled is False
    assert Settings(JWT_ISSUER="https://idp.example").dev_signin_enabled is False


async def test_migrations_apply_once_and_refuse_an_edited_file(tmp_path) -> None:
    name = f"tillit_test_migrate_{uuid.uuid4().hex[:8]}"
    dsn = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    (tmp_path / "migrations").mkdir()
    migration = tmp_path / "migrations" / "0001_things.sql"
    migration.write_text("CREATE TABLE things (id int PRIMARY KEY);")
    try:
        first = await db.migrate(dsn, schema="things", migrations=tmp_path / "migrations")
        again = await db.migrate(dsn, schema="things", migrations=tmp_path / "migrations")
        assert first[-1].endswith("/0001_things.sql") and "shared/0001_outbox_inbox.sql" in first
        assert again == []
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM things.schema_migrations") == len(first)
        finally:
            await conn.close()
        migration.write_text("CREATE TABLE things (id bigint PRIMARY KEY);")
        with pytest.raises(db.MigrationChanged):
            await db.migrate(dsn, schema="things", migrations=tmp_path / "migrations")
    finally:
        await drop_database(name)


async def test_a_database_out_of_reach_is_503_with_retry_after_not_500() -> None:
    from fastapi import FastAPI
    from httpx import ASGITransport, AsyncClient

    from shared.http import install_problem_handlers

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/needs-the-database")
    async def needs_the_database() -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        reply = await client.get("/needs-the-database")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "2"
    assert reply.headers["content-type"].startswith("application/problem+json")


def test_an_event_carrying_u0000_is_malformed_but_an_escaped_backslash_is_not() -> None:
    import orjson

    from shared.events import EventType, PersonUpdatedV1, new_envelope, parse_event

    def body(name: str) -> bytes:
        data = PersonUpdatedV1(person_id="ada", name=name, version=1)
        return orjson.dumps(
            new_envelope(EventType.PERSON_UPDATED, source="people", subject="ada", data=data).model_dump(mode="json")
        )

    with pytest.raises(ValueError, match="U\\+0000"):
        parse_event(body("Ada\x00"))
    assert isinstance(parse_event(body("Ada \\u0000")).data, PersonUpdatedV1)

"""Typed settings read from the environment (12-factor), shared by every service."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The backend services behind the gateway, each with a `<name>_url` setting below.
BACKEND_SERVICES: tuple[str, ...] = ("people", "posts", "reactions", "notifications", "feeds", "search", "webhooks")

DEVELOPMENT_JWT_SECRET = "tillit-development-secret-do-not-use-in-production"
DEVELOPMENT_UNSUBSCRIBE_SECRET = "tillit-development-unsubscribe-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Literal["development", "production"] = Field(
        "development", validation_alias="TILLIT_ENV", description="production refuses development defaults"
    )
    database_url: str = "postgresql://postgres@127.0.0.1:5432/tillit"
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    namespace: str = Field("tillit", validation_alias="TILLIT_NAMESPACE", pattern=r"^[a-z][a-z0-9_]{0,40}$")
    smtp_url: str = "smtp://127.0.0.1:8025"
    mail_from: str = "Tillit <tillit@localhost>"
    jwt_secret: str = DEVELOPMENT_JWT_SECRET
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    gateway_port: int = 8000
    public_url: str = "http://localhost:8000"
    bind_host: str = Field("127.0.0.1", description="address the HTTP servers listen on; 0.0.0.0 in containers")

    # Where the gateway finds each service; each service also listens on the port of its own URL.
    people_url: str = "http://127.0.0.1:8001"
    posts_url: str = "http://127.0.0.1:8002"
    reactions_url: str = "http://127.0.0.1:8003"
    notifications_url: str = "http://127.0.0.1:8004"
    feeds_url: str = "http://127.0.0.1:8005"
    search_url: str = "http://127.0.0.1:8006"
    webhooks_url: str = "http://127.0.0.1:8007"

    # Broker tuning: a message is dead-lettered after this many failed deliveries.
    delivery_limit: int = Field(5, ge=1)
    consumer_prefetch: int = Field(200, ge=1)
    consumer_batch_size: int = Field(100, ge=1)
    consumer_batch_wait_ms: float = Field(5.0, ge=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)

    # Notifications and email (docs/notifications.md).
    default_locale: Literal["nb", "en"] = Field("en", description="language when neither token nor profile says")
    default_time_zone: str = Field("Europe/Oslo", description="time zone of digests and quiet hours by default")
    email_window_seconds: float = Field(
        120.0, ge=0, description="an email other than a favourite waits this long; skipped if read or active meanwhile"
    )
    email_hourly_cap: int = Field(10, ge=1, description="emails per person per hour; beyond it they go to the digest")
    unsubscribe_secret: str = Field(DEVELOPMENT_UNSUBSCRIBE_SECRET, description="signs List-Unsubscribe tokens")
    unsubscribe_token_days: int = Field(60, ge=1, description="how long an email's unsubscribe link works")

    # Roles, from the token's `groups` claim: who moderates reported content, who opens idea campaigns,
    # hosts live Q&A and sees participation insight.
    moderator_group: str = Field("moderators", description="members of this group moderate")
    leader_group: str = Field("leaders", description="members of this group lead")

    # Signed webhooks (docs/webhooks.md): who manages subscriptions, how deliveries are retried and when a
    # subscription that keeps failing is disabled.
    webhook_admin_group: str = Field("integrations", description="members of this group manage webhooks")
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="how long one delivery attempt may take")
    webhook_retry_base_seconds: float = Field(10.0, gt=0, description="the first retry's delay; doubled each time")
    webhook_retry_cap_seconds: float = Field(3600.0, gt=0, description="the longest delay between two attempts")
    webhook_max_attempts: int = Field(30, ge=1, description="attempts of one delivery before it is given up")
    webhook_disable_after_failures: int = Field(20, ge=1, description="consecutive failed attempts that disable")
    webhook_disable_after_seconds: float = Field(
        3600.0, ge=0, description="...and only once the subscription has been failing for at least this long"
    )
    webhook_concurrency: int = Field(16, ge=1, description="deliveries in flight per replica")

    db_pool_size: int = Field(10, ge=1)
    max_body_bytes: int = Field(128 * 1024, ge=1024)
    # Writes per person (the token's sub) at the gateway: a token bucket in each replica's memory, so with N
    # replicas behind a balancer one person gets up to N times this (docs/reliability.md).
    rate_limit_writes_per_minute: int = Field(
        600, ge=0, description="writes one person may make per minute on one gateway replica; 0 turns the limit off"
    )
    rate_limit_write_burst: int = Field(
        120, ge=1, description="writes one person may make at once before the per-minute rate holds them back"
    )
    dev_signin: bool = Field(True, validation_alias="TILLIT_DEV_SIGNIN")
    log_level: str = "INFO"

    @model_validator(mode="after")
    def refuse_development_defaults_in_production(self) -> Settings:
        if self.environment == "production" and self.jwt_secret == DEVELOPMENT_JWT_SECRET and not self.jwt_jwks_url:
            raise ValueError("JWT_SECRET is the development secret: set JWT_JWKS_URL or a real JWT_SECRET")
        if self.environment == "production" and self.unsubscribe_secret == DEVELOPMENT_UNSUBSCRIBE_SECRET:
            raise ValueError("UNSUBSCRIBE_SECRET is the development secret: set a real one")
        return self

    @property
    def production_issuer_configured(self) -> bool:
        return self.environment == "production" or bool(self.jwt_issuer or self.jwt_jwks_url)

    @property
    def dev_signin_enabled(self) -> bool:
        return self.dev_signin and not self.production_issuer_configured

    def service_url(self, service: str) -> str:
        return str(getattr(self, f"{service}_url"))

    def service_port(self, service: str) -> int:
        if service == "gateway":
            return self.gateway_port
        return urlsplit(self.service_url(service)).port or 80


@lru_cache
def get_settings() -> Settings:
    return Settings()

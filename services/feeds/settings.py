"""Settings of the feeds service alone, read from the environment like the shared ones."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDS_", env_file=None, extra="ignore", case_sensitive=False)

    active_days: int = Field(14, ge=1, description="fan-out reaches people who read a feed within this many days")
    max_entries: int = Field(800, ge=1, description="entries kept per home feed; older ones are trimmed")

    @property
    def active_window(self) -> timedelta:
        return timedelta(days=self.active_days)


@lru_cache
def get_feed_settings() -> FeedSettings:
    return FeedSettings()

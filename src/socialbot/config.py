"""Settings, read from ``SOCIALBOT_*`` environment variables and ``.env``.

Nested settings use ``__``: ``SOCIALBOT_X__API_KEY`` is ``settings.x.api_key``.
Every credential is a ``SecretStr``, so it never shows in a repr or a log line.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from socialbot.errors import ConfigurationError
from socialbot.models import NETWORKS

ENV_PREFIX = "SOCIALBOT_"


class NetworkSettings(BaseModel):
    """Settings common to every network; subclasses list their credentials."""

    credentials: ClassVar[tuple[str, ...]] = ()
    base_url: str

    def is_configured(self) -> bool:
        """True when at least one credential is set (a partial set is an error)."""
        return any(getattr(self, name) is not None for name in self.credentials)

    def missing(self) -> list[str]:
        return [name for name in self.credentials if getattr(self, name) is None]

    def secret_values(self) -> list[str]:
        """Every secret in this section, for redaction."""
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    @field_validator("base_url", "web_url", check_fields=False)
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class XSettings(NetworkSettings):
    """X (Twitter) API v2 with OAuth 1.0a user context."""

    credentials: ClassVar[tuple[str, ...]] = (
        "api_key",
        "api_secret",
        "access_token",
        "access_token_secret",
    )
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_secret: SecretStr | None = None
    base_url: str = "https://api.x.com"
    web_url: str = "https://x.com"


class FacebookSettings(NetworkSettings):
    """A Facebook Page through the Graph API."""

    credentials: ClassVar[tuple[str, ...]] = ("page_id", "page_access_token")
    page_id: str | None = None
    page_access_token: SecretStr | None = None
    base_url: str = "https://graph.facebook.com"
    web_url: str = "https://www.facebook.com"
    api_version: str = "v24.0"

    @field_validator("api_version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not value.startswith("v") or not value[1:].replace(".", "", 1).isdigit():
            raise ValueError("must look like v24.0")
        return value


class MastodonSettings(NetworkSettings):
    """A Mastodon account on one instance."""

    credentials: ClassVar[tuple[str, ...]] = ("access_token",)
    access_token: SecretStr | None = None
    base_url: str = "https://mastodon.social"
    visibility: str = "public"

    @field_validator("visibility")
    @classmethod
    def _visibility(cls, value: str) -> str:
        if value not in ("public", "unlisted", "private", "direct"):
            raise ValueError("must be public, unlisted, private or direct")
        return value


class BlueskySettings(NetworkSettings):
    """A Bluesky account on its PDS, logged in with an app password."""

    credentials: ClassVar[tuple[str, ...]] = ("handle", "app_password")
    handle: str | None = None
    app_password: SecretStr | None = None
    base_url: str = "https://bsky.social"
    web_url: str = "https://bsky.app"


class LinkedInSettings(NetworkSettings):
    """A LinkedIn organization page through the versioned REST API."""

    credentials: ClassVar[tuple[str, ...]] = ("access_token", "author")
    access_token: SecretStr | None = None
    author: str | None = None
    base_url: str = "https://api.linkedin.com"
    web_url: str = "https://www.linkedin.com"
    # LinkedIn sunsets each version about a year after its release.
    api_version: str = "202609"
    token_expires: date | None = None

    @field_validator("api_version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if len(value) != 6 or not value.isdigit():
            raise ValueError("must be YYYYMM, e.g. 202609")
        return value

    @field_validator("author")
    @classmethod
    def _organization_urn(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"urn:li:organization:\d+", value.strip()):
            raise ValueError("must be the page's organization URN, e.g. urn:li:organization:123")
        return value.strip() if value is not None else None


class Settings(BaseSettings):
    """Everything socialbot reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        # A blank line such as `SOCIALBOT_X__API_KEY=` (an .env copied from the
        # example) means "not set", not an empty credential or an empty list.
        env_ignore_empty=True,
        extra="ignore",
    )

    queue_dir: Path = Path("queue")
    database_url: str = "sqlite:///socialbot.db"
    networks: Annotated[list[str] | None, NoDecode] = None
    run_budget_seconds: float = Field(default=240.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    max_rate_limit_wait_seconds: float = Field(default=60.0, ge=0)
    reconcile_after_seconds: float = Field(default=30.0, ge=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    hashtags_file: Path = Path("hashtags.yaml")
    utm: bool = False
    log_level: str = "WARNING"

    x: XSettings = XSettings()
    facebook: FacebookSettings = FacebookSettings()
    mastodon: MastodonSettings = MastodonSettings()
    bluesky: BlueskySettings = BlueskySettings()
    linkedin: LinkedInSettings = LinkedInSettings()

    @field_validator("networks", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            unknown = [name for name in value if name not in NETWORKS]
            if unknown:
                raise ValueError(
                    f"unknown network {unknown[0]!r} (supported: {', '.join(NETWORKS)})"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _sqlite_url(cls, value: str) -> str:
        if not value.startswith("sqlite:///"):
            raise ValueError("must be a sqlite:///path URL")
        return value

    def section(self, network: str) -> NetworkSettings:
        section: NetworkSettings = getattr(self, network)
        return section

    @property
    def database_path(self) -> str:
        """The SQLite file behind ``database_url`` (``:memory:`` allowed)."""
        return self.database_url.removeprefix("sqlite:///")

    def active_networks(self) -> list[str]:
        """Networks with credentials, narrowed by ``SOCIALBOT_NETWORKS``.

        Raises ConfigurationError naming the first missing variable when a
        network has only part of its credentials.
        """
        active = []
        for name in NETWORKS:
            section = self.section(name)
            if self.networks is not None and name not in self.networks:
                continue
            if not section.is_configured():
                continue
            missing = section.missing()
            if missing:
                raise ConfigurationError(
                    f"{env_name(name, missing[0])} is not set, but other {name} "
                    "credentials are: set it or remove them"
                )
            active.append(name)
        return active

    def secret_values(self) -> list[str]:
        return [value for name in NETWORKS for value in self.section(name).secret_values()]


class ImportSettings(BaseSettings):
    """``socialbot import``: how far one fetch may go (``SOCIALBOT_IMPORT__*``)."""

    model_config = SettingsConfigDict(
        env_prefix=f"{ENV_PREFIX}IMPORT__",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    allow_private_addresses: bool = False
    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    page_timeout_seconds: float = Field(default=20.0, gt=0)
    max_items: int = Field(default=50, ge=1)
    max_redirects: int = Field(default=5, ge=0, le=20)


def load_import_settings(**overrides: Any) -> ImportSettings:
    """The import settings, a validation error made one plain sentence."""
    try:
        return ImportSettings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = "__".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"{ENV_PREFIX}IMPORT__{field}: {message}") from None


def env_name(network: str, field: str) -> str:
    """The environment variable behind ``settings.<network>.<field>``."""
    return f"{ENV_PREFIX}{network}__{field}".upper()


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning validation errors into one plain sentence."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        parts = [str(part) for part in error["loc"] if not isinstance(part, int)]
        variable = ENV_PREFIX + "__".join(parts).upper()
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"{variable}: {message}") from None

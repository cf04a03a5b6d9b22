"""Settings, read from ``SOCIALBOT_*`` environment variables and ``.env``.

Nested settings use ``__``: ``SOCIALBOT_X__API_KEY`` is ``settings.x.api_key``.
Every credential is a ``SecretStr``, so it never shows in a repr or a log line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, ValidationError, create_model, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from socialbot.errors import ConfigurationError
from socialbot.networks import ENV_PREFIX, NETWORKS, PROFILES, NetworkSettings
from socialbot.networks.bluesky import BlueskySettings
from socialbot.networks.facebook import FacebookSettings
from socialbot.networks.linkedin import LinkedInSettings
from socialbot.networks.mastodon import MastodonSettings
from socialbot.networks.x import XSettings

# The sections of the first five networks, where they were always imported from.
__all__ = [
    "ENV_PREFIX",
    "BlueskySettings",
    "CoreSettings",
    "FacebookSettings",
    "LinkedInSettings",
    "MastodonSettings",
    "NetworkSettings",
    "Settings",
    "XSettings",
    "env_name",
    "load_settings",
]


class CoreSettings(BaseSettings):
    """Everything socialbot reads from its environment but the networks' sections.

    ``Settings`` adds one field per network of ``socialbot.networks``, of that
    network's settings class, so adding a network never touches this file.
    """

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

    if TYPE_CHECKING:
        # The network sections (settings.x, settings.mastodon, ...) are added from
        # the registry below; to the type checker they are attributes of any kind.
        def __getattr__(self, name: str) -> Any: ...

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


def _with_networks() -> type[CoreSettings]:
    fields: dict[str, Any] = {
        name: (profile.settings, Field(default_factory=profile.settings))
        for name, profile in PROFILES.items()
    }
    made: type[CoreSettings] = create_model(
        "Settings", __base__=CoreSettings, __module__=__name__, **fields
    )
    made.__doc__ = """Everything socialbot reads from its environment, a section per network."""
    return made


if TYPE_CHECKING:
    Settings = CoreSettings
else:
    Settings = _with_networks()


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

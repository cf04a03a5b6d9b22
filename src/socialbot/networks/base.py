"""What a network profile declares, and the settings every network section shares.

Light on purpose: pydantic and the standard library only, so ``socialbot.models``
and ``socialbot.config`` can read the registry without importing any network
library (tweepy, httpx) or the composer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import BaseModel, SecretStr, field_validator

ENV_PREFIX = "SOCIALBOT_"

Counting = Literal["twitter", "mastodon", "graphemes", "utf16", "little-text"]
"""How a network counts a text (the functions live in ``socialbot.compose.counting``):
twitter-text's weighted length; graphemes with each URL at a fixed weight; grapheme
clusters; UTF-16 code units; UTF-16 code units of the LinkedIn-escaped text."""

RichText = Literal["plain", "facets", "little-text"]
"""What a post's text needs besides itself: nothing, Bluesky facets (byte ranges that
make links and hashtags live), or LinkedIn "little text" escaping."""


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


@dataclass(frozen=True)
class Profile:
    """Everything the rest of socialbot asks about one network."""

    name: str
    display_name: str
    settings: type[NetworkSettings]
    adapter: str
    """``module:Class`` of the adapter, imported only when a post is sent."""
    sandbox: str
    """``module:Class`` of the sandbox fake."""
    max_characters: int
    """The text limit when the network has not told us its own."""
    counting: Counting
    url_weight: int | None = None
    """What one URL counts for, when the network weighs links (None: as written)."""
    max_bytes: int | None = None
    """A cap on the text's UTF-8 bytes besides its length (Bluesky)."""
    rich_text: RichText = "plain"
    links_clickable: bool = True
    """The network makes a bare URL in the text a link."""
    hashtags_live: bool = True
    """The network makes ``#word`` a hashtag."""
    link_card: bool = False
    """The post carries the release link as a card (title, description)."""
    languages: bool = False
    """The post carries its language."""
    idempotent: bool = False
    """Resending with the same key can never create a second post."""
    idempotency_window: timedelta | None = None
    """How long the network remembers the key (None: for ever)."""
    can_find: bool = False
    """The account's recent posts can be listed, to find an uncertain one."""
    can_delete: bool = False
    media: bool = False
    """socialbot sends images to this network (none yet)."""
    post_hosts: tuple[str, ...] = ()
    """Hosts of the network's public post addresses, besides the configured web address
    (what ``resolve --posted URL`` accepts)."""
    setup_requests: int = 0
    """Requests a drain makes to the network before its first post (a login, the instance's
    limits); the drain starts the networks with the most requests in a row first."""

    def env_names(self) -> list[str]:
        """The ``SOCIALBOT_*`` variables of this network's settings."""
        return [f"{ENV_PREFIX}{self.name}__{field}".upper() for field in self.settings.model_fields]

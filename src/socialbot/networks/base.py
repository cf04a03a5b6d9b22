"""What a network profile declares, and the settings every network section shares.

Light on purpose: pydantic and the standard library only, so ``socialbot.models``
and ``socialbot.config`` can read the registry without importing any network
library (tweepy, httpx) or the composer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
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

LinkRule = Literal["x", "mastodon", "bluesky"]
"""Whose link finder a text follows: X's twitter-text, Mastodon's, or the Bluesky app's
(``socialbot.compose.links``)."""

Lead = Literal["full", "summary", "first"]
"""How much of the release leads a post (see ``socialbot.compose.ShapingRules``)."""

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
WEBP = "image/webp"

AltCounting = Literal["graphemes", "characters", "utf16"]
"""How alt text is counted: grapheme clusters, Unicode code points ("characters"
as Ruby and JSON Schema count them), or UTF-16 code units (Java, JavaScript)."""


MEDIA_LIMITS_KEY = "media-limits:"
"""Key-value prefix of the image limits a network reports about itself, kept by its
adapter as the network reports them (JSON) and read by its profile's ``reported_images``."""


@dataclass(frozen=True)
class ImageLimits:
    """What one network accepts as an image, and how long its alt text may be.

    The source of each figure is in docs/media.md.
    """

    network: str
    max_bytes: int
    formats: frozenset[str]
    """MIME types the network takes for a still image."""
    max_pixels: int | None = None
    """Width × height, at most."""
    max_side: int | None = None
    """The longer side, at most."""
    max_side_sum: int | None = None
    """Width + height, at most (Telegram)."""
    max_aspect: float | None = None
    """Longer side ÷ shorter side, at most (Telegram); cannot be fixed by scaling."""
    max_alt: int | None = None
    """Alt text length, at most; None where the network takes no alt text or
    documents no maximum."""
    alt_counting: AltCounting = "characters"


class NetworkSettings(BaseModel):
    """Settings common to every network; subclasses list their credentials."""

    credentials: ClassVar[tuple[str, ...]] = ()
    base_url: str

    def is_configured(self) -> bool:
        """True when at least one credential is set (a partial set is an error)."""
        return any(getattr(self, name) is not None for name in self.credentials)

    def missing(self) -> list[str]:
        return [name for name in self.credentials if getattr(self, name) is None]

    def credential_warnings(self, today: date) -> list[str]:
        """Credentials to renew soon or already expired; none unless the network says."""
        return []

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


@dataclass(frozen=True, eq=False)  # one per network: identity is equality, and cheaper to build
class Profile:
    """Everything the rest of socialbot asks about one network."""

    name: str
    display_name: str
    settings: type[NetworkSettings]
    colour: str
    """The accent of its post previews on the desk (``#rrggbb``), close to its brand's."""
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
    link_rule: LinkRule | None = None
    """Whose link finder the network's text follows. None: the network publishes none, so
    the release link is written so that Mastodon's and the Bluesky app's would both take it
    whole. Where the network finds links itself (plain text), a link it would not take
    whole is refused."""
    mentions_parsed: bool = False
    """The network's own parser makes ``@name`` in the text a mention (so a handle the
    team did not map is kept from becoming one)."""
    max_hashtags: int = 3
    """Hashtags in a post at most, those in the text included (the team may change it)."""
    lead: Lead = "full"
    lead_length: int | None = None
    """The lead's length at most, as the network counts it (None: as far as there is room)."""
    images: ImageLimits | None = None
    """What the network takes as an image; None: socialbot sends it none."""
    reported_images: Callable[[ImageLimits, object], ImageLimits] | None = None
    """Reads the image limits the network reports about itself (a Mastodon instance's),
    as its adapter keeps them under ``MEDIA_LIMITS_KEY`` + name, over ``images``."""
    card_thumbnail: bool = False
    """The link card takes a thumbnail socialbot uploads: a release's first image."""
    caption_characters: int | None = None
    """The text limit when the text travels as the caption of the release's photos."""
    idempotent: bool = False
    """Resending with the same key can never create a second post."""
    idempotency_window: timedelta | None = None
    """How long the network remembers the key (None: for ever)."""
    can_find: bool = False
    """The account's recent posts can be listed, to find an uncertain one."""
    can_delete: bool = False
    post_hosts: tuple[str, ...] = ()
    """Hosts of the network's public post addresses, besides the configured web address
    (what ``resolve --posted URL`` accepts)."""
    setup_requests: int = 0
    """Requests a drain makes to the network before its first post (a login, the instance's
    limits); the drain starts the networks with the most requests in a row first."""

    def env_names(self) -> list[str]:
        """The ``SOCIALBOT_*`` variables of this network's settings."""
        return [f"{ENV_PREFIX}{self.name}__{field}".upper() for field in self.settings.model_fields]

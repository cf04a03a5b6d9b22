"""A Mastodon account on its instance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from socialbot.networks.base import GIF, JPEG, PNG, ImageLimits, NetworkSettings, Profile


class MastodonSettings(NetworkSettings):
    """A Mastodon account on one instance."""

    credentials: ClassVar[tuple[str, ...]] = ("access_token",)
    access_token: SecretStr | None = Field(
        None,
        description=(
            "Access token with the `write:statuses`, `write:media`, `read:statuses` and "
            "`read:accounts` scopes."
        ),
    )
    base_url: str = Field(
        "https://mastodon.social",
        description="The Mastodon instance the account lives on (`https://`, no path).",
    )
    visibility: str = Field(
        "public",
        description="Visibility of each status: `public`, `unlisted`, `private` or `direct`.",
    )

    @field_validator("visibility")
    @classmethod
    def _visibility(cls, value: str) -> str:
        if value not in ("public", "unlisted", "private", "direct"):
            raise ValueError("must be public, unlisted, private or direct")
        return value


def instance_image_limits(base: ImageLimits, media_attachments: object) -> ImageLimits:
    """Limits for one Mastodon instance from ``configuration.media_attachments`` of
    its ``GET /api/v2/instance``; a missing or malformed value keeps ``base``'s."""
    if not isinstance(media_attachments, Mapping):
        return base

    def positive(key: str, default: int) -> int:
        value = media_attachments.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return default

    formats = base.formats
    types = media_attachments.get("supported_mime_types")
    if isinstance(types, list):
        images = frozenset(t for t in types if isinstance(t, str) and t.startswith("image/"))
        formats = images or base.formats
    return replace(
        base,
        max_bytes=positive("image_size_limit", base.max_bytes),
        max_pixels=positive("image_matrix_limit", base.max_pixels or 0),
        formats=formats,
        max_alt=positive("description_limit", base.max_alt or 0),
    )


PROFILE = Profile(
    name="mastodon",
    display_name="Mastodon",
    settings=MastodonSettings,
    colour="#4b3fb5",
    adapter="socialbot.adapters.mastodon:MastodonAdapter",
    sandbox="socialbot.sandbox.mastodon:MastodonSandbox",
    # Stock Mastodon's limits, used until the instance reports its own.
    max_characters=500,
    counting="mastodon",
    url_weight=23,
    link_rule="mastodon",
    mentions_parsed=True,
    max_hashtags=5,
    # The defaults for an instance that does not publish its own (instance_image_limits).
    images=ImageLimits(
        "mastodon",
        max_bytes=10 * 1024 * 1024,
        formats=frozenset({JPEG, PNG, GIF}),
        max_pixels=16_777_216,
        max_alt=1500,
        alt_counting="characters",
    ),
    reported_images=instance_image_limits,
    idempotent=True,
    # PostStatusService keeps the key for 3,600 s after creating the status. We
    # claim five minutes less, so a resend decided near the end of the hour
    # (a run lasts at most a few minutes) still reaches the instance in time.
    idempotency_window=timedelta(minutes=55),
    can_find=True,
    can_delete=True,
    setup_requests=1,  # the instance's limits (GET /api/v2/instance), once per drain
)

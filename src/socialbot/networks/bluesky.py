"""A Bluesky account on its PDS, logged in with an app password."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from socialbot.networks.base import JPEG, PNG, WEBP, ImageLimits, NetworkSettings, Profile


class BlueskySettings(NetworkSettings):
    """A Bluesky account on its PDS, logged in with an app password."""

    credentials: ClassVar[tuple[str, ...]] = ("handle", "app_password")
    handle: str | None = Field(None, description="The account's handle, without the `@`.")
    app_password: SecretStr | None = Field(
        None,
        description=(
            "An app password (Settings → Privacy and security → App passwords), never the "
            "account's own password."
        ),
    )
    base_url: str = Field(
        "https://bsky.social",
        description="The account's PDS; change it only for an account not hosted by Bluesky.",
    )
    web_url: str = Field("https://bsky.app", description="Where public post addresses point.")


PROFILE = Profile(
    name="bluesky",
    display_name="Bluesky",
    settings=BlueskySettings,
    colour="#0a5fbf",
    adapter="socialbot.adapters.bluesky:BlueskyAdapter",
    sandbox="socialbot.sandbox.bluesky:BlueskySandbox",
    # app.bsky.feed.post: maxGraphemes 300, maxLength 3000 (bytes).
    max_characters=300,
    counting="graphemes",
    max_bytes=3000,
    rich_text="facets",
    link_rule="bluesky",
    max_hashtags=2,
    images=ImageLimits(
        "bluesky",
        max_bytes=1_000_000,
        formats=frozenset({JPEG, PNG, WEBP}),
        max_side=2000,
        max_alt=1000,
        alt_counting="utf16",
    ),
    card_thumbnail=True,  # external.thumb, a blob uploaded first
    idempotent=True,  # the record key is derived from the delivery's key
    idempotency_window=None,  # a record key stays taken for as long as the post exists
    can_find=True,
    can_delete=True,
    setup_requests=1,  # createSession, unless the session kept from the last run still works
    post_hosts=("bsky.app",),
)

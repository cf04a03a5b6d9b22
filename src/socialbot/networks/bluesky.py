"""A Bluesky account on its PDS, logged in with an app password."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr

from socialbot.networks.base import NetworkSettings, Profile


class BlueskySettings(NetworkSettings):
    """A Bluesky account on its PDS, logged in with an app password."""

    credentials: ClassVar[tuple[str, ...]] = ("handle", "app_password")
    handle: str | None = None
    app_password: SecretStr | None = None
    base_url: str = "https://bsky.social"
    web_url: str = "https://bsky.app"


PROFILE = Profile(
    name="bluesky",
    display_name="Bluesky",
    settings=BlueskySettings,
    adapter="socialbot.adapters.bluesky:BlueskyAdapter",
    sandbox="socialbot.sandbox.bluesky:BlueskySandbox",
    # app.bsky.feed.post: maxGraphemes 300, maxLength 3000 (bytes).
    max_characters=300,
    counting="graphemes",
    max_bytes=3000,
    rich_text="facets",
    link_card=True,
    languages=True,
    idempotent=True,  # the record key is derived from the delivery's key
    idempotency_window=None,  # a record key stays taken for as long as the post exists
    can_find=True,
    can_delete=True,
)

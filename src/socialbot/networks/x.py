"""X (Twitter): API v2 with OAuth 1.0a user context, posted through tweepy."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from socialbot.networks.base import GIF, JPEG, PNG, WEBP, ImageLimits, NetworkSettings, Profile


class XSettings(NetworkSettings):
    """X (Twitter) API v2 with OAuth 1.0a user context."""

    credentials: ClassVar[tuple[str, ...]] = (
        "api_key",
        "api_secret",
        "access_token",
        "access_token_secret",
    )
    api_key: SecretStr | None = Field(
        None,
        description="The app's API Key (the OAuth 1.0a consumer key).",
    )
    api_secret: SecretStr | None = Field(
        None,
        description="The app's API Key Secret (the consumer secret).",
    )
    access_token: SecretStr | None = Field(
        None,
        description=(
            "The posting account's Access Token, generated after the app was given Read and write "
            "permission."
        ),
    )
    access_token_secret: SecretStr | None = Field(
        None,
        description="The posting account's Access Token Secret.",
    )
    base_url: str = Field(
        "https://api.x.com",
        description="Where X API requests go (the sandbox, a proxy).",
    )
    web_url: str = Field("https://x.com", description="Where public post addresses point.")


PROFILE = Profile(
    name="x",
    display_name="X",
    settings=XSettings,
    colour="#000000",
    adapter="socialbot.adapters.x:XAdapter",
    sandbox="socialbot.sandbox.x:XSandbox",
    max_characters=280,
    counting="twitter",
    url_weight=23,
    link_rule="x",
    mentions_parsed=True,
    max_hashtags=2,
    images=ImageLimits(
        "x",
        max_bytes=5_000_000,
        formats=frozenset({JPEG, PNG, GIF, WEBP}),
        max_alt=1000,
        alt_counting="utf16",
    ),
    can_find=True,
    can_delete=True,
    post_hosts=(
        "x.com",
        "www.x.com",
        "mobile.x.com",
        "twitter.com",
        "www.twitter.com",
        "mobile.twitter.com",
    ),
)

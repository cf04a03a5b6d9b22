"""X (Twitter): API v2 with OAuth 1.0a user context, posted through tweepy."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr

from socialbot.networks.base import NetworkSettings, Profile


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


PROFILE = Profile(
    name="x",
    display_name="X",
    settings=XSettings,
    adapter="socialbot.adapters.x:XAdapter",
    sandbox="socialbot.sandbox.x:XSandbox",
    max_characters=280,
    counting="twitter",
    url_weight=23,
    can_find=True,
    can_delete=True,
)

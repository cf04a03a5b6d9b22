"""A Facebook Page through the Graph API."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from socialbot.networks.base import GIF, JPEG, PNG, ImageLimits, NetworkSettings, Profile


class FacebookSettings(NetworkSettings):
    """A Facebook Page through the Graph API."""

    credentials: ClassVar[tuple[str, ...]] = ("page_id", "page_access_token")
    page_id: str | None = Field(None, description="The Facebook Page's numeric ID.")
    page_access_token: SecretStr | None = Field(
        None,
        description=(
            "A Page access token with `pages_manage_posts` and `pages_read_engagement` (a Page "
            "token from a long-lived user token, or a system user's token)."
        ),
    )
    base_url: str = Field("https://graph.facebook.com", description="Where Graph API requests go.")
    web_url: str = Field(
        "https://www.facebook.com",
        description="Where public post addresses point.",
    )
    api_version: str = Field(
        "v24.0",
        description=(
            "Graph API version. Meta retires each version about two years after its release, so "
            "keep it current."
        ),
    )

    @field_validator("api_version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not value.startswith("v") or not value[1:].replace(".", "", 1).isdigit():
            raise ValueError("must look like v24.0")
        return value


PROFILE = Profile(
    name="facebook",
    display_name="Facebook",
    settings=FacebookSettings,
    colour="#1b4ea0",
    adapter="socialbot.adapters.facebook:FacebookAdapter",
    sandbox="socialbot.sandbox.facebook:FacebookSandbox",
    max_characters=63_206,
    counting="utf16",
    max_hashtags=3,
    lead="first",
    lead_length=500,  # Facebook shows about 480 characters before "See more"
    images=ImageLimits(
        "facebook",
        max_bytes=4_000_000,
        formats=frozenset({JPEG, PNG, GIF, "image/bmp", "image/tiff"}),
    ),
    can_find=True,
    can_delete=True,
    post_hosts=("www.facebook.com", "facebook.com", "m.facebook.com", "web.facebook.com"),
)

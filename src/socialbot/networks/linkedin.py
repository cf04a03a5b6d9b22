"""A LinkedIn organization page through the versioned REST API."""

from __future__ import annotations

import re
from datetime import date
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from socialbot.networks.base import GIF, JPEG, PNG, ImageLimits, NetworkSettings, Profile


class LinkedInSettings(NetworkSettings):
    """A LinkedIn organization page through the versioned REST API."""

    credentials: ClassVar[tuple[str, ...]] = ("access_token", "author")
    access_token: SecretStr | None = Field(
        None,
        description=(
            "Access token of a Super or Content admin of the page, with `w_organization_social`, "
            "`r_organization_social` and `r_organization_admin`. It lasts 60 days."
        ),
    )
    author: str | None = Field(
        None,
        description="The page, as its organization URN `urn:li:organization:N`.",
    )
    base_url: str = Field("https://api.linkedin.com", description="Where LinkedIn API requests go.")
    web_url: str = Field(
        "https://www.linkedin.com",
        description="Where public post addresses point.",
    )
    api_version: str = Field(
        "202609",
        description=(
            "The `LinkedIn-Version` header (`YYYYMM`). LinkedIn switches each version off about a "
            "year after its release."
        ),
    )
    token_expires: date | None = Field(
        None,
        description=(
            "The access token's expiry date (`YYYY-MM-DD`): `status` and `networks` warn 14 days "
            "before it."
        ),
    )

    def credential_warnings(self, today: date) -> list[str]:
        expires = self.token_expires
        if not self.is_configured() or expires is None:
            return []
        left = (expires - today).days
        if left < 0:
            return [f"the LinkedIn access token expired on {expires}: renew it"]
        if left < 14:
            return [f"the LinkedIn access token expires on {expires} ({left} days): renew it"]
        return []

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


PROFILE = Profile(
    name="linkedin",
    display_name="LinkedIn",
    settings=LinkedInSettings,
    colour="#0a5a8c",
    adapter="socialbot.adapters.linkedin:LinkedInAdapter",
    sandbox="socialbot.sandbox.linkedin:LinkedInSandbox",
    max_characters=3000,
    counting="little-text",
    rich_text="little-text",
    max_hashtags=5,
    lead="first",
    lead_length=210,  # LinkedIn shows about 210 before "...more"
    images=ImageLimits(
        "linkedin",
        max_bytes=5_000_000,
        formats=frozenset({JPEG, PNG, GIF}),
        max_pixels=36_152_319,
        max_alt=4086,
        alt_counting="utf16",
    ),
    card_thumbnail=True,  # the article's thumbnail, an image uploaded first
    can_find=True,
    can_delete=True,
    post_hosts=("www.linkedin.com", "linkedin.com"),
)

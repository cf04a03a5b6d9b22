"""A LinkedIn organization page through the versioned REST API."""

from __future__ import annotations

import re
from datetime import date
from typing import ClassVar

from pydantic import SecretStr, field_validator

from socialbot.networks.base import NetworkSettings, Profile


class LinkedInSettings(NetworkSettings):
    """A LinkedIn organization page through the versioned REST API."""

    credentials: ClassVar[tuple[str, ...]] = ("access_token", "author")
    access_token: SecretStr | None = None
    author: str | None = None
    base_url: str = "https://api.linkedin.com"
    web_url: str = "https://www.linkedin.com"
    # LinkedIn sunsets each version about a year after its release.
    api_version: str = "202609"
    token_expires: date | None = None

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
    adapter="socialbot.adapters.linkedin:LinkedInAdapter",
    sandbox="socialbot.sandbox.linkedin:LinkedInSandbox",
    max_characters=3000,
    counting="little-text",
    rich_text="little-text",
    link_card=True,
    can_find=True,
    can_delete=True,
)

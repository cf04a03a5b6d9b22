"""A Facebook Page through the Graph API."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr, field_validator

from socialbot.networks.base import NetworkSettings, Profile


class FacebookSettings(NetworkSettings):
    """A Facebook Page through the Graph API."""

    credentials: ClassVar[tuple[str, ...]] = ("page_id", "page_access_token")
    page_id: str | None = None
    page_access_token: SecretStr | None = None
    base_url: str = "https://graph.facebook.com"
    web_url: str = "https://www.facebook.com"
    api_version: str = "v24.0"

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
    adapter="socialbot.adapters.facebook:FacebookAdapter",
    sandbox="socialbot.sandbox.facebook:FacebookSandbox",
    max_characters=63_206,
    counting="utf16",
    link_card=True,
    can_find=True,
    can_delete=True,
)

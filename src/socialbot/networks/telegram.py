"""A Telegram channel, posted to by a bot through the Bot API."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, SecretStr, field_validator

from socialbot.networks.base import JPEG, PNG, ImageLimits, NetworkSettings, Profile


class TelegramSettings(NetworkSettings):
    """A Telegram channel (``@name`` or its numeric chat id) and the bot that posts there."""

    credentials: ClassVar[tuple[str, ...]] = ("bot_token", "chat_id")
    bot_token: SecretStr | None = Field(
        None, description="The bot's token from @BotFather (the bot is an admin of the channel)."
    )
    chat_id: str | None = Field(
        None, description="The channel: its `@username`, or its numeric chat id (`-100…`)."
    )
    base_url: str = Field(
        "https://api.telegram.org", description="Where Bot API requests go (the sandbox, a proxy)."
    )
    web_url: str = Field("https://t.me", description="Where public post addresses point.")

    @field_validator("chat_id")
    @classmethod
    def _chat(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}|-?\d+", value):
            raise ValueError("must be the channel's @username or its numeric chat id")
        return value


PROFILE = Profile(
    name="telegram",
    display_name="Telegram",
    settings=TelegramSettings,
    colour="#1d6fa5",
    adapter="socialbot.adapters.telegram:TelegramAdapter",
    sandbox="socialbot.sandbox.telegram:TelegramSandbox",
    # sendMessage: "1-4096 characters after entities parsing", counted as the
    # Bot API counts entity offsets, in UTF-16 code units. Text is sent without
    # parse_mode, so what is sent is what is counted.
    max_characters=4096,
    counting="utf16",
    images=ImageLimits(
        "telegram",
        max_bytes=10_000_000,
        formats=frozenset({JPEG, PNG}),
        max_side_sum=10_000,
        max_aspect=20.0,
    ),
    caption_characters=1024,  # sendPhoto and sendMediaGroup: "0-1024 characters"
    can_find=False,  # a bot cannot read a channel's history
    can_delete=True,
    post_hosts=("t.me", "telegram.me"),
)

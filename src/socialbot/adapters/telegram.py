"""A Telegram channel through the Bot API (``https://api.telegram.org/bot<token>/METHOD``).

``sendMessage`` with the post's text as plain text (no ``parse_mode``): Telegram
makes URLs and ``#hashtags`` in plain text live by itself, and nothing in the
text can be taken for markup, so the text readers see is exactly the text that
was approved and counted. ``link_preview_options.url`` asks for the preview
of the release page, whichever link comes first in the text.

A bot cannot read a channel's history (``can_find`` is False) and the Bot API
has no idempotency key: a send that may have gone through waits for an
operator to look at the channel (``socialbot resolve``).

The token is part of every URL path, as the Bot API requires; it is registered
for redaction and no URL is ever put into an error message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Self

import httpx

from socialbot.adapters.base import Adapter, Media, State, json_body, new_client
from socialbot.config import Settings
from socialbot.errors import AmbiguousError, AuthError, DeliveryError, PermanentError
from socialbot.logs import register_secret
from socialbot.models import Post, Receipt
from socialbot.networks.telegram import PROFILE, TelegramSettings

# Errors that say the bot cannot post to this chat at all: every post would fail alike.
CHAT_ERRORS = ("chat not found", "not a member", "not enough rights", "have no rights")
GONE = ("message to delete not found", "message_id_invalid")


class TelegramAdapter(Adapter):
    """Sends messages to one channel as its bot."""

    name = PROFILE.name
    idempotent = PROFILE.idempotent
    idempotency_window = PROFILE.idempotency_window
    can_find = PROFILE.can_find
    can_delete = PROFILE.can_delete
    rate_limit_wait = timedelta(seconds=30)

    def __init__(
        self,
        *,
        bot_token: str,
        chat_id: str,
        base_url: str,
        web_url: str = "https://t.me",
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        register_secret(bot_token)
        self.web_url = web_url.rstrip("/")
        self._prefix = f"/bot{bot_token}"
        self.chat_id = chat_id
        self.request_timeout = timeout
        self.http = new_client(base_url.rstrip("/"), timeout, transport=transport)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        state: State | None = None,
    ) -> Self:
        section = settings.section("telegram")
        assert isinstance(section, TelegramSettings)
        assert section.bot_token and section.chat_id
        return cls(
            bot_token=section.bot_token.get_secret_value(),
            chat_id=section.chat_id,
            base_url=section.base_url,
            web_url=section.web_url,
            timeout=settings.request_timeout_seconds,
            transport=transport,
        )

    def publish(self, post: Post, *, key: str, media: Sequence[Media] = ()) -> Receipt:
        """``sendMessage``; ``key`` is unused: the Bot API has no idempotency key.

        With images (``attach: images``) the photos travel in the create itself:
        ``sendPhoto`` for one, ``sendMediaGroup`` (an album) for several, the text
        as the caption (at most 1,024 characters, as approval composed it).
        """
        photos = self.attachments(post, media)
        if photos and post.attach != "card":
            message = self.send_photos(post, photos)
        else:
            body: dict[str, Any] = {"chat_id": self.chat_id, "text": post.text}
            if post.link:
                body["link_preview_options"] = {"url": post.link}
            response = self.call("POST", self._method("sendMessage"), creating=True, json=body)
            message = self.result(response, creating=True)
        messages = message if isinstance(message, list) else [message]
        first = messages[0] if messages and isinstance(messages[0], dict) else {}
        chat = first.get("chat")
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        ids = [m.get("message_id") if isinstance(m, dict) else None for m in messages]
        if not ids or not all(isinstance(i, int) for i in ids) or not isinstance(chat_id, int):
            raise AmbiguousError(
                "Telegram answered without the message; it may have been posted",
                network=self.name,
            )
        assert isinstance(chat, dict) and isinstance(ids[0], int)
        # An album is one message per photo: all of them, so that a retraction takes all down.
        return Receipt(f"{chat_id}/{','.join(map(str, ids))}", self.message_url(chat, ids[0]))

    def send_photos(self, post: Post, photos: Sequence[Media]) -> Any:
        """One create carrying the photos; returns its message (a list of them, one per photo,
        for an album)."""
        files = {f"photo{n}": (m.filename, m.data, m.image.mime) for n, m in enumerate(photos)}
        if len(photos) == 1:
            data = {"chat_id": self.chat_id, "caption": post.text}
            response = self.call(
                "POST",
                self._method("sendPhoto"),
                creating=True,
                data=data,
                files={"photo": files["photo0"]},
            )
            return self.result(response, creating=True)
        items: list[dict[str, Any]] = [
            {"type": "photo", "media": f"attach://{name}"} for name in files
        ]
        items[0]["caption"] = post.text
        data = {"chat_id": self.chat_id, "media": json.dumps(items)}
        response = self.call(
            "POST", self._method("sendMediaGroup"), creating=True, data=data, files=files
        )
        messages = self.result(response, creating=True)
        if not isinstance(messages, list) or not messages:
            raise self.unreadable("names no messages", response, creating=True)
        return messages

    def find(self, text: str, since: datetime) -> Receipt | None:
        raise PermanentError(
            "a bot cannot read the channel's history: look at the channel and settle the "
            "delivery with socialbot resolve",
            network=self.name,
        )

    def delete(self, remote_id: str) -> None:
        """``deleteMessage``, or ``deleteMessages`` for an album's messages; a message that
        is gone already counts as deleted."""
        chat_id, _, message_ids = remote_id.rpartition("/")
        ids = message_ids.split(",")
        if not chat_id or not all(i.isdigit() for i in ids):
            raise PermanentError(f"{remote_id} is not a Telegram message", network=self.name)
        body: dict[str, Any] = {"chat_id": chat_id}
        if len(ids) > 1:
            method, body["message_ids"] = "deleteMessages", [int(i) for i in ids]
        else:
            method, body["message_id"] = "deleteMessage", int(ids[0])
        response = self.exchange("POST", self._method(method), creating=False, json=body)
        if response.is_success:
            self.result(response, creating=False)
            return
        if response.status_code == 400 and any(
            gone in self.error_detail(response).lower() for gone in GONE
        ):
            return
        raise self.failure(response, creating=False)

    def check(self) -> str:
        """``getMe``: who the token belongs to."""
        response = self.call("GET", self._method("getMe"), creating=False)
        bot = self.result(response, creating=False)
        username = bot.get("username") if isinstance(bot, dict) else None
        if not isinstance(username, str):
            raise self.unreadable("names no bot", response, creating=False)
        return f"@{username}, posting to {self.chat_id}"

    def post_id_from_url(self, url: str) -> str | None:
        """``t.me/{channel}/{id}`` or ``t.me/c/{chat}/{id}``: ``{chat_id}/{id}`` in this channel."""
        match = re.search(r"/(?:c/)?[^/]+/(\d+)/?$", url)
        return f"{self.chat_id}/{match[1]}" if match else None

    def message_url(self, chat: dict[str, Any], message_id: int) -> str:
        """The message link: ``t.me/<username>/<id>``, or ``t.me/c/<chat>/<id>`` if private."""
        username = chat.get("username")
        if isinstance(username, str) and username:
            return f"{self.web_url}/{username}/{message_id}"
        internal = str(chat.get("id", "")).removeprefix("-100")
        return f"{self.web_url}/c/{internal}/{message_id}"

    # -- the Bot API's answers -----------------------------------------------------------

    def _method(self, name: str) -> str:
        return f"{self._prefix}/{name}"

    def result(self, response: httpx.Response, *, creating: bool) -> Any:
        """``result`` of an ``{"ok": true, "result": ...}`` answer."""
        answer = self.answer_object(response, creating=creating)
        if answer.get("ok") is not True or "result" not in answer:
            raise self.unreadable("is not a Bot API result", response, creating=creating)
        return answer["result"]

    def error_detail(self, response: httpx.Response) -> str:
        description = json_body(response).get("description")
        return description if isinstance(description, str) else response.reason_phrase

    def error_code(self, response: httpx.Response) -> int | str | None:
        code = json_body(response).get("error_code")
        return code if isinstance(code, int) else None

    def retry_hint(self, response: httpx.Response, now: datetime) -> datetime | None:
        """``parameters.retry_after``: the seconds to wait (core.telegram.org/bots/api)."""
        parameters = json_body(response).get("parameters")
        seconds = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0:
            return now + timedelta(seconds=seconds)
        return None

    def classify(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        status = response.status_code
        detail = self.error_detail(response)
        code = self.error_code(response)
        if status in (401, 404) and not detail.lower().startswith("bad request"):
            # An unknown token answers 401 Unauthorized (404 Not Found on some proxies).
            return AuthError(
                f"Telegram refused the bot token ({detail}): make a new one with @BotFather "
                "and put it in SOCIALBOT_TELEGRAM__BOT_TOKEN",
                network=self.name,
                status_code=status,
                api_code=code,
            )
        if status in (400, 403) and any(part in detail.lower() for part in CHAT_ERRORS):
            return AuthError(
                f"the bot cannot post to {self.chat_id} ({detail}): add it to the channel as an "
                "administrator allowed to post messages",
                network=self.name,
                status_code=status,
                api_code=code,
            )
        return PermanentError(
            f"Telegram refused the message: {detail}",
            network=self.name,
            status_code=status,
            api_code=code,
        )

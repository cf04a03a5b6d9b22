"""A fake Telegram Bot API: ``/bot<token>/METHOD`` as core.telegram.org/bots/api describes it.

Served: ``getMe``, ``sendMessage``, ``sendPhoto``, ``sendMediaGroup``,
``deleteMessage`` and ``deleteMessages`` (an album is one message per photo; method names are
case-insensitive, parameters come as a query string, a form or JSON). Every
answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code": N,
"description": "..."}``, with ``parameters.retry_after`` on a 429. Like the Bot
API it refuses an unknown token with 401 Unauthorized, a chat the bot is not in
with 400 "Bad Request: chat not found", and a text longer than 4096 UTF-16
code units with 400 "Bad Request: message is too long". Posting in the
channel is the one thing its bot can do: there is no way to list the
channel's messages.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from socialbot.sandbox.server import (
    Fault,
    ImageRefused,
    NetworkSandbox,
    Part,
    Request,
    Response,
    inspect_image,
    post_image,
)

CHANNEL_ID = -1001234567890
MAX_TEXT = 4096
BOT = {
    "id": 7654321098,
    "is_bot": True,
    "first_name": "CoR press bot",
    "username": "cor_press_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


MAX_CAPTION = 1024
"""sendPhoto's caption: 0-1024 characters after entities parsing."""


def bot_error(status: int, description: str, **parameters: int) -> Response:
    """The Bot API's error body."""
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Response.json(status, body)


def ok(result: Any) -> Response:
    return Response.json(200, {"ok": True, "result": result})


class TelegramSandbox(NetworkSandbox):
    name = "telegram"
    create_path = r"/bot[^/]+/(?i:sendMessage)"
    secret_name = "bot_token"  # noqa: S105 - a field name

    def default_credentials(self) -> dict[str, str]:
        return {
            "bot_token": "7654321098:AAH-sandbox-telegram-bot-token-x1",
            "chat_id": "@cor_sandbox",
        }

    def settings(self, base: str) -> dict[str, str]:
        return {
            "SOCIALBOT_TELEGRAM__BOT_TOKEN": self.credentials["bot_token"],
            "SOCIALBOT_TELEGRAM__CHAT_ID": self.credentials["chat_id"],
            "SOCIALBOT_TELEGRAM__BASE_URL": base,
            "SOCIALBOT_TELEGRAM__WEB_URL": base,
        }

    def routes(self) -> list[tuple[str, str, Any]]:
        route = r"/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)"
        return [("GET", route, self.dispatch), ("POST", route, self.dispatch)]

    def dispatch(self, request: Request, match: re.Match[str]) -> Response:
        if match["token"] != self.credentials["bot_token"]:
            return bot_error(401, "Unauthorized")
        params = parameters(request)
        if params is None:
            return bot_error(400, "Bad Request: can't parse JSON object")
        method = match["method"].lower()
        if method == "getme":
            return ok(BOT)
        if method == "sendmessage":
            return self.send_message(params)
        if method == "deletemessage":
            return self.delete_message(params)
        if method == "deletemessages":
            return self.delete_messages(params)
        if method in ("sendphoto", "sendmediagroup"):
            return self.send_photos(params, group=method == "sendmediagroup")
        return bot_error(404, "Not Found")

    def chat(self, chat_id: Any) -> dict[str, Any] | None:
        """The channel, when ``chat_id`` names it (``@username`` or its id)."""
        username = self.credentials["chat_id"]
        if str(chat_id) in (username, str(CHANNEL_ID)):
            return {
                "id": CHANNEL_ID,
                "title": "CoR sandbox",
                "username": username[1:],
                "type": "channel",
            }
        return None

    def send_message(self, params: dict[str, Any]) -> Response:
        chat = self.chat(params.get("chat_id"))
        if chat is None:
            return bot_error(400, "Bad Request: chat not found")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return bot_error(400, "Bad Request: message text is empty")
        if len(text.strip().encode("utf-16-le")) // 2 > MAX_TEXT:
            return bot_error(400, "Bad Request: message is too long")
        preview = params.get("link_preview_options")
        if isinstance(preview, str):
            preview = json.loads(preview)
        with self.lock:
            message_id = self.next_id()
            self.store(
                {
                    "id": f"{CHANNEL_ID}/{message_id}",
                    "message_id": message_id,
                    "text": text.strip(),
                    "link_preview_options": preview,
                    "url": f"{self.base_url}/{chat['username']}/{message_id}",
                }
            )
        message = {
            "message_id": message_id,
            "sender_chat": chat,
            "chat": chat,
            "date": int(time.time()),
            "text": text.strip(),
        }
        return ok(message)

    def send_photos(self, params: dict[str, Any], *, group: bool) -> Response:
        """``sendPhoto`` (``photo`` uploaded as a file) and ``sendMediaGroup`` (``media``:
        2 to 10 InputMediaPhoto, each ``attach://<name>``); captions up to 1,024."""
        chat = self.chat(params.get("chat_id"))
        if chat is None:
            return bot_error(400, "Bad Request: chat not found")
        if group:
            try:
                items = json.loads(str(params.get("media")))
            except ValueError:
                return bot_error(400, "Bad Request: can't parse media JSON object")
            if not isinstance(items, list) or not 2 <= len(items) <= 10:
                return bot_error(400, "Bad Request: wrong number of media in the group")
            caption = str(items[0].get("caption") or "")
            names = [str(item.get("media", "")).removeprefix("attach://") for item in items]
        else:
            caption, names = str(params.get("caption") or ""), ["photo"]
        if len(caption.encode("utf-16-le")) // 2 > MAX_CAPTION:
            return bot_error(400, "Bad Request: message caption is too long")
        images = []
        for name in names:
            part = params.get(name)
            if not isinstance(part, Part):
                return bot_error(400, f"Bad Request: file {name} not found in the request")
            try:
                info = inspect_image(
                    part.data,
                    None,
                    max_bytes=10_000_000,
                    formats=frozenset({"image/jpeg", "image/png"}),
                )
            except ImageRefused as exc:
                return bot_error(400, f"Bad Request: IMAGE_PROCESS_FAILED ({exc})")
            if info["width"] + info["height"] > 10_000:
                return bot_error(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
            self.keep_media(info["digest"], part.data, info)
            images.append(post_image({**info, "alt": ""}))
        with self.lock:
            ids = [self.next_id() for _ in images]
            self.store(
                {
                    "id": f"{CHANNEL_ID}/{','.join(map(str, ids))}",
                    "message_id": ids[0],
                    "message_ids": ids,
                    "text": caption,
                    "images": images,
                    "url": f"{self.base_url}/{chat['username']}/{ids[0]}",
                }
            )
        messages = [
            {
                "message_id": number,
                "sender_chat": chat,
                "chat": chat,
                "date": int(time.time()),
                "photo": [
                    {"file_id": f"photo{number}", "width": i["width"], "height": i["height"]}
                ],
                **({"caption": caption} if n == 0 and caption else {}),
            }
            for n, (number, i) in enumerate(zip(ids, images, strict=True))
        ]
        return ok(messages if group else messages[0])

    def delete_message(self, params: dict[str, Any]) -> Response:
        if self.chat(params.get("chat_id")) is None:
            return bot_error(400, "Bad Request: chat not found")
        if not self.drop_messages([params.get("message_id")]):
            return bot_error(400, "Bad Request: message to delete not found")
        return ok(True)

    def delete_messages(self, params: dict[str, Any]) -> Response:
        """``deleteMessages``: 1-100 ids; "messages that can't be found are skipped"."""
        if self.chat(params.get("chat_id")) is None:
            return bot_error(400, "Bad Request: chat not found")
        ids = params.get("message_ids")
        if isinstance(ids, str):
            try:
                ids = json.loads(ids)
            except ValueError:
                ids = None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            return bot_error(400, "Bad Request: message identifiers are not specified")
        self.drop_messages(ids)
        return ok(True)

    def drop_messages(self, message_ids: list[Any]) -> int:
        """Delete these messages; a post (an album: several) is gone with its last message."""
        wanted = {str(i) for i in message_ids}
        dropped = 0
        with self.lock:
            posts = [p for p in self.posts if wanted & {str(i) for i in _message_ids(p)}]
            for post in posts:
                left = [i for i in _message_ids(post) if str(i) not in wanted]
                dropped += len(_message_ids(post)) - len(left)
                post["message_ids"] = left
        for post in posts:
            if not post["message_ids"]:
                self.delete_post(post["id"])
        return dropped

    def error_response(self, fault: Fault) -> Response:
        if fault.status == 429:
            seconds = int(fault.retry_after)
            if fault.hint == "native":
                return bot_error(
                    429, f"Too Many Requests: retry after {seconds}", retry_after=seconds
                )
            response = bot_error(429, "Too Many Requests")
            if fault.hint == "retry-after-seconds":
                response.headers["Retry-After"] = str(seconds)
            return response
        descriptions = {
            400: "Bad Request: injected error",
            401: "Unauthorized",
            403: "Forbidden: bot is not a member of the channel chat",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }
        return bot_error(fault.status, descriptions.get(fault.status, f"Error {fault.status}"))


def parameters(request: Request) -> dict[str, Any] | None:
    """A method's parameters: query string, then a form or a JSON body (None: bad JSON)."""
    params: dict[str, Any] = {name: values[0] for name, values in request.query.items() if values}
    content_type = request.headers.get("Content-Type") or ""
    if "json" in content_type:
        try:
            data = request.json()
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        params.update(data)
    elif content_type.startswith("multipart/form-data"):
        for name, parts in request.multipart().items():
            params[name] = parts[0] if parts[0].filename is not None else parts[0].text
    elif "form" in content_type:
        params.update({name: values[0] for name, values in request.form().items()})
    return params


def _message_ids(post: dict[str, Any]) -> list[Any]:
    """The messages a post is made of (an album: one per photo)."""
    return list(post.get("message_ids") or [post["message_id"]])


__all__ = ["TelegramSandbox"]

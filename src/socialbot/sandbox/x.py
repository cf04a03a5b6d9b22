"""A fake X API v2: ``POST /2/tweets`` with OAuth 1.0a, as developer.x.com describes it.

It checks the OAuth 1.0a HMAC-SHA1 signature of every request (consumer key and
access token must match, the timestamp must be within five minutes, a nonce is
accepted once), counts text the way X does (twitter-text v3), refuses duplicate
text with X's 403 body, and sends ``x-rate-limit-*`` headers on every answer,
answering 429 when the window's quota is spent. Returned texts carry links
rewritten as t.co addresses, as the real API returns them, with a t.co address
for attached images appended; ``tweet.fields=entities`` says what each stands for
(docs.x.com/x-api/fundamentals/data-dictionary, "entities.urls"). The timeline
pages by ``max_results`` and ``pagination_token``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from datetime import datetime
from typing import Any

from oauthlib.oauth1.rfc5849 import signature, utils

from socialbot.compose import measure
from socialbot.sandbox.server import (
    Fault,
    ImageRefused,
    NetworkSandbox,
    Request,
    Response,
    inspect_image,
    now_iso,
)

FIRST_ID = 1_860_000_000_000_000_000
USER = {
    "id": "1519476813409103872",
    "name": "European Committee of the Regions",
    "username": "EU_CoR",
}
TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text "
    "length see https://github.com/twitter/twitter-text."
)
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
WINDOW_SECONDS = 15 * 60
DAY_SECONDS = 24 * 60 * 60


def problem(status: int, title: str, detail: str | None = None) -> dict[str, Any]:
    """X API v2's error body (an RFC 7807 problem)."""
    return {"title": title, "detail": detail or title, "type": "about:blank", "status": status}


class XSandbox(NetworkSandbox):
    name = "x"
    create_path = r"/2/tweets"
    list_path = r"/2/users/\d+/tweets"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.nonces: set[str] = set()
        self.window_limit = 100
        self.window_start = time.time()
        self.window_used = 0
        self.daily_limit = 2400
        """Posts a day (``x-user-limit-24hour-*``), counted from the first post."""
        self.day_start = time.time()
        self.day_used = 0

    def default_credentials(self) -> dict[str, str]:
        return {
            "api_key": "sandbox-x-api-key",
            "api_secret": "sandbox-x-api-secret",
            "access_token": "sandbox-x-access-token",
            "access_token_secret": "sandbox-x-access-token-secret",
        }

    def settings(self, base: str) -> dict[str, str]:
        env = {f"SOCIALBOT_X__{k.upper()}": v for k, v in self.credentials.items()}
        env["SOCIALBOT_X__BASE_URL"] = base
        env["SOCIALBOT_X__WEB_URL"] = base
        return env

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/2/tweets", self.create_tweet),
            ("GET", r"/2/users/me", self.users_me),
            ("GET", r"/2/users/(?P<id>\d+)/tweets", self.user_tweets),
            ("DELETE", r"/2/tweets/(?P<id>[^/]+)", self.delete_tweet),
            ("POST", r"/2/media/upload", self.upload_media),
            ("POST", r"/2/media/metadata", self.media_metadata),
        ]

    def upload_media(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /2/media/upload`` (multipart ``media`` and ``media_category``)."""
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        parts = request.multipart()
        media = parts.get("media", [None])[0]
        if media is None:
            return self.reply(400, problem(400, "Invalid Request", "The `media` field is required"))
        category = parts["media_category"][0].text if parts.get("media_category") else ""
        if category not in ("", "tweet_image"):
            return self.reply(400, problem(400, "Invalid Request", f"bad category {category}"))
        try:
            info = inspect_image(
                media.data,
                media.content_type or None,
                max_bytes=5_000_000,
                formats=frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"}),
            )
        except ImageRefused as exc:
            return self.reply(400, problem(400, "Invalid Request", f"media: {exc}"))
        media_id = str(FIRST_ID + 500_000 + self.next_id())
        self.keep_media(media_id, media.data, info)
        data = {
            "id": media_id,
            "media_key": f"3_{media_id}",
            "size": info["bytes"],
            "expires_after_secs": 86400,
            "image": {"image_type": info["mime"], "w": info["width"], "h": info["height"]},
        }
        return self.reply(200, {"data": data})

    def media_metadata(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /2/media/metadata``: ``{"id", "metadata": {"alt_text": {"text"}}}``."""
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        try:
            body = request.json()
            media_id, alt = body["id"], body["metadata"]["alt_text"]["text"]
        except (ValueError, KeyError, TypeError):
            return self.reply(400, problem(400, "Invalid Request", "id and alt_text are required"))
        if not isinstance(alt, str) or len(alt.encode("utf-16-le")) // 2 > 1000:
            return self.reply(400, problem(400, "Invalid Request", "alt_text must be <= 1000"))
        with self.lock:
            entry = self.media.get(str(media_id))
            if entry is None:
                return self.reply(400, problem(400, "Invalid Request", "media not found"))
            entry["alt"] = alt
        return self.reply(200, {"data": {"id": media_id, "associated_metadata": True}})

    # -- endpoints -----------------------------------------------------------------------

    def create_tweet(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        limited = self.spend_quota()
        if limited is not None:
            return limited
        try:
            body = request.json()
            text = body["text"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self.reply(
                400,
                {
                    "errors": [{"message": "The `text` field must be a string"}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            )
        if not text.strip() or measure("x", text) > 280:
            return self.reply(400, problem(400, "Bad Request", TOO_LONG))
        ids = body.get("media", {}).get("media_ids", []) if isinstance(body, dict) else []
        images: list[dict[str, Any]] = []
        if ids:
            if not isinstance(ids, list) or len(ids) > 4:
                return self.reply(400, problem(400, "Invalid Request", "at most 4 media_ids"))
            used = self.use_media([str(i) for i in ids])
            if isinstance(used, str):
                return self.reply(400, problem(400, "Invalid Request", used))
            images = used
        with self.lock:
            if any(post["text"] == text for post in self.posts):
                return self.reply(403, problem(403, "Forbidden", DUPLICATE))
            tweet_id = str(FIRST_ID + self.next_id())
            self.store(
                {
                    "id": tweet_id,
                    "text": text,
                    "images": images,
                    "url": f"{self.base_url}/i/web/status/{tweet_id}",
                }
            )
        shown, _ = linked(text, tweet_id, images)
        data = {"id": tweet_id, "text": shown, "edit_history_tweet_ids": [tweet_id]}
        return Response.json(201, {"data": data}, self.limit_headers(daily=True))

    def delete_tweet(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /2/tweets/:id``: ``{"data": {"deleted": true}}``; an unknown id is 404."""
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        if not self.delete_post(match["id"]):
            return self.reply(
                404,
                {
                    **problem(
                        404, "Not Found Error", f"Could not find tweet with id: [{match['id']}]."
                    ),
                    "type": "https://api.twitter.com/2/problems/resource-not-found",
                },
            )
        return self.reply(200, {"data": {"deleted": True}})

    def users_me(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.authenticate(request)
        return denied or self.reply(200, {"data": USER})

    def user_tweets(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.authenticate(request)
        if denied is not None:
            return denied
        if match["id"] != USER["id"]:
            return self.reply(200, {"meta": {"result_count": 0}})
        # start_time is YYYY-MM-DDTHH:mm:ssZ, "in second granularity and inclusive":
        # a post at 12:00:00.5 is since 12:00:00Z (docs.x.com/x-api/posts/timelines).
        start_time = request.param("start_time")
        try:
            start = datetime.fromisoformat(start_time) if start_time else None
        except ValueError:
            return self.reply(
                400,
                {
                    "errors": [
                        {
                            "parameters": {"start_time": [start_time]},
                            "message": f"Invalid 'start_time':'{start_time}'.",
                        }
                    ],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            )
        fields = set((request.param("tweet.fields") or "").split(","))
        try:
            size = int(request.param("max_results") or 10)
            offset = int(request.param("pagination_token") or "0")
        except ValueError:
            size, offset = 0, -1
        if not 5 <= size <= 100 or offset < 0:
            return self.reply(
                400,
                {
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            )
        with self.lock:
            matching = [
                p
                for p in reversed(self.posts)
                if start is None or datetime.fromisoformat(p["created_at"]) >= start
            ]
        tweets = []
        for p in matching[offset : offset + size]:
            text, entities = linked(p["text"], p["id"], p.get("images") or [])
            tweet = {"id": p["id"], "text": text, "edit_history_tweet_ids": [p["id"]]}
            if "created_at" in fields:
                tweet["created_at"] = p["created_at"]
            if "entities" in fields and entities:
                tweet["entities"] = {"urls": entities}
            tweets.append(tweet)
        if not tweets:
            return self.reply(200, {"meta": {"result_count": 0}})
        meta: dict[str, Any] = {
            "result_count": len(tweets),
            "newest_id": tweets[0]["id"],
            "oldest_id": tweets[-1]["id"],
        }
        if offset + size < len(matching):
            meta["next_token"] = str(offset + size)
        return self.reply(200, {"data": tweets, "meta": meta})

    # -- protocol details ----------------------------------------------------------------

    def authenticate(self, request: Request) -> Response | None:
        """Verify OAuth 1.0a user context (RFC 5849, HMAC-SHA1)."""
        header = request.headers.get("Authorization") or ""
        if not header.startswith("OAuth "):
            return self.reply(401, problem(401, "Unauthorized"))
        try:
            oauth = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(header)}
        except (ValueError, TypeError):
            return self.reply(401, problem(401, "Unauthorized"))
        expected = self.credentials
        if (
            oauth.get("oauth_consumer_key") != expected["api_key"]
            or oauth.get("oauth_token") != expected["access_token"]
            or oauth.get("oauth_signature_method") != "HMAC-SHA1"
            or oauth.get("oauth_version", "1.0") != "1.0"
        ):
            return self.reply(401, problem(401, "Unauthorized"))
        try:
            timestamp = int(oauth.get("oauth_timestamp", "0"))
        except ValueError:
            timestamp = 0
        nonce = oauth.get("oauth_nonce", "")
        with self.lock:
            replayed = not nonce or nonce in self.nonces
            self.nonces.add(nonce)
        if abs(time.time() - timestamp) > 300 or replayed:
            return self.reply(401, problem(401, "Unauthorized"))
        query = request.url.partition("?")[2]
        params = signature.collect_parameters(
            uri_query=query,
            body=request.form()
            if "form-urlencoded" in (request.headers.get("Content-Type") or "")
            else None,
            headers={"Authorization": header},
            exclude_oauth_signature=True,
        )
        base = signature.signature_base_string(
            request.method,
            signature.base_string_uri(request.url),
            signature.normalize_parameters(params),
        )
        # RFC 5849 section 3.4.2: the key is both secrets, escaped, joined by "&".
        key = "&".join(
            utils.escape(expected[name]) for name in ("api_secret", "access_token_secret")
        )
        digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
        wanted = base64.b64encode(digest).decode()
        if not hmac.compare_digest(wanted, oauth.get("oauth_signature", "")):
            return self.reply(401, problem(401, "Unauthorized"))
        return None

    def spend_quota(self) -> Response | None:
        """A post spends one of the 15-minute window and one of the day (a 24-hour cap on
        posts per user, told in ``x-user-limit-24hour-*`` headers on the create's answer)."""
        with self.lock:
            now = time.time()
            if now - self.window_start >= WINDOW_SECONDS:
                self.window_start, self.window_used = now, 0
            if now - self.day_start >= DAY_SECONDS:
                self.day_start, self.day_used = now, 0
            if self.window_used >= self.window_limit:
                reset = int(self.window_start + WINDOW_SECONDS)
                return Response.json(
                    429, problem(429, "Too Many Requests"), self.limit_headers(reset, 0)
                )
            if self.day_used >= self.daily_limit:
                return Response.json(
                    429, problem(429, "Too Many Requests"), self.limit_headers(daily=True)
                )
            self.window_used += 1
            self.day_used += 1
        return None

    def limit_headers(
        self, reset: int | None = None, remaining: int | None = None, *, daily: bool = False
    ) -> dict[str, str]:
        if reset is None:
            reset = int(self.window_start + WINDOW_SECONDS)
        if remaining is None:
            remaining = max(self.window_limit - self.window_used, 0)
        headers = {
            "x-rate-limit-limit": str(self.window_limit),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(reset),
        }
        if daily:
            headers |= {
                "x-user-limit-24hour-limit": str(self.daily_limit),
                "x-user-limit-24hour-remaining": str(max(self.daily_limit - self.day_used, 0)),
                "x-user-limit-24hour-reset": str(int(self.day_start + DAY_SECONDS)),
            }
        return headers

    def reply(self, status: int, data: dict[str, Any]) -> Response:
        return Response.json(status, data, self.limit_headers())

    def error_response(self, fault: Fault) -> Response:
        titles = {
            429: "Too Many Requests",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }
        body = problem(fault.status, titles.get(fault.status, "Error"))
        if fault.status != 429:
            return self.reply(fault.status, body)
        reset = time.time() + fault.retry_after
        headers = self.limit_headers(int(reset), 0)
        if fault.hint == "retry-after-seconds":
            headers = {"retry-after": str(int(fault.retry_after))}
        elif fault.hint == "retry-after-date":
            headers = {"retry-after": http_date(reset)}
        elif fault.hint == "past-date":
            headers = {"x-rate-limit-reset": str(int(time.time()) - 86_400)}
        elif fault.hint == "none":
            headers = {}
        return Response.json(429, body, headers)


def tco(address: str) -> str:
    """The t.co address X gives a link."""
    return "https://t.co/" + hashlib.sha256(address.encode()).hexdigest()[:10]


def linked(
    text: str, tweet_id: str, images: list[dict[str, Any]]
) -> tuple[str, list[dict[str, Any]]]:
    """A post's text as X returns it, and its ``entities.urls``: every link X finds (as
    twitter-text finds them) becomes a t.co address, and one more is appended for images."""
    from socialbot.compose.twitter_text import x_urls

    parts: list[str] = []
    entities: list[dict[str, Any]] = []
    end = 0

    def add(address: str, expanded: str, **extra: Any) -> None:
        shown = tco(address)
        start = sum(len(part) for part in parts)
        parts.append(shown)
        display = re.sub(r"^https?://", "", expanded)
        entities.append(
            {
                "start": start,
                "end": start + len(shown),
                "url": shown,
                "expanded_url": expanded,
                "display_url": display if len(display) <= 26 else display[:25] + "…",
                **extra,
            }
        )

    for link in x_urls().extract(text):
        parts.append(text[end : link.start])
        url = link.url if re.match(r"https?://", link.url, re.IGNORECASE) else "http://" + link.url
        add(link.url, url)
        end = link.end
    parts.append(text[end:])
    if images:
        parts.append(" ")
        add(
            f"{tweet_id}/photo",
            f"https://x.com/{USER['username']}/status/{tweet_id}/photo/1",
            media_key=f"3_{tweet_id}",
        )
    return "".join(parts), entities


def http_date(timestamp: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(timestamp))


__all__ = ["XSandbox", "now_iso"]

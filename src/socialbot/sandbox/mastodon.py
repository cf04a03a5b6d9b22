"""A fake Mastodon instance, speaking the REST API as docs.joinmastodon.org documents it.

Served: ``POST /api/v1/statuses``, ``DELETE /api/v1/statuses/:id``,
``GET /api/v1/accounts/verify_credentials``, ``GET /api/v1/accounts/:id/statuses``,
``POST /api/v2/media``, ``GET /api/v1/media/:id``, ``GET /api/v2/instance`` and
``GET /api/v1/instance``. Like Mastodon it

- takes the OAuth token from ``Authorization: Bearer`` (Doorkeeper also reads an
  ``access_token`` parameter), answers 401 ``{"error": "The access token is
  invalid"}`` and 403 when the token lacks the route's scope;
- counts a status as Mastodon's ``StatusLengthValidator`` does (graphemes of the
  spoiler and text, each http(s) URL as ``characters_reserved_per_url``) and
  refuses what is too long or blank with 422 ``{"error": "Validation failed: ..."}``;
- honours ``Idempotency-Key`` as ``PostStatusService#with_idempotency`` does:
  per account, remembered for one hour after the status is created, a repeat
  returns the first status, a concurrent repeat gets 503;
- sends ``X-RateLimit-Limit/-Remaining/-Reset`` (an ISO 8601 time) on every API
  answer and 429 ``{"error": "Too many requests"}`` past the per-token window
  (300 requests / 5 minutes) or the statuses family (300 statuses / 3 hours);
- renders ``content`` as HTML (paragraphs, ``<br />``, linked URLs and hashtags).

Limits are attributes (``max_characters``, ``characters_reserved_per_url``,
``api_limit``, ``statuses_limit``, ``idempotency_ttl``, ``scopes``), so tests can
play a small instance or a token with too few scopes.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import regex

from socialbot.compose import graphemes, measure
from socialbot.models import LANGUAGES
from socialbot.sandbox.server import (
    Fault,
    ImageRefused,
    NetworkSandbox,
    Request,
    Response,
    inspect_image,
)

ACCOUNT = {
    "id": "109347463187541232",
    "username": "EU_CoR",
    "display_name": "European Committee of the Regions",
    "created_at": "2022-11-14T00:00:00.000Z",
}
VISIBILITIES = ("public", "unlisted", "private", "direct")
# Error texts of Mastodon's API controllers and Doorkeeper (app/controllers/api/base_controller.rb).
INVALID_TOKEN = "The access token is invalid"  # noqa: S105 - an error message
OUTSIDE_SCOPES = "This action is outside the authorized scopes"
TOO_MANY = "Too many requests"
TEMPORARY = "There was a temporary problem serving your request, please try again"
NOT_FOUND = "Record not found"
UNPROCESSED = "Cannot attach files that have not finished processing. Try again in a moment!"
# Scopes that open each route (a parent scope such as ``write`` covers its children).
WRITE_STATUSES = frozenset({"write", "write:statuses"})
READ_ACCOUNTS = frozenset({"read", "read:accounts", "profile"})
READ_STATUSES = frozenset({"read", "read:statuses"})

_URL = regex.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'’”…]")
_TAG = regex.compile(r"(?<![\p{L}\p{N}_/#])#([\p{L}\p{M}\p{N}_]*[\p{L}\p{M}][\p{L}\p{M}\p{N}_]*)")
_DISPLAYED_URL = 30
"""Mastodon shows the first 30 characters of a link, the rest hidden by CSS."""
_NGINX_PAGE = (
    "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_RAILS_500 = (
    "<!DOCTYPE html>\n<html><head><title>We're sorry, but something went wrong (500)</title>"
    "</head><body><h1>We're sorry, but something went wrong.</h1></body></html>\n"
)


@dataclass
class Window:
    """A fixed rate-limit window, aligned like Rack::Attack's and Mastodon's RateLimiter."""

    limit: int
    period: int
    counts: dict[int, int] = field(default_factory=dict)

    def slot(self, now: float) -> int:
        return int(now // self.period)

    def remaining(self, now: float) -> int:
        return max(self.limit - self.counts.get(self.slot(now), 0), 0)

    def spend(self, now: float) -> bool:
        """Count one request; False when the window is already spent."""
        slot = self.slot(now)
        if self.counts.get(slot, 0) >= self.limit:
            return False
        self.counts = {slot: self.counts.get(slot, 0) + 1}
        return True

    def headers(self, now: float) -> dict[str, str]:
        # config/initializers/rack_attack.rb and app/lib/rate_limiter.rb: the reset is
        # the end of the window, sent as ``Time#iso8601(6)``.
        reset = (self.slot(now) + 1) * self.period
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining(now)),
            "X-RateLimit-Reset": iso6(reset),
        }


class MastodonSandbox(NetworkSandbox):
    name = "mastodon"
    create_path = r"/api/v1/statuses"
    list_path = r"/api/v1/accounts/[^/]+/statuses"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_characters = 500
        self.characters_reserved_per_url = 23
        self.serves_instance_v2 = True
        """False plays an instance older than Mastodon 4.0 (only ``/api/v1/instance``)."""
        self.scopes: set[str] = {"read:accounts", "read:statuses", "write:statuses", "write:media"}
        self.image_size_limit = 16_777_216
        self.description_limit = 1500
        self.processing_polls = 1
        """How many ``GET /api/v1/media/:id`` answer 206 before the image is processed."""
        self.idempotency_ttl = 3600.0
        self.api_limit = 300
        self.statuses_limit = 300
        self.keys: dict[str, tuple[str, float]] = {}
        """Idempotency-Key -> (status id, when it was stored)."""
        self.in_flight: set[str] = set()
        self._windows: dict[str, Window] = {}
        self._last_ms = 0
        self._key_lock = threading.Lock()

    def default_credentials(self) -> dict[str, str]:
        return {"access_token": "sandbox-mastodon-access-token"}

    def settings(self, base: str) -> dict[str, str]:
        return {
            "SOCIALBOT_MASTODON__ACCESS_TOKEN": self.credentials["access_token"],
            "SOCIALBOT_MASTODON__BASE_URL": base,
        }

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/api/v1/statuses", self.create_status),
            ("GET", r"/api/v1/accounts/verify_credentials", self.verify_credentials),
            ("GET", r"/api/v1/accounts/(?P<id>[^/]+)/statuses", self.account_statuses),
            ("GET", r"/api/v2/instance", self.instance_v2),
            ("GET", r"/api/v1/instance", self.instance_v1),
            ("DELETE", r"/api/v1/statuses/(?P<id>[^/]+)", self.delete_status),
            ("POST", r"/api/v2/media", self.upload_media),
            ("GET", r"/api/v1/media/(?P<id>[^/]+)", self.get_media),
        ]

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.keys.clear()
            self.in_flight.clear()
            self._windows.clear()

    # -- endpoints -----------------------------------------------------------------------

    def create_status(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /api/v1/statuses`` (docs.joinmastodon.org/methods/statuses/#create)."""
        now = time.time()
        throttled = self.throttle(now)
        if throttled is not None:
            return throttled
        denied = self.authorize(request, WRITE_STATUSES, now)
        if denied is not None:
            return denied
        params = form_params(request)
        key = request.headers.get("Idempotency-Key") or ""
        if key:
            with self._key_lock:
                stored = self.keys.get(key)
                if stored is not None and now - stored[1] < self.idempotency_ttl:
                    return self.reply(200, self.status_json(self.post_by_id(stored[0])), now)
                if key in self.in_flight:
                    # Lockable#with_redis_lock raises RaceConditionError: 503.
                    return self.reply(503, {"error": TEMPORARY}, now)
                self.in_flight.add(key)
        try:
            return self._create(params, key, now)
        finally:
            if key:
                with self._key_lock:
                    self.in_flight.discard(key)

    def _create(self, params: dict[str, Any], key: str, now: float) -> Response:
        text = _string(params.get("status"))
        spoiler = _string(params.get("spoiler_text"))
        visibility = _string(params.get("visibility")) or "public"
        ids = params.get("media_ids[]") or params.get("media_ids") or []
        ids = ids if isinstance(ids, list) else [str(ids)]
        images: list[dict[str, Any]] = []
        if ids:
            if len(ids) > 4:
                return self.reply(422, {"error": "Validation failed: Too many media"}, now)
            with self.lock:
                pending = [i for i in ids if i in self.media and self.media[i].get("polls", 0) > 0]
            if pending:  # PostStatusService: media still being processed
                return self.reply(422, {"error": UNPROCESSED}, now)
            used = self.use_media([str(i) for i in ids])
            if isinstance(used, str):
                return self.reply(422, {"error": used[0].upper() + used[1:]}, now)
            images = used
        problems = []
        if visibility not in VISIBILITIES:
            problems.append("Visibility is not included in the list")
        if not text.strip():
            problems.append("Text can't be blank")
        elif self.countable_length(text, spoiler) > self.max_characters:
            problems.append(f"Text character limit of {self.max_characters} exceeded")
        if problems:
            return self.reply(422, {"error": "Validation failed: " + ", ".join(problems)}, now)
        with self.lock:
            family = self.window("statuses", self.statuses_limit, 3 * 3600)
            if not family.spend(now):
                return Response.json(429, {"error": TOO_MANY}, family.headers(now))
            language = _string(params.get("language")).lower()
            # valid_locale_cascade: an unknown language falls back to the account's.
            language = language if language in LANGUAGES else "en"
            status_id = self.next_status_id(now)
            post = self.store(
                {
                    "id": status_id,
                    "text": text,
                    "spoiler_text": spoiler,
                    "url": f"{self.base_url}/@{ACCOUNT['username']}/{status_id}",
                    "uri": f"{self.base_url}/users/{ACCOUNT['username']}/statuses/{status_id}",
                    "visibility": visibility,
                    "language": language,
                    "sensitive": _string(params.get("sensitive")).lower() in ("true", "1"),
                    "idempotency_key": key or None,
                    "content": render_content(text, self.base_url),
                    "created_at": iso3(now),
                    "images": images,
                }
            )
        if key:
            with self._key_lock:
                self.keys[key] = (status_id, now)
        headers = self.rate_headers(now, family)
        return Response.json(200, self.status_json(post), headers)

    def upload_media(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /api/v2/media`` (docs.joinmastodon.org/methods/media/#v2): 202 with
        ``url: null`` while processing, which ``GET /api/v1/media/:id`` then reports."""
        now = time.time()
        throttled = self.throttle(now)
        if throttled is not None:
            return throttled
        denied = self.authorize(request, frozenset({"write", "write:media"}), now)
        if denied is not None:
            return denied
        parts = request.multipart()
        files = parts.get("file", [])
        if len(files) != 1 or files[0].filename is None:
            return self.reply(422, {"error": "Validation failed: File can't be blank"}, now)
        description = parts["description"][0].text if parts.get("description") else ""
        if len(description) > self.description_limit:
            return self.reply(
                422,
                {"error": f"Validation failed: Description is too long (maximum is "
                 f"{self.description_limit} characters)"},
                now,
            )  # fmt: skip
        try:
            info = inspect_image(
                files[0].data,
                files[0].content_type,
                max_bytes=self.image_size_limit,
                formats=frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"}),
            )
        except ImageRefused as exc:
            return self.reply(422, {"error": f"Validation failed: File {exc}"}, now)
        media_id = str(self.next_id() + 10_000_000)
        self.keep_media(media_id, files[0].data, info, description)
        with self.lock:
            self.media[media_id]["polls"] = self.processing_polls
        processing = self.processing_polls > 0
        return self.reply(202 if processing else 200, self.media_json(media_id, now), now)

    def get_media(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/v1/media/:id``: 206 while processing, 200 when done."""
        now = time.time()
        denied = self.authorize(request, frozenset({"write", "write:media"}), now)
        if denied is not None:
            return denied
        with self.lock:
            entry = self.media.get(match["id"])
            if entry is None:
                return self.reply(404, {"error": NOT_FOUND}, now)
            processing = entry.get("polls", 0) > 0
            if processing:
                entry["polls"] -= 1
        return self.reply(206 if processing else 200, self.media_json(match["id"], now), now)

    def media_json(self, media_id: str, now: float) -> dict[str, Any]:
        with self.lock:
            entry = self.media[media_id]
            ready = entry.get("polls", 0) <= 0
        return {
            "id": media_id,
            "type": "image",
            "url": f"{self.server.url}/_sandbox/media/{entry['digest']}" if ready else None,
            "preview_url": None,
            "description": entry["alt"] or None,
            "meta": {"original": {"width": entry["width"], "height": entry["height"]}},
        }

    def delete_status(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /api/v1/statuses/:id``: the deleted status, with its ``text``; 404 if gone."""
        now = time.time()
        throttled = self.throttle(now)
        if throttled is not None:
            return throttled
        denied = self.authorize(request, WRITE_STATUSES, now)
        if denied is not None:
            return denied
        with self.lock:
            post = next((p for p in self.posts if p["id"] == match["id"]), None)
            if post is None or not self.delete_post(match["id"]):
                return self.reply(404, {"error": NOT_FOUND}, now)
        return self.reply(200, {**self.status_json(post), "text": post["text"]}, now)

    def verify_credentials(self, request: Request, match: re.Match[str]) -> Response:
        now = time.time()
        throttled = self.throttle(now)
        if throttled is not None:
            return throttled
        denied = self.authorize(request, READ_ACCOUNTS, now)
        if denied is not None:
            return denied
        account = self.account_json()
        account["source"] = {
            "privacy": "public",
            "sensitive": False,
            "language": "en",
            "note": "",
            "fields": [],
            "follow_requests_count": 0,
        }
        return self.reply(200, account, now)

    def account_statuses(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/v1/accounts/:id/statuses``, newest first, paginated by id."""
        now = time.time()
        throttled = self.throttle(now)
        if throttled is not None:
            return throttled
        authorized = _token(request) is not None
        if authorized:
            denied = self.authorize(request, READ_STATUSES, now)
            if denied is not None:
                return denied
        if match["id"] != ACCOUNT["id"]:
            return self.reply(404, {"error": NOT_FOUND}, now)
        try:
            limit = min(max(int(request.query.get("limit", ["20"])[0]), 1), 40)
        except ValueError:
            limit = 20
        bounds = {}
        for name in ("max_id", "since_id", "min_id"):
            value = request.query.get(name, [""])[0]
            if value.isdigit():
                bounds[name] = int(value)
        with self.lock:
            visible = [
                p for p in self.posts if authorized or p["visibility"] in ("public", "unlisted")
            ]
        chosen = sorted(visible, key=lambda p: int(p["id"]), reverse=True)
        if "max_id" in bounds:
            chosen = [p for p in chosen if int(p["id"]) < bounds["max_id"]]
        if "since_id" in bounds:
            chosen = [p for p in chosen if int(p["id"]) > bounds["since_id"]]
        if "min_id" in bounds:
            # min_id pages forward: the statuses just after it, still listed newest first.
            chosen = [p for p in chosen if int(p["id"]) > bounds["min_id"]][-limit:]
        page = chosen[:limit]
        response = self.reply(200, [self.status_json(p) for p in page], now)
        if page:
            path = f"{self.base_url}/api/v1/accounts/{ACCOUNT['id']}/statuses"
            older = urlencode({"limit": limit, "max_id": page[-1]["id"]})
            newer = urlencode({"limit": limit, "min_id": page[0]["id"]})
            response.headers["Link"] = f'<{path}?{older}>; rel="next", <{path}?{newer}>; rel="prev"'
        return response

    def instance_v2(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/v2/instance`` (docs.joinmastodon.org/methods/instance/#v2); no auth."""
        now = time.time()
        if not self.serves_instance_v2:
            # Before 4.0 the route does not exist: Rails' HTML 404 page.
            return Response.html(
                404,
                "<!DOCTYPE html><title>The page you were looking for doesn't exist (404)</title>",
            )
        throttled = self.throttle(now)
        if throttled is not None:
            return throttled
        host = self.server.url.split("://", 1)[1]
        body = {
            "domain": host,
            "title": "Sandbox Mastodon",
            "version": "4.3.0",
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "A local fake Mastodon instance for socialbot",
            "usage": {"users": {"active_month": 1}},
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": f"ws://{host}", "status": None},
                "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                "statuses": self.statuses_configuration(),
                "media_attachments": {
                    "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp"],
                    "image_size_limit": self.image_size_limit,
                    "image_matrix_limit": 33_177_600,
                    "description_limit": self.description_limit,
                },
                "polls": {
                    "max_options": 4,
                    "max_characters_per_option": 50,
                    "min_expiration": 300,
                    "max_expiration": 2_629_746,
                },
                "translation": {"enabled": False},
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "contact": {"email": "press@cor.europa.eu", "account": self.account_json()},
            "rules": [],
        }
        return self.reply(200, body, now)

    def instance_v1(self, request: Request, match: re.Match[str]) -> Response:
        """``GET /api/v1/instance``: the older entity, with the same statuses configuration."""
        now = time.time()
        throttled = self.throttle(now)
        if throttled is not None:
            return throttled
        host = self.server.url.split("://", 1)[1]
        body = {
            "uri": host,
            "title": "Sandbox Mastodon",
            "short_description": "A local fake Mastodon instance for socialbot",
            "version": "3.5.3" if not self.serves_instance_v2 else "4.3.0",
            "languages": ["en"],
            "configuration": {"statuses": self.statuses_configuration()},
        }
        return self.reply(200, body, now)

    # -- protocol details ----------------------------------------------------------------

    def statuses_configuration(self) -> dict[str, int]:
        return {
            "max_characters": self.max_characters,
            "max_media_attachments": 4,
            "characters_reserved_per_url": self.characters_reserved_per_url,
        }

    def countable_length(self, text: str, spoiler: str) -> int:
        """StatusLengthValidator: graphemes of spoiler + text, URLs at the reserved weight."""
        return len(graphemes(spoiler)) + measure(
            "mastodon", text, url_weight=self.characters_reserved_per_url
        )

    def authorize(self, request: Request, scopes: frozenset[str], now: float) -> Response | None:
        token = _token(request)
        if token is None or token != self.credentials["access_token"]:
            response = self.reply(401, {"error": INVALID_TOKEN}, now)
            response.headers["WWW-Authenticate"] = (
                'Bearer realm="Doorkeeper", error="invalid_token", '
                f'error_description="{INVALID_TOKEN}"'
            )
            return response
        if not scopes & self.scopes:
            response = self.reply(403, {"error": OUTSIDE_SCOPES}, now)
            response.headers["WWW-Authenticate"] = (
                'Bearer realm="Doorkeeper", error="insufficient_scope", '
                f'error_description="{OUTSIDE_SCOPES}", scope="{" ".join(sorted(scopes))}"'
            )
            return response
        return None

    def window(self, name: str, limit: int, period: int) -> Window:
        with self.lock:
            window = self._windows.get(name)
            if window is None or window.limit != limit:
                window = self._windows[name] = Window(limit, period)
            return window

    def throttle(self, now: float) -> Response | None:
        """Rack::Attack's per-token API throttle: 300 requests per 5 minutes."""
        window = self.window("api", self.api_limit, 300)
        with self.lock:
            if window.spend(now):
                return None
            headers = window.headers(now)
        return Response.json(429, {"error": TOO_MANY}, headers)

    def rate_headers(self, now: float, family: Window | None = None) -> dict[str, str]:
        """The headers of the limit closest to exhaustion (RateLimitHeaders concern)."""
        api = self.window("api", self.api_limit, 300)
        with self.lock:
            if family is not None and family.remaining(now) <= api.remaining(now):
                return family.headers(now)
            return api.headers(now)

    def reply(self, status: int, data: Any, now: float) -> Response:
        return Response.json(status, data, self.rate_headers(now))

    def next_status_id(self, now: float) -> str:
        """A Mastodon snowflake: milliseconds since the epoch, shifted 16 bits, plus a sequence."""
        ms = max(int(now * 1000), self._last_ms)
        self._last_ms = ms
        return str((ms << 16) + self.next_id() % 65536)

    def post_by_id(self, status_id: str) -> dict[str, Any]:
        with self.lock:
            return next(p for p in self.posts if p["id"] == status_id)

    def account_json(self) -> dict[str, Any]:
        with self.lock:
            count = len(self.posts)
            last = self.posts[-1]["created_at"][:10] if self.posts else None
        return {
            **ACCOUNT,
            "acct": ACCOUNT["username"],
            "locked": False,
            "bot": True,
            "discoverable": True,
            "group": False,
            "note": "<p>The EU's assembly of regional and local representatives.</p>",
            "url": f"{self.base_url}/@{ACCOUNT['username']}",
            "uri": f"{self.base_url}/users/{ACCOUNT['username']}",
            "avatar": f"{self.base_url}/avatars/original/missing.png",
            "avatar_static": f"{self.base_url}/avatars/original/missing.png",
            "header": f"{self.base_url}/headers/original/missing.png",
            "header_static": f"{self.base_url}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": count,
            "last_status_at": last,
            "emojis": [],
            "fields": [],
        }

    def status_json(self, post: dict[str, Any]) -> dict[str, Any]:
        """The Status entity (docs.joinmastodon.org/entities/Status)."""
        tags = [
            {"name": tag.lower(), "url": f"{self.base_url}/tags/{tag.lower()}"}
            for tag in _TAG.findall(post["text"])
        ]
        return {
            "id": post["id"],
            "created_at": post["created_at"],
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": post["sensitive"],
            "spoiler_text": post["spoiler_text"],
            "visibility": post["visibility"],
            "language": post["language"],
            "uri": post["uri"],
            "url": post["url"],
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "favourited": False,
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "pinned": False,
            "content": post["content"],
            "filtered": [],
            "reblog": None,
            "application": {"name": "socialbot", "website": None},
            "account": self.account_json(),
            "media_attachments": [],
            "mentions": [],
            "tags": tags,
            "emojis": [],
            "card": None,
            "poll": None,
        }

    def error_response(self, fault: Fault) -> Response:
        now = time.time()
        if fault.status == 429:
            body = json.dumps({"error": TOO_MANY}).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"}
            if fault.hint == "native":
                headers |= {
                    "X-RateLimit-Limit": str(self.api_limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": iso6(now + fault.retry_after),
                }
            elif fault.hint == "retry-after-seconds":
                headers["Retry-After"] = str(int(fault.retry_after))
            elif fault.hint == "retry-after-date":
                headers["Retry-After"] = time.strftime(
                    "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + fault.retry_after)
                )
            elif fault.hint == "past-date":
                headers["X-RateLimit-Reset"] = iso6(now - 86_400)
            return Response(429, body, headers)
        if fault.status == 401:
            return self.reply(401, {"error": INVALID_TOKEN}, now)
        if fault.status == 403:
            return self.reply(403, {"error": OUTSIDE_SCOPES}, now)
        if fault.status == 422:
            return self.reply(422, {"error": "Validation failed: Text can't be blank"}, now)
        if fault.status == 503:
            return self.reply(503, {"error": TEMPORARY}, now)
        if fault.status == 500:
            # An unhandled exception: Rails serves public/500.html.
            return Response.html(500, _RAILS_500)
        if fault.status > 500:
            # 502 and 504 come from the reverse proxy in front of Puma.
            reasons = {502: "Bad Gateway", 504: "Gateway Time-out"}
            page = _NGINX_PAGE.format(code=fault.status, reason=reasons.get(fault.status, "Error"))
            return Response.html(fault.status, page)
        return self.reply(
            fault.status,
            {"error": NOT_FOUND if fault.status == 404 else f"injected {fault.status}"},
            now,
        )


def render_content(text: str, base: str) -> str:
    """Status ``content`` the way Mastodon's TextFormatter renders plain text."""
    spans: list[tuple[int, int, str]] = []
    for match in _URL.finditer(text):
        spans.append((match.start(), match.end(), _link_html(match.group())))
    for match in _TAG.finditer(text):
        if any(start <= match.start() < end for start, end, _ in spans):
            continue
        tag = match.group(1)
        spans.append(
            (
                match.start(),
                match.end(),
                f'<a href="{base}/tags/{html.escape(tag.lower())}" class="mention hashtag" '
                f'rel="tag">#<span>{html.escape(tag)}</span></a>',
            )
        )
    spans.sort()
    out, last = [], 0
    for start, end, rendered in spans:
        out.append(html.escape(text[last:start]))
        out.append(rendered)
        last = end
    out.append(html.escape(text[last:]))
    body = "".join(out)
    # Rails' simple_format: blank lines separate paragraphs, single newlines become <br />.
    paragraphs = [p for p in re.split(r"\n\s*\n", body.strip()) if p.strip()]
    return "".join("<p>" + p.replace("\n", "<br />") + "</p>" for p in paragraphs)


def _link_html(url: str) -> str:
    scheme, _, rest = url.partition("://")
    prefix = f"{scheme}://"
    if rest.startswith("www."):
        prefix, rest = prefix + "www.", rest[4:]
    shown, hidden = rest[:_DISPLAYED_URL], rest[_DISPLAYED_URL:]
    css = "ellipsis" if hidden else ""
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{html.escape(prefix)}</span>'
        f'<span class="{css}">{html.escape(shown)}</span>'
        f'<span class="invisible">{html.escape(hidden)}</span></a>'
    )


def form_params(request: Request) -> dict[str, Any]:
    """Parameters as Rails reads them: query string, then a form or JSON body."""
    params: dict[str, Any] = {
        k: (v if k.endswith("[]") else v[0]) for k, v in request.query.items() if v
    }
    content_type = request.headers.get("Content-Type") or ""
    if "json" in content_type:
        try:
            data = request.json()
        except (ValueError, UnicodeDecodeError):
            data = None
        if isinstance(data, dict):
            params.update(data)
    elif request.body:
        for k, v in request.form().items():
            params[k] = v if k.endswith("[]") else v[0]
    return params


def _token(request: Request) -> str | None:
    header = request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    values = request.query.get("access_token")
    return values[0] if values else None


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""


def iso6(timestamp: float) -> str:
    """Ruby's ``Time#iso8601(6)`` in UTC: ``2024-05-01T12:05:00.000000Z``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso3(timestamp: float) -> str:
    """Mastodon's entity datetimes: milliseconds, ``Z``."""
    stamp = datetime.fromtimestamp(timestamp, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


__all__ = ["ACCOUNT", "MastodonSandbox", "render_content"]

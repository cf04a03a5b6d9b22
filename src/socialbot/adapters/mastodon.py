"""A Mastodon account on its instance, through the REST API with httpx.

``POST /api/v1/statuses`` with the delivery's key as ``Idempotency-Key``: the
instance remembers the key for an hour and answers a repeat with the status it
already created, so a retry after a timeout or a 5xx can never post twice
(docs.joinmastodon.org/methods/statuses/#create). Past that hour the publisher
reconciles through ``find``, which reads the account's own statuses.

The access token travels only in the ``Authorization`` header.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, Self
from urllib.parse import quote, urlsplit

import httpx

from socialbot.adapters.base import (
    Adapter,
    Media,
    MemoryState,
    State,
    json_body,
    new_client,
    parse_json,
)
from socialbot.config import Settings
from socialbot.errors import (
    AuthError,
    DeliveryError,
    PermanentError,
    TransientError,
)
from socialbot.logs import register_secret
from socialbot.models import Post, Receipt, TextLimits
from socialbot.networks import MEDIA_LIMITS_KEY
from socialbot.networks.mastodon import PROFILE, MastodonSettings

log = logging.getLogger("socialbot.adapters.mastodon")

FALLBACK_LIMITS = TextLimits(PROFILE.max_characters, PROFILE.url_weight or 0)
"""The profile's limits (stock Mastodon's), used when the instance does not report its own."""
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=5)
"""Mastodon's API window is 5 minutes (docs.joinmastodon.org/api/rate-limits/)."""
PAGE_SIZE = 40
"""The most statuses ``GET /api/v1/accounts/:id/statuses`` returns at once."""
MAX_PAGES = 5
FIND_MARGIN = timedelta(minutes=5)
"""Clock difference tolerated between this host and the instance."""
MEDIA_POLLS = 12
"""``GET /api/v1/media/:id`` at most this many times while an upload is processed."""
MEDIA_LIMITS = MEDIA_LIMITS_KEY + PROFILE.name
"""Where the instance's ``configuration.media_attachments`` is kept (read by the profile's
``reported_images``)."""
_MENTION = re.compile(r"(?<![\w@])@([\w.-]+)@[\w.-]+\w")
_SPACE = re.compile(r"\s+")


class MastodonAdapter(Adapter):
    """Posts statuses for one account."""

    name = PROFILE.name
    idempotent = PROFILE.idempotent
    idempotency_window = PROFILE.idempotency_window
    can_find = PROFILE.can_find
    can_delete = PROFILE.can_delete
    rate_limit_wait = DEFAULT_RATE_LIMIT_WAIT

    def __init__(
        self,
        *,
        access_token: str,
        base_url: str,
        visibility: str = "public",
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        state: State | None = None,
    ) -> None:
        register_secret(access_token)
        self.state = state or MemoryState()
        self.poll_interval = 0.2
        """Seconds before the first look at an upload being processed (doubling, at most 4)."""
        self.base_url = base_url.rstrip("/")
        self.visibility = visibility
        self.request_timeout = timeout
        self.http = new_client(
            self.base_url,
            timeout,
            headers={"Authorization": f"Bearer {access_token}"},
            transport=transport,
        )
        self._limits: TextLimits | None = None
        self._account: dict[str, Any] | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        state: State | None = None,
    ) -> Self:
        section = settings.section("mastodon")
        assert isinstance(section, MastodonSettings)
        assert section.access_token is not None
        return cls(
            access_token=section.access_token.get_secret_value(),
            base_url=section.base_url,
            visibility=section.visibility,
            timeout=settings.request_timeout_seconds,
            transport=transport,
            state=state,
        )

    # -- the Adapter protocol ------------------------------------------------------------

    def publish(self, post: Post, *, key: str, media: Sequence[Media] = ()) -> Receipt:
        # Uploads first, on every attempt: unattached media are removed by the instance.
        media_ids = [self.upload(item) for item in self.attachments(post, media)]
        if media_ids:
            self.uploaded()
        data: dict[str, Any] = {"status": post.text, "visibility": self.visibility}
        if post.language:
            data["language"] = post.language
        if media_ids:
            data["media_ids[]"] = media_ids
        response = self._send(
            "POST", "/api/v1/statuses", creating=True, data=data, headers={"Idempotency-Key": key}
        )
        status = self.answer_object(response, creating=True)
        status_id = status.get("id")
        if not isinstance(status_id, str) or not status_id:
            raise self.unreadable("names no status id", response, creating=True)
        return Receipt(status_id, self.status_url(status))

    def upload(self, item: Media) -> str:
        """``POST /api/v2/media`` with the alt text as ``description``; a 202 (still
        processing) is polled on ``GET /api/v1/media/:id`` until it is ready (200)."""
        response = self._send(
            "POST",
            "/api/v2/media",
            creating=False,
            files={"file": (item.filename, item.data, item.image.mime)},
            data={"description": item.image.alt},
        )
        attachment = self.answer_object(response, creating=False)
        media_id = attachment.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise self.unreadable("names no media id", response, creating=False)
        if response.status_code == 200 and attachment.get("url"):
            return media_id
        wait = self.poll_interval
        for _ in range(MEDIA_POLLS):
            time.sleep(min(wait, max(self.time_left() - 1.0, 0.0)))
            wait = min(wait * 2, 4.0)
            polled = self._send("GET", f"/api/v1/media/{quote(media_id, safe='')}", creating=False)
            if polled.status_code == 200 and self.answer_object(polled, creating=False).get("url"):
                return media_id
        raise TransientError(
            f"the instance was still processing image {media_id} after {MEDIA_POLLS} looks",
            network=self.name,
        )

    def find(self, text: str, since: datetime) -> Receipt | None:
        """Look through the account's statuses since ``since`` for one with this text."""
        account_id = str(self.account().get("id") or "")
        if not account_id:
            raise TransientError("verify_credentials returned no account id", network=self.name)
        wanted = comparable(text)
        floor = since - FIND_MARGIN
        params = {"limit": str(PAGE_SIZE), "exclude_reblogs": "true"}
        for _ in range(MAX_PAGES):
            response = self._send(
                "GET", f"/api/v1/accounts/{account_id}/statuses", creating=False, params=params
            )
            statuses = self.statuses(response)
            if not statuses:
                return None
            for status in statuses:
                created = parse_time(status.get("created_at"))
                if created is not None and created < floor:
                    continue
                if (
                    status.get("id")
                    and comparable(html_text(str(status.get("content") or ""))) == wanted
                ):
                    return Receipt(str(status["id"]), self.status_url(status))
            last = statuses[-1]
            last_created = parse_time(last.get("created_at"))
            if last_created is None or last_created < floor or len(statuses) < PAGE_SIZE:
                return None
            params = {**params, "max_id": str(last.get("id"))}
        raise self.searched_too_few(MAX_PAGES * PAGE_SIZE)

    def statuses(self, response: httpx.Response) -> list[dict[str, Any]]:
        """A page of statuses; an answer that is not one cannot prove anything absent."""
        data = parse_json(response)
        if not isinstance(data, list) or not all(
            isinstance(status, dict)
            and isinstance(status.get("id"), str)
            and isinstance(status.get("content"), str)
            and parse_time(status.get("created_at")) is not None
            for status in data
        ):
            raise self.unreadable("is not a list of statuses", response, creating=False)
        return data

    def delete(self, remote_id: str) -> None:
        """``DELETE /api/v1/statuses/:id``; a status that is gone already counts as deleted."""
        response = self.exchange(
            "DELETE", f"/api/v1/statuses/{quote(remote_id, safe='')}", creating=False
        )
        if response.is_success or response.status_code in (404, 410):
            return
        raise self.failure(response, creating=False)

    def text_limits(self) -> TextLimits:
        """The instance's status limits, asked once per adapter (500/23 when unknown)."""
        if self._limits is None:
            self._limits = self._fetch_limits()
        return self._limits

    def check(self) -> str:
        account = self.account()
        acct = str(account.get("acct") or account.get("username") or "?")
        host = urlsplit(self.base_url).netloc
        who = f"@{acct}@{host}" if "@" not in acct else f"@{acct}"
        name = str(account.get("display_name") or "").strip()
        limits = self.text_limits()
        described = f"{name} {who}" if name else who
        return f"{described}; statuses up to {limits.max_characters} characters"

    # -- helpers -------------------------------------------------------------------------

    def account(self) -> dict[str, Any]:
        """The token's account (``verify_credentials``), asked once per adapter."""
        if self._account is None:
            response = self._send("GET", "/api/v1/accounts/verify_credentials", creating=False)
            self._account = self.answer_object(response, creating=False)
        return self._account

    def post_id_from_url(self, url: str) -> str | None:
        """``…/@user/{id}`` (or ``/statuses/{id}``) on this instance."""
        match = re.search(r"/(?:@[^/]+|statuses|web/statuses)/(\d+)/?$", url)
        return match[1] if match else None

    def status_url(self, status: dict[str, Any]) -> str:
        """The status's public page: ``url``, else ``uri``, else the usual address."""
        for field in ("url", "uri"):
            value = status.get(field)
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                return value
        account = status.get("account")
        username = account.get("username") if isinstance(account, dict) else None
        if username:
            return f"{self.base_url}/@{username}/{status.get('id')}"
        return f"{self.base_url}/web/statuses/{status.get('id')}"

    def _fetch_limits(self) -> TextLimits:
        why = ""
        for path in ("/api/v2/instance", "/api/v1/instance"):
            try:
                response = self._send("GET", path, creating=False)
            except DeliveryError as exc:
                why = f"{path}: {exc}"
                if exc.status_code in (404, 410):
                    continue  # before Mastodon 4.0 only /api/v1/instance exists
                break
            instance = json_body(response)
            configuration = instance.get("configuration")
            if isinstance(configuration, dict) and configuration.get("media_attachments"):
                value = json.dumps(configuration["media_attachments"], sort_keys=True)
                if self.state.get_value(MEDIA_LIMITS) != value:
                    self.state.set_value(MEDIA_LIMITS, value)
            limits = limits_from_instance(instance)
            if limits is not None:
                return limits
            why = f"{path} reports no status limits"
        log.warning(
            "mastodon: using the stock limits of %d characters and %d per link (%s)",
            FALLBACK_LIMITS.max_characters,
            FALLBACK_LIMITS.url_weight,
            why,
        )
        return FALLBACK_LIMITS

    def _send(self, method: str, path: str, *, creating: bool, **kwargs: Any) -> httpx.Response:
        return self.call(method, path, creating=creating, **kwargs)

    def error_detail(self, response: httpx.Response) -> str:
        message = str(json_body(response).get("error") or response.reason_phrase)
        return f"{message} (HTTP {response.status_code})"

    def classify(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        return mastodon_error(response)


def mastodon_error(response: httpx.Response) -> DeliveryError:
    """Classify a 4xx or 3xx answer (``{"error": "..."}``, or a proxy's HTML page)."""
    status = response.status_code
    message = str(json_body(response).get("error") or response.reason_phrase or status)
    described = f"{message} (HTTP {status})"
    if status == 401:
        return AuthError(
            f"the instance refused the access token: {described}; create a new one under "
            "Preferences > Development on the instance",
            network="mastodon",
            status_code=status,
        )
    if status == 403 or (status == 422 and "authenticated user" in message):
        return AuthError(
            f"the instance refused the access token for this: {described}; the token needs "
            "the scopes write:statuses, write:media, read:accounts and read:statuses, and "
            "the account must be active",
            network="mastodon",
            status_code=status,
        )
    if 300 <= status < 400:
        return PermanentError(
            f"the instance redirects to {response.headers.get('Location', '?')} ({status}); "
            "set SOCIALBOT_MASTODON__BASE_URL to the instance's own address",
            network="mastodon",
            status_code=status,
        )
    if status == 422:
        return PermanentError(
            f"the instance rejected the status: {message}", network="mastodon", status_code=status
        )
    return PermanentError(
        f"the instance refused {response.request.method} {response.request.url.path}: {described}",
        network="mastodon",
        status_code=status,
    )


def limits_from_instance(instance: dict[str, Any]) -> TextLimits | None:
    """``configuration.statuses`` of an Instance entity (v2, or v1 since 3.4.2)."""
    configuration = instance.get("configuration")
    statuses = configuration.get("statuses") if isinstance(configuration, dict) else None
    if isinstance(statuses, dict):
        maximum = statuses.get("max_characters")
        per_url = statuses.get("characters_reserved_per_url", FALLBACK_LIMITS.url_weight)
    else:
        # Forks (glitch-soc, Pleroma) report ``max_toot_chars`` at the top level.
        maximum, per_url = instance.get("max_toot_chars"), FALLBACK_LIMITS.url_weight
    if (
        isinstance(maximum, int)
        and not isinstance(maximum, bool)
        and maximum > 0
        and isinstance(per_url, int)
        and per_url >= 0
    ):
        return TextLimits(maximum, per_url)
    return None


class _TextExtractor(HTMLParser):
    """Plain text of status HTML: paragraphs as blank lines, ``<br>`` as newlines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.paragraphs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p":
            if self.paragraphs:
                self.parts.append("\n\n")
            self.paragraphs += 1

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(content: str) -> str:
    """The text of a status's ``content`` (links and hashtags keep their full text)."""
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    return "".join(parser.parts)


def comparable(text: str) -> str:
    """Text reduced to what survives Mastodon's rendering: mentions without their
    domain (``@user@host`` shows as ``@user``) and whitespace collapsed."""
    return _SPACE.sub(" ", _MENTION.sub(r"@\1", text)).strip()


def parse_time(value: Any) -> datetime | None:
    """An entity's ISO 8601 time (``2019-12-05T11:34:47.196Z``), always aware."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


__all__ = ["MastodonAdapter", "comparable", "html_text", "limits_from_instance"]

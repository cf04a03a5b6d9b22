"""A Facebook Page through the Graph API, spoken directly with httpx.

facebook-sdk (last release 3.1.0, 2018) refuses every Graph API version Meta
serves today and hides the rate-limit headers, so this adapter sends
``POST /{version}/{page-id}/feed`` itself. The Page access token travels in the
``Authorization`` header, never in the URL, so it cannot end up in a log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Self
from urllib.parse import quote

import httpx

from socialbot.adapters.base import (
    Adapter,
    Media,
    State,
    json_body,
    new_client,
    server_failure,
    utc_now,
)
from socialbot.config import Settings
from socialbot.errors import (
    AuthError,
    DeliveryError,
    DuplicateError,
    PermanentError,
    RateLimited,
)
from socialbot.logs import register_secret
from socialbot.models import Post, Receipt
from socialbot.networks.facebook import PROFILE, FacebookSettings

# Throttling codes (developers.facebook.com/docs/graph-api/overview/rate-limiting):
# 4 app, 17 user, 32 page, 613 custom, 80001 page business use case.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001})
# Expired, invalid or insufficient tokens and permissions.
AUTH_CODES = frozenset({102, 190, 10, *range(200, 300)})
DUPLICATE_CODE = 506
# "Unsupported request. Object with ID ... does not exist": a deleted post.
GONE_CODE = 100
GONE_SUBCODE = 33
# 368 is documented as "temporarily blocked for policy violations: wait and
# retry"; only when its message speaks of a duplicate is it one.
BLOCKED_CODE = 368
DEFAULT_THROTTLE_WAIT = timedelta(minutes=10)
FIND_PAGES = 10
"""Pages of 100 posts read while looking for one; more cannot prove absence."""


class FacebookAdapter(Adapter):
    """Posts to a Page's feed."""

    name = PROFILE.name
    can_find = PROFILE.can_find
    can_delete = PROFILE.can_delete
    rate_limit_wait = DEFAULT_THROTTLE_WAIT

    def __init__(
        self,
        *,
        page_id: str,
        page_access_token: str,
        base_url: str,
        web_url: str,
        api_version: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        register_secret(page_access_token)
        self.page_id = page_id
        self.version = api_version
        self.web_url = web_url.rstrip("/")
        self.request_timeout = timeout
        self.http = new_client(
            base_url,
            timeout,
            headers={"Authorization": f"Bearer {page_access_token}"},
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        state: State | None = None,
    ) -> Self:
        fb = settings.section("facebook")
        assert isinstance(fb, FacebookSettings)
        assert fb.page_id and fb.page_access_token
        return cls(
            page_id=fb.page_id,
            page_access_token=fb.page_access_token.get_secret_value(),
            base_url=fb.base_url,
            web_url=fb.web_url,
            api_version=fb.api_version,
            timeout=settings.request_timeout_seconds,
            transport=transport,
        )

    def publish(self, post: Post, *, key: str, media: Sequence[Media] = ()) -> Receipt:
        """``POST /{page-id}/feed``; with images, each is first uploaded unpublished
        (``/{page-id}/photos``, ``published=false``, with its alt text) and attached
        with ``attached_media`` (the link then stays clickable in the message)."""
        photo_ids = [self.upload(item) for item in self.attachments(post, media)]
        data = {"message": post.text, "link": post.link}
        if photo_ids:
            self.uploaded()
            data = {"message": post.text}
            for n, photo_id in enumerate(photo_ids):
                data[f"attached_media[{n}]"] = json.dumps({"media_fbid": photo_id})
        response = self._send("POST", f"{self.page_id}/feed", creating=True, data=data)
        post_id = self.answer_object(response, creating=True).get("id")
        if not isinstance(post_id, str) or not post_id:
            raise self.unreadable("names no post id", response, creating=True)
        return Receipt(post_id, self.post_url(post_id))

    def upload(self, item: Media) -> str:
        """An unpublished photo of the Page; returns its id."""
        response = self._send(
            "POST",
            f"{self.page_id}/photos",
            creating=False,
            data={"published": "false", "alt_text_custom": item.image.alt},
            files={"source": (item.filename, item.data, item.image.mime)},
        )
        photo_id = self.answer_object(response, creating=False).get("id")
        if not isinstance(photo_id, str) or not photo_id:
            raise self.unreadable("names no photo id", response, creating=False)
        return photo_id

    def post_url(self, post_id: str) -> str:
        page, _, story = post_id.partition("_")
        return f"{self.web_url}/{page}/posts/{story or page}"

    def post_id_from_url(self, url: str) -> str | None:
        """``…/{page}/posts/{story}`` is the Graph post ``{page}_{story}``."""
        match = re.search(r"/(\d+)/posts/(\d+)", url)
        return f"{match[1]}_{match[2]}" if match else None

    def find(self, text: str, since: datetime) -> Receipt | None:
        """Look through the Page's posts since ``since``, every page of them (cursor-based
        pagination), up to ``FIND_PAGES`` pages: beyond, absence is not proven."""
        params = {
            "fields": "id,message,created_time",
            "since": str(int((since - timedelta(minutes=5)).timestamp())),
            "limit": "100",
        }
        for _ in range(FIND_PAGES):
            response = self._send("GET", f"{self.page_id}/feed", creating=False, params=params)
            answer = self.answer_object(response, creating=False)
            items = answer.get("data")
            if not isinstance(items, list) or not all(
                isinstance(item, dict) and isinstance(item.get("id"), str) for item in items
            ):
                raise self.unreadable("is not a list of posts", response, creating=False)
            for item in items:
                if item.get("message") == text:
                    return Receipt(str(item["id"]), self.post_url(str(item["id"])))
            paging = answer.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if not paging.get("next") or not items:
                return None
            if not isinstance(after, str):
                raise self.unreadable("has a next page but no cursor", response, creating=False)
            params = {**params, "after": after}
        raise self.searched_too_few(FIND_PAGES * 100)

    def delete(self, remote_id: str) -> None:
        """``DELETE /{post-id}``; a post that is gone already counts as deleted."""
        path = f"/{self.version}/{quote(remote_id, safe='')}"
        response = self.exchange("DELETE", path, creating=False)
        if response.is_success or response.status_code == 404:
            return
        error = graph_error_fields(response)
        if error.get("code") == GONE_CODE and error.get("error_subcode") == GONE_SUBCODE:
            return
        raise self.failure(response, creating=False)

    def check(self) -> str:
        response = self._send("GET", self.page_id, creating=False, params={"fields": "id,name"})
        page = self.answer_object(response, creating=False)
        return f"Page {page.get('name', '?')} ({page.get('id', self.page_id)})"

    def _send(self, method: str, path: str, *, creating: bool, **kwargs: Any) -> httpx.Response:
        return self.call(method, f"/{self.version}/{path}", creating=creating, **kwargs)

    def error_detail(self, response: httpx.Response) -> str:
        error = graph_error_fields(response)
        message = str(error.get("message") or response.reason_phrase or response.status_code)
        code = error.get("code")
        return f"{message} (code {code})" if code is not None else message

    def error_code(self, response: httpx.Response) -> int | str | None:
        code = graph_error_fields(response).get("code")
        return code if isinstance(code, int | str) else None

    def retry_hint(self, response: httpx.Response, now: datetime) -> datetime | None:
        return throttled_until(response)

    def classify(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        return graph_error(response, creating=creating)


def graph_error_fields(response: httpx.Response) -> dict[str, Any]:
    error = json_body(response).get("error")
    return error if isinstance(error, dict) else {}


def graph_error(response: httpx.Response, *, creating: bool) -> DeliveryError:
    """Classify a Graph API error body (``{"error": {"code", "message", ...}}``)."""
    error = graph_error_fields(response)
    code = error.get("code")
    message = str(error.get("message") or response.reason_phrase or response.status_code)
    status = response.status_code
    described = f"{message} (code {code})" if code is not None else message
    if code in RATE_LIMIT_CODES:
        return RateLimited(
            f"throttled: {described}",
            network="facebook",
            retry_at=throttled_until(response),
            status_code=status,
            api_code=code,
        )
    if code == DUPLICATE_CODE or (code == BLOCKED_CODE and "duplicate" in message.lower()):
        return DuplicateError(described, network="facebook", status_code=status, api_code=code)
    if code == BLOCKED_CODE:
        return RateLimited(
            f"temporarily blocked: {described}",
            network="facebook",
            retry_at=throttled_until(response),
            status_code=status,
            api_code=code,
        )
    if code in AUTH_CODES or status == 401:
        return AuthError(
            f"the Graph API refused the Page token: {described}",
            network="facebook",
            status_code=status,
            api_code=code,
        )
    if code in (1, 2) or error.get("is_transient"):
        return server_failure(
            "facebook", described, creating=creating, status=status, api_code=code
        )
    return PermanentError(
        f"the Graph API rejected the post: {described}",
        network="facebook",
        status_code=status,
        api_code=code,
    )


def throttled_until(response: httpx.Response) -> datetime:
    """When a throttled Page may post again, from the usage headers Meta sends."""
    now = utc_now()
    minutes = 0
    usage = response.headers.get("x-business-use-case-usage")
    if usage:
        try:
            for entries in json.loads(usage).values():
                for entry in entries:
                    minutes = max(minutes, int(entry.get("estimated_time_to_regain_access", 0)))
        except (ValueError, TypeError, AttributeError):
            minutes = 0
    if minutes > 0:
        return now + timedelta(minutes=minutes)
    return now + DEFAULT_THROTTLE_WAIT

"""A Facebook Page through the Graph API, spoken directly with httpx.

facebook-sdk (last release 3.1.0, 2018) refuses every Graph API version Meta
serves today and hides the rate-limit headers, so this adapter sends
``POST /{version}/{page-id}/feed`` itself. The Page access token travels in the
``Authorization`` header, never in the URL, so it cannot end up in a log line.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Self

import httpx

from socialbot.adapters.base import Adapter, json_body, new_client, send, utc_now
from socialbot.config import Settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    DeliveryError,
    DuplicateError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.models import Post, Receipt

# Throttling codes (developers.facebook.com/docs/graph-api/overview/rate-limiting):
# 4 app, 17 user, 32 page, 613 custom, 80001 page business use case.
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001})
# Expired, invalid or insufficient tokens and permissions.
AUTH_CODES = frozenset({102, 190, 10, *range(200, 300)})
DUPLICATE_CODE = 506
# 368 is documented as "temporarily blocked for policy violations: wait and
# retry"; only when its message speaks of a duplicate is it one.
BLOCKED_CODE = 368
DEFAULT_THROTTLE_WAIT = timedelta(minutes=10)


class FacebookAdapter(Adapter):
    """Posts to a Page's feed."""

    name = "facebook"
    can_find = True

    def __init__(
        self,
        *,
        page_id: str,
        page_access_token: str,
        base_url: str,
        web_url: str,
        api_version: str,
        timeout: float = 30.0,
    ) -> None:
        self.page_id = page_id
        self.version = api_version
        self.web_url = web_url.rstrip("/")
        self.http = new_client(
            base_url, timeout, headers={"Authorization": f"Bearer {page_access_token}"}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        fb = settings.facebook
        assert fb.page_id and fb.page_access_token
        return cls(
            page_id=fb.page_id,
            page_access_token=fb.page_access_token.get_secret_value(),
            base_url=fb.base_url,
            web_url=fb.web_url,
            api_version=fb.api_version,
            timeout=settings.request_timeout_seconds,
        )

    def publish(self, post: Post, *, key: str) -> Receipt:
        data = {"message": post.text, "link": post.link}
        response = self._send("POST", f"{self.page_id}/feed", creating=True, data=data)
        post_id = str(json_body(response).get("id", ""))
        if not post_id:
            raise AmbiguousError(
                "the Graph API accepted the post but returned no id", network=self.name
            )
        return Receipt(post_id, self.post_url(post_id))

    def post_url(self, post_id: str) -> str:
        page, _, story = post_id.partition("_")
        return f"{self.web_url}/{page}/posts/{story or page}"

    def find(self, text: str, since: datetime) -> Receipt | None:
        params = {
            "fields": "id,message,created_time",
            "since": str(int((since - timedelta(minutes=5)).timestamp())),
            "limit": "100",
        }
        response = self._send("GET", f"{self.page_id}/feed", creating=False, params=params)
        for item in json_body(response).get("data", []):
            if isinstance(item, dict) and item.get("message") == text:
                return Receipt(str(item["id"]), self.post_url(str(item["id"])))
        return None

    def check(self) -> str:
        response = self._send("GET", self.page_id, creating=False, params={"fields": "id,name"})
        page = json_body(response)
        return f"Page {page.get('name', '?')} ({page.get('id', self.page_id)})"

    def close(self) -> None:
        self.http.close()

    def _send(self, method: str, path: str, *, creating: bool, **kwargs: Any) -> httpx.Response:
        return send(
            self.http,
            method,
            f"/{self.version}/{path}",
            network=self.name,
            creating=creating,
            classify=lambda response: graph_error(response, creating=creating),
            **kwargs,
        )


def graph_error(response: httpx.Response, *, creating: bool) -> DeliveryError:
    """Classify a Graph API error body (``{"error": {"code", "message", ...}}``)."""
    error = json_body(response).get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    message = str(error.get("message") or response.reason_phrase or response.status_code)
    status = response.status_code
    described = f"{message} (code {code})" if code is not None else message
    if code in RATE_LIMIT_CODES or status == 429:
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
    if status >= 500 or code in (1, 2) or error.get("is_transient"):
        if creating:
            return AmbiguousError(
                f"the Graph API failed ({described}); the post may exist",
                network="facebook",
                status_code=status,
                api_code=code,
            )
        return TransientError(described, network="facebook", status_code=status, api_code=code)
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

"""A LinkedIn organization page through the versioned REST Posts API, spoken with httpx.

``POST /rest/posts`` with ``LinkedIn-Version: YYYYMM`` and
``X-Restli-Protocol-Version: 2.0.0``; the new post's URN comes back only in the
``x-restli-id`` header (learn.microsoft.com/linkedin/marketing/
community-management/shares/posts-api). The member access token travels in the
``Authorization`` header, never in a URL.

LinkedIn has no idempotency key. A create that may have gone through is left
``unknown`` and reconciled with the "find posts by authors" finder, which lists
the page's own posts; a resend of the same content is refused as "Content is a
duplicate of urn:li:share:N", which after an uncertain attempt means "posted".

The posts carry no language: the Posts API has no field for it (LinkedIn infers
it from the text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import quote, unquote

import httpx

from socialbot.adapters.base import (
    Adapter,
    Media,
    State,
    json_body,
    new_client,
)
from socialbot.compose import escape_little_text
from socialbot.config import Settings
from socialbot.errors import (
    AuthError,
    DeliveryError,
    DuplicateError,
    PermanentError,
)
from socialbot.logs import register_secret
from socialbot.models import Post, Receipt
from socialbot.networks.linkedin import PROFILE, LinkedInSettings

RESTLI_PROTOCOL = "2.0.0"
# Page roles that may post as the organization (posts-api, "Permissions").
POSTING_ROLES = ("ADMINISTRATOR", "CONTENT_ADMINISTRATOR", "DIRECT_SPONSORED_CONTENT_POSTER")
# A 429 without Retry-After that is not a daily quota is LinkedIn's
# "infrastructure protection", which "returns to normal automatically".
DEFAULT_THROTTLE_WAIT = timedelta(minutes=5)
FIND_PAGE = 50
FIND_MAX_POSTS = 200
FIND_SLACK = timedelta(minutes=5)
_ORGANIZATION = re.compile(r"urn:li:organization:(?P<id>\d+)")
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)
RENEWAL_HELP = (
    "LinkedIn access tokens last 60 days: create a new one, put it in "
    "SOCIALBOT_LINKEDIN__ACCESS_TOKEN and its expiry date in SOCIALBOT_LINKEDIN__TOKEN_EXPIRES"
)


class LinkedInAdapter(Adapter):
    """Posts as an organization page, with the release link as an article card."""

    name = PROFILE.name
    can_find = PROFILE.can_find
    can_delete = PROFILE.can_delete
    rate_limit_wait = DEFAULT_THROTTLE_WAIT

    def __init__(
        self,
        *,
        access_token: str,
        author: str,
        base_url: str,
        web_url: str,
        api_version: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        register_secret(access_token)
        self.author = author
        self.request_timeout = timeout
        self.api_version = api_version
        self.web_url = web_url.rstrip("/")
        self.http = new_client(
            base_url,
            timeout,
            headers={
                "Authorization": f"Bearer {access_token}",
                "LinkedIn-Version": api_version,
                "X-Restli-Protocol-Version": RESTLI_PROTOCOL,
            },
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
        li = settings.section("linkedin")
        assert isinstance(li, LinkedInSettings)
        assert li.access_token and li.author
        return cls(
            access_token=li.access_token.get_secret_value(),
            author=li.author,
            base_url=li.base_url,
            web_url=li.web_url,
            api_version=li.api_version,
            timeout=settings.request_timeout_seconds,
            transport=transport,
        )

    def publish(self, post: Post, *, key: str, media: Sequence[Media] = ()) -> Receipt:
        """Create the post; ``key`` is unused, LinkedIn has no idempotency key.

        Images are uploaded first (Images API), then named in the post: ``media``
        for one, ``multiImage`` for several, or the article's ``thumbnail``.
        """
        images = [(item, self.upload(item)) for item in self.attachments(post, media)]
        if images:
            self.uploaded()
        body: dict[str, Any] = {
            "author": self.author,
            # Unescaped reserved characters make LinkedIn keep the post only up
            # to the first of them while answering 201 (little-text-format).
            "commentary": escape_little_text(post.text),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if post.link:
            # LinkedIn does not scrape the page: the card is what we send.
            article = {"source": post.link, "title": post.title or post.link}
            if post.description:
                article["description"] = post.description
            if images and post.attach == "card":
                article["thumbnail"] = images[0][1]
                article["thumbnailAltText"] = images[0][0].image.alt
            body["content"] = {"article": article}
        if images and post.attach != "card":
            shown = [{"id": urn, "altText": item.image.alt} for item, urn in images]
            body["content"] = (
                {"media": shown[0]} if len(shown) == 1 else {"multiImage": {"images": shown}}
            )
        response = self._send(
            "POST", "/rest/posts", creating=True, json=body, headers={"X-RestLi-Method": "CREATE"}
        )
        urn = response.headers.get("x-restli-id", "").strip()
        if not urn.startswith("urn:li:"):
            raise self.unreadable("named no post (no x-restli-id)", response, creating=True)
        return Receipt(urn, self.post_url(urn))

    def upload(self, item: Media) -> str:
        """``POST /rest/images?action=initializeUpload``, then ``PUT`` the bytes to the
        upload URL it names; returns the image's URN."""
        response = self._send(
            "POST",
            "/rest/images",
            creating=False,
            params={"action": "initializeUpload"},
            json={"initializeUploadRequest": {"owner": self.author}},
        )
        value = self.answer_object(response, creating=False).get("value")
        upload_url = value.get("uploadUrl") if isinstance(value, dict) else None
        urn = value.get("image") if isinstance(value, dict) else None
        if not isinstance(upload_url, str) or not isinstance(urn, str):
            raise self.unreadable("names no upload URL or image", response, creating=False)
        self._send(
            "PUT",
            upload_url,
            creating=False,
            content=item.data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return urn

    def post_id_from_url(self, url: str) -> str | None:
        """``…/feed/update/{urn}``: the post's URN."""
        match = re.search(r"(urn:li:(?:share|ugcPost):\d+)", unquote(url))
        return match[1] if match else None

    def post_url(self, urn: str) -> str:
        return f"{self.web_url}/feed/update/{urn}"

    def find(self, text: str, since: datetime) -> Receipt | None:
        """Look through the page's newest posts for one with this text."""
        wanted = escape_little_text(text)
        floor_ms = int((since - FIND_SLACK).timestamp() * 1000)
        start = 0
        while start < FIND_MAX_POSTS:
            # Query order as documented: author first, then the finder name.
            params = {
                "author": self.author,
                "q": "author",
                "count": str(FIND_PAGE),
                "start": str(start),
                "sortBy": "CREATED",
            }
            response = self._send(
                "GET",
                "/rest/posts",
                creating=False,
                params=params,
                headers={"X-RestLi-Method": "FINDER"},
            )
            elements = self.answer_object(response, creating=False).get("elements")
            if not isinstance(elements, list) or not all(
                isinstance(item, dict) and isinstance(item.get("id"), str) for item in elements
            ):
                raise self.unreadable("is not a list of posts", response, creating=False)
            for item in elements:
                if item.get("lifecycleState") != "PUBLISHED":
                    continue
                commentary = str(item.get("commentary", ""))
                if commentary == wanted or _UNESCAPE.sub(r"\1", commentary) == text:
                    urn = str(item.get("id", ""))
                    return Receipt(urn, self.post_url(urn))
            created = [
                item["createdAt"]
                for item in elements
                if isinstance(item, dict) and isinstance(item.get("createdAt"), int)
            ]
            if len(elements) < FIND_PAGE or (created and min(created) < floor_ms):
                return None
            start += FIND_PAGE
        raise self.searched_too_few(FIND_MAX_POSTS)

    def delete(self, remote_id: str) -> None:
        """``DELETE /rest/posts/{urn}`` (URL-encoded); a post that is gone already is done."""
        response = self.exchange(
            "DELETE",
            f"/rest/posts/{quote(remote_id, safe='')}",
            creating=False,
            headers={"X-RestLi-Method": "DELETE"},
        )
        if response.is_success or response.status_code in (404, 410):
            return
        raise self.failure(response, creating=False)

    def check(self) -> str:
        """Prove the token may post as the page: its page roles, then the page's name."""
        response = self._send(
            "GET",
            "/rest/organizationAcls",
            creating=False,
            params={"q": "roleAssignee", "state": "APPROVED"},
            headers={"X-RestLi-Method": "FINDER"},
        )
        elements = json_body(response).get("elements")
        roles = sorted(
            str(acl.get("role"))
            for acl in (elements if isinstance(elements, list) else [])
            if isinstance(acl, dict)
            and self.author
            in (
                acl.get("organization"),
                acl.get("organizationTarget"),
                acl.get("organizationalTarget"),
            )
        )
        posting = [role for role in roles if role in POSTING_ROLES]
        if not posting:
            held = f" (it holds only {', '.join(roles)})" if roles else ""
            raise AuthError(
                f"the token's member cannot post as {self.author}{held}: a page admin must give "
                "them the Super admin or Content admin role",
                network=self.name,
            )
        found = _ORGANIZATION.fullmatch(self.author)
        if found is None:
            return f"{self.author} as {posting[0]}"
        page = json_body(self._send("GET", f"/rest/organizations/{found['id']}", creating=False))
        return f"{page.get('localizedName', '?')} ({self.author}) as {posting[0]}"

    def _send(self, method: str, path: str, *, creating: bool, **kwargs: Any) -> httpx.Response:
        return self.call(method, path, creating=creating, **kwargs)

    def error_detail(self, response: httpx.Response) -> str:
        body = json_body(response)
        message = str(body.get("message") or response.reason_phrase or response.status_code)
        code = body.get("code") or body.get("serviceErrorCode")
        return f"{message.strip()} ({code})" if code else message.strip()

    def error_code(self, response: httpx.Response) -> int | str | None:
        body = json_body(response)
        code = body.get("code") or body.get("serviceErrorCode")
        return code if isinstance(code, int | str) else None

    def retry_hint(self, response: httpx.Response, now: datetime) -> datetime | None:
        """LinkedIn sends no rate-limit headers: a daily quota resets at midnight UTC
        (learn.microsoft.com/linkedin/shared/api-guide/concepts/rate-limits); any other
        429 is "infrastructure protection", which passes by itself."""
        if "DAY limit" in str(json_body(response).get("message") or ""):
            return next_midnight(now)
        return None

    def classify(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        return linkedin_error(response, api_version=self.api_version)


def linkedin_error(response: httpx.Response, *, api_version: str) -> DeliveryError:
    """Classify a LinkedIn 4xx body (``{"status", "message", "code", "serviceErrorCode"}``)."""
    body = json_body(response)
    status = response.status_code
    message = str(body.get("message") or response.reason_phrase or status).strip()
    code = body.get("code") or body.get("serviceErrorCode")
    api_code = code if isinstance(code, int | str) else None
    described = f"{message} ({code})" if code else message
    if status == 401:
        return AuthError(
            f"LinkedIn refused the access token ({described}); it must be renewed. {RENEWAL_HELP}",
            network="linkedin",
            status_code=status,
            api_code=api_code,
        )
    if status == 426 or code in ("NONEXISTENT_VERSION", "VERSION_MISSING"):
        return AuthError(
            f"LinkedIn no longer serves API version {api_version} ({described}): set "
            "SOCIALBOT_LINKEDIN__API_VERSION to a recent YYYYMM",
            network="linkedin",
            status_code=status,
            api_code=api_code,
        )
    if status == 403:
        return AuthError(
            f"LinkedIn denied permission ({described}): the token needs w_organization_social "
            "(posting), r_organization_social (finding posts) and r_organization_admin "
            "(checking), from a Super or Content admin of the page",
            network="linkedin",
            status_code=status,
            api_code=api_code,
        )
    if status in (400, 409, 422) and "duplicate" in message.lower():
        return DuplicateError(described, network="linkedin", status_code=status, api_code=api_code)
    return PermanentError(
        f"LinkedIn rejected the request ({status}): {described}",
        network="linkedin",
        status_code=status,
        api_code=api_code,
    )


def next_midnight(now: datetime) -> datetime:
    """The next 00:00 UTC, when LinkedIn's daily counters reset."""
    day = now.astimezone(UTC)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)

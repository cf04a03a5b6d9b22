"""A fake Graph API Page: ``POST /{version}/{page-id}/feed``, as the Pages API documents it.

The Page access token is taken from the ``Authorization`` header (or an
``access_token`` parameter, as Meta also accepts); errors use the Graph API's
``{"error": {"message", "type", "code", "fbtrace_id"}}`` body; every answer
carries ``X-Business-Use-Case-Usage``, which on throttling holds
``estimated_time_to_regain_access`` in minutes.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from typing import Any
from urllib.parse import urlencode

from socialbot.sandbox.server import (
    Fault,
    ImageRefused,
    NetworkSandbox,
    Request,
    Response,
    inspect_image,
)

OLDEST_SERVED = (21, 0)
MESSAGE_LIMIT = 63_206
# Throttling codes and their messages, as the rate-limiting page lists them
# (developers.facebook.com/docs/graph-api/overview/rate-limiting). Page access
# tokens fall under the Business Use Case limits (32, 80001); #4 has been seen
# with HTTP 403 (python-social-auth/social-core issue 859).
THROTTLES: dict[int, tuple[int, str]] = {
    4: (403, "(#4) Application request limit reached"),
    17: (400, "(#17) User request limit reached"),
    32: (400, "(#32) Page request limit reached"),
    613: (400, "(#613) Calls to this api have exceeded the rate limit."),
    80001: (
        400,
        "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
    ),
}
_VERSION = r"(?P<version>v\d+\.\d+)"
PHOTO_MAX_BYTES = 4_000_000
"""The photo-uploads guide's recommended maximum, applied as the limit (docs/media.md)."""


def graph_error(status: int, code: int, message: str, **extra: Any) -> Response:
    error = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": secrets.token_urlsafe(8),
        **extra,
    }
    return Response.json(status, {"error": error})


class FacebookSandbox(NetworkSandbox):
    name = "facebook"
    create_path = rf"/{_VERSION}/(?P<page>[^/]+)/feed"
    list_path = create_path
    secret_name = "page_access_token"  # noqa: S105 - a field name

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.throttle_code = 32
        """Which throttling error an injected 429 becomes (a key of THROTTLES)."""

    def default_credentials(self) -> dict[str, str]:
        return {"page_id": "104811998472315", "page_access_token": "sandbox-facebook-page-token"}

    def settings(self, base: str) -> dict[str, str]:
        return {
            "SOCIALBOT_FACEBOOK__PAGE_ID": self.credentials["page_id"],
            "SOCIALBOT_FACEBOOK__PAGE_ACCESS_TOKEN": self.credentials["page_access_token"],
            "SOCIALBOT_FACEBOOK__BASE_URL": base,
            "SOCIALBOT_FACEBOOK__WEB_URL": base,
        }

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", self.create_path, self.create_post),
            ("GET", self.create_path, self.list_posts),
            ("GET", rf"/{_VERSION}/(?P<page>\d+)", self.page),
            ("DELETE", rf"/{_VERSION}/(?P<post>\d+_\d+)", self.delete),
            ("POST", rf"/{_VERSION}/(?P<page>[^/]+)/photos", self.upload_photo),
        ]

    def upload_photo(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /{page-id}/photos`` with ``source`` (multipart); ``published=false``
        keeps it unpublished, to be attached to a feed post with ``attached_media``."""
        denied = self.check(request, match)
        if denied is not None:
            return denied
        parts = request.multipart()
        source = parts.get("source", [None])[0]
        if source is None or source.filename is None:
            return graph_error(400, 324, "(#324) Requires upload file")
        fields = {name: items[0].text for name, items in parts.items() if name != "source"}
        if fields.get("published") != "false":
            return graph_error(400, 100, "(#100) this sandbox takes unpublished photos only")
        try:
            info = inspect_image(
                source.data,
                source.content_type,
                max_bytes=PHOTO_MAX_BYTES,
                formats=frozenset(
                    {"image/jpeg", "image/png", "image/gif", "image/bmp", "image/tiff"}
                ),
            )
        except ImageRefused as exc:
            return graph_error(400, 324, f"(#324) Missing or invalid image file ({exc})")
        photo_id = str(900_000_000_000 + self.next_id())
        self.keep_media(photo_id, source.data, info, fields.get("alt_text_custom", ""))
        return self.with_usage(Response.json(200, {"id": photo_id}))

    def create_post(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.check(request, match)
        if denied is not None:
            return denied
        message = request.param("message") or ""
        link = request.param("link") or ""
        fields = request.form() if request.body else {}
        attached = []
        for name in sorted(n for n in fields if n.startswith("attached_media[")):
            try:
                attached.append(str(json.loads(fields[name][0])["media_fbid"]))
            except (ValueError, KeyError, TypeError):
                return graph_error(400, 100, f"(#100) {name} must be {{'media_fbid': id}}")
        images: list[dict[str, Any]] = []
        if attached:
            if link:
                return graph_error(400, 100, "(#100) attached_media cannot be used with link")
            used = self.use_media(attached)
            if isinstance(used, str):
                return graph_error(400, 100, f"(#100) {used}")
            images = used
        if not message and not link and not images:
            return graph_error(400, 100, "(#100) Missing message or attachment")
        if len(message) > MESSAGE_LIMIT:
            return graph_error(
                400, 100, f"(#100) Param message must be at most {MESSAGE_LIMIT} characters long"
            )
        if link and not re.match(r"https?://[^\s/]+", link):
            return graph_error(400, 100, "(#100) The link parameter must be a valid URL")
        with self.lock:
            recent = self.posts[-10:]
            if any(p["text"] == message and p.get("link") == link for p in recent):
                return self.with_usage(graph_error(400, 506, "(#506) Duplicate status message"))
            story = str(1_200_000_000_000_000 + self.next_id())
            page = self.credentials["page_id"]
            self.store(
                {
                    "id": f"{page}_{story}",
                    "text": message,
                    "link": link,
                    "images": images,
                    "url": f"{self.base_url}/{page}/posts/{story}",
                }
            )
        return self.with_usage(Response.json(200, {"id": f"{page}_{story}"}))

    def list_posts(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.check(request, match)
        if denied is not None:
            return denied
        since = float(request.param("since") or 0)
        limit = min(int(request.param("limit") or 25), 100)
        offset = int(request.param("after") or "0")
        with self.lock:
            matching = [
                {"id": p["id"], "message": p["text"], "created_time": p["created_at"]}
                for p in reversed(self.posts)
                if _epoch(p["created_at"]) >= since
            ]
        data = matching[offset : offset + limit]
        # Cursor-based pagination (developers.facebook.com/docs/graph-api/results): `next`
        # only while there is more.
        paging: dict[str, Any] = {}
        if data:
            paging["cursors"] = {"before": str(offset), "after": str(offset + len(data))}
        if offset + limit < len(matching):
            query = urlencode({"limit": limit, "since": request.param("since") or 0})
            after = str(offset + limit)
            paging["next"] = f"{request.url.partition('?')[0]}?{query}&after={after}"
        return self.with_usage(Response.json(200, {"data": data, "paging": paging}))

    def delete(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /{post-id}``: ``{"success": true}``; a post that is gone is error 100/33."""
        token = _bearer(request) or request.param("access_token")
        if token != self.credentials["page_access_token"]:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if not self.delete_post(match["post"]):
            return graph_error(
                400,
                100,
                f"Unsupported delete request. Object with ID '{match['post']}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation",
                error_subcode=33,
            )
        return self.with_usage(Response.json(200, {"success": True}))

    def page(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.check(request, match)
        return denied or self.with_usage(
            Response.json(200, {"id": self.credentials["page_id"], "name": "CoR sandbox Page"})
        )

    def check(self, request: Request, match: re.Match[str]) -> Response | None:
        major, minor = (int(part) for part in match["version"][1:].split("."))
        if (major, minor) < OLDEST_SERVED:
            return graph_error(
                400,
                2635,
                f"(#2635) You are calling a deprecated version of the Graph API "
                f"({match['version']}). Please update to the latest version.",
            )
        token = _bearer(request) or request.param("access_token")
        if not token:
            return graph_error(
                400, 2500, "An active access token must be used to query information."
            )
        if token != self.credentials["page_access_token"]:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if match["page"] != self.credentials["page_id"]:
            return graph_error(
                400,
                100,
                f"Unsupported request. Object with ID '{match['page']}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation",
                error_subcode=33,
            )
        return None

    def with_usage(self, response: Response, regain_minutes: int = 0) -> Response:
        usage = {
            self.credentials["page_id"]: [
                {
                    "type": "pages",
                    "call_count": 100 if regain_minutes else 1,
                    "total_cputime": 1,
                    "total_time": 1,
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        }
        response.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
        return response

    def error_response(self, fault: Fault) -> Response:
        if fault.status == 429:
            # The Graph API signals throttling with an error code, not HTTP 429.
            minutes = max(1, math.ceil(fault.retry_after / 60)) if fault.hint != "none" else 0
            status, message = THROTTLES[self.throttle_code]
            return self.with_usage(
                graph_error(status, self.throttle_code, message, is_transient=True), minutes
            )
        if fault.status >= 500:
            return graph_error(
                fault.status,
                2,
                "An unexpected error has occurred. Please retry your request later.",
                is_transient=True,
            )
        return graph_error(fault.status, 100, f"(#100) injected error {fault.status}")


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization") or ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") and token else None


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

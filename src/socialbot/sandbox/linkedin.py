"""A fake LinkedIn organization page: the versioned REST Posts API, as LinkedIn documents it.

- ``POST /rest/posts`` creates a post and answers 201 with an empty body and the
  post's URN in ``x-restli-id``
  (learn.microsoft.com/linkedin/marketing/community-management/shares/posts-api).
- ``GET /rest/posts?author=...&q=author`` is the "find posts by authors" finder.
- ``GET /rest/organizationAcls?q=roleAssignee`` lists the member's page roles and
  ``GET /rest/organizations/{id}`` names the page (what ``check()`` reads).
- ``GET /feed/update/{urn}`` is the post's public page (``web_url`` points here).

Every call needs ``Authorization: Bearer``, a ``LinkedIn-Version: YYYYMM`` that
is still served (versions are sunset after a year and then answer 426
NONEXISTENT_VERSION) and ``X-Restli-Protocol-Version: 2.0.0``. Bodies are
validated like Rest.li does (422 with ``ERROR :: /path :: ...`` lines, unknown
fields refused), a second post with the same content answers 422 "Content is a
duplicate of urn:li:share:N", and permissions follow the token's scopes.

``commentary`` is "little text": reserved characters must be backslash-escaped.
An unescaped one that does not start a mention or hashtag makes LinkedIn keep
the post only up to that character while still answering 201; the sandbox does
the same, so tests can prove the escaping.

LinkedIn sends no rate-limit headers; a spent daily quota answers 429 with
"Resource level throttle ... DAY limit" and the counters reset at midnight UTC
(learn.microsoft.com/linkedin/shared/api-guide/concepts/rate-limits).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import regex

from socialbot.sandbox.server import (
    Fault,
    ImageRefused,
    NetworkSandbox,
    Request,
    Response,
    inspect_image,
    post_image,
)

FIRST_SHARE = 7_390_000_000_000_000_000
COMMENTARY_LIMIT = 3000
VERSION_LIFETIME_MONTHS = 12
DAILY_POST_LIMIT = 150
POSTING_ROLES = ("ADMINISTRATOR", "CONTENT_ADMINISTRATOR", "DIRECT_SPONSORED_CONTENT_POSTER")
VISIBILITIES = ("PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER")
LIFECYCLE_STATES = ("DRAFT", "PUBLISHED", "PUBLISH_REQUESTED", "PUBLISH_FAILED")
FEED_DISTRIBUTIONS = ("MAIN_FEED", "NONE")
POST_FIELDS = frozenset(
    {
        "author",
        "commentary",
        "visibility",
        "distribution",
        "lifecycleState",
        "isReshareDisabledByAuthor",
        "content",
        "contentLandingPage",
        "contentCallToActionLabel",
        "container",
        "adContext",
        "reshareContext",
    }
)
ARTICLE_FIELDS = frozenset({"source", "title", "description", "thumbnail", "thumbnailAltText"})
IMAGE_MAX_BYTES = 5_000_000
"""socialbot's own cap (LinkedIn documents none, docs/media.md)."""
DAY_LIMIT = "Resource level throttle {kind} DAY limit for calls to this resource is reached."

_VERSION = re.compile(r"(?P<year>\d{4})(?P<month>\d{2})(?:\.\d{2})?")
_URN = re.compile(r"urn:li:(?P<type>[A-Za-z]+):(?P<id>[^\s:]+)")
_MENTION = re.compile(r"@\[(?P<name>(?:[^\]\\]|\\.)*)\]\((?P<urn>urn:li:[A-Za-z]+:[^)\s]+)\)")
_HASHTAG_TEMPLATE = re.compile(r"\{hashtag\|\\?(?P<sign>[#\uff03])\|(?P<tag>[^{}|\\]+)\}")
_HASHTAG = regex.compile(r"#[\p{L}\p{M}\p{Nd}_]+")
_RESERVED = frozenset("\\|{}@[]()<>#*_~")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def restli_error(status: int, message: str, **extra: Any) -> Response:
    """LinkedIn's error body: ``{"status", "message"}`` plus ``code``/``serviceErrorCode``."""
    return Response.json(status, {"status": status, "message": message, **extra})


def render_little(commentary: str) -> tuple[str, int | None]:
    """The text readers see, and the offset where LinkedIn cut the post (None: whole).

    Implements the little grammar (learn.microsoft.com/linkedin/marketing/
    community-management/shares/little-text-format): escaped characters are
    text, ``@[Name](urn)`` is a mention, ``#tag`` and ``{hashtag|\\#|tag}`` are
    hashtags; any other unescaped reserved character ends the kept text.
    """
    out: list[str] = []
    i = 0
    while i < len(commentary):
        ch = commentary[i]
        if ch == "\\":
            if i + 1 == len(commentary):
                return "".join(out), i
            out.append(commentary[i + 1])
            i += 2
            continue
        if ch not in _RESERVED:
            out.append(ch)
            i += 1
            continue
        if mention := _MENTION.match(commentary, i):
            out.append(_ESCAPE.sub(r"\1", mention["name"]))
            i = mention.end()
        elif template := _HASHTAG_TEMPLATE.match(commentary, i):
            out.append(template["sign"] + template["tag"])
            i = template.end()
        elif hashtag := _HASHTAG.match(commentary, i):
            out.append(hashtag.group())
            i = hashtag.end()
        else:
            return "".join(out), i
    return "".join(out), None


def active_versions(now: datetime) -> tuple[str, str]:
    """The oldest and newest ``YYYYMM`` LinkedIn serves at ``now``."""
    newest = now.year * 12 + now.month - 1
    oldest = newest - VERSION_LIFETIME_MONTHS + 1
    return f"{oldest // 12}{oldest % 12 + 1:02d}", f"{newest // 12}{newest % 12 + 1:02d}"


def current_version(now: datetime | None = None) -> str:
    """Last month's version: one LinkedIn certainly serves."""
    now = now or datetime.now(UTC)
    previous = now.year * 12 + now.month - 2
    return f"{previous // 12}{previous % 12 + 1:02d}"


class LinkedInSandbox(NetworkSandbox):
    name = "linkedin"
    create_path = r"/rest/posts"
    list_path = r"/rest/posts"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daily_limit = DAILY_POST_LIMIT
        """Posts per member and UTC day before LinkedIn's "DAY limit" 429."""
        self.expired_tokens: set[str] = set()
        """Tokens past their 60 days (they answer EXPIRED_ACCESS_TOKEN)."""
        self.day = datetime.now(UTC).date()
        self.posts_today = 0
        self.uploads: dict[str, str] = {}
        """Upload tokens handed out by initializeUpload -> the image URN they fill."""

    def default_credentials(self) -> dict[str, str]:
        return {
            "access_token": "sandbox-linkedin-access-token",
            "author": "urn:li:organization:10457221",
            "member": "urn:li:person:qT7xD3mKa9",
            "role": "ADMINISTRATOR",
            "scopes": "w_organization_social r_organization_social r_organization_admin",
        }

    def settings(self, base: str) -> dict[str, str]:
        return {
            "SOCIALBOT_LINKEDIN__ACCESS_TOKEN": self.credentials["access_token"],
            "SOCIALBOT_LINKEDIN__AUTHOR": self.credentials["author"],
            "SOCIALBOT_LINKEDIN__API_VERSION": current_version(),
            "SOCIALBOT_LINKEDIN__BASE_URL": base,
            "SOCIALBOT_LINKEDIN__WEB_URL": base,
        }

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/rest/posts", self.create_post),
            ("GET", r"/rest/posts", self.find_posts),
            ("GET", r"/rest/organizationAcls", self.organization_acls),
            ("DELETE", r"/rest/posts/(?P<urn>[^/]+)", self.delete_post_route),
            ("GET", r"/rest/organizations/(?P<id>[^/]+)", self.organization),
            ("POST", r"/rest/images", self.initialize_upload),
            ("PUT", r"/upload/(?P<token>[^/]+)", self.receive_upload),
        ]

    def initialize_upload(self, request: Request, match: re.Match[str]) -> Response:
        """``POST /rest/images?action=initializeUpload`` (Images API): an upload URL and
        the image's URN, usable once the bytes are PUT there."""
        denied = self.gate(request, "images.CREATE", "w_organization_social")
        if denied is not None:
            return denied
        if request.query.get("action") != ["initializeUpload"]:
            return restli_error(400, "action=initializeUpload is required")
        try:
            owner = request.json()["initializeUploadRequest"]["owner"]
        except (ValueError, KeyError, TypeError):
            return restli_error(422, "ERROR :: /initializeUploadRequest/owner :: field is required")
        if owner != self.credentials["author"]:
            return restli_error(403, f"Not permitted to upload images as {owner}")
        number = self.next_id()
        urn = f"urn:li:image:D4E10AQ{number:010d}"
        token = f"img{number}"
        with self.lock:
            self.uploads[token] = urn
        value = {
            "uploadUrlExpiresAt": int(time.time() * 1000) + 3_600_000,
            "uploadUrl": f"{self.base_url}/upload/{token}",
            "image": urn,
        }
        return Response.json(200, {"value": value})

    def receive_upload(self, request: Request, match: re.Match[str]) -> Response:
        with self.lock:
            urn = self.uploads.pop(match["token"], None)
        if urn is None:
            return restli_error(404, "No such upload")
        try:
            info = inspect_image(
                request.body,
                None,
                max_bytes=IMAGE_MAX_BYTES,
                formats=frozenset({"image/jpeg", "image/png", "image/gif"}),
            )
        except ImageRefused as exc:
            return restli_error(400, f"The image was refused: {exc}")
        if info["width"] * info["height"] >= 36_152_320:
            return restli_error(400, "The image has 36,152,320 pixels or more")
        self.keep_media(urn, request.body, info)
        return Response(201)

    def image(self, urn: Any, alt: Any) -> dict[str, Any] | str:
        """The uploaded image a post names, or why the post is refused."""
        with self.lock:
            entry = self.media.get(urn) if isinstance(urn, str) else None
        if entry is None:
            return f"ERROR :: {urn} is not an uploaded image"
        if alt is not None and (not isinstance(alt, str) or len(alt) > 4086):
            return "ERROR :: /altText :: length must be at most 4086"
        return post_image({**entry, "alt": alt or ""})

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.posts_today = 0
            self.uploads.clear()

    # -- endpoints -----------------------------------------------------------------------

    def create_post(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.gate(request, "partnerApiPostsExternal.CREATE", "w_organization_social")
        if denied is not None:
            return denied
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            return restli_error(400, "Unable to parse the request entity as JSON")
        if not isinstance(body, dict):
            return restli_error(400, "The request entity must be a JSON object")
        problems = validate_post(body)
        if problems:
            return restli_error(422, "".join(f"ERROR :: {p}\n" for p in problems))
        author = body["author"]
        if author != self.credentials["author"] or self.credentials["role"] not in POSTING_ROLES:
            return restli_error(
                403,
                f"Member {self.credentials['member']} is not permitted to create posts as {author}",
                serviceErrorCode=100,
                code="ACCESS_DENIED",
            )
        commentary = body.get("commentary", "")
        content = body.get("content", {})
        article = content.get("article")
        shown = [
            *([content["media"]] if "media" in content else []),
            *content.get("multiImage", {}).get("images", []),
        ]
        images = [self.image(i.get("id"), i.get("altText")) for i in shown]
        thumb = None
        if article and article.get("thumbnail"):
            thumb = self.image(article["thumbnail"], article.get("thumbnailAltText"))
        refused = [i for i in [*images, thumb] if isinstance(i, str)]
        if refused:
            return restli_error(422, refused[0])
        with self.lock:
            throttled = self.spend_daily_quota()
            if throttled is not None:
                return throttled
            for post in self.posts:
                if post["author"] == author and (post["commentary"], post["article"]) == (
                    commentary,
                    article,
                ):
                    return restli_error(422, f"Content is a duplicate of {post['id']}")
            urn = f"urn:li:share:{FIRST_SHARE + self.next_id()}"
            text, cut = render_little(commentary)
            self.store(
                {
                    "id": urn,
                    "text": text,
                    "url": f"{self.base_url}/feed/update/{urn}",
                    "author": author,
                    "commentary": commentary if cut is None else commentary[:cut],
                    "sent_commentary": commentary,
                    "truncated": cut is not None,
                    "article": article,
                    "images": images,
                    "thumb": thumb,
                    "visibility": body["visibility"],
                    "lifecycle_state": body["lifecycleState"],
                    "distribution": body["distribution"],
                    "reshare_disabled": bool(body.get("isReshareDisabledByAuthor", False)),
                    "created_ms": int(time.time() * 1000),
                }
            )
        return Response(201, b"", {"x-restli-id": urn, "x-linkedin-id": urn})

    def delete_post_route(self, request: Request, match: re.Match[str]) -> Response:
        """``DELETE /rest/posts/{encoded urn}``: 204; a post that is gone is 404."""
        denied = self.gate(request, "partnerApiPostsExternal.DELETE", "w_organization_social")
        if denied is not None:
            return denied
        if ":" in match["urn"]:
            return restli_error(400, "The post URN in the path must be URL-encoded")
        urn = unquote(match["urn"])
        if not self.delete_post(urn):
            return restli_error(404, f"Post {urn} not found")
        return Response(204)

    def find_posts(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.gate(
            request, "partnerApiPostsExternal.FINDER-author", "r_organization_social"
        )
        if denied is not None:
            return denied
        if request.param("q") != "author":
            return restli_error(400, "A finder must be given: q=author")
        # Rest.li 2.0.0 reserves ":" in query values: a URN must arrive percent-encoded
        # (linkedin.github.io/rest.li/spec/protocol, "Rest.li protocol 2.0.0").
        raw = [
            v
            for k, _, v in (p.partition("=") for p in urlsplit(request.url).query.split("&"))
            if k == "author"
        ]
        if any(":" in value for value in raw):
            return restli_error(400, "Invalid query parameter author: the URN must be URL-encoded")
        author = request.param("author") or ""
        if not _URN.fullmatch(author):
            return restli_error(400, f"Invalid value for query parameter author: {author!r}")
        if author != self.credentials["author"]:
            return restli_error(
                403,
                f"Not enough permissions to read the posts of {author}",
                serviceErrorCode=100,
                code="ACCESS_DENIED",
            )
        try:
            start = int(request.param("start") or 0)
            count = int(request.param("count") or 10)
        except ValueError:
            return restli_error(400, "start and count must be integers")
        if start < 0 or not 1 <= count <= 100:
            return restli_error(400, "count must be between 1 and 100 and start at least 0")
        sort = request.param("sortBy") or "LAST_MODIFIED"
        if sort not in ("LAST_MODIFIED", "CREATED"):
            return restli_error(400, f"Invalid value for query parameter sortBy: {sort}")
        with self.lock:
            # Nothing is ever edited here, so both orders are newest first.
            mine = [p for p in reversed(self.posts) if p["author"] == author]
        page = mine[start : start + count]
        links = []
        if start + count < len(mine):
            href = (
                f"/rest/posts?author={quote(author, safe='')}&count={count}"
                f"&q=author&sortBy={sort}&start={start + count}"
            )
            links.append({"type": "application/json", "rel": "next", "href": href})
        paging = {"start": start, "count": count, "links": links}
        return Response.json(200, {"elements": [post_entity(p) for p in page], "paging": paging})

    def organization_acls(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.gate(request, "organizationAcls.FINDER-roleAssignee", "r_organization_admin")
        if denied is not None:
            return denied
        if request.param("q") != "roleAssignee":
            return restli_error(400, "A finder must be given: q=roleAssignee")
        acl = {
            "roleAssignee": self.credentials["member"],
            "state": "APPROVED",
            "role": self.credentials["role"],
            "organization": self.credentials["author"],
        }
        wanted_role, wanted_state = request.param("role"), request.param("state")
        matches = wanted_role in (None, acl["role"]) and wanted_state in (None, acl["state"])
        elements = [acl] if matches else []
        paging = {"start": 0, "count": 10, "links": [], "total": len(elements)}
        return Response.json(200, {"elements": elements, "paging": paging})

    def organization(self, request: Request, match: re.Match[str]) -> Response:
        denied = self.gate(request, "organizations.GET", "r_organization_admin")
        if denied is not None:
            return denied
        org_id = self.credentials["author"].rsplit(":", 1)[-1]
        if match["id"] != org_id:
            return restli_error(404, f"Organization {match['id']} not found")
        name = "European Committee of the Regions"
        return Response.json(
            200,
            {
                "id": int(org_id),
                "localizedName": name,
                "vanityName": "european-committee-of-the-regions",
                "name": {
                    "localized": {"en_US": name},
                    "preferredLocale": {"country": "US", "language": "en"},
                },
                "primaryOrganizationType": "GOVERNMENT",
            },
        )

    # -- protocol details ----------------------------------------------------------------

    def gate(self, request: Request, resource: str, scope: str) -> Response | None:
        """What every call passes first: token, version, protocol, scope."""
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return restli_error(
                401,
                "Empty oauth2_access_token",
                serviceErrorCode=65604,
                code="EMPTY_ACCESS_TOKEN",
            )
        token = token.strip()
        if token in self.expired_tokens:
            return restli_error(
                401,
                "The token used in the request has expired",
                serviceErrorCode=65602,
                code="EXPIRED_ACCESS_TOKEN",
            )
        if token != self.credentials["access_token"]:
            return restli_error(
                401, "Invalid access token", serviceErrorCode=65600, code="INVALID_ACCESS_TOKEN"
            )
        version = request.headers.get("LinkedIn-Version")
        if not version:
            return restli_error(
                400,
                "A version must be present. Please specify a version by adding the "
                "LinkedIn-Version header.",
                code="VERSION_MISSING",
            )
        if not self.serves(version):
            return restli_error(
                426, f"Requested version {version} is not active", code="NONEXISTENT_VERSION"
            )
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            return restli_error(
                400,
                "This API requires the header X-Restli-Protocol-Version: 2.0.0",
                code="ILLEGAL_ARGUMENT",
            )
        if scope not in self.credentials["scopes"].split():
            return restli_error(
                403,
                f"Not enough permissions to access: {resource}.{version}",
                serviceErrorCode=100,
                code="ACCESS_DENIED",
            )
        return None

    def serves(self, version: str) -> bool:
        found = _VERSION.fullmatch(version)
        if found is None or not 1 <= int(found["month"]) <= 12:
            return False
        oldest, newest = active_versions(datetime.now(UTC))
        return oldest <= found["year"] + found["month"] <= newest

    def spend_daily_quota(self) -> Response | None:
        """Count a create against the member's daily quota (called with the lock held)."""
        today = datetime.now(UTC).date()
        if today != self.day:
            self.day, self.posts_today = today, 0
        if self.posts_today >= self.daily_limit:
            return restli_error(429, DAY_LIMIT.format(kind="MEMBER"))
        self.posts_today += 1
        return None

    def error_response(self, fault: Fault) -> Response:
        status = fault.status
        if status == 429:
            return self.throttled(fault)
        if status == 401:
            return restli_error(
                401, "Invalid access token", serviceErrorCode=65600, code="INVALID_ACCESS_TOKEN"
            )
        if status == 403:
            return restli_error(
                403,
                "Not enough permissions to access: partnerApiPostsExternal.CREATE",
                serviceErrorCode=100,
                code="ACCESS_DENIED",
            )
        if status == 422:
            return restli_error(422, "ERROR :: /commentary :: injected validation error\n")
        if status == 426:
            return restli_error(
                426, "Requested version 202301 is not active", code="NONEXISTENT_VERSION"
            )
        phrases = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return restli_error(status, phrases.get(status, "Request failed"))

    def throttled(self, fault: Fault) -> Response:
        """A 429 with LinkedIn's own hint (none: the daily quota resets at midnight UTC)."""
        if fault.hint == "native":
            return restli_error(429, DAY_LIMIT.format(kind="APPLICATION"))
        response = restli_error(429, "Too Many Requests")
        now = time.time()
        if fault.hint == "retry-after-seconds":
            response.headers["Retry-After"] = str(int(fault.retry_after))
        elif fault.hint == "retry-after-date":
            response.headers["Retry-After"] = http_date(now + fault.retry_after)
        elif fault.hint == "past-date":
            response.headers["Retry-After"] = http_date(now - 86_400)
        return response


def validate_post(body: dict[str, Any]) -> list[str]:
    """Rest.li schema validation of a Post create: one ``/path :: problem`` per fault."""
    problems = [
        f"/{name} :: unrecognized field found but not allowed"
        for name in sorted(set(body) - POST_FIELDS)
    ]
    missing = "field is required but not found and has no default value"
    for name in ("author", "visibility", "distribution", "lifecycleState"):
        if name not in body:
            problems.append(f"/{name} :: {missing}")
    author = body.get("author")
    if author is not None and (not isinstance(author, str) or not _URN.fullmatch(author)):
        problems.append(f"/author :: {author!r} is not a valid URN")
    for name, symbols in (("visibility", VISIBILITIES), ("lifecycleState", LIFECYCLE_STATES)):
        if name in body and body[name] not in symbols:
            problems.append(f'/{name} :: "{body[name]}" is not an enum symbol')
    commentary = body.get("commentary")
    if commentary is not None:
        if not isinstance(commentary, str):
            problems.append("/commentary :: data type is not a string")
        # Rest.li runs on the JVM: a string's length is counted in UTF-16 code units.
        elif (length := len(commentary.encode("utf-16-le")) // 2) > COMMENTARY_LIMIT:
            problems.append(
                f"/commentary :: length of {length} is out of range 0...{COMMENTARY_LIMIT}"
            )
    distribution = body.get("distribution")
    if distribution is not None:
        if not isinstance(distribution, dict):
            problems.append("/distribution :: data type is not a record")
        elif distribution.get("feedDistribution") not in FEED_DISTRIBUTIONS:
            problems.append(
                f'/distribution/feedDistribution :: "{distribution.get("feedDistribution")}" '
                "is not an enum symbol"
            )
    content = body.get("content")
    if content is not None:
        problems.extend(validate_content(content))
    elif not commentary:
        problems.append("/commentary :: a post needs commentary or content")
    return problems


def validate_content(content: Any) -> list[str]:
    if isinstance(content, dict) and set(content) == {"media"}:
        media = content["media"]
        ok = isinstance(media, dict) and str(media.get("id", "")).startswith("urn:li:image:")
        return [] if ok else ["/content/media/id :: an image URN is required"]
    if isinstance(content, dict) and set(content) == {"multiImage"}:
        images = (
            content["multiImage"].get("images") if isinstance(content["multiImage"], dict) else None
        )
        if not isinstance(images, list) or not 2 <= len(images) <= 20:
            return ["/content/multiImage/images :: between 2 and 20 images are required"]
        return []
    if not isinstance(content, dict) or set(content) != {"article"}:
        return ["/content :: an article, media or multiImage is served by this sandbox"]
    article = content["article"]
    if not isinstance(article, dict):
        return ["/content/article :: data type is not a record"]
    problems = [
        f"/content/article/{name} :: unrecognized field found but not allowed"
        for name in sorted(set(article) - ARTICLE_FIELDS)
    ]
    for name in ("source", "title"):
        value = article.get(name)
        if not isinstance(value, str) or not value:
            problems.append(
                f"/content/article/{name} :: field is required but not found and has no "
                "default value"
            )
    source = article.get("source")
    if isinstance(source, str) and source and not re.match(r"https?://[^\s/]+", source):
        problems.append(f"/content/article/source :: {source!r} is not a valid URL")
    return problems


def post_entity(post: dict[str, Any]) -> dict[str, Any]:
    """A stored post as the Posts API returns it."""
    entity: dict[str, Any] = {
        "id": post["id"],
        "author": post["author"],
        "commentary": post["commentary"],
        "visibility": post["visibility"],
        "distribution": post["distribution"],
        "lifecycleState": post["lifecycle_state"],
        "isReshareDisabledByAuthor": post["reshare_disabled"],
        "createdAt": post["created_ms"],
        "publishedAt": post["created_ms"],
        "lastModifiedAt": post["created_ms"],
        "lifecycleStateInfo": {"isEditedByAuthor": False},
    }
    if post["article"] is not None:
        entity["content"] = {"article": post["article"]}
    return entity


def http_date(timestamp: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(timestamp))

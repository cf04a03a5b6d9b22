"""A fake Bluesky PDS: sessions, post records and the author feed, over XRPC.

What it does as the bsky.social PDS does (docs.bsky.app, bluesky-social/atproto):

- ``createSession`` with a handle (or DID) and an app password; limited to 30
  logins per 5 minutes and 300 a day per account, with ``RateLimit-*``
  headers; a wrong password is 401 ``AuthenticationRequired``.
- JWT access tokens that expire (``access_lifetime``, two hours by default;
  expired ones get 400 ``ExpiredToken``) and refresh tokens that are rotated
  by ``refreshSession`` (a used one is revoked).
- ``createRecord`` of ``app.bsky.feed.post`` records, validated against the
  post lexicon (text at most 300 graphemes and 3000 UTF-8 bytes, at most 3
  languages, facets, the external link card), with a client-chosen record
  key that must be a TID; a record key already taken answers 500
  ``InternalServerError``, as the PDS does today (bluesky-social/atproto
  issue 3718). Writes cost 3 of 5000 points an hour, reported in
  ``RateLimit-*`` headers.
- ``getRecord``, ``deleteRecord``, ``uploadBlob`` (images, embedded with
  ``app.bsky.embed.images`` or as a link card's thumbnail), ``getSession`` and
  ``app.bsky.feed.getAuthorFeed``.

Stricter than the PDS, as the oracle of the tests: every facet's byte range
must cover exactly its link's URI or ``#tag`` in the text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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

COLLECTION = "app.bsky.feed.post"
ACCESS_LIFETIME = 2 * 3600.0
REFRESH_LIFETIME = 90 * 86400.0
# docs.bsky.app/docs/advanced-guides/rate-limits
LOGIN_LIMITS = ((30, 300), (300, 86400))
WRITE_LIMITS = ((5000, 3600), (35000, 86400))
CREATE_POINTS = 3
ACCESS_SCOPES = frozenset({"com.atproto.appPass", "com.atproto.access"})
REFRESH_SCOPE = "com.atproto.refresh"
# The XRPC names and messages for each status (packages/xrpc/src/types.ts).
STATUS_ERRORS = {
    400: ("InvalidRequest", "Invalid Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("Forbidden", "Forbidden"),
    404: ("XRPCNotSupported", "XRPC Not Supported"),
    413: ("PayloadTooLarge", "Payload Too Large"),
    429: ("RateLimitExceeded", "Rate Limit Exceeded"),
    500: ("InternalServerError", "Internal Server Error"),
    501: ("MethodNotImplemented", "Method Not Implemented"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Not Enough Resources"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")
_RECORD_KEY = re.compile(r"[a-zA-Z0-9_~.:-]{1,512}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_LANGUAGE = re.compile(r"([a-zA-Z]{2,3}|[ix])(-[a-zA-Z0-9]{1,8})*")
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+")
_GRAPHEME = regex.compile(r"\X")

DuplicateAnswer = Literal["internal-error", "invalid-request"]


BLOB_MAX_SIZE = 1_000_000
"""``maxSize`` of images and card thumbnails in the app.bsky.embed lexicons."""


class Invalid(Exception):
    """A record the post lexicon (or the facet check) refuses."""


def xrpc_error(status: int, error: str | None = None, message: str | None = None) -> Response:
    """An XRPC error body: ``{"error": name, "message": text}``."""
    name, text = STATUS_ERRORS.get(status, ("InternalServerError", "Internal Server Error"))
    return Response.json(status, {"error": error or name, "message": message or text})


@dataclass
class Window:
    """A fixed rate-limit window, as rate-limiter-flexible keeps them."""

    limit: int
    duration: float
    start: float
    used: int = 0

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def reset(self) -> int:
        return math.floor(self.start + self.duration)

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
            "RateLimit-Policy": f"{self.limit};w={int(self.duration)}",
        }


class BlueskySandbox(NetworkSandbox):
    name = "bluesky"
    create_path = r"/xrpc/com\.atproto\.repo\.createRecord"
    list_path = r"/xrpc/app\.bsky\.feed\.getAuthorFeed"
    secret_name = "app_password"  # noqa: S105 - a field name

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.did = self.credentials["did"]
        self.access_lifetime = ACCESS_LIFETIME
        """Seconds an access token lives; lower it to make the adapter meet ExpiredToken."""
        self.refresh_lifetime = REFRESH_LIFETIME
        self.duplicate_answer: DuplicateAnswer = "internal-error"
        """How a taken record key is answered: 500 as bsky.social does today, or 400."""
        self.logins = 0
        """Successful ``createSession`` calls."""
        self.refreshes = 0
        self._key = secrets.token_bytes(32)
        self._live_refresh: set[str] = set()
        self._windows: dict[str, Window] = {}

    def default_credentials(self) -> dict[str, str]:
        return {
            "handle": "cor-sandbox.bsky.social",
            "app_password": "sbx2-cor4-eu27-post",
            "did": "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
        }

    def settings(self, base: str) -> dict[str, str]:
        return {
            "SOCIALBOT_BLUESKY__HANDLE": self.credentials["handle"],
            "SOCIALBOT_BLUESKY__APP_PASSWORD": self.credentials["app_password"],
            "SOCIALBOT_BLUESKY__BASE_URL": base,
            "SOCIALBOT_BLUESKY__WEB_URL": base,
        }

    def routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", r"/xrpc/com\.atproto\.server\.createSession", self.create_session),
            ("POST", r"/xrpc/com\.atproto\.server\.refreshSession", self.refresh_session),
            ("GET", r"/xrpc/com\.atproto\.server\.getSession", self.get_session),
            ("POST", r"/xrpc/com\.atproto\.repo\.createRecord", self.create_record),
            ("GET", r"/xrpc/com\.atproto\.repo\.getRecord", self.get_record),
            ("POST", r"/xrpc/com\.atproto\.repo\.deleteRecord", self.delete_record),
            ("GET", r"/xrpc/app\.bsky\.feed\.getAuthorFeed", self.author_feed),
            ("POST", r"/xrpc/com\.atproto\.repo\.uploadBlob", self.upload_blob),
        ]

    def upload_blob(self, request: Request, match: re.Match[str]) -> Response:
        """``com.atproto.repo.uploadBlob``: the raw bytes, typed by ``Content-Type``."""
        claims = self.authenticate(request, ACCESS_SCOPES)
        if isinstance(claims, Response):
            return claims
        try:
            info = inspect_image(
                request.body,
                request.headers.get("Content-Type"),
                max_bytes=BLOB_MAX_SIZE,
                formats=frozenset({"image/jpeg", "image/png", "image/webp"}),
            )
        except ImageRefused as exc:
            return xrpc_error(400, "InvalidRequest", f"Invalid blob: {exc}")
        cid = "bafkrei" + info["digest"][:52]
        self.keep_media(cid, request.body, info)
        blob = {
            "$type": "blob",
            "ref": {"$link": cid},
            "mimeType": info["mime"],
            "size": info["bytes"],
        }
        return Response.json(200, {"blob": blob})

    def blob_image(self, blob: Any, alt: str = "") -> dict[str, Any]:
        """The uploaded image a record's blob refers to (raises ``Invalid`` if none)."""
        ref = blob.get("ref") if isinstance(blob, dict) else None
        cid = ref.get("$link") if isinstance(ref, dict) else None
        with self.lock:
            entry = self.media.get(cid) if isinstance(cid, str) else None
        if entry is None or blob.get("$type") != "blob":
            raise Invalid(f"Could not find blob: {cid}")
        if blob.get("mimeType") != entry["mime"] or blob.get("size") != entry["bytes"]:
            raise Invalid(f"the blob {cid} does not match what was uploaded")
        return post_image({**entry, "alt": alt})

    @property
    def handle(self) -> str:
        return self.credentials["handle"]

    # -- sessions ------------------------------------------------------------------------

    def create_session(self, request: Request, match: re.Match[str]) -> Response:
        body = json_input(request)
        if isinstance(body, Response):
            return body
        for field in ("identifier", "password"):
            if not isinstance(body.get(field), str):
                return xrpc_error(400, message=f'Input must have the property "{field}"')
        identifier = body["identifier"].lower()
        windows = [
            self.consume(f"login:{limit}:{identifier}", limit, duration, 1)
            for limit, duration in LOGIN_LIMITS
        ]
        headers = tightest(windows).headers()
        if any(w.used > w.limit for w in windows):
            response = xrpc_error(429)
            response.headers.update(headers)
            return response
        known = identifier in (self.handle.lower(), self.did)
        if not known or not hmac.compare_digest(body["password"], self.credentials["app_password"]):
            response = xrpc_error(401, message="Invalid identifier or password")
            response.headers.update(headers)
            return response
        with self.lock:
            self.logins += 1
        return Response.json(200, self.session_body(), headers)

    def refresh_session(self, request: Request, match: re.Match[str]) -> Response:
        claims = self.authenticate(request, {REFRESH_SCOPE})
        if isinstance(claims, Response):
            return claims
        with self.lock:
            if claims.get("jti") not in self._live_refresh:
                return xrpc_error(400, "ExpiredToken", "Token has been revoked")
            self._live_refresh.discard(claims["jti"])
            self.refreshes += 1
        return Response.json(200, self.session_body())

    def get_session(self, request: Request, match: re.Match[str]) -> Response:
        claims = self.authenticate(request, ACCESS_SCOPES)
        if isinstance(claims, Response):
            return claims
        return Response.json(
            200,
            {"handle": self.handle, "did": self.did, "emailConfirmed": True, "active": True},
        )

    def session_body(self) -> dict[str, Any]:
        now = time.time()
        jti = secrets.token_urlsafe(16)
        with self.lock:
            self._live_refresh.add(jti)
        access = self.jwt(
            "at+jwt",
            {
                "scope": "com.atproto.appPass",
                "sub": self.did,
                "iat": now,
                "exp": now + self.access_lifetime,
                "aud": "did:web:sandbox.bsky.social",
            },
        )
        refresh = self.jwt(
            "refresh+jwt",
            {
                "scope": REFRESH_SCOPE,
                "sub": self.did,
                "jti": jti,
                "iat": now,
                "exp": now + self.refresh_lifetime,
                "aud": "did:web:sandbox.bsky.social",
            },
        )
        return {
            "did": self.did,
            "handle": self.handle,
            "email": "press@cor.example",
            "emailConfirmed": True,
            "accessJwt": access,
            "refreshJwt": refresh,
            "active": True,
        }

    def jwt(self, typ: str, claims: dict[str, Any]) -> str:
        head = _b64(json.dumps({"typ": typ, "alg": "HS256"}).encode())
        body = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(signature)}"

    def authenticate(
        self, request: Request, scopes: set[str] | frozenset[str]
    ) -> dict[str, Any] | Response:
        """The token's claims, or the PDS's answer refusing it (auth-verifier.ts)."""
        header = request.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return xrpc_error(401, "AuthMissing", "Authentication Required")
        try:
            head, body, signature = token.strip().split(".")
            wanted = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(signature), wanted):
                raise ValueError("bad signature")
            claims = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return xrpc_error(400, "InvalidToken", "Token could not be verified")
        if not isinstance(claims, dict) or claims.get("sub") != self.did:
            return xrpc_error(400, "InvalidToken", "Token could not be verified")
        if float(claims.get("exp", 0)) <= time.time():
            return xrpc_error(400, "ExpiredToken", "Token has expired")
        if claims.get("scope") not in scopes:
            return xrpc_error(400, "InvalidToken", "Bad token scope")
        return claims

    # -- records -------------------------------------------------------------------------

    def create_record(self, request: Request, match: re.Match[str]) -> Response:
        claims = self.authenticate(request, ACCESS_SCOPES)
        if isinstance(claims, Response):
            return claims
        body = json_input(request)
        if isinstance(body, Response):
            return body
        for field in ("repo", "collection", "record"):
            if field not in body:
                return xrpc_error(400, message=f'Input must have the property "{field}"')
        if body["repo"] not in (self.did, self.handle):
            return xrpc_error(400, message=f"Could not find repo: {body['repo']}")
        collection = body["collection"]
        if collection != COLLECTION:
            return xrpc_error(400, message=f"this sandbox stores {COLLECTION} records only")
        record = body["record"]
        if not isinstance(record, dict):
            return xrpc_error(400, message="Input/record must be an object")
        record.setdefault("$type", COLLECTION)
        if record["$type"] != collection:
            return xrpc_error(
                400, message=f"Invalid $type: expected {collection}, got {record['$type']}"
            )
        rkey = body.get("rkey")
        if rkey is None:
            rkey = tid(time.time_ns() // 1000)
        if not isinstance(rkey, str) or not _RECORD_KEY.fullmatch(rkey) or rkey in (".", ".."):
            return xrpc_error(400, message=f"Invalid record key: {rkey!r}")
        if not _TID.fullmatch(rkey):
            # app.bsky.feed.post declares "key": "tid".
            return xrpc_error(400, message=f"Invalid record key for {COLLECTION}: {rkey} (a TID)")
        try:
            validate_post(record)
            images, thumb = self.embedded_images(record.get("embed"))
        except Invalid as exc:
            return xrpc_error(400, message=f"Invalid {COLLECTION} record: {exc}")
        windows = [
            self.consume(f"write:{limit}:{self.did}", limit, duration, CREATE_POINTS)
            for limit, duration in WRITE_LIMITS
        ]
        headers = tightest(windows).headers()
        if any(w.used > w.limit for w in windows):
            response = xrpc_error(429)
            response.headers.update(headers)
            return response
        uri = f"at://{self.did}/{collection}/{rkey}"
        cid = cid_for(record)
        with self.lock:
            if self.record(rkey) is not None:
                if self.duplicate_answer == "invalid-request":
                    return xrpc_error(400, message=f"Record already exists: {uri}")
                return xrpc_error(500)
            self.store(
                {
                    "id": uri,
                    "uri": uri,
                    "cid": cid,
                    "rkey": rkey,
                    "did": self.did,
                    "text": record["text"],
                    "langs": record.get("langs", []),
                    "facets": record.get("facets", []),
                    "embed": record.get("embed"),
                    "images": images,
                    "thumb": thumb,
                    "record": record,
                    "url": f"{self.base_url}/profile/{self.handle}/post/{rkey}",
                }
            )
        rev = tid(time.time_ns() // 1000)
        data = {
            "uri": uri,
            "cid": cid,
            "commit": {"cid": cid_for({"rev": rev, "data": cid}), "rev": rev},
            "validationStatus": "valid",
        }
        return Response.json(200, data, headers)

    def embedded_images(self, embed: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The images of an ``app.bsky.embed.images``, or an external card's thumbnail."""
        if not isinstance(embed, dict):
            return [], None
        if embed.get("$type") == "app.bsky.embed.images":
            return [self.blob_image(i["image"], i["alt"]) for i in embed["images"]], None
        thumb = embed.get("external", {}).get("thumb")
        return [], (self.blob_image(thumb) if thumb is not None else None)

    def record(self, rkey: str) -> dict[str, Any] | None:
        with self.lock:
            for post in self.posts:
                if post["rkey"] == rkey:
                    return post
        return None

    def delete_record(self, request: Request, match: re.Match[str]) -> Response:
        """``com.atproto.repo.deleteRecord``: a record that does not exist is no error."""
        claims = self.authenticate(request, ACCESS_SCOPES)
        if isinstance(claims, Response):
            return claims
        body = json_input(request)
        if isinstance(body, Response):
            return body
        for field in ("repo", "collection", "rkey"):
            if not isinstance(body.get(field), str):
                return xrpc_error(400, message=f'Input must have the property "{field}"')
        if body["repo"] not in (self.did, self.handle):
            return xrpc_error(400, message=f"Could not find repo: {body['repo']}")
        if body["collection"] == COLLECTION:
            self.delete_post(body["rkey"], field="rkey")
        rev = tid(time.time_ns() // 1000)
        return Response.json(200, {"commit": {"cid": cid_for({"rev": rev}), "rev": rev}})

    def get_record(self, request: Request, match: re.Match[str]) -> Response:
        params = {name: request.param(name) for name in ("repo", "collection", "rkey")}
        for name, value in params.items():
            if not value:
                return xrpc_error(400, message=f'Params must have the property "{name}"')
        if params["repo"] not in (self.did, self.handle):
            return xrpc_error(400, message=f"Could not find repo: {params['repo']}")
        uri = f"at://{self.did}/{params['collection']}/{params['rkey']}"
        post = self.record(str(params["rkey"])) if params["collection"] == COLLECTION else None
        if post is None:
            return xrpc_error(400, "RecordNotFound", f"Could not locate record: {uri}")
        return Response.json(200, {"uri": post["uri"], "cid": post["cid"], "value": post["record"]})

    def author_feed(self, request: Request, match: re.Match[str]) -> Response:
        if request.headers.get("Authorization"):
            claims = self.authenticate(request, ACCESS_SCOPES)
            if isinstance(claims, Response):
                return claims
        actor = request.param("actor")
        if not actor:
            return xrpc_error(400, message='Params must have the property "actor"')
        if actor not in (self.did, self.handle):
            return xrpc_error(400, message="Profile not found")
        try:
            limit = int(request.param("limit") or 50)
        except ValueError:
            return xrpc_error(400, message="limit must be an integer")
        if not 1 <= limit <= 100:
            return xrpc_error(400, message="limit must be between 1 and 100")
        cursor = request.param("cursor")
        with self.lock:
            posts = sorted(self.posts, key=lambda p: (p["created_at"], p["cid"]), reverse=True)
        if cursor:
            before = tuple(cursor.split("::", 1))
            posts = [p for p in posts if (p["created_at"], p["cid"]) < before]
        page = posts[:limit]
        author = {"did": self.did, "handle": self.handle, "displayName": "CoR sandbox"}
        feed = [
            {
                "post": {
                    "uri": p["uri"],
                    "cid": p["cid"],
                    "author": author,
                    "record": p["record"],
                    "replyCount": 0,
                    "repostCount": 0,
                    "likeCount": 0,
                    "quoteCount": 0,
                    "indexedAt": p["created_at"],
                    "labels": [],
                }
            }
            for p in page
        ]
        data: dict[str, Any] = {"feed": feed}
        if len(posts) > limit:
            data["cursor"] = f"{page[-1]['created_at']}::{page[-1]['cid']}"
        return Response.json(200, data)

    # -- rate limits and faults ----------------------------------------------------------

    def consume(self, key: str, limit: int, duration: float, points: int) -> Window:
        with self.lock:
            now = time.time()
            window = self._windows.get(key)
            if window is None or now - window.start >= duration:
                window = self._windows[key] = Window(limit, duration, now)
            window.used += points
            return Window(window.limit, window.duration, window.start, window.used)

    def error_response(self, fault: Fault) -> Response:
        response = xrpc_error(fault.status)
        if fault.status != 429:
            return response
        now = time.time()
        limit, duration = WRITE_LIMITS[0]
        window = Window(limit, duration, now + fault.retry_after - duration, limit + CREATE_POINTS)
        if fault.hint == "native":
            response.headers.update(window.headers())
        elif fault.hint == "retry-after-seconds":
            response.headers["Retry-After"] = str(int(fault.retry_after))
        elif fault.hint == "retry-after-date":
            response.headers["Retry-After"] = time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + fault.retry_after)
            )
        elif fault.hint == "past-date":
            response.headers.update(window.headers())
            response.headers["RateLimit-Reset"] = str(int(now) - 86_400)
        return response

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self._windows.clear()


def tightest(windows: list[Window]) -> Window:
    """The window a client should heed: an exceeded one, else the one with least left."""
    exceeded = [w for w in windows if w.used > w.limit]
    return (
        max(exceeded, key=lambda w: w.reset)
        if exceeded
        else min(windows, key=lambda w: w.remaining)
    )


def json_input(request: Request) -> dict[str, Any] | Response:
    """The JSON object a procedure takes, or the XRPC server's refusal."""
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    if not content_type:
        return xrpc_error(400, message="Request encoding (Content-Type) required but not provided")
    if content_type != "application/json":
        return xrpc_error(400, message=f"Wrong request encoding (Content-Type): {content_type}")
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        return xrpc_error(400, message="Unable to parse request body as JSON")
    if not isinstance(body, dict):
        return xrpc_error(400, message="Input must be an object")
    return body


def validate_post(record: dict[str, Any]) -> None:
    """The ``app.bsky.feed.post`` lexicon's rules, with the lexicon validator's messages."""
    text = record.get("text")
    if not isinstance(text, str):
        raise Invalid('Record must have the property "text"')
    data = text.encode("utf-8")
    if len(data) > 3000:
        raise Invalid("Record/text must not be longer than 3000 characters")
    if len(_GRAPHEME.findall(text)) > 300:
        raise Invalid("Record/text must not be longer than 300 graphemes")
    created = record.get("createdAt")
    if not isinstance(created, str) or not valid_datetime(created):
        raise Invalid(
            "Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
        )
    langs = record.get("langs", [])
    if not isinstance(langs, list):
        raise Invalid("Record/langs must be an array")
    if len(langs) > 3:
        raise Invalid("Record/langs must not have more than 3 elements")
    for i, lang in enumerate(langs):
        if not isinstance(lang, str) or not _LANGUAGE.fullmatch(lang):
            raise Invalid(f"Record/langs/{i} must be a well-formed BCP-47 language tag")
    facets = record.get("facets", [])
    if not isinstance(facets, list):
        raise Invalid("Record/facets must be an array")
    for i, facet in enumerate(facets):
        validate_facet(f"Record/facets/{i}", facet, data)
    if "embed" in record:
        validate_embed(record["embed"])


def validate_facet(path: str, facet: Any, text: bytes) -> None:
    """``app.bsky.richtext.facet``, and that it covers exactly its link or tag."""
    if not isinstance(facet, dict):
        raise Invalid(f"{path} must be an object")
    index = facet.get("index")
    if not isinstance(index, dict):
        raise Invalid(f'{path} must have the property "index"')
    for name in ("byteStart", "byteEnd"):
        value = index.get(name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"{path}/index/{name} must be an integer")
        if value < 0:
            raise Invalid(f"{path}/index/{name} can not be less than 0")
    start, end = index["byteStart"], index["byteEnd"]
    if not start < end <= len(text):
        raise Invalid(
            f"{path}/index [{start}, {end}) is not a range of the text's {len(text)} bytes"
        )
    covered = text[start:end]
    features = facet.get("features")
    if not isinstance(features, list) or not features:
        raise Invalid(f'{path} must have the property "features"')
    for j, feature in enumerate(features):
        where = f"{path}/features/{j}"
        if not isinstance(feature, dict) or not isinstance(feature.get("$type"), str):
            raise Invalid(f'{where} must be an object which includes the "$type" property')
        kind = feature["$type"]
        if kind == "app.bsky.richtext.facet#link":
            uri = feature.get("uri")
            if not isinstance(uri, str) or not _URI.fullmatch(uri):
                raise Invalid(f"{where}/uri must be a uri")
            # The link itself, or the app's short display of it (links.bluesky_display).
            from socialbot.compose.links import bluesky_display

            if covered not in (uri.encode("utf-8"), bluesky_display(uri).encode("utf-8")):
                raise Invalid(
                    f"{path} covers {covered.decode('utf-8', 'replace')!r}, not its link {uri!r}"
                )
        elif kind == "app.bsky.richtext.facet#tag":
            tag = feature.get("tag")
            if not isinstance(tag, str):
                raise Invalid(f'{where} must have the property "tag"')
            if len(tag.encode("utf-8")) > 640:
                raise Invalid(f"{where}/tag must not be longer than 640 characters")
            if len(_GRAPHEME.findall(tag)) > 64:
                raise Invalid(f"{where}/tag must not be longer than 64 graphemes")
            if covered != f"#{tag}".encode():
                raise Invalid(
                    f"{path} covers {covered.decode('utf-8', 'replace')!r}, not its tag #{tag}"
                )
        elif kind == "app.bsky.richtext.facet#mention":
            if not isinstance(feature.get("did"), str) or not feature["did"].startswith("did:"):
                raise Invalid(f"{where}/did must be a valid did")
        else:
            raise Invalid(f"{where} has an unknown $type {kind!r}")


def validate_embed(embed: Any) -> None:
    """The embeds the sandbox takes: ``app.bsky.embed.external`` (a link card, with an
    optional ``thumb``) and ``app.bsky.embed.images`` (1 to 4, each with ``alt``)."""
    if isinstance(embed, dict) and embed.get("$type") == "app.bsky.embed.images":
        images = embed.get("images")
        if not isinstance(images, list) or not 1 <= len(images) <= 4:
            raise Invalid("Record/embed/images must be an array of 1 to 4 images")
        for n, image in enumerate(images):
            if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                raise Invalid(f'Record/embed/images/{n} must have the property "alt"')
            validate_blob(image.get("image"), f"Record/embed/images/{n}/image", "image/")
            ratio = image.get("aspectRatio")
            if ratio is not None and not (
                isinstance(ratio, dict)
                and all(
                    isinstance(ratio.get(k), int) and ratio[k] >= 1 for k in ("width", "height")
                )
            ):
                raise Invalid(f"Record/embed/images/{n}/aspectRatio must be two integers >= 1")
        return
    if isinstance(embed, dict) and isinstance(embed.get("external"), dict):
        thumb = embed["external"].get("thumb")
        if thumb is not None:
            validate_blob(thumb, "Record/embed/external/thumb", "image/")
    if not isinstance(embed, dict) or embed.get("$type") != "app.bsky.embed.external":
        kind = embed.get("$type") if isinstance(embed, dict) else None
        raise Invalid(f"Record/embed: this sandbox takes app.bsky.embed.external only, not {kind}")
    external = embed.get("external")
    if not isinstance(external, dict):
        raise Invalid('Record/embed must have the property "external"')
    for name in ("uri", "title", "description"):
        if not isinstance(external.get(name), str):
            raise Invalid(f'Record/embed/external must have the property "{name}"')
    if not _URI.fullmatch(external["uri"]):
        raise Invalid("Record/embed/external/uri must be a uri")


def validate_blob(blob: Any, path: str, accept: str) -> None:
    """A blob reference as the lexicon says: ``accept`` types, at most ``BLOB_MAX_SIZE``."""
    if not isinstance(blob, dict) or blob.get("$type") != "blob":
        raise Invalid(f"{path} should be a blob ref")
    if not str(blob.get("mimeType", "")).startswith(accept):
        raise Invalid(f"{path} has the wrong MIME type: {blob.get('mimeType')}")
    size = blob.get("size")
    if not isinstance(size, int) or size > BLOB_MAX_SIZE:
        raise Invalid(f"{path} is too big (maximum {BLOB_MAX_SIZE} bytes)")


def valid_datetime(value: str) -> bool:
    """An atproto datetime: RFC 3339 with a time zone (atproto.com/specs/lexicon#datetime)."""
    if not _DATETIME.fullmatch(value) or value.endswith("-00:00"):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def tid(micros: int) -> str:
    """A TID for a time, with a random clock id."""
    value = (micros << 10) | secrets.randbelow(1024)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def cid_for(data: Any) -> str:
    """A well-formed CIDv1 (dag-cbor, sha2-256) over the canonical JSON of ``data``."""
    digest = hashlib.sha256(
        json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).digest()
    raw = bytes([0x01, 0x71, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


__all__ = ["BlueskySandbox", "validate_post"]

"""Bluesky through the account's PDS, spoken as XRPC with httpx.

A post is a record: ``com.atproto.repo.createRecord`` of an
``app.bsky.feed.post`` with its text, language, facets (the byte ranges that
make links and hashtags live) and a link card. The record key (``rkey``) is
chosen here, derived from the delivery's key, so a resend after an uncertain
attempt can only land on the same record: it never creates a second post.

Logging in (``createSession``) is limited to 30 per 5 minutes and 300 a day per
account, so the session is kept in the store's key-value area (sealed with a
key derived from the app password), reused by every run and renewed with
``refreshSession`` when the PDS says the access token has expired; only when
the refresh token is refused too does the adapter log in again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

import httpx

from socialbot.adapters.base import (
    Adapter,
    Media,
    MemoryState,
    State,
    in_background,
    json_body,
    new_client,
    utc_now,
)
from socialbot.config import Settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    DeliveryError,
    DuplicateError,
    PermanentError,
    TransientError,
)
from socialbot.logs import register_secret
from socialbot.models import Post, Receipt
from socialbot.networks.bluesky import PROFILE, BlueskySettings

log = logging.getLogger("socialbot.adapters.bluesky")

NETWORK = "bluesky"
COLLECTION = "app.bsky.feed.post"
MAX_GRAPHEMES = PROFILE.max_characters
MAX_BYTES = PROFILE.max_bytes or 0
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=5)
FIND_PAGES = 5
"""At most this many pages of 100 posts are read looking for a post."""
FIND_SLACK = timedelta(minutes=5)

# Errors that say the access (or refresh) token is no good. The PDS answers an
# expired token with 400 ExpiredToken, a bad one with 400 InvalidToken, and a
# missing one with 401 (packages/pds/src/auth-verifier.ts in bluesky-social/atproto).
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
# Errors on which no retry with these credentials can help.
ACCOUNT_ERRORS = frozenset(
    {"AccountTakedown", "AccountDeactivated", "AuthFactorTokenRequired", "AuthMissing"}
)

# A TID (atproto.com/specs/tid): 64 bits, top bit 0, 53 bits of microseconds
# since the Unix epoch and 10 bits of clock id, written in base32-sortable.
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID_EPOCH_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
TID_SPAN_BITS = 45  # about 407 days of microseconds after TID_EPOCH_US


def record_key(key: str) -> str:
    """The record key for a delivery: a valid TID derived from its key alone.

    ``app.bsky.feed.post`` records are keyed by TID (lexicon ``"key": "tid"``).
    A TID from the clock would differ on every attempt, so the timestamp and
    clock id are taken from a hash of the delivery key instead: the same
    delivery always gets the same key, two deliveries practically never
    (55 bits). The timestamps fall in 2024, never in the future.
    """
    digest = int.from_bytes(hashlib.sha256(f"socialbot:{key}".encode()).digest()[:8], "big")
    micros = TID_EPOCH_US + (digest >> (64 - TID_SPAN_BITS))
    value = (micros << 10) | (digest & 0x3FF)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


@dataclass(frozen=True)
class Session:
    """What ``createSession`` and ``refreshSession`` hand back."""

    did: str
    handle: str
    access_jwt: str
    refresh_jwt: str

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> Session:
        try:
            session = cls(
                did=str(data["did"]),
                handle=str(data["handle"]),
                access_jwt=str(data["accessJwt"]),
                refresh_jwt=str(data["refreshJwt"]),
            )
        except KeyError as exc:
            raise TransientError(
                f"the PDS answered a login without {exc.args[0]}", network=NETWORK
            ) from None
        register_secret(session.access_jwt, session.refresh_jwt)
        return session


if TYPE_CHECKING:
    from concurrent.futures import Future

    from cryptography.fernet import Fernet

SESSION_KEY = "bluesky.session"


class Sessions:
    """The session kept between runs in a ``State``, as one JSON value.

    It remembers which PDS and which login it belongs to, so changing either
    setting never reuses a session of another account.
    """

    def __init__(
        self, state: State, base_url: str, identifier: str, *, seal: str | None = None
    ) -> None:
        self.state = state
        self.base_url = base_url
        self.identifier = identifier.lower()
        self._seal = seal

    @cached_property
    def _deriving(self) -> Future[Fernet]:
        seal, identifier = self._seal or "", self.identifier
        return in_background(lambda: _fernet(seal, identifier), "socialbot-bluesky-key")

    def derive_key(self) -> None:
        """Start deriving the sealing key on another thread, so that loading cryptography
        overlaps a login's round trip instead of following it."""
        if self._seal:
            self._deriving  # noqa: B018 - starts it once

    @property
    def _fernet(self) -> Fernet | None:
        """The sealing key, derived when a session is first read or written (cryptography
        loads then, not with the adapter), or while a login is in flight."""
        return self._deriving.result() if self._seal else None

    def load(self) -> Session | None:
        raw = self.state.get_value(SESSION_KEY)
        if raw is None:
            return None
        if self._fernet is not None:
            from cryptography.fernet import InvalidToken

            try:
                raw = self._fernet.decrypt(raw.encode("ascii")).decode("utf-8")
            except (InvalidToken, ValueError):
                # Sealed with another app password, or not sealed: log in again.
                return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            log.warning("ignoring the unreadable Bluesky session (%s)", exc)
            return None
        if not isinstance(data, dict):
            return None
        if data.get("base_url") != self.base_url or data.get("identifier") != self.identifier:
            return None
        try:
            session = Session(
                did=str(data["did"]),
                handle=str(data["handle"]),
                access_jwt=str(data["access_jwt"]),
                refresh_jwt=str(data["refresh_jwt"]),
            )
        except KeyError:
            return None
        register_secret(session.access_jwt, session.refresh_jwt)
        return session

    def save(self, session: Session) -> None:
        """Keep the session in the store, sealed (a store that fails here fails the run, as
        it would at the delivery's outcome)."""
        data = {
            "base_url": self.base_url,
            "identifier": self.identifier,
            **asdict(session),
            "saved_at": utc_now().isoformat(timespec="seconds"),
        }
        value = json.dumps(data, indent=2)
        if self._fernet is not None:
            value = self._fernet.encrypt(value.encode("utf-8")).decode("ascii")
        self.state.set_value(SESSION_KEY, value)


def _fernet(secret: str, identifier: str) -> Fernet:
    """A key derived from the app password: the store only ever holds a sealed session.

    Whoever reads the database without the app password cannot use the tokens; a
    changed app password simply means a new login.
    """
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"socialbot bluesky session",
        info=identifier.encode("utf-8"),
    ).derive(secret.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


class BlueskyAdapter(Adapter):
    """Posts to one Bluesky account, logged in with an app password."""

    name = NETWORK
    idempotent = PROFILE.idempotent
    idempotency_window = PROFILE.idempotency_window
    can_find = PROFILE.can_find
    can_delete = PROFILE.can_delete
    rate_limit_wait = DEFAULT_RATE_LIMIT_WAIT

    def __init__(
        self,
        *,
        handle: str,
        app_password: str,
        base_url: str,
        web_url: str,
        state: State | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        register_secret(app_password)
        self.identifier = handle.strip().removeprefix("@")
        self._password = app_password
        self.base_url = base_url.rstrip("/")
        self.web_url = web_url.rstrip("/")
        self.request_timeout = timeout
        self.http = new_client(self.base_url, timeout, transport=transport)
        # The store keeps the session between runs, sealed: it holds no usable token. An
        # adapter without one (a test's) keeps it in memory for its own life.
        sealed = state is not None
        self.state = state if state is not None else MemoryState()
        self.sessions = Sessions(
            self.state, self.base_url, self.identifier, seal=app_password if sealed else None
        )
        self._session: Session | None = None
        self._refused: AuthError | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        state: State | None = None,
    ) -> Self:
        bsky = settings.section("bluesky")
        assert isinstance(bsky, BlueskySettings)
        assert bsky.handle and bsky.app_password
        return cls(
            handle=bsky.handle,
            app_password=bsky.app_password.get_secret_value(),
            base_url=bsky.base_url,
            web_url=bsky.web_url,
            state=state,
            timeout=settings.request_timeout_seconds,
            transport=transport,
        )

    # -- posting -------------------------------------------------------------------------

    def publish(self, post: Post, *, key: str, media: Sequence[Media] = ()) -> Receipt:
        text = post.text
        facets = list(post.facets)
        if not facets:
            from socialbot.compose import bluesky_facets

            facets = bluesky_facets(text)
        check_post(text, facets)
        # Uploaded on every attempt; a resend lands on the same record key all the same.
        blobs = [(item, self.upload_blob(item)) for item in self.attachments(post, media)]
        if blobs:
            self.uploaded()
        rkey = record_key(key)
        record: dict[str, Any] = {
            "$type": COLLECTION,
            "text": text,
            "createdAt": utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if post.language:
            record["langs"] = [post.language]
        if facets:
            record["facets"] = facets
        if blobs and post.attach != "card":
            record["embed"] = {
                "$type": "app.bsky.embed.images",
                "images": [
                    {
                        "image": blob,
                        "alt": item.image.alt,
                        "aspectRatio": {"width": item.image.width, "height": item.image.height},
                    }
                    for item, blob in blobs
                ],
            }
        elif post.link:
            external: dict[str, Any] = {
                "uri": post.link,
                "title": post.title,
                "description": post.description,
            }
            if blobs:
                external["thumb"] = blobs[0][1]
            record["embed"] = {"$type": "app.bsky.embed.external", "external": external}
        try:
            data = self._call(
                "POST",
                "com.atproto.repo.createRecord",
                creating=True,
                body=lambda session: {
                    "repo": session.did,
                    "collection": COLLECTION,
                    "rkey": rkey,
                    "record": record,
                },
            )
            uri = data.get("uri")
            if not isinstance(uri, str) or not uri.startswith("at://"):
                raise AmbiguousError(
                    "the PDS answered without the record's uri; the post may exist",
                    network=NETWORK,
                )
        except (AmbiguousError, DuplicateError) as exc:
            # The record key is this delivery's: a record under it is this
            # delivery's post. The bsky.social PDS answers a create under a
            # taken key with 500 InternalServerError (bluesky-social/atproto
            # issue 3718, indigo issue 873), so a 5xx is looked up too.
            found = self._lookup(rkey)
            if found is not None:
                log.info("bluesky: record %s exists after %s; it is posted", rkey, exc)
                return found
            if isinstance(exc, AmbiguousError):
                raise AmbiguousError(
                    f"{exc}; nothing is under its record key {rkey} yet, and a resend "
                    "with the same key cannot post twice",
                    network=NETWORK,
                    status_code=exc.status_code,
                    api_code=exc.api_code,
                ) from None
            raise
        return Receipt(uri, self.post_url(rkey))

    def upload_blob(self, item: Media) -> dict[str, Any]:
        """``com.atproto.repo.uploadBlob``: the bytes as they are, typed; returns the blob."""
        session = self._ensure_session()
        for attempt in range(2):
            response = self.exchange(
                "POST",
                "/xrpc/com.atproto.repo.uploadBlob",
                creating=False,
                content=item.data,
                headers={
                    "Authorization": f"Bearer {session.access_jwt}",
                    "Content-Type": item.image.mime,
                },
            )
            if attempt == 0 and token_refused(response):
                session = self._renew(session)
                continue
            break
        if not response.is_success:
            raise self.failure(response, creating=False)
        blob = self.answer_object(response, creating=False).get("blob")
        if not isinstance(blob, dict) or blob.get("$type") != "blob":
            raise self.unreadable("names no blob", response, creating=False)
        return blob

    def post_id_from_url(self, url: str) -> str | None:
        """``…/profile/{handle}/post/{rkey}``: ``delete`` takes the record key."""
        match = re.search(r"/post/([A-Za-z0-9._:~-]+)/?$", url)
        return match[1] if match else None

    def post_url(self, rkey: str) -> str:
        """The post's page: ``{web_url}/profile/{handle}/post/{rkey}``."""
        session = self._session
        handle = session.handle if session else self.identifier
        if session and handle == "handle.invalid":
            handle = session.did
        return f"{self.web_url}/profile/{handle}/post/{rkey}"

    def _uri(self, rkey: str) -> str:
        did = self._session.did if self._session else self.identifier
        return f"at://{did}/{COLLECTION}/{rkey}"

    def _lookup(self, rkey: str) -> Receipt | None:
        """The post under ``rkey`` if a well-formed answer shows it; None otherwise."""
        session = self._session
        if session is None:
            return None
        params = {"repo": session.did, "collection": COLLECTION, "rkey": rkey}
        try:
            response = self.exchange(
                "GET", "/xrpc/com.atproto.repo.getRecord", creating=False, params=params
            )
        except DeliveryError:
            return None
        uri = json_body(response).get("uri") if response.is_success else None
        if isinstance(uri, str) and uri == self._uri(rkey):
            return Receipt(uri, self.post_url(rkey))
        return None

    def find(self, text: str, since: datetime) -> Receipt | None:
        """Look through the account's own recent posts (newest first) for this text.

        ``getAuthorFeed`` is ordered by time; ``listRecords`` is ordered by
        record key, which for these posts is not a time.
        """
        cutoff = since - FIND_SLACK
        cursor: str | None = None
        for _ in range(FIND_PAGES):
            params = {"limit": "100", "filter": "posts_no_replies"}
            if cursor:
                params["cursor"] = cursor
            data = self._call(
                "GET",
                "app.bsky.feed.getAuthorFeed",
                creating=False,
                params=lambda session, extra=params: {"actor": session.did, **extra},
            )
            items = data.get("feed")
            if not isinstance(items, list) or not all(
                isinstance(item, dict) and isinstance(item.get("post"), dict) for item in items
            ):
                raise TransientError(
                    "the PDS answered the author feed without a list of posts", network=NETWORK
                )
            did = self._session.did if self._session else ""
            for item in items:
                view = item["post"]
                if item.get("reason"):
                    continue  # a repost, not one of the account's own posts
                author = view.get("author")
                record = view.get("record")
                if not isinstance(author, dict) or not isinstance(record, dict):
                    raise TransientError(
                        "the PDS answered the author feed with a post without its record",
                        network=NETWORK,
                    )
                if author.get("did") != did:
                    continue
                created = _parse_time(record.get("createdAt")) or _parse_time(view.get("indexedAt"))
                if created is not None and created < cutoff:
                    return None
                if record.get("text") == text:
                    uri = str(view.get("uri", ""))
                    return Receipt(uri, self.post_url(uri.rpartition("/")[2]))
            cursor = data.get("cursor") if isinstance(data.get("cursor"), str) else None
            if not cursor or not items:
                return None
        raise self.searched_too_few(FIND_PAGES * 100)

    def check(self) -> str:
        data = self._call("GET", "com.atproto.server.getSession", creating=False)
        handle = data.get("handle", self.identifier)
        did = data.get("did", "?")
        if data.get("active") is False:
            status = data.get("status") or "inactive"
            raise AuthError(f"the account @{handle} is {status}", network=NETWORK)
        return f"@{handle} ({did})"

    def delete(self, remote_id: str) -> None:
        """``com.atproto.repo.deleteRecord`` of the post (its at:// URI, or its record key).

        Deleting a record that does not exist succeeds on the PDS, so a post
        that is gone already counts as deleted.
        """
        rkey = remote_id.rstrip("/").rpartition("/")[2]
        prefix = remote_id.rpartition("/")[0]
        if remote_id.startswith("at://") and not prefix.endswith("/" + COLLECTION):
            raise PermanentError(f"{remote_id} is not a Bluesky post", network=NETWORK)
        self._call(
            "POST",
            "com.atproto.repo.deleteRecord",
            creating=False,
            body=lambda session: {"repo": session.did, "collection": COLLECTION, "rkey": rkey},
        )

    def secret_values(self) -> list[str]:
        session = self._session
        return [session.access_jwt, session.refresh_jwt] if session else []

    # -- XRPC and the session ------------------------------------------------------------

    def _call(
        self,
        method: str,
        nsid: str,
        *,
        creating: bool,
        body: Any = None,
        params: Any = None,
    ) -> dict[str, Any]:
        """One authenticated XRPC call; an expired session is renewed and the call sent again once.

        ``body`` and ``params`` may be functions of the session, for values
        (the account's DID) only known once logged in.
        """
        session = self._ensure_session()
        response = self._send(method, nsid, session, creating=creating, body=body, params=params)
        if token_refused(response):
            # The PDS checks the token before doing anything, so the call is
            # certainly not processed and sending it again is safe.
            session = self._renew(session)
            response = self._send(
                method, nsid, session, creating=creating, body=body, params=params
            )
        if response.is_success:
            return self.answer_object(response, creating=creating)
        raise self.failure(response, creating=creating)

    def _send(
        self,
        method: str,
        nsid: str,
        session: Session,
        *,
        creating: bool,
        body: Any,
        params: Any,
    ) -> httpx.Response:
        return self.exchange(
            method,
            f"/xrpc/{nsid}",
            creating=creating,
            json=body(session) if callable(body) else body,
            params=params(session) if callable(params) else params,
            headers={"Authorization": f"Bearer {session.access_jwt}"},
        )

    def _ensure_session(self) -> Session:
        with self._lock:
            if self._session is not None:
                return self._session
            stored = self.sessions.load()
            if stored is not None:
                self._session = stored
                return stored
            return self._login()

    def _renew(self, expired: Session) -> Session:
        """A working session after ``expired`` was refused: refresh, or else log in."""
        with self._lock:
            if self._session is not None and self._session != expired:
                return self._session  # another thread renewed it meanwhile
            # Another drain may have rotated the refresh token since we read the
            # store; its refresh token is then the only one still valid.
            stored = self.sessions.load()
            refresh = stored if stored is not None and stored != expired else expired
            response = self._post_unauthenticated(
                "com.atproto.server.refreshSession",
                headers={"Authorization": f"Bearer {refresh.refresh_jwt}"},
            )
            if response.is_success:
                return self._keep(self._session_from(response))
            if response.status_code == 429 or response.status_code >= 500:
                raise self.failure(response, creating=False)
            log.info(
                "bluesky: the refresh token was refused (%s); logging in again",
                describe(response),
            )
            return self._login()

    def _login(self) -> Session:
        """``createSession`` with the app password: the rate-limited step, done rarely."""
        if self._refused is not None:
            raise self._refused
        self.sessions.derive_key()  # the session is sealed when the answer comes
        response = self._post_unauthenticated(
            "com.atproto.server.createSession",
            json={"identifier": self.identifier, "password": self._password},
        )
        if response.is_success:
            return self._keep(self._session_from(response))
        if response.status_code == 429 or response.status_code >= 500:
            raise self.failure(response, creating=False)
        error, message = error_fields(response)
        hint = ""
        if error == "AuthFactorTokenRequired":
            hint = " (the account asks for an e-mail code: log in with an app password instead)"
        self._refused = AuthError(
            f"Bluesky refused the login of {self.identifier} with this app password: "
            f"{message}{hint}",
            network=NETWORK,
            status_code=response.status_code,
            api_code=error or None,
        )
        raise self._refused

    def _post_unauthenticated(
        self, nsid: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.exchange("POST", f"/xrpc/{nsid}", creating=False, json=json, headers=headers)

    def _session_from(self, response: httpx.Response) -> Session:
        return Session.from_response(self.answer_object(response, creating=False))

    def _keep(self, session: Session) -> Session:
        self._session = session
        self.sessions.save(session)
        return session

    # -- reading XRPC errors -------------------------------------------------------------

    def error_detail(self, response: httpx.Response) -> str:
        return describe(response)

    def error_code(self, response: httpx.Response) -> int | str | None:
        return error_fields(response)[0] or None

    def classify(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        return xrpc_error(response)


def check_post(text: str, facets: list[dict[str, Any]]) -> None:
    """Refuse, before sending, a post the ``app.bsky.feed.post`` lexicon would refuse."""
    # The composer loads on the first post, not with the adapter: a drain's first request
    # to Bluesky is the login, and the import runs while other threads wait on theirs.
    from socialbot.compose import measure

    size = len(text.encode("utf-8"))
    length = measure(NETWORK, text)
    if length > MAX_GRAPHEMES or size > MAX_BYTES:
        raise PermanentError(
            f"the text is {length} graphemes and {size} bytes; Bluesky takes at most "
            f"{MAX_GRAPHEMES} graphemes and {MAX_BYTES} bytes",
            network=NETWORK,
        )
    for facet in facets:
        index = facet.get("index") if isinstance(facet, dict) else None
        start = index.get("byteStart") if isinstance(index, dict) else None
        end = index.get("byteEnd") if isinstance(index, dict) else None
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= size):
            raise PermanentError(
                f"a link or hashtag facet ({index}) does not fit the text's {size} bytes",
                network=NETWORK,
            )


def token_refused(response: httpx.Response) -> bool:
    """True when the PDS refused the access token itself (expired, invalid or missing)."""
    if response.status_code == 401:
        return error_fields(response)[0] not in ACCOUNT_ERRORS
    return response.status_code == 400 and error_fields(response)[0] in TOKEN_ERRORS


def error_fields(response: httpx.Response) -> tuple[str, str]:
    """An XRPC error body, ``{"error": name, "message": text}``."""
    body = json_body(response)
    error = body.get("error")
    message = body.get("message")
    return (
        error if isinstance(error, str) else "",
        message if isinstance(message, str) and message else response.reason_phrase,
    )


def describe(response: httpx.Response) -> str:
    error, message = error_fields(response)
    return (
        f"{response.status_code} {error}: {message}"
        if error
        else f"{response.status_code} {message}"
    )


def xrpc_error(response: httpx.Response) -> DeliveryError:
    """Classify an XRPC 4xx answer into socialbot's error classes."""
    status = response.status_code
    error, message = error_fields(response)
    described = describe(response)
    if status == 401 or error in TOKEN_ERRORS or error in ACCOUNT_ERRORS:
        return AuthError(
            f"Bluesky refused the session ({described})",
            network=NETWORK,
            status_code=status,
            api_code=error or None,
        )
    if status == 409 or error == "RecordAlreadyExists" or "already exists" in message.lower():
        return DuplicateError(
            f"the record key is taken ({described})",
            network=NETWORK,
            status_code=status,
            api_code=error or None,
        )
    return PermanentError(
        f"Bluesky rejected the request: {described}",
        network=NETWORK,
        status_code=status,
        api_code=error or None,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)

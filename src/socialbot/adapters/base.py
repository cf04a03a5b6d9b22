"""What every network adapter offers, and the exactly-once rules they all share.

An adapter turns a ``Post`` into a post on one network and returns a
``Receipt``. It translates failures into ``socialbot.errors`` with the one
distinction the publisher cannot make itself: was the request possibly
processed (``AmbiguousError``) or certainly not (``TransientError``)?

That distinction is made here, once, from whether the call *creates*
something, never in an adapter:

- a connection that was never made is transient;
- any other transport failure, a 5xx, the request's deadline passing, or an
  answer that cannot be read (cut off, not JSON, no id) is ambiguous on a
  create and transient on anything else: a failure *after* a success status
  on a create never means "nothing was created";
- a 429 is rate-limited until the time the answer's headers give (``Retry-After``,
  ``x-rate-limit-reset``, ``RateLimit-Reset``, ``X-RateLimit-Reset``), else the
  adapter's own hint from its error body, else its default wait;
- 408 (the server gave up waiting for the request) is transient.

Each adapter only reads its own error bodies (``classify``) and its own
success bodies.

A wall-clock ``deadline`` (a ``time.monotonic()`` value the publisher sets)
bounds every request: the timeout of each request is ``min(deadline,
now + request_timeout)``, and answers are read in chunks with the clock
checked between them, so an answer trickled a byte a second cannot outlast it.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

from socialbot import __version__
from socialbot.errors import (
    AmbiguousError,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.logs import redact
from socialbot.models import Post, PostImage, Receipt, TextLimits

T = TypeVar("T")

if TYPE_CHECKING:
    import ssl

    import httpx

    from socialbot.config import Settings

USER_AGENT = f"socialbot/{__version__} (+https://github.com/socialbot)"
CONNECT_TIMEOUT = 10.0


class State(Protocol):
    """A small key-value area an adapter keeps between runs (a session, say).

    The store implements it; ``MemoryState`` keeps values for one process only.
    """

    def get_value(self, key: str) -> str | None: ...

    def set_value(self, key: str, value: str) -> None: ...


class Answer(Protocol):
    """What rate-limit reading needs of an answer (httpx's or requests')."""

    @property
    def headers(self) -> Mapping[str, str]: ...


class MemoryState:
    """``State`` in a dict: what an adapter uses when it is given none."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value


@dataclass(frozen=True)
class Media:
    """One approved image and its exact bytes, as the publisher loads them from the store."""

    image: PostImage
    data: bytes

    @property
    def filename(self) -> str:
        extension = {"image/png": "png", "image/gif": "gif", "image/webp": "webp"}
        return f"{self.image.digest[:16]}.{extension.get(self.image.mime, 'jpg')}"


class DeadlineExceeded(Exception):
    """The request's wall-clock deadline passed before its answer was read."""


class Adapter(ABC):
    """One network. Subclasses declare their name and capabilities."""

    name: ClassVar[str]
    idempotent: ClassVar[bool] = False
    """True when resending with the same key can never create a second post."""
    idempotency_window: ClassVar[timedelta | None] = None
    """How long the network remembers the key (None: for ever)."""
    can_find: ClassVar[bool] = False
    """True when ``find`` can look for an earlier post among the account's own."""
    can_delete: ClassVar[bool] = False
    """True when ``delete`` can take a post down."""
    rate_limit_wait: ClassVar[timedelta] = timedelta(minutes=5)
    """How long a 429 that names no time is waited out."""

    deadline: float | None = None
    """A ``time.monotonic()`` value every request must end by (None: no deadline)."""
    request_timeout: float = 30.0
    """The longest one request may take, deadline or not."""
    http: httpx.Client

    @classmethod
    @abstractmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        state: State | None = None,
    ) -> Self:
        """Build the adapter from the whole settings (it reads its own section).

        ``transport`` replaces the network (``httpx.MockTransport`` in tests);
        ``state`` keeps what the adapter remembers between runs.
        """

    after_upload: Callable[[], None] | None = None
    """Called between the last upload and the create (the publisher's crash point)."""

    @abstractmethod
    def publish(self, post: Post, *, key: str, media: Sequence[Media] = ()) -> Receipt:
        """Create the post; ``key`` is stable for the delivery across runs.

        ``media`` holds the bytes of ``post.images``, in order. Uploads are not
        posts: they are made on every attempt (upload ids expire), with
        ``creating=False`` (a failure is transient or permanent, never
        ambiguous), and only then is the post created, under its own rules.
        """

    def attachments(self, post: Post, media: Sequence[Media]) -> list[Media]:
        """``media`` checked against the approved ``post.images``: the same images, in
        order, byte for byte; anything else is refused before anything is sent."""
        if [m.image for m in media] != list(post.images) or any(
            hashlib.sha256(m.data).hexdigest() != m.image.digest for m in media
        ):
            raise PermanentError(
                "the images to send are not the approved ones; approve the release again",
                network=self.name,
            )
        return list(media)

    def uploaded(self) -> None:
        """Every upload is done and the create comes next."""
        if self.after_upload is not None:
            self.after_upload()

    def find(self, text: str, since: datetime) -> Receipt | None:
        """The account's post with this text created since ``since``, if any.

        None only on a well-formed answer that proves absence; an answer that
        cannot be read raises ``TransientError``.
        """
        raise PermanentError(
            f"{self.name} has no way to list the account's recent posts", network=self.name
        )

    def delete(self, remote_id: str) -> None:
        """Take down the post ``remote_id`` (a ``Receipt.remote_id``); gone already is done."""
        raise PermanentError(f"socialbot cannot delete posts on {self.name}", network=self.name)

    def post_id_from_url(self, url: str) -> str | None:
        """The post's id (as ``delete`` takes it) read from its public address, if possible.

        For deliveries an operator settled with ``resolve --posted URL``: only the
        address is known, and a retraction still has to delete the post.
        """
        return None

    def text_limits(self) -> TextLimits | None:
        """The text limits the network reports for this account, when it reports them."""
        return None

    @abstractmethod
    def check(self) -> str:
        """Verify the credentials without posting; return who they belong to."""

    def secret_values(self) -> list[str]:
        """Secrets obtained at run time (session tokens), for redaction."""
        return []

    def close(self) -> None:
        """Release connections."""
        http = getattr(self, "http", None)
        if http is not None:
            http.close()

    # -- time ----------------------------------------------------------------------------

    def time_left(self) -> float:
        """Seconds the next request may take: ``min(deadline, now + request_timeout)``.

        Raises ``TransientError`` when the deadline has passed: nothing is sent.
        """
        limit = self.request_timeout
        if self.deadline is not None:
            limit = min(limit, self.deadline - time.monotonic())
        if limit <= 0:
            raise TransientError(
                "the run's deadline has passed; the request was not sent", network=self.name
            )
        return limit

    def deadline_error(self, *, creating: bool) -> DeliveryError:
        if creating:
            return AmbiguousError(
                "no complete answer before the request's deadline; the post may exist",
                network=self.name,
            )
        return TransientError("no complete answer before the request's deadline", network=self.name)

    # -- one HTTP exchange ---------------------------------------------------------------

    def exchange(self, method: str, path: str, *, creating: bool, **kwargs: Any) -> httpx.Response:
        """Send one request and read its whole answer, whatever its status, by the deadline."""
        import httpx

        limit = self.time_left()
        end = time.monotonic() + limit
        timeout = httpx.Timeout(limit, connect=min(limit, CONNECT_TIMEOUT))
        request = self.http.build_request(method, path, timeout=timeout, **kwargs)
        try:
            response = self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise transport_error(exc, self.name, creating=creating) from None
        try:
            chunks = []
            if response.is_stream_consumed:
                # A transport that answered with the whole body in hand (a MockTransport).
                chunks.append(response.content)
            else:
                for chunk in response.iter_raw():
                    chunks.append(chunk)
                    if time.monotonic() > end:
                        raise self.deadline_error(creating=creating)
        except httpx.TransportError as exc:
            kind = type(exc).__name__
            if creating:
                raise AmbiguousError(
                    f"the answer ({response.status_code}) was cut off ({kind}); the post may exist",
                    network=self.name,
                    status_code=response.status_code,
                ) from None
            raise TransientError(
                f"the answer ({response.status_code}) was cut off ({kind})",
                network=self.name,
                status_code=response.status_code,
            ) from None
        finally:
            response.close()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=b"".join(chunks),
            request=request,
            extensions={"reason_phrase": response.extensions.get("reason_phrase", b"")},
        )

    def call(self, method: str, path: str, *, creating: bool, **kwargs: Any) -> httpx.Response:
        """``exchange``, and a non-2xx answer raised as its error class."""
        response = self.exchange(method, path, creating=creating, **kwargs)
        if response.is_success:
            return response
        raise self.failure(response, creating=creating)

    # -- classifying ---------------------------------------------------------------------

    def failure(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        """The error class of a non-2xx answer: shared rules first, then the adapter's."""
        status = response.status_code
        detail = self.error_detail(response)
        code = self.error_code(response)
        error: DeliveryError
        if status == 429:
            error = RateLimited(
                f"rate limited ({detail})",
                network=self.name,
                retry_at=self.retry_at(response),
                status_code=status,
                api_code=code,
            )
        elif status >= 500:
            error = server_failure(
                self.name, f"{status} {detail}", creating=creating, status=status, api_code=code
            )
        elif status == 408:
            error = TransientError(
                f"{status} {detail}", network=self.name, status_code=status, api_code=code
            )
        else:
            error = self.classify(response, creating=creating)
        return redacted(error)

    def classify(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        """The adapter's reading of its own 4xx (and 3xx) error bodies."""
        return PermanentError(
            f"{self.name} refused the request: "
            f"{response.status_code} {self.error_detail(response)}",
            network=self.name,
            status_code=response.status_code,
        )

    def error_detail(self, response: httpx.Response) -> str:
        """What the network's error body says, in a few words."""
        return response.reason_phrase or str(response.status_code)

    def error_code(self, response: httpx.Response) -> int | str | None:
        """The network's own error code in its error body, if any."""
        return None

    def retry_at(self, response: Answer) -> datetime:
        """When a rate-limited call may be made again."""
        now = utc_now()
        headers = response.headers
        return (
            parse_retry_after(headers.get("retry-after"), now)
            or parse_epoch(headers.get("x-rate-limit-reset"), now)
            or parse_epoch(headers.get("ratelimit-reset"), now)
            or parse_iso(headers.get("x-ratelimit-reset"), now)
            or self.retry_hint(response, now)
            or now + self.rate_limit_wait
        )

    def retry_hint(self, response: Any, now: datetime) -> datetime | None:
        """The adapter's own idea of when to come back (from its error body), if any."""
        return None

    def searched_too_few(self, posts: int) -> TransientError:
        """A search for a post that stopped at its bound of ``posts``: it proves nothing absent,
        so the delivery stays in doubt (``find`` raises this rather than answer None)."""
        return TransientError(
            f"more than {posts} posts since the attempt; they were not all read, so the post "
            "may be among the rest",
            network=self.name,
        )

    def unreadable(self, what: str, response: httpx.Response, *, creating: bool) -> DeliveryError:
        """A success answer that cannot be read: ambiguous on a create, transient otherwise."""
        message = f"the answer ({response.status_code}) {what}"
        if creating:
            return AmbiguousError(
                message + "; the post may exist",
                network=self.name,
                status_code=response.status_code,
            )
        return TransientError(message, network=self.name, status_code=response.status_code)

    def answer_object(self, response: httpx.Response, *, creating: bool) -> dict[str, Any]:
        """A 2xx answer's JSON object; anything else is ``unreadable``."""
        data = parse_json(response)
        if not isinstance(data, dict):
            raise self.unreadable("is not a JSON object", response, creating=creating)
        return data


def redacted(error: DeliveryError) -> DeliveryError:
    """``error`` with every known secret masked in its message (a 429 may echo a token)."""
    message = str(error)
    clean = redact(message)
    if clean != message:
        error.args = (clean,)
    return error


def server_failure(
    network: str,
    detail: str,
    *,
    creating: bool,
    status: int | None = None,
    api_code: int | str | None = None,
) -> DeliveryError:
    """A failure on the network's side: the post may exist when the call creates one."""
    if creating:
        return AmbiguousError(
            f"the network failed ({detail}); the post may exist",
            network=network,
            status_code=status,
            api_code=api_code,
        )
    return TransientError(
        f"the network failed ({detail})", network=network, status_code=status, api_code=api_code
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """``Retry-After`` as seconds or an HTTP date; a date in the past means now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when, now)


def parse_epoch(value: str | None, now: datetime) -> datetime | None:
    """A Unix time header (X ``x-rate-limit-reset``, Bluesky ``RateLimit-Reset``)."""
    if not value:
        return None
    try:
        when = datetime.fromtimestamp(float(value.strip()), UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return max(when, now)


def parse_iso(value: str | None, now: datetime) -> datetime | None:
    """An ISO 8601 time header (Mastodon ``X-RateLimit-Reset``)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when, now)


def parse_json(response: httpx.Response) -> Any:
    """The body as JSON, or None when it is not JSON."""
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or an empty dict when it is not one (error bodies)."""
    data = parse_json(response)
    return data if isinstance(data, dict) else {}


def in_background(work: Callable[[], T], name: str) -> Future[T]:
    """Run ``work`` on a helper thread; its result (or exception) waits in the future.

    For work that can overlap a network round trip or C code that lets go of the
    GIL (loading a library, parsing a CA bundle), started before it is needed.
    """
    result: Future[T] = Future()

    def run() -> None:
        try:
            result.set_result(work())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            result.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return result


@cache
def _tls_loading() -> Future[ssl.SSLContext]:
    return in_background(_load_tls_context, "socialbot-tls")


def _load_tls_context() -> ssl.SSLContext:
    """What httpx builds for ``verify=True``, without importing httpx: the CA bundle of
    ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else certifi's."""
    import ssl

    import certifi

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


def preload_tls_context() -> None:
    """Start loading the CA bundle on another thread, ahead of the first client.

    OpenSSL parses the bundle (about 40 ms) without holding the GIL, so it runs on
    another core while this thread goes on importing and building adapters.
    """
    _tls_loading()


def tls_context() -> ssl.SSLContext:
    """The one TLS context every adapter's client shares, loaded once per process."""
    return _tls_loading().result()


def new_client(
    base_url: str,
    timeout: float,
    headers: dict[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client with explicit timeouts; connection failures fail fast."""
    import httpx

    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=False,
        transport=transport,
        verify=tls_context(),
    )


def transport_error(exc: Exception, network: str, *, creating: bool) -> DeliveryError:
    """Classify an httpx failure by whether the request can have been processed."""
    import httpx

    kind = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return TransientError(f"could not connect ({kind})", network=network)
    if not creating:
        return TransientError(f"the connection failed ({kind})", network=network)
    return AmbiguousError(
        f"the connection failed after the request was sent ({kind}); the post may exist",
        network=network,
    )

"""What every network adapter offers, and the HTTP helpers they share.

An adapter turns a ``Post`` into a post on one network and returns a
``Receipt``. It translates its library's errors into ``socialbot.errors`` at
this boundary, with the one distinction the publisher cannot make itself: was
the request possibly processed (``AmbiguousError``) or certainly not
(``TransientError``)?
"""

from __future__ import annotations

import email.utils
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

import httpx

from socialbot.errors import (
    AmbiguousError,
    DeliveryError,
    PermanentError,
    TransientError,
)
from socialbot.models import Post, Receipt, TextLimits

if TYPE_CHECKING:
    from socialbot.config import Settings

USER_AGENT = "socialbot/0.1 (+https://github.com/socialbot)"


class Adapter(ABC):
    """One network. Subclasses declare their name and whether retries are safe."""

    name: ClassVar[str]
    idempotent: ClassVar[bool] = False
    """True when resending with the same key can never create a second post."""
    idempotency_window: ClassVar[timedelta | None] = None
    """How long the network remembers the key (None: for ever)."""
    can_find: ClassVar[bool] = False
    """True when ``find`` can look for an earlier post among the account's own."""
    deadline: float | None = None
    """A ``time.monotonic()`` value by which every request must end (set by the drain)."""

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Build the adapter from the whole settings (it reads its own section)."""

    @abstractmethod
    def publish(self, post: Post, *, key: str) -> Receipt:
        """Create the post; ``key`` is stable for the delivery across runs."""

    def find(self, text: str, since: datetime) -> Receipt | None:
        """Return the account's post with this text created since ``since``, if any."""
        raise PermanentError(
            f"{self.name} has no way to list the account's recent posts", network=self.name
        )

    can_delete: ClassVar[bool] = False
    """True when ``delete`` can remove a post (a retraction)."""

    def delete(self, remote_id: str) -> None:
        """Delete the post ``remote_id``; a post already gone counts as deleted."""
        raise PermanentError(f"{self.name} cannot delete posts", network=self.name)

    def text_limits(self) -> TextLimits | None:
        """The text limits the network reports for this account, when it reports them."""
        return None

    @abstractmethod
    def check(self) -> str:
        """Verify the credentials without posting; return who they belong to."""

    def secret_values(self) -> list[str]:
        """Secrets obtained at run time (session tokens), for redaction."""
        return []

    def close(self) -> None:  # noqa: B027 - most adapters have nothing to release
        """Release connections."""


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


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or an empty dict when it is not one."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def new_client(
    base_url: str, timeout: float, headers: dict[str, str] | None = None
) -> httpx.Client:
    """An httpx client with explicit timeouts; connection failures fail fast."""
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        follow_redirects=False,
    )


def send(
    http: httpx.Client,
    method: str,
    path: str,
    *,
    network: str,
    creating: bool,
    classify: Callable[[httpx.Response], DeliveryError],
    **kwargs: Any,
) -> httpx.Response:
    """One request; a failure leaves as socialbot's error class, never as httpx's.

    ``classify`` turns the network's error answer into an error class;
    ``creating`` says whether a lost answer may mean a post was made.
    """
    try:
        response = http.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise transport_error(exc, network, creating=creating) from None
    if response.is_success:
        return response
    raise classify(response)


def transport_error(exc: httpx.TransportError, network: str, *, creating: bool) -> DeliveryError:
    """Classify an httpx failure by whether the request can have been processed."""
    kind = type(exc).__name__
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return TransientError(f"could not connect ({kind})", network=network)
    if not creating:
        return TransientError(f"the connection failed ({kind})", network=network)
    return AmbiguousError(
        f"the connection failed after the request was sent ({kind}); the post may exist",
        network=network,
    )

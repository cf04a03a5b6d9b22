"""The store contract: what every backend offers, and the records it returns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from socialbot.models import Approval, Delivery, DeliveryStatus, Post, Receipt, Release, Revision

ALL_NETWORKS = "*"
"""The ``network`` of a pause or withdrawal that applies to every network."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_text(value: datetime | None) -> str | None:
    """Store times as fixed-width UTC ISO 8601, so text order is time order."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def delivery_key(release_id: str, revision: int, network: str) -> str:
    """The idempotency key (Mastodon) and record key (Bluesky) of one delivery.

    Derived from what makes the delivery unique, never drawn at random: a
    restored backup or a re-created row sends the same key, so the network
    itself refuses the second post.
    """
    seed = f"socialbot\x00{release_id}\x00{revision}\x00{network}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


@dataclass(frozen=True)
class QueueFile:
    """What the last scan learnt from one file, keyed by its stat signature."""

    path: str
    signature: str
    release_id: str | None
    content_hash: str | None
    not_before: datetime | None
    error: str | None


@dataclass(frozen=True)
class Withdrawal:
    """A person's decision that a release (or one network of it) is not to be posted,
    and, for a retraction, that what was posted is to be deleted."""

    release_id: str
    network: str
    """A network name, or ``ALL_NETWORKS``."""
    kind: str
    """``withdraw`` or ``retract``."""
    by: str
    at: datetime
    reason: str

    def covers(self, network: str) -> bool:
        return self.network in (ALL_NETWORKS, network)


@dataclass(frozen=True)
class Rejection:
    """A person's refusal of one revision."""

    release_id: str
    revision: int
    by: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class Pause:
    """The crisis switch for one network, or ``ALL_NETWORKS``."""

    network: str
    by: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit trail."""

    id: int
    at: datetime
    actor: str
    action: str
    release_id: str | None
    network: str | None
    revision: int | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "release": self.release_id,
            "network": self.network,
            "revision": self.revision,
            "detail": self.detail,
        }


class Store(Protocol):  # pragma: no cover - an interface
    """What socialbot needs from its database. Every state change is compare-and-set."""

    # -- releases and revisions
    def record_revision(
        self, release: Release, *, source: str, author: str | None, now: datetime
    ) -> Revision | None: ...
    def latest_revisions(self, release_ids: Iterable[str] | None = None) -> dict[str, Revision]: ...
    def revisions(self, release_id: str) -> list[Revision]: ...
    def release_ids(self) -> list[str]: ...

    # -- approvals, rejections, withdrawals, the audit trail
    def record_approval(self, approval: Approval) -> int: ...
    def approval(self, approval_id: int) -> Approval | None: ...
    def approvals(self, release_id: str | None = None) -> list[Approval]: ...
    def latest_approvals(self, release_ids: Iterable[str] | None = None) -> dict[str, Approval]: ...
    def record_rejection(self, rejection: Rejection) -> None: ...
    def rejections(self, release_id: str) -> list[Rejection]: ...
    def record_withdrawal(self, withdrawal: Withdrawal) -> None: ...
    def withdrawals(self, release_id: str | None = None) -> list[Withdrawal]: ...
    def audit(
        self,
        action: str,
        *,
        actor: str,
        now: datetime,
        release_id: str | None = None,
        network: str | None = None,
        revision: int | None = None,
        detail: str = "",
    ) -> None: ...
    def audit_trail(self, release_id: str | None = None) -> list[AuditEntry]: ...

    # -- deliveries
    def get(self, release_id: str, network: str) -> Delivery | None: ...
    def deliveries(
        self,
        *,
        release_id: str | None = None,
        network: str | None = None,
        status: DeliveryStatus | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Delivery]: ...
    def posted_under_retraction(self) -> list[Delivery]: ...
    def due(self, network: str, now: datetime) -> list[Delivery]: ...
    def create_delivery(
        self,
        approval: Approval,
        post: Post,
        *,
        key: str,
        not_before: datetime | None,
        now: datetime,
    ) -> bool: ...
    def rebase(
        self,
        delivery: Delivery,
        approval: Approval,
        post: Post,
        *,
        key: str,
        not_before: datetime | None,
        now: datetime,
    ) -> bool: ...
    def transition(
        self,
        delivery: Delivery,
        status: DeliveryStatus,
        now: datetime,
        *,
        error: str | None = None,
    ) -> bool: ...
    def claim(self, delivery_id: int, text: str, now: datetime) -> Delivery | None: ...
    def finish(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        now: datetime,
        *,
        expect: DeliveryStatus,
        receipt: Receipt | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        uncertain: bool = False,
        count_attempt: bool = True,
        settled: bool = False,
        durable: bool = True,
    ) -> bool: ...
    def uncertain(self, delivery_id: int, *, unsettled_only: bool = False) -> bool: ...
    def first_uncertain_at(
        self, delivery_id: int, *, unsettled_only: bool = False
    ) -> datetime | None: ...
    def requeue(self, release_id: str, network: str | None, now: datetime) -> int: ...
    def resolve(
        self, release_id: str, network: str, now: datetime, *, url: str | None
    ) -> Delivery | None: ...
    def counts(self) -> dict[DeliveryStatus, int]: ...
    def pending_counts(self) -> dict[str, int]:
        """How many deliveries wait on each network (due or not); a network without any
        is absent."""
        ...

    # -- holds, pauses, a small key-value area, the queue scan cache
    def hold(self, network: str) -> tuple[datetime, str] | None: ...
    def set_hold(self, network: str, not_before: datetime, reason: str) -> None: ...
    def pause(self, pause: Pause) -> None: ...
    def resume(self, network: str) -> bool: ...
    def pauses(self) -> dict[str, Pause]: ...
    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...
    def entries(self, prefix: str) -> dict[str, str]:
        """The keys starting with ``prefix`` (literally), in order, with their values."""
        ...

    # Approved images, by the SHA-256 of their bytes (kept: an approval refers to them).
    def put_media(self, digest: str, mime: str, data: bytes) -> None: ...
    def get_media(self, digest: str) -> tuple[str, bytes] | None: ...
    def queue_files(self) -> dict[str, QueueFile]: ...
    def remember_files(self, files: Sequence[QueueFile], forget: Sequence[str]) -> None: ...

    # -- one drain at a time
    def drain_lock(self, *, stale_after: float | None = None) -> AbstractContextManager[None]: ...
    def close(self) -> None: ...


def check_media(digest: str, data: bytes) -> None:
    """Refuse to store bytes under a digest that is not theirs."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError("the media digest is not the SHA-256 of its bytes")


def batches(values: Iterable[str], size: int) -> Iterator[list[str]]:
    unique = sorted(set(values))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]

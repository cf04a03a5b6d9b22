"""Problems: what went wrong, or what needs a person, as data every face renders.

A problem has a ``kind`` (what sort of thing it is, which decides the advice a
face gives), the release and network it concerns, and a plain ``detail``.
*Standing* problems are states that last (a delivery waiting for a person, a
network not configured); the drain repeats them at most once per interval,
while ``status`` always shows them. Other problems happened in this run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from socialbot.models import Delivery, DeliveryStatus


class Kind(StrEnum):
    INVALID_FILE = "invalid-file"
    CHANGED_AFTER_APPROVAL = "changed-after-approval"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NOT_CONFIGURED = "not-configured"
    CREDENTIALS = "credentials"
    RATE_LIMITED = "rate-limited"
    BUDGET = "budget"
    INTERRUPTED = "interrupted"
    NETWORK_ERROR = "network-error"
    RETRACT = "retract"
    LEGACY = "legacy"


@dataclass(frozen=True)
class Problem:
    kind: Kind
    detail: str
    release: str | None = None
    network: str | None = None
    standing: bool = False
    fresh: bool = False
    """A standing problem that happened again in this run (a retried delivery that failed
    the same way): told now, whenever it was last told, then repeated as any standing one."""

    @property
    def key(self) -> str:
        """Identifies the same problem from one run to the next."""
        return f"{self.kind.value}:{self.release or ''}:{self.network or ''}:{self.detail}"

    def __str__(self) -> str:
        where = " on ".join(part for part in (self.release, self.network) if part)
        return f"{where}: {self.detail}" if where else self.detail

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "release": self.release,
            "network": self.network,
            "detail": self.detail,
            "standing": self.standing,
        }


def delivery_problems(
    deliveries: Iterable[Delivery], searchable: Callable[[str], bool]
) -> list[Problem]:
    """The standing problems of unknown and failed deliveries (the drain's and status's).

    ``searchable(network)``: whether a run can look for an unknown post on that network.
    """
    problems = []
    for delivery in deliveries:
        if delivery.status is DeliveryStatus.UNKNOWN:
            detail = (
                "unknown: sent without a clear answer; the next run looks for it on the "
                "account before sending again"
                if searchable(delivery.network)
                else f"unknown: may or may not have been posted ({delivery.error or 'no answer'})"
            )
            kind = Kind.UNKNOWN
        elif delivery.status is DeliveryStatus.FAILED:
            detail = f"failed ({delivery.error or 'no reason recorded'})"
            kind = Kind.FAILED
        else:
            continue
        problems.append(Problem(kind, detail, delivery.release_id, delivery.network, True))
    return problems


class Memory(Protocol):
    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...
    def entries(self, prefix: str) -> dict[str, str]: ...


PREFIX = "problem:"


def to_report(
    problems: list[Problem], memory: Memory, now: datetime, repeat: timedelta
) -> list[Problem]:
    """The problems worth telling cron about now, each once.

    New problems and problems of this run are always told; a standing one is
    told again only when ``repeat`` has passed since it was last told.
    Standing problems that went away are forgotten, so their return is news.
    """
    told: list[Problem] = []
    seen: set[str] = set()
    known = memory.entries(PREFIX)
    for problem in problems:
        if problem.key in seen:
            continue
        seen.add(problem.key)
        if not problem.standing:
            told.append(problem)
            continue
        last = known.get(PREFIX + problem.key)
        recent = last and last != "-" and now - datetime.fromisoformat(last) < repeat
        if recent and not problem.fresh:
            continue
        memory.set_value(PREFIX + problem.key, now.isoformat())
        told.append(problem)
    for key, last in known.items():
        if key.removeprefix(PREFIX) not in seen and last != "-":
            memory.set_value(key, "-")
    return told

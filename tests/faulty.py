"""An in-process drain over real HTTP, with the clock and the sleeps in the test's hands.

The adapters are the real ones, built from the settings the ``env`` fixture
points at the sandbox; only time is injected (``now`` and ``sleep`` are
parameters of ``Publisher`` for this purpose), so waits are recorded rather
than slept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from socialbot.adapters import adapter_class
from socialbot.config import load_settings
from socialbot.operations import LazyAdapters
from socialbot.publish import DrainReport, Publisher, RetryPolicy
from socialbot.sandbox import SandboxServer
from socialbot.store import open_store
from tests.drainer import opened

FAST = RetryPolicy(
    max_attempts=3,
    tries_per_run=3,
    initial_wait=1.0,
    max_wait=4.0,
    max_rate_limit_wait=60.0,
    reconcile_after=timedelta(0),
)


@dataclass
class Clock:
    """The publisher's idea of now: real time plus an offset the test moves."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass
class Sleeps:
    """Records each wait instead of sleeping it."""

    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@contextmanager
def publisher(
    workdir: Path,
    *,
    clock: Clock | None = None,
    sleeps: Sleeps | None = None,
    budget: float = 60.0,
    **policy: Any,
) -> Iterator[Publisher]:
    """A Publisher for the current environment's settings and database."""
    settings = load_settings()
    store = open_store(settings.database_url)
    active = settings.active_networks()
    adapters = LazyAdapters(settings, active)
    try:
        base = FAST.__dict__ | policy
        yield Publisher(
            store=store,
            queue_dir=workdir / "queue",
            adapters=adapters,
            active=active,
            policy=RetryPolicy(**base),
            budget_seconds=budget,
            now=clock or Clock(),
            sleep=sleeps or Sleeps(),
        )
    finally:
        adapters.close()
        store.close()


def drain(workdir: Path, **kwargs: Any) -> DrainReport:
    with publisher(workdir, **kwargs) as made:
        return made.drain()


def idempotent(network: str) -> bool:
    return adapter_class(network).idempotent


def can_find(network: str) -> bool:
    """Whether the network lets socialbot look for a post that may exist (Telegram does not)."""
    return adapter_class(network).can_find


def status_of(workdir: Path, release: str, network: str) -> str:
    """The delivery's status, read through the store of the test's database."""
    with opened() as store:
        delivery = store.get(release, network)
        assert delivery is not None
        return delivery.status.value


def requests_to(sandbox: SandboxServer, network: str, method: str | None = None) -> int:
    return sum(
        1
        for r in list(sandbox.requests)
        if r["network"] == network and (method is None or r["method"] == method)
    )

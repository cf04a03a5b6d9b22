"""The drain: publish every approved, due release once to each of its networks.

For each delivery the state is written before the network call and after it:

    pending ──claim──▶ sending ──▶ posted
       ▲                  │  ├───▶ failed    (permanent error, or out of attempts)
       │                  │  └───▶ unknown   (may have posted; reconciled later)
       └──────────────────┘        (transient error, rate limit: try again later)

A run that dies mid-call leaves ``sending`` behind; the next run turns it into
``pending`` where the network makes a resend safe (an idempotency key or a
client-chosen record key) and into ``unknown`` elsewhere, then looks for the
post among the account's own before any new attempt.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from socialbot.adapters import Adapter
from socialbot.compose import ComposeOptions, compose
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    ComposeError,
    DeliveryError,
    DuplicateError,
    InvalidRelease,
    PermanentError,
    RateLimited,
    SocialbotError,
    TransientError,
)
from socialbot.models import Delivery, DeliveryStatus, Post, Receipt, Release
from socialbot.releases import QueueEntry, read_release, scan_queue
from socialbot.store import Store, utcnow

log = logging.getLogger("socialbot.publish")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one run tries, and how long deliveries wait between runs."""

    max_attempts: int = 5
    """Failed attempts (across runs) before a delivery is dead-lettered as failed."""
    tries_per_run: int = 4
    initial_wait: float = 1.0
    max_wait: float = 30.0
    max_rate_limit_wait: float = 60.0
    """Longest server-requested wait honoured inside a run; longer ones end the run."""
    backoff_between_runs: timedelta = timedelta(minutes=2)
    reconcile_after: timedelta = timedelta(seconds=30)
    """How old an ambiguous attempt must be before the account is searched for it."""


@dataclass(frozen=True)
class Outcome:
    """What one delivery came to in this run."""

    release_id: str
    network: str
    status: DeliveryStatus
    text: str | None = None
    receipt: Receipt | None = None
    error: str | None = None


@dataclass
class DrainReport:
    """Everything a drain did and everything that needs a human."""

    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    left_pending: int = 0

    @property
    def exit_status(self) -> int:
        """0 when every due delivery went out and nothing needs a human, else 1."""
        return 1 if self.problems or self.left_pending else 0

    @property
    def posted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is DeliveryStatus.POSTED]


class AlreadyRunning(SocialbotError):
    """Another drain holds the lock."""


@contextmanager
def drain_lock(database_path: str) -> Iterator[None]:
    """One drain at a time per database; the kernel drops the lock if we die."""
    if database_path == ":memory:":
        yield
        return
    lock_path = database_path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(
                f"another drain is running (lock {lock_path} is held); this run did nothing"
            ) from None
        yield
    finally:
        os.close(fd)


class Publisher:
    """Drains the queue into the networks through their adapters."""

    def __init__(
        self,
        *,
        store: Store,
        queue_dir: Path,
        adapters: Mapping[str, Adapter],
        active: list[str],
        options: ComposeOptions | None = None,
        policy: RetryPolicy | None = None,
        budget_seconds: float = 240.0,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.queue_dir = queue_dir
        self.adapters = adapters
        self.active = active
        self.options = options or ComposeOptions()
        self.policy = policy or RetryPolicy()
        self.now = now
        self.sleep = sleep
        self.deadline = time.monotonic() + budget_seconds

    # -- the run -------------------------------------------------------------------------

    def drain(self) -> DrainReport:
        report = DrainReport()
        self.recover(report)
        entries = self.schedule(report)
        networks = sorted({d.network for d in self.store.deliveries(status=DeliveryStatus.PENDING)})
        by_id = {e.release_id: e for e in entries if e.release_id and not e.error}
        with ThreadPoolExecutor(max_workers=max(len(networks), 1)) as pool:
            for partial in pool.map(lambda n: self.drain_network(n, by_id), networks):
                report.outcomes.extend(partial.outcomes)
                report.problems.extend(partial.problems)
        report.left_pending = len(self.store.deliveries(status=DeliveryStatus.PENDING))
        self.report_stuck(report)
        return report

    def recover(self, report: DrainReport) -> None:
        """Settle what a dead run left in ``sending``, then reconcile ``unknown``."""
        now = self.now()
        for delivery in self.store.deliveries(status=DeliveryStatus.SENDING):
            adapter = self.adapters.get(delivery.network)
            if adapter is not None and self._resend_is_safe(adapter, delivery, now):
                self.store.finish(
                    delivery.id,
                    DeliveryStatus.PENDING,
                    now,
                    error="interrupted while sending; resending with the same key",
                    uncertain=True,
                )
            else:
                self.store.finish(
                    delivery.id,
                    DeliveryStatus.UNKNOWN,
                    now,
                    error="interrupted while sending; it may have been posted",
                    uncertain=True,
                )
        for delivery in self.store.deliveries(status=DeliveryStatus.UNKNOWN):
            self.reconcile(delivery, report)

    def reconcile(self, delivery: Delivery, report: DrainReport) -> None:
        """Look for an ambiguous delivery's post on the network before resending."""
        adapter = self.adapters.get(delivery.network)
        now = self.now()
        sent_at = delivery.sent_at or delivery.updated_at
        if adapter is None or not adapter.can_find or delivery.text is None:
            return
        if now - sent_at < self.policy.reconcile_after:
            return
        try:
            receipt = adapter.find(delivery.text, sent_at)
        except DeliveryError as exc:
            log.warning(
                "%s on %s: could not look for the post (%s)", delivery.release_id, adapter.name, exc
            )
            return
        if receipt is not None:
            self.store.finish(delivery.id, DeliveryStatus.POSTED, now, receipt=receipt)
            log.info(
                "%s on %s: found as posted at %s", delivery.release_id, adapter.name, receipt.url
            )
            report.outcomes.append(
                Outcome(
                    delivery.release_id,
                    delivery.network,
                    DeliveryStatus.POSTED,
                    delivery.text,
                    receipt,
                )
            )
        else:
            self.store.finish(
                delivery.id,
                DeliveryStatus.PENDING,
                now,
                error="not found among the account's posts after an uncertain attempt; resending",
                count_attempt=False,
            )
            log.info(
                "%s on %s: not found on the network; resending", delivery.release_id, adapter.name
            )

    def schedule(self, report: DrainReport) -> list[QueueEntry]:
        """Scan the queue, report bad files, create deliveries for due approved releases."""
        entries = scan_queue(self.queue_dir, self.store)
        approvals = self.store.latest_approvals()
        scheduled = self.store.scheduled()
        now = self.now()
        for entry in entries:
            if entry.error:
                report.problems.append(entry.error)
                continue
            assert entry.release_id is not None
            approval = approvals.get(entry.release_id)
            if approval is None:
                continue
            if approval.content_hash != entry.content_hash:
                if self._has_unsent(entry.release_id):
                    report.problems.append(
                        f"{entry.path}: changed after it was approved; "
                        "nothing from it is posted until it is approved again"
                    )
                continue
            if entry.not_before is not None and entry.not_before > now:
                continue
            if scheduled.get(entry.release_id) != approval.id:
                self.store.schedule(approval, now)
        return entries

    def _has_unsent(self, release_id: str) -> bool:
        deliveries = self.store.deliveries(release_id=release_id)
        return not deliveries or any(d.status is DeliveryStatus.PENDING for d in deliveries)

    def report_stuck(self, report: DrainReport) -> None:
        """Deliveries that need a human: each is one line, every run, until handled."""
        for status, advice in (
            (
                DeliveryStatus.UNKNOWN,
                "may or may not have been posted: check the account, then run "
                "`socialbot resolve {release} --network {network} --posted URL` or --not-posted",
            ),
            (
                DeliveryStatus.FAILED,
                "failed ({error}); fix the cause, then run "
                "`socialbot retry {release} --network {network}`",
            ),
        ):
            for delivery in self.store.deliveries(status=status):
                report.problems.append(
                    f"{delivery.release_id} on {delivery.network} "
                    + advice.format(
                        release=delivery.release_id,
                        network=delivery.network,
                        error=delivery.error or "no reason recorded",
                    )
                )

    # -- one network ---------------------------------------------------------------------

    def drain_network(self, network: str, entries: Mapping[str, QueueEntry]) -> DrainReport:
        """Send a network's due deliveries in order, stopping at a rate limit."""
        report = DrainReport()
        now = self.now()
        due = self.store.due(network, now)
        waiting = len(self.store.deliveries(network=network, status=DeliveryStatus.PENDING))
        adapter = self.adapters.get(network)
        if adapter is None:
            report.problems.append(
                f"{waiting} deliveries to {network} wait, but {network} is not configured"
                if network not in self.active
                else f"{network} could not be set up; {waiting} deliveries wait"
            )
            return report
        hold = self.store.hold(network)
        if hold is not None and hold[0] > now:
            report.problems.append(
                f"{network} asked us to wait until {hold[0]:%Y-%m-%d %H:%M:%S} UTC ({hold[1]}); "
                f"{waiting} deliveries wait"
            )
            return report
        for index, delivery in enumerate(due):
            if time.monotonic() >= self.deadline:
                report.problems.append(
                    f"the run's time budget ran out; {len(due) - index} deliveries to "
                    f"{network} wait for the next run"
                )
                break
            if self.deliver(adapter, delivery, entries.get(delivery.release_id), report):
                break
        return report

    def deliver(
        self,
        adapter: Adapter,
        delivery: Delivery,
        entry: QueueEntry | None,
        report: DrainReport,
    ) -> bool:
        """Publish one delivery. Returns True when the network should not be called again."""
        release = self._approved_release(delivery, entry, report)
        if release is None:
            return False
        try:
            post = compose(release, adapter.name, self._options(adapter))
        except ComposeError as exc:
            self.store.finish(delivery.id, DeliveryStatus.FAILED, self.now(), error=str(exc))
            report.outcomes.append(
                Outcome(release.id, adapter.name, DeliveryStatus.FAILED, error=str(exc))
            )
            return False
        claimed = self.store.claim(delivery.id, post.text, self.now())
        if claimed is None:
            return False
        log.info("%s on %s: sending (attempt %d)", release.id, adapter.name, claimed.attempts)
        return self._send_and_record(adapter, claimed, post, report)

    def _send_and_record(
        self, adapter: Adapter, delivery: Delivery, post: Post, report: DrainReport
    ) -> bool:
        ambiguous_before = False

        def note_ambiguity(exc: BaseException) -> None:
            nonlocal ambiguous_before
            if isinstance(exc, AmbiguousError):
                ambiguous_before = True

        network, release_id = adapter.name, delivery.release_id
        try:
            receipt = self._send(adapter, post, delivery.idempotency_key, note_ambiguity)
        except DuplicateError as exc:
            if ambiguous_before or self.store.uncertain(delivery.id):
                # The earlier, uncertain attempt went through.
                found = self._find_quietly(adapter, post.text, delivery)
                self._record(
                    delivery,
                    post,
                    report,
                    DeliveryStatus.POSTED,
                    receipt=found,
                    error=f"the network already holds this post ({exc})",
                )
                return False
            self._record(
                delivery,
                post,
                report,
                DeliveryStatus.FAILED,
                error=f"refused as a duplicate of an earlier post ({exc})",
            )
            return False
        except RateLimited as exc:
            self.store.set_hold(network, exc.retry_at, str(exc))
            self._record(
                delivery,
                post,
                report,
                DeliveryStatus.PENDING,
                error=str(exc),
                next_attempt_at=exc.retry_at,
                count_attempt=False,
            )
            report.problems.append(
                f"{network} asked us to wait until {exc.retry_at:%Y-%m-%d %H:%M:%S} UTC; "
                "its deliveries wait for a later run"
            )
            return True
        except AuthError as exc:
            self._record(
                delivery, post, report, DeliveryStatus.PENDING, error=str(exc), count_attempt=False
            )
            report.problems.append(f"{network}: {exc}")
            return True
        except AmbiguousError as exc:
            if adapter.idempotent:
                self._retry_later(delivery, post, report, exc, uncertain=True)
            else:
                self._record(
                    delivery, post, report, DeliveryStatus.UNKNOWN, error=str(exc), uncertain=True
                )
            return False
        except TransientError as exc:
            self._retry_later(delivery, post, report, exc)
            return False
        except PermanentError as exc:
            self._record(delivery, post, report, DeliveryStatus.FAILED, error=str(exc))
            return False
        except Exception as exc:
            log.exception("%s on %s: unexpected error while sending", release_id, network)
            message = f"unexpected {type(exc).__name__} while sending; it may have been posted"
            status = DeliveryStatus.PENDING if adapter.idempotent else DeliveryStatus.UNKNOWN
            self._record(delivery, post, report, status, error=message, uncertain=True)
            return False
        self._record(delivery, post, report, DeliveryStatus.POSTED, receipt=receipt)
        log.info("%s on %s: posted at %s", release_id, network, receipt.url)
        return False

    def _send(
        self,
        adapter: Adapter,
        post: Post,
        key: str,
        on_error: Callable[[BaseException], None],
    ) -> Receipt:
        """One publish call, retried within the run where a retry cannot duplicate."""
        policy = self.policy
        backoff = wait_exponential_jitter(
            initial=policy.initial_wait, max=policy.max_wait, jitter=policy.initial_wait
        )

        def retryable(exc: BaseException) -> bool:
            on_error(exc)
            remaining = self.deadline - time.monotonic()
            if isinstance(exc, RateLimited):
                wait = (exc.retry_at - self.now()).total_seconds()
                return wait <= min(policy.max_rate_limit_wait, remaining)
            if isinstance(exc, AmbiguousError):
                return adapter.idempotent
            return isinstance(exc, TransientError)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimited):
                return max(0.0, (exc.retry_at - self.now()).total_seconds())
            return float(backoff(state))

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s: retrying in %.1fs after %s: %s",
                adapter.name,
                delay,
                type(exc).__name__,
                exc,
            )

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            wait=wait,
            stop=stop_after_attempt(policy.tries_per_run)
            | stop_before_delay(max(self.deadline - time.monotonic(), 0.0)),
            before_sleep=log_retry,
            sleep=self.sleep,
            reraise=True,
        )
        receipt: Receipt = retrying(adapter.publish, post, key=key)
        return receipt

    def _retry_later(
        self,
        delivery: Delivery,
        post: Post,
        report: DrainReport,
        exc: DeliveryError,
        *,
        uncertain: bool = False,
    ) -> None:
        if delivery.attempts >= self.policy.max_attempts:
            self._record(
                delivery,
                post,
                report,
                DeliveryStatus.FAILED,
                error=f"gave up after {delivery.attempts} attempts: {exc}",
                uncertain=uncertain,
            )
            return
        later = self.now() + self.policy.backoff_between_runs * (2 ** (delivery.attempts - 1))
        self._record(
            delivery,
            post,
            report,
            DeliveryStatus.PENDING,
            error=str(exc),
            next_attempt_at=later,
            uncertain=uncertain,
        )

    def _record(
        self,
        delivery: Delivery,
        post: Post,
        report: DrainReport,
        status: DeliveryStatus,
        *,
        receipt: Receipt | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        uncertain: bool = False,
        count_attempt: bool = True,
    ) -> None:
        self.store.finish(
            delivery.id,
            status,
            self.now(),
            receipt=receipt,
            error=error,
            next_attempt_at=next_attempt_at,
            uncertain=uncertain,
            count_attempt=count_attempt,
        )
        if error and status is not DeliveryStatus.POSTED:
            log.warning("%s on %s: %s (%s)", delivery.release_id, delivery.network, status, error)
        report.outcomes.append(
            Outcome(delivery.release_id, delivery.network, status, post.text, receipt, error)
        )

    def _find_quietly(self, adapter: Adapter, text: str, delivery: Delivery) -> Receipt | None:
        if not adapter.can_find:
            return None
        try:
            return adapter.find(text, delivery.sent_at or delivery.created_at)
        except DeliveryError:
            return None

    def _approved_release(
        self, delivery: Delivery, entry: QueueEntry | None, report: DrainReport
    ) -> Release | None:
        """The release file's content, only if it is still exactly what was approved."""
        if entry is None:
            report.problems.append(
                f"{delivery.release_id}: its release file is no longer in the queue (or is "
                f"invalid); its delivery to {delivery.network} waits"
            )
            return None
        try:
            release = read_release(entry.path, self.queue_dir)
        except InvalidRelease as exc:
            report.problems.append(str(exc))
            return None
        if release.content_hash() != delivery.content_hash:
            report.problems.append(
                f"{entry.path}: changed after it was approved; nothing from it is posted "
                "until it is approved again"
            )
            return None
        return release

    def _options(self, adapter: Adapter) -> ComposeOptions:
        limits = adapter.text_limits()
        if limits is None:
            return self.options
        return replace(self.options, limits={**self.options.limits, adapter.name: limits})

    def _resend_is_safe(self, adapter: Adapter, delivery: Delivery, now: datetime) -> bool:
        if not adapter.idempotent:
            return False
        window = adapter.idempotency_window
        sent_at = delivery.sent_at or delivery.updated_at
        return window is None or now - sent_at < window

"""The drain: publish every approved, due release once to each of its networks.

For each delivery the state is written before the network call and after it:

    pending ──claim──▶ sending ──▶ posted
       ▲                  │  ├───▶ failed    (permanent error, or out of attempts)
       │                  │  └───▶ unknown   (may have posted; reconciled later)
       └──────────────────┘        (transient error, rate limit: try again later)

A run that dies mid-call leaves ``sending`` behind; the next run turns it into
``pending`` where the network makes a resend safe (an idempotency key or a
client-chosen record key) and into ``unknown`` elsewhere, then looks for the
post among the account's own before any new attempt. An idempotent network's
key is trusted only within the window the network remembers it; past that, an
uncertain delivery is treated like any other ``unknown`` one.

``SOCIALBOT_CRASH_AT=<point>[:<n>]`` makes the process kill itself with SIGKILL
the n-th time (default: first) it reaches a named point; the crash tests use
it to die at the instants that matter (see ``CRASH_POINTS``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

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
from socialbot.store import Store, from_text, to_text, utcnow

if TYPE_CHECKING:  # imported when first needed: an idle cron run never composes or sends
    from socialbot.adapters import Adapter
    from socialbot.compose import ComposeOptions

log = logging.getLogger("socialbot.publish")

CRASH_ENV = "SOCIALBOT_CRASH_AT"
CrashPoint = Literal[
    "after-recover",
    "mid-reconcile",
    "mid-schedule",
    "after-claim",
    "after-send-before-record",
    "after-record",
]
CRASH_POINTS: tuple[CrashPoint, ...] = (
    "after-recover",
    "mid-reconcile",
    "mid-schedule",
    "after-claim",
    "after-send-before-record",
    "after-record",
)
_crash_counts: dict[str, int] = {}
_crash_lock = threading.Lock()


def _crash_point(name: CrashPoint) -> None:
    """Test hook: SIGKILL this process here when ``SOCIALBOT_CRASH_AT`` names ``name``."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted or wanted.partition(":")[0] != name:
        return
    nth = wanted.partition(":")[2]
    with _crash_lock:
        _crash_counts[name] = _crash_counts.get(name, 0) + 1
        reached = _crash_counts[name]
    if reached >= (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)


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
    """Another drain holds the lock; ``stale`` when it has held it far too long."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        self.stale = stale
        super().__init__(message)


@contextmanager
def drain_lock(database_path: str, *, stale_after: float | None = None) -> Iterator[None]:
    """One drain at a time per database; the kernel drops the lock if we die.

    The holder writes its pid and start time into the lock file (which is
    never deleted: deleting it would let two runs hold two different locks).
    A run that finds the lock held exits at once; when the holder started more
    than ``stale_after`` seconds ago, ``AlreadyRunning.stale`` is set so cron
    hears about a drain that hangs.
    """
    if database_path == ":memory:":
        yield
        return
    lock_path = database_path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _already_running(fd, lock_path, stale_after) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {to_text(utcnow())}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _already_running(fd: int, lock_path: str, stale_after: float | None) -> AlreadyRunning:
    """Describe the drain holding the lock, from what it wrote into the lock file."""
    pid, _, started_text = os.pread(fd, 200, 0).decode("ascii", "replace").strip().partition(" ")
    try:
        started = from_text(started_text)
    except ValueError:
        started = None
    if started is None or not pid.isdigit():
        return AlreadyRunning(
            f"another drain is running (lock {lock_path} is held); this run did nothing"
        )
    age = (utcnow() - started).total_seconds()
    holder = f"another drain (pid {pid}) has been running since {started:%Y-%m-%d %H:%M:%S} UTC"
    if stale_after is not None and age > stale_after:
        return AlreadyRunning(
            f"{holder}, far longer than its time budget: it may hang; check process {pid} "
            "(killing it is safe: the next run recovers its work)",
            stale=True,
        )
    return AlreadyRunning(f"{holder}; this run did nothing")


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
        if options is None:
            from socialbot.compose import ComposeOptions

            options = ComposeOptions()
        self.options = options
        self.policy = policy or RetryPolicy()
        self.now = now
        self.sleep = sleep
        self.deadline = time.monotonic() + budget_seconds
        # Exponential backoff plus up to one initial wait of random jitter, so runs
        # that failed together do not retry in lockstep.
        self._backoff = wait_exponential(
            multiplier=self.policy.initial_wait, max=self.policy.max_wait
        ) + wait_random(0, self.policy.initial_wait)
        self._broken: dict[str, str] = {}
        """Networks whose adapter could not be built in this run, and why."""

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
            adapter = self._adapter(delivery.network)
            if adapter is not None and self._key_still_valid(adapter, delivery, now):
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
            log.warning(
                "%s on %s: a previous run died while sending it",
                delivery.release_id,
                delivery.network,
            )
        _crash_point("after-recover")
        for delivery in self.store.deliveries(status=DeliveryStatus.UNKNOWN):
            self.reconcile(delivery, report)

    def reconcile(self, delivery: Delivery, report: DrainReport) -> None:
        """Look for an ambiguous delivery's post on the network before resending.

        Found: it is posted. Certainly absent: it goes back to pending (or is
        dead-lettered when out of attempts). Anything else leaves it unknown.
        """
        network = delivery.network
        adapter = self._adapter(network)
        now = self.now()
        sent_at = self._uncertain_since(delivery)
        if adapter is None or not adapter.can_find or delivery.text is None:
            return
        if now - sent_at < self.policy.reconcile_after or self._held(network, now):
            return
        if time.monotonic() >= self.deadline:
            return
        try:
            receipt = adapter.find(delivery.text, sent_at)
        except RateLimited as exc:
            self.store.set_hold(network, exc.retry_at, str(exc))
            log.warning(
                "%s on %s: could not look for the post: %s", delivery.release_id, network, exc
            )
            return
        except DeliveryError as exc:
            log.warning(
                "%s on %s: could not look for the post (%s)", delivery.release_id, network, exc
            )
            return
        except Exception:  # a bug in the adapter: the delivery stays unknown, others go on
            log.warning(
                "%s on %s: looking for the post failed unexpectedly",
                delivery.release_id,
                network,
                exc_info=True,
            )
            return
        _crash_point("mid-reconcile")
        if receipt is not None:
            self.store.finish(delivery.id, DeliveryStatus.POSTED, now, receipt=receipt)
            log.info("%s on %s: found as posted at %s", delivery.release_id, network, receipt.url)
            report.outcomes.append(
                Outcome(delivery.release_id, network, DeliveryStatus.POSTED, delivery.text, receipt)
            )
        elif delivery.attempts >= self.policy.max_attempts:
            error = (
                f"gave up after {delivery.attempts} attempts: the last one failed without an "
                "answer and the post is not on the account"
            )
            self.store.finish(delivery.id, DeliveryStatus.FAILED, now, error=error, settled=True)
            report.outcomes.append(
                Outcome(delivery.release_id, network, DeliveryStatus.FAILED, error=error)
            )
        else:
            self.store.finish(
                delivery.id,
                DeliveryStatus.PENDING,
                now,
                error="not found among the account's posts after an uncertain attempt; resending",
                settled=True,
            )
            log.info("%s on %s: not found on the network; resending", delivery.release_id, network)

    def schedule(self, report: DrainReport) -> list[QueueEntry]:
        """Scan the queue, report bad files, create deliveries for due approved releases."""
        entries = scan_queue(self.queue_dir, self.store)
        in_queue = [entry.release_id for entry in entries if entry.release_id]
        approvals = self.store.latest_approvals(in_queue)
        scheduled = self.store.scheduled(in_queue)
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
                _crash_point("mid-schedule")
        return entries

    def _has_unsent(self, release_id: str) -> bool:
        deliveries = self.store.deliveries(release_id=release_id)
        return not deliveries or any(d.status is DeliveryStatus.PENDING for d in deliveries)

    def report_stuck(self, report: DrainReport) -> None:
        """Deliveries that need a human or a later run: one line each, every run."""
        for network, reason in sorted(self._broken.items()):
            waiting = len(self.store.deliveries(network=network, status=DeliveryStatus.PENDING))
            report.problems.append(
                f"{network} could not be set up ({reason}); {waiting} deliveries to it wait"
            )
        for delivery in self.store.deliveries(status=DeliveryStatus.UNKNOWN):
            adapter = self._adapter(delivery.network)
            resolve = (
                f"`socialbot resolve {delivery.release_id} --network {delivery.network} "
                "--posted URL` or --not-posted"
            )
            if adapter is not None and adapter.can_find:
                advice = (
                    "was sent without a clear answer; the next run looks for it on the account "
                    f"before sending again (to settle it now, check the account and run {resolve})"
                )
            else:
                advice = (
                    f"may or may not have been posted ({delivery.error or 'no answer'}): check "
                    f"the account, then run {resolve}"
                )
            report.problems.append(f"{delivery.release_id} on {delivery.network} {advice}")
        for delivery in self.store.deliveries(status=DeliveryStatus.FAILED):
            report.problems.append(
                f"{delivery.release_id} on {delivery.network} failed "
                f"({delivery.error or 'no reason recorded'}); fix the cause, then run "
                f"`socialbot retry {delivery.release_id} --network {delivery.network}`"
            )

    # -- one network ---------------------------------------------------------------------

    def drain_network(self, network: str, entries: Mapping[str, QueueEntry]) -> DrainReport:
        """Send a network's due deliveries in order, stopping at a rate limit."""
        report = DrainReport()
        now = self.now()
        due = self.store.due(network, now)
        waiting = len(self.store.deliveries(network=network, status=DeliveryStatus.PENDING))
        adapter = self._adapter(network)
        if adapter is None:
            if network not in self.active:
                report.problems.append(
                    f"{waiting} deliveries to {network} wait, but {network} is not configured"
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
        if (
            adapter.idempotent
            and self.store.uncertain(delivery.id, unsettled_only=True)
            and not self._key_still_valid(adapter, delivery, self.now())
        ):
            # The network has forgotten the key of an attempt that may have posted:
            # resending could post twice, so it is looked for like any other.
            error = (
                f"an earlier attempt may have posted, and {adapter.name} no longer remembers "
                "its idempotency key"
            )
            self.store.finish(delivery.id, DeliveryStatus.UNKNOWN, self.now(), error=error)
            report.outcomes.append(
                Outcome(release.id, adapter.name, DeliveryStatus.UNKNOWN, error=error)
            )
            return False
        try:
            options = self._options(adapter)
        except DeliveryError as exc:
            # Nothing was sent: the delivery stays pending, the network waits for a later run.
            if isinstance(exc, RateLimited):
                self.store.set_hold(adapter.name, exc.retry_at, str(exc))
            report.problems.append(
                f"{adapter.name}: could not read the account's text limits ({exc}); "
                "its deliveries wait for the next run"
            )
            return True
        try:
            from socialbot.compose import compose

            post = compose(release, adapter.name, options)
        except ComposeError as exc:
            self.store.finish(delivery.id, DeliveryStatus.FAILED, self.now(), error=str(exc))
            report.outcomes.append(
                Outcome(release.id, adapter.name, DeliveryStatus.FAILED, error=str(exc))
            )
            return False
        claimed = self.store.claim(delivery.id, post.text, self.now())
        if claimed is None:
            return False
        _crash_point("after-claim")
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
            receipt = self._send(adapter, delivery, post, note_ambiguity)
        except DuplicateError as exc:
            if ambiguous_before or self.store.uncertain(delivery.id):
                # The earlier, uncertain attempt went through.
                _crash_point("after-send-before-record")
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
            _crash_point("after-send-before-record")
            if adapter.idempotent:
                self._retry_later(delivery, post, report, str(exc), uncertain=True)
            else:
                self._record(
                    delivery, post, report, DeliveryStatus.UNKNOWN, error=str(exc), uncertain=True
                )
            return False
        except TransientError as exc:
            self._retry_later(delivery, post, report, str(exc))
            return False
        except PermanentError as exc:
            self._record(delivery, post, report, DeliveryStatus.FAILED, error=str(exc))
            return False
        except Exception as exc:
            # A bug in an adapter or its library: the request may have gone out.
            log.exception("%s on %s: unexpected error while sending", release_id, network)
            message = f"unexpected {type(exc).__name__} while sending; it may have been posted"
            if adapter.idempotent:
                self._retry_later(delivery, post, report, message, uncertain=True)
            else:
                self._record(
                    delivery, post, report, DeliveryStatus.UNKNOWN, error=message, uncertain=True
                )
            return False
        _crash_point("after-send-before-record")
        self._record(delivery, post, report, DeliveryStatus.POSTED, receipt=receipt)
        _crash_point("after-record")
        log.info("%s on %s: posted at %s", release_id, network, receipt.url)
        return False

    def _send(
        self,
        adapter: Adapter,
        delivery: Delivery,
        post: Post,
        on_error: Callable[[BaseException], None],
    ) -> Receipt:
        """One publish call, retried within the run where a retry cannot duplicate.

        Transient errors (nothing was created) are retried with exponential
        backoff and jitter; a rate limit is waited out when the network's wait
        is short enough; an ambiguous failure only with an idempotency key.
        Every retry fits in the run's time budget.
        """
        policy = self.policy
        backoff = self._backoff

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
                "%s on %s: retrying in %.1fs (try %d of %d) after %s: %s",
                delivery.release_id,
                adapter.name,
                delay,
                state.attempt_number + 1,
                policy.tries_per_run,
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
        receipt: Receipt = retrying(adapter.publish, post, key=delivery.idempotency_key)
        return receipt

    def _retry_later(
        self,
        delivery: Delivery,
        post: Post,
        report: DrainReport,
        error: str,
        *,
        uncertain: bool = False,
    ) -> None:
        """Back to pending for a later run, or dead-lettered when out of attempts."""
        if delivery.attempts >= self.policy.max_attempts:
            self._record(
                delivery,
                post,
                report,
                DeliveryStatus.FAILED,
                error=f"gave up after {delivery.attempts} attempts: {error}",
                uncertain=uncertain,
            )
            return
        later = self.now() + self.policy.backoff_between_runs * (2 ** (delivery.attempts - 1))
        self._record(
            delivery,
            post,
            report,
            DeliveryStatus.PENDING,
            error=f"{error} (attempt {delivery.attempts} of {self.policy.max_attempts}; "
            f"next try after {later:%Y-%m-%d %H:%M:%S} UTC)",
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
        since = self.store.first_uncertain_at(delivery.id) or delivery.sent_at
        try:
            return adapter.find(text, since or delivery.created_at)
        except Exception:  # only the URL is missing: the network said it holds the post
            log.debug("%s: could not look up the duplicate post", adapter.name, exc_info=True)
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

    def _adapter(self, network: str) -> Adapter | None:
        """The network's adapter; None when it is not active or cannot be built."""
        if network in self._broken:
            return None
        try:
            return self.adapters.get(network)
        except Exception as exc:  # one broken network must not stop the others
            log.debug("%s: the adapter could not be built", network, exc_info=True)
            self._broken[network] = str(exc) or type(exc).__name__
            return None

    def _held(self, network: str, now: datetime) -> bool:
        hold = self.store.hold(network)
        return hold is not None and hold[0] > now

    def _uncertain_since(self, delivery: Delivery) -> datetime:
        """When the earliest attempt that may have posted, and is not yet settled, began."""
        times = [
            t
            for t in (
                self.store.first_uncertain_at(delivery.id, unsettled_only=True),
                delivery.sent_at,
            )
            if t is not None
        ]
        return min(times) if times else delivery.updated_at

    def _key_still_valid(self, adapter: Adapter, delivery: Delivery, now: datetime) -> bool:
        """True when resending with the delivery's key cannot create a second post."""
        if not adapter.idempotent:
            return False
        window = adapter.idempotency_window
        return window is None or now - self._uncertain_since(delivery) < window

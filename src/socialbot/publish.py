"""The drain: send every approved, due post once to its network.

A drain sends the posts approved (the snapshot stored with the approval),
never a release file: what the team approved is what goes out. Each run
recovers what a dead run left, reconciles uncertain deliveries, reads the
queue (an edited file becomes a revision that holds the approved one back),
applies approvals, withdrawals and retractions (``socialbot.approvals``), then
sends what is due, network by network, skipping paused networks.

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

import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from socialbot.errors import (
    AmbiguousError,
    AuthError,
    ComposeError,
    DeliveryError,
    DuplicateError,
    PermanentError,
    RateLimited,
    TransientError,
    printable,
)
from socialbot.models import NETWORKS, Approval, Delivery, DeliveryStatus, Post, Receipt, TextLimits
from socialbot.networks import PROFILES
from socialbot.problems import Kind, Problem, delivery_problems
from socialbot.releases import scan_queue
from socialbot.store import Store, utcnow
from socialbot.store.base import ALL_NETWORKS

if TYPE_CHECKING:  # imported when first needed: an idle cron run never composes or sends
    from tenacity import RetryCallState
    from tenacity.wait import wait_base

    from socialbot.adapters import Adapter, Media
    from socialbot.compose import ComposeOptions

log = logging.getLogger("socialbot.publish")

CRASH_ENV = "SOCIALBOT_CRASH_AT"
CrashPoint = Literal[
    "after-recover",
    "mid-reconcile",
    "mid-schedule",
    "after-claim",
    "after-upload",
    "after-send-before-record",
    "after-record",
    "before-delete",
    "mid-approve",
]
CRASH_POINTS: tuple[CrashPoint, ...] = (
    "after-recover",
    "mid-reconcile",
    "mid-schedule",
    "after-claim",
    "after-upload",
    "after-send-before-record",
    "after-record",
    "before-delete",
    "mid-approve",
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


def _after_upload() -> None:
    _crash_point("after-upload")


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
    revision: int | None = None


@dataclass
class DrainReport:
    """Everything a drain did and everything that needs a person."""

    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    interrupted: int | None = None
    """The signal that stopped the run between deliveries, if one did."""

    @property
    def posted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is DeliveryStatus.POSTED]

    @property
    def exit_status(self) -> int:
        """0 when all went well; 1 when anything needs attention; 128+N after signal N."""
        if self.interrupted is not None:
            return 128 + self.interrupted
        return 1 if self.problems else 0


@dataclass(frozen=True)
class Decision:
    """What one publish attempt means for its delivery (see ``decide``)."""

    status: DeliveryStatus
    error: str | None = None
    uncertain: bool = False
    count_attempt: bool = True
    next_attempt_at: datetime | None = None
    hold_until: datetime | None = None
    stop_network: bool = False
    look_up: bool = False
    """Posted, but the post's address must be looked up (the network said it holds it)."""


def decide(
    outcome: BaseException,
    *,
    idempotent: bool,
    may_have_posted: bool,
    attempts: int,
    policy: RetryPolicy,
    now: datetime,
) -> Decision:
    """The delivery's next state after a failed publish call (pure).

    ``may_have_posted`` is True when an earlier attempt of this revision, in
    this run or before, may have reached the network: the delivery then stays
    uncertain until a reconciliation proves the answer, whatever comes next.
    """

    def later(error: str, *, uncertain: bool) -> Decision:
        if attempts >= policy.max_attempts:
            return Decision(
                DeliveryStatus.FAILED,
                f"gave up after {attempts} attempts: {error}",
                uncertain=uncertain,
            )
        when = now + policy.backoff_between_runs * (2 ** max(attempts - 1, 0))
        return Decision(
            DeliveryStatus.PENDING,
            f"{error} (attempt {attempts} of {policy.max_attempts}; "
            f"next try after {when:%Y-%m-%d %H:%M:%S} UTC)",
            uncertain=uncertain,
            next_attempt_at=when,
        )

    if isinstance(outcome, DuplicateError):
        if idempotent or may_have_posted:
            # The key is this delivery's own, or an earlier attempt went through.
            return Decision(
                DeliveryStatus.POSTED,
                f"the network already holds this post ({outcome})",
                look_up=True,
            )
        return Decision(
            DeliveryStatus.FAILED, f"refused as a duplicate of an earlier post ({outcome})"
        )
    if isinstance(outcome, RateLimited):
        return Decision(
            DeliveryStatus.PENDING,
            str(outcome),
            uncertain=may_have_posted,
            count_attempt=False,
            next_attempt_at=outcome.retry_at,
            hold_until=outcome.retry_at,
            stop_network=True,
        )
    if isinstance(outcome, AuthError):
        return Decision(
            DeliveryStatus.PENDING,
            str(outcome),
            uncertain=may_have_posted,
            count_attempt=False,
            stop_network=True,
        )
    if isinstance(outcome, TransientError):
        return later(str(outcome), uncertain=may_have_posted)
    if isinstance(outcome, PermanentError):
        error = str(outcome)
        if TOO_LONG.search(error):
            error += (
                "; the network's limit may have changed since approval: edit the release "
                "and approve it again"
            )
        if may_have_posted and not idempotent:
            return Decision(DeliveryStatus.UNKNOWN, error, uncertain=True)
        return Decision(DeliveryStatus.FAILED, error, uncertain=may_have_posted)
    # Ambiguous, or a bug in an adapter or its library: the request may have gone out.
    error = (
        str(outcome)
        if isinstance(outcome, AmbiguousError)
        else f"unexpected {type(outcome).__name__} while sending; it may have been posted"
    )
    if idempotent:
        return later(error, uncertain=True)
    return Decision(DeliveryStatus.UNKNOWN, error, uncertain=True)


TOO_LONG = re.compile(r"too long|length|characters|graphemes|exceed", re.IGNORECASE)


class Publisher:
    """Drains the approved posts into the networks through their adapters."""

    def __init__(
        self,
        *,
        store: Store,
        queue_dir: Path | None,
        adapters: Mapping[str, Adapter],
        active: list[str],
        options: ComposeOptions | Callable[[], ComposeOptions] | None = None,
        policy: RetryPolicy | None = None,
        approvals_required: int = 1,
        budget_seconds: float = 240.0,
        now: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.queue_dir = queue_dir
        self.adapters = adapters
        self.active = active
        self._options = options
        """What shapes posts, or how to read it: only adopting a 0.1.0 approval composes."""
        self.policy = policy or RetryPolicy()
        self.approvals_required = approvals_required
        self.now = now
        self.sleep = sleep
        self.stop = stop or threading.Event()
        self.deadline = time.monotonic() + budget_seconds
        self._wait: wait_base | None = None
        self._broken: dict[str, str] = {}
        """Networks whose adapter could not be built in this run, and why."""
        self._latest: dict[str, int] = {}
        """Each release's latest revision number, as read at the start of the run."""
        self._unusable: dict[str, str] = {}
        """Releases a file of the queue claims but cannot give (invalid, or an id two files
        claim), with that file: it may be their correction, so nothing of them is sent."""
        self._credentials_cleared: set[str] = set()
        """Networks whose recorded credential refusal this run has seen cleared."""

    @property
    def _backoff(self) -> wait_base:
        """Exponential backoff plus up to one initial wait of random jitter, so runs
        that failed together do not retry in lockstep (tenacity loads on first send)."""
        if self._wait is None:
            from tenacity import wait_exponential, wait_random

            self._wait = wait_exponential(
                multiplier=self.policy.initial_wait, max=self.policy.max_wait
            ) + wait_random(0, self.policy.initial_wait)
        return self._wait

    @property
    def options(self) -> ComposeOptions | None:
        if callable(self._options):
            self._options = self._options()
        return self._options

    # -- the run -------------------------------------------------------------------------

    def drain(self) -> DrainReport:
        report = DrainReport()
        self.recover(report)
        self.scan(report)
        self.sync(report)
        pending = self.store.pending_counts()
        networks = sorted(pending)
        with ThreadPoolExecutor(max_workers=max(len(networks), 1)) as pool:
            # Each network starts as soon as its adapter is built, the longest run first.
            order = sorted(networks, key=lambda n: _start_order(n, pending[n]))
            started = {
                network: pool.submit(self.drain_network, network) for network in self.prepare(order)
            }
            for network in networks:
                partial = started[network].result()
                report.outcomes.extend(partial.outcomes)
                report.problems.extend(partial.problems)
        if self.stop.is_set():
            report.interrupted = getattr(self.stop, "signal", None) or signal.SIGINT
            report.problems.append(
                Problem(Kind.INTERRUPTED, "stopped by a signal between deliveries")
            )
        self.report_standing(report)
        return report

    def prepare(self, networks: list[str]) -> Iterator[str]:
        """Build the networks' adapters on this thread, in order, yielding each network once
        its adapter is ready, so it starts sending while the next one is built.

        Building one imports its client library (tweepy and requests, httpx): CPU work
        that threads would only interleave under the GIL, so every network would start
        as late as the slowest to import. A paused network's adapter waits (an idle or
        paused run imports nothing).
        """
        paused = self.paused_networks()
        if any(network not in paused for network in networks):
            self._backoff  # noqa: B018 - loads tenacity once, not in the first thread to send
        for network in networks:
            if network not in paused:
                self._adapter(network)
            yield network

    def stopping(self) -> bool:
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def recover(self, report: DrainReport) -> None:
        """Settle what a dead run left in ``sending``, then reconcile ``unknown``."""
        now = self.now()
        for delivery in self.store.deliveries(status=DeliveryStatus.SENDING):
            adapter = self._adapter(delivery.network)
            if adapter is not None and self._key_still_valid(adapter, delivery, now):
                status, error = (
                    DeliveryStatus.PENDING,
                    "interrupted while sending; resending with the same key",
                )
            else:
                status, error = (
                    DeliveryStatus.UNKNOWN,
                    "interrupted while sending; it may have been posted",
                )
            self.store.finish(
                delivery.id, status, now, expect=DeliveryStatus.SENDING, error=error, uncertain=True
            )
            log.info(
                "%s on %s: a previous run died while sending it",
                delivery.release_id,
                delivery.network,
            )
        _crash_point("after-recover")
        paused = self.paused_networks()
        for delivery in self.store.deliveries(status=DeliveryStatus.UNKNOWN):
            if delivery.network not in paused and not self.stopping():
                self.reconcile(delivery, report)

    def reconcile(self, delivery: Delivery, report: DrainReport) -> None:
        """Look for an ambiguous delivery's post on the network before resending.

        Found: it is posted. Certainly absent (a well-formed answer without it):
        it goes back to pending, or is dead-lettered when out of attempts.
        Anything else leaves it unknown.
        """
        network = delivery.network
        adapter = self._adapter(network)
        now = self.now()
        sent_at = self._uncertain_since(delivery)
        if adapter is None or not adapter.can_find or delivery.text is None:
            return
        if now - sent_at < self.policy.reconcile_after or self._held(network, now):
            return
        self._arm(adapter)
        try:
            receipt = adapter.find(delivery.text, sent_at)
        except RateLimited as exc:
            self.store.set_hold(network, exc.retry_at, str(exc))
            log.info("%s on %s: could not look for the post: %s", delivery.release_id, network, exc)
            return
        except DeliveryError as exc:
            log.info(
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
        expect = DeliveryStatus.UNKNOWN
        if receipt is not None:
            if self.store.finish(
                delivery.id, DeliveryStatus.POSTED, now, expect=expect, receipt=receipt
            ):
                log.info(
                    "%s on %s: found as posted at %s", delivery.release_id, network, receipt.url
                )
                report.outcomes.append(
                    Outcome(
                        delivery.release_id,
                        network,
                        DeliveryStatus.POSTED,
                        delivery.text,
                        receipt,
                        revision=delivery.revision,
                    )
                )
        elif delivery.attempts >= self.policy.max_attempts:
            error = (
                f"gave up after {delivery.attempts} attempts: the last one failed without an "
                "answer and the post is not on the account"
            )
            if self.store.finish(
                delivery.id, DeliveryStatus.FAILED, now, expect=expect, error=error, settled=True
            ):
                report.outcomes.append(
                    Outcome(delivery.release_id, network, DeliveryStatus.FAILED, error=error)
                )
        else:
            self.store.finish(
                delivery.id,
                DeliveryStatus.PENDING,
                now,
                expect=expect,
                error="not found among the account's posts after an uncertain attempt; resending",
                settled=True,
            )
            log.info("%s on %s: not found on the network; resending", delivery.release_id, network)

    def scan(self, report: DrainReport) -> None:
        """Read the queue: changed files become revisions (which hold back older approvals)."""
        if self.queue_dir is not None:
            for entry in scan_queue(self.queue_dir, self.store, self.now()):
                if entry.error:
                    report.problems.append(
                        Problem(
                            Kind.INVALID_FILE, entry.error, release=entry.release_id, standing=True
                        )
                    )
                    if entry.claimed_id is not None:
                        self._unusable[entry.claimed_id] = printable(entry.path)

    def sync(self, report: DrainReport) -> None:
        """Apply approvals and withdrawals to the open deliveries; carry out retractions."""
        from socialbot.approvals import ReleaseState, sync

        now = self.now()
        self.adopt_legacy(report)
        open_deliveries = [d for s in OPEN for d in self.store.deliveries(status=s)]
        # The newest revision of each open release (the queue was scanned): a delivery of an
        # older approved revision is not sent.
        self._latest = {
            release_id: revision.number
            for release_id, revision in self.store.latest_revisions(
                {d.release_id for d in open_deliveries}
            ).items()
        }
        for release_id in sorted(self.releases_to_sync(open_deliveries)):
            state = ReleaseState.load(self.store, release_id, self.approvals_required)
            result = sync(self.store, state, now)
            _crash_point("mid-schedule")
            for delivery in result.to_delete:
                if delivery.network in self.paused_networks():
                    continue
                self.delete(delivery, report)

    def releases_to_sync(self, open_deliveries: Sequence[Delivery]) -> set[str]:
        """The releases whose deliveries may not follow their approvals and withdrawals.

        Approving, withdrawing and retracting sync at once; a drain finishes what one
        of them left (killed in between, or waiting for a reconciliation), without
        reading every open release's whole history each run.
        """
        from socialbot.approvals import still_up

        latest = self.store.latest_approvals({d.release_id for d in open_deliveries})
        wanted = {
            d.release_id
            for d in open_deliveries
            if (approval := latest.get(d.release_id)) is not None and approval.id != d.approval_id
        }
        wanted |= {
            key.removeprefix(SYNC_KEY)
            for key, value in self.store.entries(SYNC_KEY).items()
            if value == "pending"
        }
        open_releases = {d.release_id for d in open_deliveries}
        withdrawals = self.store.withdrawals()
        wanted |= {w.release_id for w in withdrawals if w.release_id in open_releases}
        if any(w.kind == "retract" for w in withdrawals):
            up = still_up(self.store.posted_under_retraction(), withdrawals)
            wanted |= {delivery.release_id for delivery, _ in up}
        return wanted

    def delete(self, delivery: Delivery, report: DrainReport) -> bool:
        """Delete a posted delivery from its network (a retraction); True when done."""
        adapter = self._adapter(delivery.network)
        if adapter is None:
            error: str | None = "the network is not configured in this run"
        else:
            self._arm(adapter)
            error = delete_post(self.store, adapter, delivery, self.now())
        if error is not None:
            report.problems.append(
                Problem(
                    Kind.RETRACT,
                    f"to be retracted, but not deleted yet: {error}",
                    delivery.release_id,
                    delivery.network,
                    standing=True,
                )
            )
            return False
        report.outcomes.append(
            Outcome(
                delivery.release_id,
                delivery.network,
                DeliveryStatus.RETRACTED,
                delivery.text,
                revision=delivery.revision,
            )
        )
        return True

    def adopt_legacy(self, report: DrainReport) -> None:
        """Give approvals made by socialbot 0.1.0 their snapshot, once, after an upgrade.

        0.1.0 composed at posting time from the release file; the snapshot is
        composed now from the revision with the approved content, as 0.1.0 would
        have composed it. An approval whose content is no longer in the store
        waits for a new approval.
        """
        from socialbot.store.sqlite import LEGACY_KEY

        if self.store.get_value(LEGACY_KEY) != "pending":
            return
        legacy = [a for a in self.store.latest_approvals().values() if a.revision is None]
        from socialbot.compose import compose

        for approval in legacy:
            revisions = self.store.revisions(approval.release_id)
            match = next((r for r in revisions if r.content_hash == approval.content_hash), None)
            if match is None:
                if any(
                    d.status is DeliveryStatus.PENDING
                    for d in self.store.deliveries(release_id=approval.release_id)
                ):
                    report.problems.append(
                        Problem(
                            Kind.LEGACY,
                            f"{approval.release_id} was approved by socialbot 0.1.0, but its "
                            "approved content is no longer in the queue; approve it again",
                            approval.release_id,
                            standing=True,
                        )
                    )
                continue
            try:
                posts = tuple(
                    compose(match.release, network, self.options) for network in approval.networks
                )
            except ComposeError as exc:
                report.problems.append(
                    Problem(Kind.LEGACY, str(exc), approval.release_id, exc.network, standing=True)
                )
                continue
            self.store.record_approval(
                Approval(
                    release_id=approval.release_id,
                    content_hash=approval.content_hash,
                    approved_by=approval.approved_by,
                    approved_at=approval.approved_at,
                    source=LEGACY_SOURCE + approval.source,
                    networks=approval.networks,
                    revision=match.number,
                    posts=posts,
                    comment="approved under socialbot 0.1.0",
                )
            )
        self.store.set_value(LEGACY_KEY, "done")

    def report_standing(self, report: DrainReport) -> None:
        """What waits for a person or a setting, as standing problems."""
        pending = self.store.pending_counts() if self._broken else {}
        for network, reason in sorted(self._broken.items()):
            waiting = pending.get(network, 0)
            report.problems.append(
                Problem(
                    Kind.NOT_CONFIGURED,
                    f"{network} could not be set up ({reason}); {waiting} deliveries to it wait",
                    network=network,
                    standing=True,
                )
            )

        def searchable(network: str) -> bool:
            adapter = self._adapter(network)
            return adapter is not None and adapter.can_find

        # A delivery that failed or went unknown in this run is news, even when the same
        # sentence was told before (an operator's retry that failed again the same way).
        this_run = {
            (o.release_id, o.network)
            for o in report.outcomes
            if o.status in (DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)
        }
        report.problems.extend(
            replace(problem, fresh=True)
            if (problem.release, problem.network) in this_run
            else problem
            for problem in delivery_problems(
                [
                    *self.store.deliveries(status=DeliveryStatus.UNKNOWN),
                    *self.store.deliveries(status=DeliveryStatus.FAILED),
                ],
                searchable,
            )
        )

    # -- one network ---------------------------------------------------------------------

    def drain_network(self, network: str) -> DrainReport:
        """Send a network's due deliveries in order, stopping at a rate limit."""
        report = DrainReport()
        if network in self.paused_networks():
            return report
        now = self.now()
        hold = self.store.hold(network)
        if hold is not None and hold[0] > now:
            waiting = self.store.pending_counts().get(network, 0)
            if waiting:
                report.problems.append(
                    Problem(
                        Kind.RATE_LIMITED,
                        f"{network} asked us to wait until {hold[0]:%Y-%m-%d %H:%M:%S} UTC; "
                        f"{waiting} deliveries wait",
                        network=network,
                        standing=True,
                    )
                )
            return report
        due = self.store.due(network, now)
        if not due:
            return report
        adapter = self._adapter(network)
        if adapter is None:
            if network not in self.active and network not in self._broken:
                report.problems.append(
                    Problem(
                        Kind.NOT_CONFIGURED,
                        f"{len(due)} deliveries to {network} wait, but {network} is not configured",
                        network=network,
                        standing=True,
                    )
                )
            return report
        self.remember_limits(adapter)
        for index, delivery in enumerate(due):
            if self.stop.is_set():
                break
            if time.monotonic() >= self.deadline:
                report.problems.append(
                    Problem(
                        Kind.BUDGET,
                        f"the run's time budget ran out; {len(due) - index} deliveries to "
                        f"{network} wait for the next run",
                        network=network,
                    )
                )
                break
            if self.deliver(adapter, delivery, report):
                break
        return report

    def remember_limits(self, adapter: Adapter) -> None:
        """Keep the text limits the network reports, for preview and approval to use."""
        try:
            self._arm(adapter)
            limits = adapter.text_limits()
        except DeliveryError as exc:
            log.info("%s: could not read the account's text limits (%s)", adapter.name, exc)
            return
        if limits is not None:
            save_limits(self.store, adapter.name, limits)

    def deliver(self, adapter: Adapter, delivery: Delivery, report: DrainReport) -> bool:
        """Publish one delivery. Returns True when the network should not be called again."""
        unusable = self._unusable.get(delivery.release_id)
        if unusable is not None:
            report.problems.append(
                Problem(
                    Kind.CHANGED_AFTER_APPROVAL,
                    f"{unusable} claims this release but cannot be used; nothing is posted until "
                    "it is fixed or removed, or the release is withdrawn",
                    delivery.release_id,
                    delivery.network,
                    standing=True,
                )
            )
            return False
        latest = self._latest.get(delivery.release_id)
        if delivery.revision is not None and latest is not None and latest > delivery.revision:
            if self.store.uncertain(delivery.id, unsettled_only=True):
                # Resending the old revision could publish text that was corrected since;
                # find out first whether the earlier attempt posted it.
                error = (
                    f"an attempt of revision {delivery.revision} may have posted it, and "
                    f"revision {latest} came since; it is looked for before anything is sent"
                )
                if self.store.transition(delivery, DeliveryStatus.UNKNOWN, self.now(), error=error):
                    log.info("%s on %s: %s", delivery.release_id, adapter.name, error)
                return False
            report.problems.append(
                Problem(
                    Kind.CHANGED_AFTER_APPROVAL,
                    f"revision {latest} was made after revision {delivery.revision} was approved; "
                    "nothing is posted until the new revision is approved or the release "
                    "is withdrawn",
                    delivery.release_id,
                    delivery.network,
                    standing=True,
                )
            )
            return False
        if delivery.post is None:
            report.problems.append(
                Problem(
                    Kind.LEGACY,
                    "approved by socialbot 0.1.0 and not yet adopted; approve it again",
                    delivery.release_id,
                    delivery.network,
                    standing=True,
                )
            )
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
            if self.store.transition(delivery, DeliveryStatus.UNKNOWN, self.now(), error=error):
                report.outcomes.append(
                    Outcome(delivery.release_id, adapter.name, DeliveryStatus.UNKNOWN, error=error)
                )
            return False
        # The store claims nothing on a paused network nor for a withdrawn release: a pause
        # or a withdrawal recorded at any moment before the claim is seen.
        claimed = self.store.claim(delivery.id, delivery.post.text, self.now())
        if claimed is None:
            if adapter.name in self.paused_networks():
                return True  # and nothing more on this network
            if self._withdrawn(delivery):
                self._settle_withdrawn(delivery)
            return False
        if claimed.post is None or claimed.approval_id != delivery.approval_id:
            # Rebased between reading and claiming: the next run sends the new approval.
            self.store.finish(
                claimed.id,
                DeliveryStatus.PENDING,
                self.now(),
                expect=DeliveryStatus.SENDING,
                count_attempt=False,
            )
            return False
        _crash_point("after-claim")
        log.info(
            "%s on %s: sending (attempt %d)", claimed.release_id, adapter.name, claimed.attempts
        )
        return self._send_and_record(adapter, claimed, claimed.post, report)

    def _send_and_record(
        self, adapter: Adapter, delivery: Delivery, post: Post, report: DrainReport
    ) -> bool:
        ambiguous: list[BaseException] = []
        try:
            receipt = self._send(adapter, delivery, post, ambiguous)
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            if not isinstance(exc, DeliveryError):
                log.warning(
                    "%s on %s: unexpected error while sending",
                    delivery.release_id,
                    adapter.name,
                    exc_info=True,
                )
            _crash_point("after-send-before-record")
            # This attempt, or an earlier one, may have posted. The earlier ones are read only
            # now that this one failed: its own attempt is still open, so it is not counted.
            may_have_posted = bool(ambiguous) or self.store.uncertain(delivery.id)
            decision = decide(
                exc,
                idempotent=adapter.idempotent,
                may_have_posted=may_have_posted,
                attempts=delivery.attempts,
                policy=self.policy,
                now=self.now(),
            )
            found = self._find_quietly(adapter, post.text, delivery) if decision.look_up else None
            self._record(delivery, post, report, decision, receipt=found)
            if decision.hold_until is not None:
                self.store.set_hold(adapter.name, decision.hold_until, str(exc))
            if decision.status is DeliveryStatus.PENDING and not decision.stop_network:
                report.problems.append(
                    Problem(
                        Kind.NETWORK_ERROR,
                        f"not posted in this run: {decision.error}",
                        delivery.release_id,
                        adapter.name,
                    )
                )
            if decision.stop_network:
                kind = Kind.RATE_LIMITED if isinstance(exc, RateLimited) else Kind.CREDENTIALS
                detail = (
                    f"{adapter.name} asked us to wait until "
                    f"{decision.hold_until:%Y-%m-%d %H:%M:%S} UTC; its deliveries wait for a "
                    "later run"
                    if decision.hold_until is not None
                    else f"{adapter.name}: {exc}"
                )
                # Refused credentials stand until someone changes them: cron hears of them
                # once, then once a day, not every run.
                standing = kind is Kind.CREDENTIALS
                report.problems.append(
                    Problem(kind, detail, network=adapter.name, standing=standing)
                )
                if isinstance(exc, AuthError):
                    self.store.set_value(f"credentials:{adapter.name}", str(exc))
            return decision.stop_network
        _crash_point("after-send-before-record")
        self._record(delivery, post, report, Decision(DeliveryStatus.POSTED), receipt=receipt)
        _crash_point("after-record")
        if adapter.name not in self._credentials_cleared:
            # A refusal recorded by an earlier run is over: once per network and run.
            if self.store.get_value(f"credentials:{adapter.name}"):
                self.store.set_value(f"credentials:{adapter.name}", "")
            self._credentials_cleared.add(adapter.name)
        log.info("%s on %s: posted at %s", delivery.release_id, adapter.name, receipt.url)
        return False

    def _send(
        self,
        adapter: Adapter,
        delivery: Delivery,
        post: Post,
        ambiguous: list[BaseException],
    ) -> Receipt:
        """One publish call, retried within the run where a retry cannot duplicate.

        Transient errors (nothing was created) are retried with exponential
        backoff and jitter; a rate limit is waited out when the network's wait
        is short enough; an ambiguous failure only with an idempotency key.
        Every retry fits in the run's time budget; a stop request ends them.
        """
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_before_delay

        policy = self.policy
        backoff = self._backoff

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, AmbiguousError) or not isinstance(exc, DeliveryError):
                ambiguous.append(exc)
            remaining = self.deadline - time.monotonic()
            if self.stop.is_set():
                return False
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
            log.info(
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
        self._arm(adapter)
        media = self._media(adapter, post)
        # Only a post with images passes ``media``, so adapters written before images work.
        extra = {"media": media} if media else {}
        receipt: Receipt = retrying(adapter.publish, post, key=delivery.idempotency_key, **extra)
        return receipt

    def _media(self, adapter: Adapter, post: Post) -> tuple[Media, ...]:
        """The approved bytes of the post's images, from the store (by their digest)."""
        from socialbot.adapters.base import Media

        media = []
        for image in post.images:
            stored = self.store.get_media(image.digest)
            if stored is None:
                raise PermanentError(
                    f"an approved image ({image.alt[:40]}) is no longer in the store; "
                    "approve the release again",
                    network=adapter.name,
                )
            media.append(Media(image, stored[1]))
        return tuple(media)

    def _record(
        self,
        delivery: Delivery,
        post: Post,
        report: DrainReport,
        decision: Decision,
        *,
        receipt: Receipt | None = None,
    ) -> None:
        done = self.store.finish(
            delivery.id,
            decision.status,
            self.now(),
            expect=DeliveryStatus.SENDING,
            receipt=receipt,
            error=decision.error,
            next_attempt_at=decision.next_attempt_at,
            uncertain=decision.uncertain,
            count_attempt=decision.count_attempt,
            # Not synced to disk on its own: the next claim's durable commit (before the
            # next request) or closing the store syncs it. Lost to a power failure, the
            # delivery is still `sending`, which the next run treats as a call that may
            # have posted: never sent twice blindly. One fsync less per delivery.
            durable=False,
        )
        if not done:
            log.warning(
                "%s on %s: changed by someone else while sending; their change stands",
                delivery.release_id,
                delivery.network,
            )
            return
        if decision.error and decision.status is not DeliveryStatus.POSTED:
            log.info(
                "%s on %s: %s (%s)",
                delivery.release_id,
                delivery.network,
                decision.status,
                decision.error,
            )
        report.outcomes.append(
            Outcome(
                delivery.release_id,
                delivery.network,
                decision.status,
                post.text,
                receipt,
                decision.error,
                delivery.revision,
            )
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

    def _settle_withdrawn(self, delivery: Delivery) -> None:
        """A pending delivery withdrawn since the run began is not sent.

        Resending, even with the same key, could post it: an attempt that may
        have posted is looked for instead.
        """
        uncertain = self.store.uncertain(delivery.id, unsettled_only=True)
        self.store.transition(
            delivery,
            DeliveryStatus.UNKNOWN if uncertain else DeliveryStatus.WITHDRAWN,
            self.now(),
            error=(
                "withdrawn while an attempt may have posted it; it is looked for first"
                if uncertain
                else "withdrawn"
            ),
        )

    def _withdrawn(self, delivery: Delivery) -> bool:
        """True when a person withdrew or retracted this release on this network."""
        return any(w.covers(delivery.network) for w in self.store.withdrawals(delivery.release_id))

    def _arm(self, adapter: Adapter) -> None:
        """Every request of the adapter ends by the run's deadline, slow answers included."""
        adapter.deadline = self.deadline
        adapter.after_upload = _after_upload

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

    def paused_networks(self) -> set[str]:
        """Networks the crisis switch holds (every one when it is on for all)."""
        pauses = self.store.pauses()
        if ALL_NETWORKS in pauses:
            return set(self.active) | set(pauses) | set(NETWORKS)
        return set(pauses)

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


def delete_post(store: Store, adapter: Adapter, delivery: Delivery, now: datetime) -> str | None:
    """Delete one posted delivery through its network; None when done, else why not.

    A post already gone counts as done (the adapter says so), so this is safe to repeat.
    """
    if not getattr(adapter, "can_delete", False):
        return f"socialbot cannot delete posts on {adapter.name}: delete {delivery.url} by hand"
    remote_id = delivery.remote_id or (
        adapter.post_id_from_url(delivery.url) if delivery.url else None
    )
    if not remote_id:
        return f"the post's id on {adapter.name} is not known: delete {delivery.url} by hand"
    _crash_point("before-delete")
    try:
        adapter.delete(remote_id)
    except DeliveryError as exc:
        return f"the delete failed ({exc}); the next drain tries again"
    store.transition(delivery, DeliveryStatus.RETRACTED, now, error="retracted")
    return None


OPEN = (
    DeliveryStatus.PENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.SENDING,
)
"""Delivery states that may still change by themselves or by a decision."""

SYNC_KEY = "sync:"
"""Key-value marks of releases an approval or take-back has not finished applying."""

LEGACY_SOURCE = "0.1.0:"
"""Prefix of the source of an approval adopted from socialbot 0.1.0."""

LIMITS_KEY = "limits:"


def _start_order(network: str, pending: int) -> tuple[int, int]:
    """Where ``network`` starts in a drain: the most requests in a row first (its pending
    deliveries, and a login or a lookup before them), equals in the registry's order."""
    if network not in PROFILES:
        return -pending, len(NETWORKS)
    return -(pending + PROFILES[network].setup_requests), NETWORKS.index(network)


def save_limits(store: Store, network: str, limits: TextLimits) -> None:
    value = json.dumps({"max_characters": limits.max_characters, "url_weight": limits.url_weight})
    if store.get_value(LIMITS_KEY + network) != value:
        store.set_value(LIMITS_KEY + network, value)


def cached_limits(store: Store) -> dict[str, TextLimits]:
    """The text limits networks reported, as last read (preview, approve and drain use them)."""
    limits = {}
    for key, raw in store.entries(LIMITS_KEY).items():
        if raw:
            data = json.loads(raw)
            limits[key.removeprefix(LIMITS_KEY)] = TextLimits(
                int(data["max_characters"]), int(data["url_weight"])
            )
    return limits

"""The approval contract: which revision is approved, by whom, and what its deliveries do.

A release has revisions (each edit is one). An approval is of one revision and
of the exact posts composed for it (the snapshot). A revision is *in force*
once ``required`` different people, none of them its author, approved the
same posts. Then each target network gets a delivery of that post; the drain
sends it and nothing else.

What happens to a delivery when the situation changes is decided here, by
``next_step``, a pure function of the delivery and the release's state:

- a newer revision waiting for approval holds the approved one back;
- a rejected revision is never in force, and what was to send it is withdrawn;
- a newer revision in force replaces the old post where nothing of the old one
  may be on the network (pending or failed with no unsettled uncertain attempt,
  or withdrawn because an earlier revision did not name the network);
- a network dropped by the revision in force, withdrawn or retracted, becomes
  ``withdrawn`` where nothing may be on the network;
- anything that may be on the network (sending, unknown) waits for reconciliation;
  a failed delivery whose last attempt may have posted is looked for first
  (``unknown``) before any of these changes applies to it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cached_property

from socialbot.models import Approval, Delivery, DeliveryStatus, Revision
from socialbot.store import Rejection, Store, Withdrawal, delivery_key


def posts_digest(approval: Approval) -> str:
    """SHA-256 of the exact posts an approval covers (what two approvers must agree on)."""
    canonical = json.dumps(
        [post.to_dict() for post in approval.posts], sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ReleaseState:
    """Everything the approval rules need to know about one release."""

    release_id: str
    revisions: Sequence[Revision]
    approvals: Sequence[Approval]
    withdrawals: Sequence[Withdrawal]
    required: int
    rejections: Sequence[Rejection] = ()

    @classmethod
    def load(cls, store: Store, release_id: str, required: int) -> ReleaseState:
        return cls(
            release_id,
            store.revisions(release_id),
            store.approvals(release_id),
            store.withdrawals(release_id),
            required,
            store.rejections(release_id),
        )

    @property
    def latest(self) -> Revision | None:
        return self.revisions[-1] if self.revisions else None

    def revision(self, number: int | None) -> Revision | None:
        return next((r for r in self.revisions if r.number == number), None)

    def rejection(self, number: int | None) -> Rejection | None:
        """The latest refusal of revision ``number``: its approvals never put it in force."""
        found = [r for r in self.rejections if r.revision == number]
        return found[-1] if found else None

    def approvers(self, approval: Approval) -> list[str]:
        """The different people who approved the same posts of the same revision.

        The revision's author does not count where the author is known.
        """
        author = self.author_of(approval.revision)
        digest = self._digest(approval)
        names: list[str] = []
        for other in self.approvals:
            if other.revision != approval.revision or other.id is None or approval.id is None:
                continue
            if other.id > approval.id or self._digest(other) != digest:
                continue
            name = other.approved_by.strip()
            if name.casefold() == (author or "").strip().casefold():
                continue
            if name.casefold() not in (n.casefold() for n in names):
                names.append(name)
        return names

    def author_of(self, revision: int | None) -> str | None:
        found = self.revision(revision)
        return found.author if found is not None else None

    def _digest(self, approval: Approval) -> str:
        """``posts_digest``, computed once per approval of this state (the drain asks often)."""
        for index, known in enumerate(self.approvals):
            if known is approval:
                return self._digests[index]
        return posts_digest(approval)

    @cached_property
    def _digests(self) -> list[str]:
        return [posts_digest(approval) for approval in self.approvals]

    def in_force(self) -> Approval | None:
        """The newest approval that completed its revision's approvals, if any.

        Approvals from 0.1.0 (no revision) are in force on their own, as they were;
        a rejected revision never is.
        """
        return self._in_force

    @cached_property
    def _in_force(self) -> Approval | None:
        for approval in reversed(self.approvals):
            if approval.revision is None:
                return approval
            if self.rejection(approval.revision) is not None:
                continue
            if len(self.approvers(approval)) >= self.required:
                return approval
        return None

    def waiting_revision(self) -> Revision | None:
        """The latest revision when it is newer than the one in force (it holds that back)."""
        approval = self.in_force()
        if self.latest is None or approval is None or approval.revision is None:
            return None
        return self.latest if self.latest.number > approval.revision else None

    def withdrawal(self, network: str) -> Withdrawal | None:
        """The decision against posting on ``network``; a retraction beats a withdrawal."""
        found = [w for w in self.withdrawals if w.covers(network)]
        retract = [w for w in found if w.kind == "retract"]
        chosen = retract or found
        return chosen[-1] if chosen else None


class Step(StrEnum):
    """What to do with one delivery now."""

    KEEP = "keep"
    WAIT = "wait"
    """It may be on the network already: nothing changes until that is settled."""
    LOOK = "look"
    """It failed, its last attempt may have posted, and a change is due: it becomes
    ``unknown``, so that the drain looks for the post before the change applies."""
    WITHDRAW = "withdraw"
    REBASE = "rebase"
    DELETE = "delete"
    """It is posted and a person asked for it to be retracted."""


def next_step(
    delivery: Delivery, state: ReleaseState, *, unsettled_uncertain: bool
) -> tuple[Step, str]:
    """Decide what happens to ``delivery`` given the release's state (pure)."""
    step, why = _change(delivery, state)
    status = delivery.status
    if step in (Step.KEEP, Step.DELETE):
        return step, why
    if status in (DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN) or (
        status is DeliveryStatus.PENDING and unsettled_uncertain
    ):
        return Step.WAIT, ""
    if status is DeliveryStatus.FAILED and unsettled_uncertain:
        return Step.LOOK, (
            f"{why}; its last attempt may have posted it, so it is looked for before anything "
            "else is done"
        )
    return step, why


def still_up(
    deliveries: Iterable[Delivery], withdrawals: Iterable[Withdrawal]
) -> list[tuple[Delivery, Withdrawal]]:
    """The posted deliveries a retraction covers, each with the latest such retraction.

    Their posts are to be deleted: ``next_step`` says ``DELETE`` for each, and one stays
    here until its delete has gone through.
    """
    retractions: dict[str, list[Withdrawal]] = {}
    for withdrawal in withdrawals:
        if withdrawal.kind == "retract":
            retractions.setdefault(withdrawal.release_id, []).append(withdrawal)
    found = []
    for delivery in deliveries:
        if delivery.status is DeliveryStatus.POSTED:
            covering = [
                w for w in retractions.get(delivery.release_id, ()) if w.covers(delivery.network)
            ]
            if covering:
                found.append((delivery, covering[-1]))
    return found


def _change(delivery: Delivery, state: ReleaseState) -> tuple[Step, str]:
    """What the release's state asks of ``delivery``, were nothing of it on the network."""
    withdrawal = state.withdrawal(delivery.network)
    status = delivery.status
    if withdrawal is not None:
        if status is DeliveryStatus.POSTED and withdrawal.kind == "retract":
            return Step.DELETE, f"retracted by {withdrawal.by}"
        if status in _OPEN:
            verb = "retracted" if withdrawal.kind == "retract" else "withdrawn"
            reason = f": {withdrawal.reason}" if withdrawal.reason else ""
            return Step.WITHDRAW, f"{verb} by {withdrawal.by}{reason}"
        return Step.KEEP, ""
    approval = state.in_force()
    if approval is not None and approval.id != delivery.approval_id:
        named = delivery.network in approval.networks
        if status is DeliveryStatus.WITHDRAWN:
            # Withdrawn only because an earlier revision did not name the network, or was
            # rejected (a person's withdrawal is answered above): nothing of it is out.
            if named and approval.revision is not None:
                return Step.REBASE, f"revision {approval.revision} approved"
            return Step.KEEP, ""
        if status in _OPEN and not named:
            return Step.WITHDRAW, (
                f"revision {approval.revision} approved by {approval.approved_by} "
                f"no longer names {delivery.network}"
            )
        if status in _OPEN and approval.revision is not None:
            return Step.REBASE, f"revision {approval.revision} approved"
    rejection = state.rejection(delivery.revision)
    if rejection is not None and status in _OPEN:
        return Step.WITHDRAW, (
            f"revision {delivery.revision} was rejected by {rejection.by}: {rejection.reason}"
        )
    return Step.KEEP, ""


_OPEN = (
    DeliveryStatus.PENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.SENDING,
    DeliveryStatus.UNKNOWN,
)
"""What may still go out; the rest is posted, withdrawn or retracted."""


@dataclass(frozen=True)
class SyncResult:
    created: tuple[str, ...] = ()
    rebased: tuple[str, ...] = ()
    withdrawn: tuple[str, ...] = ()
    to_delete: tuple[Delivery, ...] = ()
    busy: tuple[str, ...] = ()
    """Networks where something may be on the network: reconciled before any change."""


def sync(store: Store, state: ReleaseState, now: datetime) -> SyncResult:
    """Bring a release's deliveries in line with its approvals and withdrawals.

    Every change is compare-and-set: a drain that claimed a delivery meanwhile
    wins, and the delivery is reconsidered after it.
    """
    created: list[str] = []
    rebased: list[str] = []
    withdrawn: list[str] = []
    to_delete: list[Delivery] = []
    busy: list[str] = []
    existing = {d.network: d for d in store.deliveries(release_id=state.release_id)}
    for network, delivery in existing.items():
        step, why = next_step(
            delivery, state, unsettled_uncertain=store.uncertain(delivery.id, unsettled_only=True)
        )
        if step is Step.WITHDRAW:
            if store.transition(delivery, DeliveryStatus.WITHDRAWN, now, error=why):
                withdrawn.append(network)
        elif step is Step.DELETE:
            to_delete.append(delivery)
        elif step is Step.REBASE:
            approval = state.in_force()
            assert approval is not None and approval.revision is not None
            post = approval.post_for(network)
            if post is not None and store.rebase(
                delivery,
                approval,
                post,
                key=delivery_key(state.release_id, approval.revision, network),
                not_before=_not_before(state, approval),
                now=now,
            ):
                rebased.append(network)
        elif step is Step.LOOK:
            store.transition(delivery, DeliveryStatus.UNKNOWN, now, error=why)
            busy.append(network)
        elif step is Step.WAIT:
            busy.append(network)
    approval = state.in_force()
    if approval is not None and approval.revision is not None:
        for post in approval.posts:
            if post.network in existing or state.withdrawal(post.network) is not None:
                continue
            if store.create_delivery(
                approval,
                post,
                key=delivery_key(state.release_id, approval.revision, post.network),
                not_before=_not_before(state, approval),
                now=now,
            ):
                created.append(post.network)
    return SyncResult(
        tuple(created), tuple(rebased), tuple(withdrawn), tuple(to_delete), tuple(busy)
    )


def _not_before(state: ReleaseState, approval: Approval) -> datetime | None:
    """The approved revision's schedule."""
    revision = state.revision(approval.revision)
    return revision.release.not_before if revision is not None else None

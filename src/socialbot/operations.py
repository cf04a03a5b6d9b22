"""The operations every face calls: the CLI and the desk.

Each function takes the settings and a store, does one thing a person asks
for, and returns data (never prints). Refusals are ``ApprovalError`` with one
sentence saying what to do instead; settings problems are
``ConfigurationError``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from socialbot.approvals import ReleaseState, SyncResult, posts_digest, still_up, sync
from socialbot.config import Settings
from socialbot.errors import (
    ApprovalError,
    ComposeError,
    ConfigurationError,
    DeliveryError,
    InvalidRelease,
    SocialbotError,
)
from socialbot.models import NETWORKS, Approval, Delivery, DeliveryStatus, Post, Release, Revision
from socialbot.problems import Kind, Problem, delivery_problems, to_report
from socialbot.store import (
    AuditEntry,
    Pause,
    Rejection,
    Store,
    Withdrawal,
    utcnow,
)
from socialbot.store.base import ALL_NETWORKS

if TYPE_CHECKING:
    from socialbot.adapters import Adapter
    from socialbot.compose import ComposeOptions
    from socialbot.publish import DrainReport


# -- composing -----------------------------------------------------------------------------


def compose_options(settings: Settings, store: Store | None = None) -> ComposeOptions:
    """Everything in force that shapes posts: the mapping file, UTM, the limits networks report."""
    from socialbot.compose import load_options
    from socialbot.publish import cached_limits

    options = load_options(
        settings.hashtags_file,
        utm=settings.utm,
        required="hashtags_file" in settings.model_fields_set,
    )
    if store is not None:
        limits = cached_limits(store)
        if limits:
            options = replace(options, limits={**options.limits, **limits})
    return options


@dataclass(frozen=True)
class Preview:
    release: Release
    posts: list[Post]
    problems: list[ComposeError]
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """The prepared image bytes the posts refer to, by digest (stored at approval)."""


def compose_posts(
    release: Release,
    networks: list[str],
    options: ComposeOptions,
    *,
    source: str | None = None,
    store: Store | None = None,
) -> Preview:
    """Every network's post, as preview and approval compose it (one code path).

    A release's images are read beside ``source`` (its file) and prepared for
    each network (``socialbot.attachments``).
    """
    from socialbot.compose import compose

    posts: list[Post] = []
    problems: list[ComposeError] = []
    if release.images:
        from socialbot.attachments import text_options

        options = text_options(release, options)
    for network in networks:
        try:
            posts.append(compose(release, network, options))
        except ComposeError as exc:
            problems.append(exc)
    if not release.images:
        return Preview(release, posts, problems)
    from socialbot.attachments import attach

    attached = attach(release, posts, source=source, store=store)
    return Preview(release, attached.posts, problems + attached.problems, attached.files)


def preview(
    settings: Settings, store: Store | None, reference: str, networks: list[str] | None = None
) -> Preview:
    """The posts a release file (anywhere), or a known release, would become now."""
    from socialbot.releases import read_release

    path = Path(reference)
    if path.exists() or path.is_symlink() or store is None:
        release, source = read_release(path), str(path)
    else:
        revision = find_release(settings, store, reference)
        release, source = revision.release, revision.source
    targets = list(networks or release.networks or NETWORKS)
    return compose_posts(
        release, targets, compose_options(settings, store), source=source, store=store
    )


# -- finding a release ----------------------------------------------------------------------


def find_release(settings: Settings, store: Store, reference: str) -> Revision:
    """The latest revision of the release named by a queue file's path or by its id.

    Reads the queue first, so a file changed since the last scan is a new revision.
    """
    from socialbot.releases import scan_queue

    queue_dir = settings.queue_dir
    entries = scan_queue(queue_dir, store) if queue_dir.is_dir() else []
    path = Path(reference)
    release_id: str | None = None
    if path.exists() or path.is_symlink():
        if path.absolute().parent.resolve() != queue_dir.resolve():
            raise ApprovalError(
                f"{reference} is not in the queue directory {queue_dir}: move it there first"
            )
        entry = next((e for e in entries if e.path.name == path.name), None)
        if entry is None:
            raise ApprovalError(f"{reference} is not a release file")
        if entry.error:
            raise ApprovalError(entry.error)
        release_id = entry.release_id
    else:
        matching = [e for e in entries if e.release_id == reference or e.path.stem == reference]
        for entry in matching:
            if entry.error:
                raise ApprovalError(entry.error)
        release_id = reference
    revision = store.latest_revisions([release_id or reference]).get(release_id or reference)
    if revision is None:
        raise ApprovalError(f"no release file or release id {reference!r} in {queue_dir}")
    return revision


def require_person(name: str, option: str = "--by") -> str:
    name = name.strip()
    if not name:
        raise ApprovalError(f"{option} needs the name of the person acting")
    return name


# -- approving and rejecting ----------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalResult:
    revision: Revision
    approval: Approval
    approvers: list[str]
    required: int
    recorded: bool
    """False when this person had already approved these exact posts."""
    sync: SyncResult
    notes: list[str] = field(default_factory=list)
    to_settle: list[str] = field(default_factory=list)
    """Notes asking a person to look at a network and resolve a delivery in doubt there."""

    @property
    def in_force(self) -> bool:
        return len(self.approvers) >= self.required


def approve(
    settings: Settings,
    store: Store,
    reference: str,
    *,
    by: str,
    comment: str = "",
    networks: list[str] | None = None,
    now: datetime | None = None,
) -> ApprovalResult:
    """Approve the latest revision of a release: exactly the posts composed now.

    Every target network's post is composed with everything in force (the
    mapping file, UTM and shaping settings, the limits networks reported) and
    stored with the approval; the drain sends these and nothing else.
    """
    from socialbot.publish import SYNC_KEY

    by = require_person(by)
    now = now or utcnow()
    revision = find_release(settings, store, reference)
    release = revision.release
    required = settings.approvals_required
    state = ReleaseState.load(store, release.id, required)
    if revision.author and revision.author.casefold() == by.casefold():
        raise ApprovalError(
            f"{by} wrote revision {revision.number} of {release.id}; someone else must approve it"
        )
    refuse_a_draft(store, revision, "approved")
    rejection = state.rejection(revision.number)
    if rejection is not None:
        raise ApprovalError(
            f"revision {revision.number} of {release.id} was rejected by {rejection.by} "
            f"({rejection.reason}); edit the release, and approve the new revision"
        )
    targets = release.target_networks(
        networks if networks is not None else settings.active_networks()
    )
    withdrawn = [n for n in targets if state.withdrawal(n) is not None]
    targets = [n for n in targets if n not in withdrawn]
    if not targets:
        if withdrawn:
            raise ApprovalError(
                f"{release.id} was withdrawn on {', '.join(withdrawn)}; "
                "publish it under a new id (a new file name) instead"
            )
        raise ApprovalError(
            f"{release.id} names no networks and none is configured; "
            "add a 'networks' field or set a network's credentials"
        )
    deliveries = {d.network: d for d in store.deliveries(release_id=release.id)}
    done = {
        n: d
        for n, d in deliveries.items()
        if d.status in (DeliveryStatus.POSTED, DeliveryStatus.RETRACTED)
    }
    notes = [
        f"{n}: {release.id} was withdrawn there by {withdrawal.by}; this revision is not "
        "posted there (publish it under a new id to post it)"
        for n in withdrawn
        if (withdrawal := state.withdrawal(n)) is not None
    ]
    dropped = [
        n
        for n, d in deliveries.items()
        if n not in targets and d.status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
    ]
    if all(n in done for n in targets) and not dropped:
        if all(done[n].revision == revision.number for n in targets):
            raise ApprovalError(
                f"revision {revision.number} of {release.id} is already posted on "
                f"{', '.join(targets)}; there is nothing left to approve"
            )
        raise ApprovalError(
            f"{release.id} was already posted on every network it names "
            f"({', '.join(targets)}); to publish the new text, retract it "
            f"(socialbot retract {release.id}) and publish it under a new id"
        )
    for network in targets:
        if network in done and done[network].revision != revision.number:
            notes.append(
                f"{network} already carries revision {done[network].revision}; it is not "
                f"replaced (retract it there to take it back)"
            )
    sendable = [n for n in targets if n not in done]
    composed = compose_posts(
        release, sendable, compose_options(settings, store), source=revision.source, store=store
    )
    if composed.problems:
        raise ApprovalError(
            f"{release.id} cannot be approved: " + "; ".join(str(p) for p in composed.problems)
        )
    for digest, (mime, data) in composed.media.items():  # before the approval refers to them
        store.put_media(digest, mime, data)
    approval = Approval(
        release_id=release.id,
        content_hash=revision.content_hash,
        approved_by=by,
        approved_at=now,
        source=revision.source,
        networks=tuple(sendable),
        revision=revision.number,
        posts=tuple(composed.posts),
        comment=comment.strip(),
    )
    digest = posts_digest(approval)
    already = any(
        a.revision == revision.number
        and a.approved_by.casefold() == by.casefold()
        and posts_digest(a) == digest
        for a in state.approvals
    )
    if already:
        approval = next(
            a
            for a in reversed(state.approvals)
            if a.revision == revision.number and a.approved_by.casefold() == by.casefold()
        )
    else:
        # Marked before, cleared after: a run killed in between leaves it for the drain.
        store.set_value(SYNC_KEY + release.id, "pending")
        approval_id = store.record_approval(approval)
        from socialbot.publish import _crash_point

        _crash_point("mid-approve")
        approval = replace(approval, id=approval_id)
    state = ReleaseState.load(store, release.id, required)
    approvers = state.approvers(approval)
    result = sync(store, state, now) if len(approvers) >= required else SyncResult()
    if store.get_value(SYNC_KEY + release.id) == "pending":
        store.set_value(SYNC_KEY + release.id, "-")
    in_doubt = InDoubt.of(store, release.id, result.busy)
    notes.extend(
        f"{network}: an earlier attempt may have posted the previous revision; it is looked "
        "for first, and this revision is sent only if it was not posted"
        for network in in_doubt.looked_for
    )
    notes.extend(
        f"{network}: a drain is sending the previous revision (or was, when it stopped); "
        "this revision is sent only if that one did not go out"
        for network in in_doubt.being_sent
    )
    to_settle = [
        f"{network}: an earlier attempt may have posted the previous revision, and nothing "
        "can look for it there: look at the account, then resolve that delivery as posted or "
        "not posted; this revision is sent only if it was not posted"
        for network in in_doubt.to_settle
    ]
    return ApprovalResult(
        revision, approval, approvers, required, not already, result, notes, to_settle
    )


def reject(
    settings: Settings,
    store: Store,
    reference: str,
    *,
    by: str,
    reason: str,
    now: datetime | None = None,
) -> Rejection:
    """Record a person's refusal of a release's latest revision: its approvals, before or
    after, never put it in force, and nothing of it is posted."""
    from socialbot.publish import SYNC_KEY

    by = require_person(by)
    now = now or utcnow()
    if not reason.strip():
        raise ApprovalError("--reason needs a few words saying why")
    revision = find_release(settings, store, reference)
    release_id = revision.release_id
    if revision.author and revision.author.casefold() == by.casefold():
        raise ApprovalError(
            f"{by} wrote revision {revision.number} of {release_id}; someone else must review it"
        )
    refuse_a_draft(store, revision, "rejected")
    state = ReleaseState.load(store, release_id, settings.approvals_required)
    approval = state.in_force()
    if approval is not None and approval.revision == revision.number:
        raise ApprovalError(
            f"revision {revision.number} of {release_id} is already approved by "
            f"{', '.join(state.approvers(approval))}; to stop it, withdraw it "
            f"(socialbot withdraw {release_id} --by NAME)"
        )
    rejection = Rejection(release_id, revision.number, by, now, reason.strip())
    # Marked before, cleared after, as an approval is: an approval completed at the same
    # moment loses its deliveries to the rejection, in this run or the next drain.
    store.set_value(SYNC_KEY + release_id, "pending")
    store.record_rejection(rejection)
    sync(store, ReleaseState.load(store, release_id, settings.approvals_required), now)
    store.set_value(SYNC_KEY + release_id, "-")
    return rejection


def unsubmitted(store: Store, revision: Revision) -> bool:
    """A revision written in the desk whose author has not submitted it for approval yet: a
    draft (one approved before this rule, from the command line, counts as submitted)."""
    if revision.source != DESK_SOURCE:
        return False
    if store.get_value(f"submitted:{revision.release_id}") == str(revision.number):
        return False
    return not any(a.revision == revision.number for a in store.approvals(revision.release_id))


def refuse_a_draft(store: Store, revision: Revision, verb: str) -> None:
    if unsubmitted(store, revision):
        raise ApprovalError(
            f"revision {revision.number} of {revision.release_id} is a draft: "
            f"{revision.author or 'its author'} has not submitted it for approval yet, so it "
            f"cannot be {verb}"
        )


# -- taking things back ----------------------------------------------------------------------


def _can_find(network: str) -> bool:
    """Whether a drain can look for a post on ``network`` (a Telegram bot cannot)."""
    from socialbot.networks import PROFILES

    return network in PROFILES and PROFILES[network].can_find


@dataclass(frozen=True)
class InDoubt:
    """Networks where an earlier send may already be out, by what settles each."""

    looked_for: list[str] = field(default_factory=list)
    """A drain looks for the post on the network before anything changes."""
    being_sent: list[str] = field(default_factory=list)
    """A drain is sending it (or was, when it stopped) and nothing can look for it: that
    drain's record decides, and the next drain asks a person if it could not record."""
    to_settle: list[str] = field(default_factory=list)
    """In doubt, and nothing can look for it (Telegram): a person must settle it."""

    @property
    def networks(self) -> list[str]:
        return self.looked_for + self.being_sent + self.to_settle

    @classmethod
    def of(cls, store: Store, release_id: str, busy: Sequence[str]) -> InDoubt:
        """Sort the networks :func:`sync` found busy for ``release_id``."""
        if not busy:
            return cls()
        unknown = {
            d.network
            for d in store.deliveries(release_id=release_id, status=DeliveryStatus.UNKNOWN)
        }
        looked_for = [n for n in busy if _can_find(n)]
        to_settle = [n for n in busy if not _can_find(n) and n in unknown]
        being_sent = [n for n in busy if not _can_find(n) and n not in unknown]
        return cls(looked_for, being_sent, to_settle)


@dataclass(frozen=True)
class TakeBack:
    """What a withdrawal or retraction did, network by network."""

    release_id: str
    withdrawn: list[str]
    retracted: list[str]
    in_doubt: InDoubt
    """May already be on the network: withdrawn or retracted once that is settled."""
    posted: list[str]
    """Already posted (a withdrawal does not delete: retract does)."""
    failed: list[str]


def _known_release(store: Store, release_id: str) -> None:
    if not store.revisions(release_id) and not store.deliveries(release_id=release_id):
        raise ApprovalError(f"no release {release_id!r} is known")


def withdraw(
    settings: Settings,
    store: Store,
    release_id: str,
    *,
    by: str,
    network: str | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> TakeBack:
    """What is not yet posted is never posted, whatever happens to the queue file later."""
    by = require_person(by)
    now = now or utcnow()
    _known_release(store, release_id)
    store.record_withdrawal(
        Withdrawal(release_id, network or ALL_NETWORKS, "withdraw", by, now, reason.strip())
    )
    state = ReleaseState.load(store, release_id, settings.approvals_required)
    result = sync(store, state, now)
    deliveries = store.deliveries(release_id=release_id)
    posted = [
        d.network
        for d in deliveries
        if d.status is DeliveryStatus.POSTED and (network is None or d.network == network)
    ]
    return TakeBack(
        release_id,
        list(result.withdrawn),
        [],
        InDoubt.of(store, release_id, result.busy),
        posted,
        [],
    )


def retract(
    settings: Settings,
    store: Store,
    release_id: str,
    *,
    by: str,
    network: str | None = None,
    reason: str = "",
    adapters: Mapping[str, Adapter] | None = None,
    now: datetime | None = None,
) -> TakeBack:
    """Delete what was posted, withdraw what was not; safe to repeat."""
    from socialbot.publish import delete_post

    by = require_person(by)
    now = now or utcnow()
    _known_release(store, release_id)
    store.record_withdrawal(
        Withdrawal(release_id, network or ALL_NETWORKS, "retract", by, now, reason.strip())
    )
    state = ReleaseState.load(store, release_id, settings.approvals_required)
    result = sync(store, state, now)
    retracted = [
        d.network
        for d in store.deliveries(release_id=release_id, status=DeliveryStatus.RETRACTED)
        if network is None or d.network == network
    ]
    failed: list[str] = []
    owned = adapters is None
    if adapters is None:
        adapters = LazyAdapters(settings, settings.active_networks(), store)
    try:
        for delivery in result.to_delete:
            try:
                adapter = adapters[delivery.network]
            except (KeyError, SocialbotError) as exc:
                failed.append(f"{delivery.network}: cannot be reached ({exc or 'not configured'})")
                continue
            error = delete_post(store, adapter, delivery, now)
            if error is None:
                retracted.append(delivery.network)
            else:
                failed.append(f"{delivery.network}: {error}")
    finally:
        if owned and isinstance(adapters, LazyAdapters):
            adapters.close()
    return TakeBack(
        release_id,
        list(result.withdrawn),
        retracted,
        InDoubt.of(store, release_id, result.busy),
        [],
        failed,
    )


def pause(store: Store, *, by: str, reason: str, network: str | None = None) -> Pause:
    """The crisis switch: nothing is sent to ``network`` (every network) until resumed."""
    by = require_person(by)
    if not reason.strip():
        raise ApprovalError("--reason needs a few words saying why (it is shown to everyone)")
    record = Pause(network or ALL_NETWORKS, by, utcnow(), reason.strip())
    store.pause(record)
    return record


def resume(store: Store, *, by: str, network: str | None = None) -> bool:
    """Lift the crisis switch; False when it was not on."""
    by = require_person(by)
    target = network or ALL_NETWORKS
    lifted = store.resume(target)
    if lifted:
        store.audit("resume", actor=by, now=utcnow(), network=target)
    return lifted


# -- operators' fixes ------------------------------------------------------------------------


def retry(store: Store, release_id: str, network: str | None = None, *, by: str = "") -> int:
    """Put failed deliveries back in the queue for the next drain, recorded as ``by``'s."""
    count = store.requeue(release_id, network, utcnow())
    if not count:
        where = f" on {network}" if network else ""
        raise ApprovalError(f"{release_id} has no failed delivery{where} to retry")
    store.audit("retry", actor=by.strip(), now=utcnow(), release_id=release_id, network=network)
    return count


def resolve(
    settings: Settings,
    store: Store,
    release_id: str,
    network: str,
    *,
    url: str | None,
    by: str = "",
) -> Delivery:
    """An operator's verdict on a delivery that may or may not have been posted.

    A ``url`` must be a post address of ``network`` that no other delivery holds: a
    retraction deletes the post it names.
    """
    if url is not None:
        from socialbot.models import check_url

        try:
            check_url(url)
        except ValueError as exc:
            raise ConfigurationError(f"--posted {url!r}: {exc}") from None
        check_post_address(settings, store, release_id, network, url)
    delivery = store.resolve(release_id, network, utcnow(), url=url)
    if delivery is None:
        current = store.get(release_id, network)
        state = current.status.value if current else "not in the log"
        raise ApprovalError(
            f"{release_id} on {network} is {state}; only an unknown delivery "
            "(or a failed one, with --posted) can be resolved"
        )
    store.audit(
        "resolve",
        actor=by,
        now=utcnow(),
        release_id=release_id,
        network=network,
        detail=f"posted at {url}" if url else "not posted",
    )
    return delivery


def check_post_address(
    settings: Settings, store: Store, release_id: str, network: str, url: str
) -> None:
    """Refuse an address that is not one of ``network``'s posts, or is another delivery's."""
    from urllib.parse import urlsplit

    from socialbot.networks import PROFILES

    section = settings.section(network)
    configured = urlsplit(str(getattr(section, "web_url", None) or section.base_url))
    given = urlsplit(url)
    host = (given.hostname or "").casefold()
    ours = host == (configured.hostname or "").casefold() and (
        given.port == configured.port and given.path.startswith(configured.path.rstrip("/") + "/")
    )
    if not ours and host not in PROFILES[network].post_hosts:
        raise ApprovalError(
            f"--posted {url}: not the address of a post on {network} "
            f"({configured.scheme}://{configured.netloc}{configured.path.rstrip('/')}/…)"
        )
    for other in store.deliveries(network=network):
        if other.url == url and other.release_id != release_id:
            raise ApprovalError(
                f"--posted {url}: that is the post of {other.release_id} on {network}; give "
                f"the address of {release_id}'s own post"
            )


def log(
    store: Store,
    *,
    release_id: str | None = None,
    network: str | None = None,
    status: DeliveryStatus | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Delivery]:
    return store.deliveries(
        release_id=release_id, network=network, status=status, since=since, limit=limit
    )


def duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``1d``, ``2w``: how far back ``log --since`` and the desk's log look."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not match:
        raise ValueError("use a number and a unit, e.g. 30m, 12h, 1d, 2w")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    try:
        return timedelta(**{unit: int(match[1])})
    except OverflowError:
        raise ValueError(TOO_FAR_BACK) from None


def cutoff(text: str, now: datetime) -> datetime:
    """The moment ``text`` (see ``duration``) before ``now``."""
    try:
        return now - duration(text)
    except OverflowError:  # a duration Python holds, reaching before the calendar's start
        raise ValueError(TOO_FAR_BACK) from None


TOO_FAR_BACK = "reaches back before the year 1: use a shorter time"


def audit(
    store: Store,
    release_id: str | None = None,
    *,
    network: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """The audit trail, oldest first: of one release, one network (and what covered every
    network), since a moment, the newest ``limit`` entries."""
    entries = [
        entry
        for entry in store.audit_trail(release_id)
        if (network is None or entry.network in (network, ALL_NETWORKS))
        and (since is None or entry.at >= since)
    ]
    return _newest(entries, limit)


def approvals(
    store: Store,
    release_id: str | None = None,
    *,
    network: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
) -> list[Approval]:
    """The approval records, oldest first: of one release, naming one network, approved
    since a moment, the newest ``limit`` of them."""
    records = [
        record
        for record in store.approvals(release_id)
        if (network is None or network in record.networks)
        and (since is None or record.approved_at >= since)
    ]
    return _newest(records, limit)


T = TypeVar("T")


def _newest(items: list[T], limit: int | None) -> list[T]:
    """The last ``limit`` of ``items`` (all of them without a limit)."""
    return items[-limit:] if limit is not None and limit >= 0 else items


# -- importing -------------------------------------------------------------------------------


def import_releases(
    settings: Settings,
    store: Store,
    *,
    sources: list[str] = (),  # type: ignore[assignment]
    listings: list[str] = (),  # type: ignore[assignment]
    feeds: list[str] = (),  # type: ignore[assignment]
    follow_versions: bool = True,
    import_settings: Any = None,
) -> Any:
    """Pages, listings and feeds become draft releases, in the queue and the store."""
    from socialbot.config import load_import_settings
    from socialbot.importer import ImportReport, run_import
    from socialbot.importer.ledger import KeyValueLedger
    from socialbot.releases import scan_queue

    queue = settings.queue_dir
    if not queue.is_dir():
        raise ConfigurationError(f"SOCIALBOT_QUEUE_DIR: the queue directory {queue} does not exist")
    options = import_settings or load_import_settings()

    def is_approved(release_id: str) -> bool:
        return bool(store.approvals(release_id))

    report = ImportReport()
    for batch, is_listing, is_feed in (
        (sources, False, False),
        (listings, True, False),
        (feeds, False, True),
    ):
        if batch:
            part = run_import(
                list(batch),
                queue_dir=queue,
                ledger=KeyValueLedger(store),
                is_approved=is_approved,
                settings=options,
                listing=is_listing,
                feed=is_feed,
                follow_versions=follow_versions,
            )
            report.results.extend(part.results)
            report.notes.extend(part.notes)
    scan_queue(queue, store)  # each new or updated draft becomes a revision in the store
    return report


# -- status ------------------------------------------------------------------------------------


@dataclass
class Status:
    """Where everything stands, and what needs a person (``problems``)."""

    pauses: list[Pause]
    counts: dict[DeliveryStatus, int]
    awaiting: list[str]
    scheduled: list[str]
    approved: list[str]
    holds: dict[str, str]
    problems: list[Problem]

    @property
    def exit_status(self) -> int:
        return 1 if self.problems else 0


def status(settings: Settings, store: Store, now: datetime | None = None) -> Status:
    from socialbot.releases import scan_queue

    now = now or utcnow()
    problems: list[Problem] = []
    if not settings.queue_dir.is_dir():
        raise ConfigurationError(
            f"SOCIALBOT_QUEUE_DIR: the queue directory {settings.queue_dir} does not exist"
        )
    for entry in scan_queue(settings.queue_dir, store, now):
        if entry.error:
            problems.append(
                Problem(Kind.INVALID_FILE, entry.error, entry.release_id, standing=True)
            )
    active = settings.active_networks()
    latest = store.latest_revisions()
    approvals = store.approvals()
    by_release: dict[str, list[Approval]] = {}
    for approval in approvals:
        by_release.setdefault(approval.release_id, []).append(approval)
    deliveries = store.deliveries()
    per_release: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        per_release.setdefault(delivery.release_id, []).append(delivery)
    awaiting, approved, scheduled = [], [], []
    withdrawn_ids = {w.release_id for w in store.withdrawals() if w.network == ALL_NETWORKS}
    for release_id, revision in sorted(latest.items()):
        if release_id in withdrawn_ids:
            continue
        state = ReleaseState(
            release_id,
            [revision],
            by_release.get(release_id, []),
            [],
            settings.approvals_required,
        )
        in_force = state.in_force()
        rows = per_release.get(release_id, [])
        if in_force is None:
            if not rows:
                mine = [a for a in state.approvals if a.revision == revision.number]
                have = len(state.approvers(mine[-1])) if mine else 0
                awaiting.append(
                    f"{release_id} (revision {revision.number}, {have} of "
                    f"{settings.approvals_required} approvals)"
                )
            continue
        if in_force.revision is not None and revision.number > in_force.revision:
            if any(d.status is DeliveryStatus.PENDING for d in rows):
                problems.append(
                    Problem(
                        Kind.CHANGED_AFTER_APPROVAL,
                        f"revision {revision.number} was made after revision "
                        f"{in_force.revision} was approved by {in_force.approved_by}; "
                        "approve it or withdraw the release",
                        release_id,
                        standing=True,
                    )
                )
            continue
        approved.append(
            f"{release_id}: revision {in_force.revision} approved by {in_force.approved_by} on "
            f"{in_force.approved_at:%Y-%m-%d %H:%M} UTC"
        )
        for d in rows:
            if d.status is DeliveryStatus.PENDING and d.not_before and d.not_before > now:
                scheduled.append(
                    f"{release_id} on {d.network} at {d.not_before:%Y-%m-%d %H:%M} UTC"
                )
    problems.extend(delivery_problems(deliveries, _can_find))
    for d, retraction in still_up(deliveries, store.withdrawals()):
        problems.append(
            Problem(
                Kind.RETRACT,
                f"retracted by {retraction.by}, but the post is still up at {d.url}: its "
                "delete has not gone through yet (the next drain tries again)",
                d.release_id,
                d.network,
                standing=True,
            )
        )
    waiting_networks = {d.network for d in deliveries if d.status is DeliveryStatus.PENDING}
    for network in sorted(waiting_networks - set(active)):
        problems.append(
            Problem(
                Kind.NOT_CONFIGURED,
                f"deliveries to {network} wait, but its credentials are not set",
                network=network,
                standing=True,
            )
        )
    for network in active:
        refused = store.get_value(f"credentials:{network}")
        if refused:
            problems.append(Problem(Kind.CREDENTIALS, refused, network=network, standing=True))
    for network, warning in credential_warnings(settings, now):
        problems.append(Problem(Kind.CREDENTIALS, warning, network=network, standing=True))
    holds = {}
    for network in NETWORKS:
        hold = store.hold(network)
        if hold is not None and hold[0] > now:
            holds[network] = f"until {hold[0]:%Y-%m-%d %H:%M:%S} UTC ({hold[1]})"
    return Status(
        pauses=sorted(store.pauses().values(), key=lambda p: p.network),
        counts=store.counts(),
        awaiting=awaiting,
        scheduled=scheduled,
        approved=approved,
        holds=holds,
        problems=problems,
    )


def credential_warnings(settings: Settings, now: datetime | None = None) -> list[tuple[str, str]]:
    """(network, warning) for each credential that expires soon or has expired."""
    today = (now or utcnow()).date()
    return [
        (network, warning)
        for network in NETWORKS
        for warning in settings.section(network).credential_warnings(today)
    ]


# -- networks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkCheck:
    network: str
    active: bool
    configured: bool
    accepted: bool | None
    detail: str


def networks(settings: Settings, store: Store | None = None) -> list[NetworkCheck]:
    """Every supported network; the active ones' credentials checked (nothing is posted)."""
    from socialbot.publish import save_limits

    active = settings.active_networks()
    adapters = LazyAdapters(settings, active, store)  # built as a drain builds them
    checks = []
    try:
        for network in NETWORKS:
            configured = settings.section(network).is_configured()
            if network not in active:
                detail = (
                    "configured but not in SOCIALBOT_NETWORKS" if configured else "not configured"
                )
                checks.append(NetworkCheck(network, False, configured, None, detail))
                continue
            try:
                adapter = adapters[network]
                who = adapter.check()
                limits = adapter.text_limits()
            except SocialbotError as exc:
                if store is not None:
                    store.set_value(f"credentials:{network}", str(exc))
                checks.append(NetworkCheck(network, True, True, False, str(exc)))
                continue
            if store is not None:
                store.set_value(f"credentials:{network}", "")
                if limits is not None:
                    save_limits(store, network, limits)
            checks.append(NetworkCheck(network, True, True, True, who))
    finally:
        adapters.close()
    return checks


# -- the drain ---------------------------------------------------------------------------------


class LazyAdapters(Mapping[str, "Adapter"]):
    """Adapters built on first use, so an idle run never imports tweepy."""

    def __init__(self, settings: Settings, active: list[str], store: Store | None = None) -> None:
        self.settings = settings
        self.active = active
        self.store = store
        self._made: dict[str, Adapter] = {}

    def __getitem__(self, network: str) -> Adapter:
        if network not in self.active:
            raise KeyError(network)
        if network not in self._made:
            from socialbot import logs
            from socialbot.adapters import create_adapter

            # The store keeps what adapters learn at run time (a Bluesky session, the image
            # limits a Mastodon instance reports), so no state lives in local files and every
            # host shares it.
            self._made[network] = create_adapter(network, self.settings, state=self.store)
            logs.register_secret(*self._made[network].secret_values())
        return self._made[network]

    def __iter__(self) -> Iterator[str]:
        return iter(self.active)

    def __len__(self) -> int:
        return len(self.active)

    def close(self) -> None:
        for adapter in self._made.values():
            adapter.close()


@dataclass(frozen=True)
class DrainResult:
    report: DrainReport
    told: list[Problem]
    """The problems to tell cron about in this run (each once; standing ones once a day)."""

    @property
    def exit_status(self) -> int:
        if self.report.interrupted is not None:
            return 128 + self.report.interrupted
        return 1 if self.told else 0


def drain(
    settings: Settings,
    store: Store,
    *,
    stop: threading.Event | None = None,
    adapters: Mapping[str, Adapter] | None = None,
    queue_dir: Path | None = None,
    **publisher_options: Any,
) -> DrainResult:
    """Send every approved, due post once; one drain at a time per database."""
    from socialbot.publish import Publisher, RetryPolicy

    active = settings.active_networks()
    queue = queue_dir or settings.queue_dir
    if not queue.is_dir():
        raise ConfigurationError(f"SOCIALBOT_QUEUE_DIR: the queue directory {queue} does not exist")
    stale_after = settings.run_budget_seconds + 4 * settings.request_timeout_seconds + 300
    with store.drain_lock(stale_after=stale_after):
        owned = adapters is None
        made = LazyAdapters(settings, active, store) if adapters is None else adapters
        try:
            publisher = Publisher(
                store=store,
                queue_dir=queue,
                adapters=made,
                active=active,
                # Read only if a 0.1.0 approval is adopted: the drain sends snapshots.
                options=lambda: compose_options(settings, store),
                policy=RetryPolicy(
                    max_attempts=settings.max_attempts,
                    max_rate_limit_wait=settings.max_rate_limit_wait_seconds,
                    reconcile_after=timedelta(seconds=settings.reconcile_after_seconds),
                ),
                approvals_required=settings.approvals_required,
                budget_seconds=settings.run_budget_seconds,
                stop=stop,
                **publisher_options,
            )
            report = publisher.drain()
        finally:
            if owned and isinstance(made, LazyAdapters):
                made.close()
    told = to_report(
        report.problems,
        store,
        utcnow(),
        timedelta(hours=settings.problem_repeat_hours),
    )
    return DrainResult(report, told)


# -- the desk: writing releases, submitting them, the inbox ------------------------------------
# Added for the desk (issue 10); the CLI may call them as well. Every rule about approval stays
# in ``approve`` and ``socialbot.approvals``: these only record revisions and read state.

DESK_SOURCE = "desk"
"""The ``source`` of a revision written in the desk."""


def release_from_fields(release_id: str, fields: Mapping[str, Any]) -> Release:
    """A release from a person's fields; every problem in one sentence naming the fields."""
    from pydantic import ValidationError

    from socialbot.releases import _invalid

    try:
        return Release.model_validate({**fields, "id": release_id})
    except ValidationError as exc:
        raise _invalid(Path(release_id), exc) from None


def create_release(
    store: Store, fields: Mapping[str, Any], *, author: str, now: datetime | None = None
) -> Revision:
    """A new release written by ``author``: its first revision (a draft until submitted)."""
    author = require_person(author, "author")
    release_id = str(fields.get("id", "")).strip()
    release = release_from_fields(release_id, fields)
    if store.revisions(release.id) or store.deliveries(release_id=release.id):
        raise ApprovalError(f"a release {release.id!r} already exists: choose another id")
    revision = store.record_revision(
        release, source=DESK_SOURCE, author=author, now=now or utcnow()
    )
    assert revision is not None  # the first revision of a new release always differs
    return revision


def edit_release(
    store: Store,
    release_id: str,
    changes: Mapping[str, Any],
    *,
    author: str,
    expect_revision: int | None = None,
    now: datetime | None = None,
) -> Revision | None:
    """Save an edit as a new revision by ``author`` (None when nothing changed).

    ``expect_revision`` is the revision the person edited: when someone saved another
    meanwhile, the edit is refused rather than silently overwriting theirs.
    """
    author = require_person(author, "author")
    current = store.latest_revisions([release_id]).get(release_id)
    if current is None:
        raise ApprovalError(f"no release {release_id!r} is known")
    if expect_revision is not None and current.number != expect_revision:
        raise ApprovalError(
            f"revision {current.number} of {release_id} was saved meanwhile"
            f"{' by ' + current.author if current.author else ''}; "
            "reload the release and make the edit again"
        )
    data = current.release.model_dump()
    data.update(changes)
    release = release_from_fields(release_id, data)
    return store.record_revision(release, source=DESK_SOURCE, author=author, now=now or utcnow())


def submit(store: Store, release_id: str, *, by: str, now: datetime | None = None) -> Revision:
    """Hand the latest revision to the approvers (a desk draft shows as awaiting approval)."""
    by = require_person(by)
    current = store.latest_revisions([release_id]).get(release_id)
    if current is None:
        raise ApprovalError(f"no release {release_id!r} is known")
    store.set_value(f"submitted:{release_id}", str(current.number))
    store.audit(
        "submit",
        actor=by,
        now=now or utcnow(),
        release_id=release_id,
        revision=current.number,
        detail="submitted for approval",
    )
    return current


class ReleaseStage(StrEnum):
    """Where a release stands, as the inbox shows it."""

    DRAFT = "draft"
    AWAITING = "awaiting approval"
    SCHEDULED = "scheduled"
    POSTING = "posting"
    POSTED = "posted"
    FAILED = "failed"
    NEEDS_PERSON = "needs a person"
    WITHDRAWN = "withdrawn"
    RETRACTED = "retracted"


@dataclass(frozen=True)
class InboxItem:
    """One release with its state: what the inbox lists and the release page heads with."""

    revision: Revision
    stage: ReleaseStage
    detail: str
    approvers: list[str]
    """Who approved the latest revision (counted as the approval rules count)."""
    required: int
    scheduled_at: datetime | None
    networks: list[str]
    deliveries: list[Delivery]

    @property
    def release(self) -> Release:
        return self.revision.release

    @property
    def release_id(self) -> str:
        return self.revision.release_id


def release_stage(
    settings: Settings,
    store: Store,
    state: ReleaseState,
    rows: list[Delivery],
    now: datetime,
) -> InboxItem | None:
    """The stage of one release, from its approval state and its deliveries."""
    latest = state.latest
    if latest is None:
        return None
    required = state.required
    mine = [a for a in state.approvals if a.revision == latest.number]
    approvers = state.approvers(mine[-1]) if mine else []
    networks = latest.release.target_networks(settings.active_networks() or list(NETWORKS))
    whole = [w for w in state.withdrawals if w.network == ALL_NETWORKS]
    statuses = {d.status for d in rows}
    pending = [d for d in rows if d.status is DeliveryStatus.PENDING]
    later = sorted(d.not_before for d in pending if d.not_before and d.not_before > now)
    scheduled_at = later[0] if later else latest.release.not_before
    approval = state.in_force()
    waiting = state.waiting_revision()

    def item(stage: ReleaseStage, detail: str = "") -> InboxItem:
        return InboxItem(
            latest, stage, detail, approvers, required, scheduled_at, networks, list(rows)
        )

    if any(w.kind == "retract" for w in whole):
        return item(ReleaseStage.RETRACTED, f"by {whole[-1].by}")
    if whole:
        return item(ReleaseStage.WITHDRAWN, f"by {whole[-1].by}")
    if DeliveryStatus.UNKNOWN in statuses:
        return item(ReleaseStage.NEEDS_PERSON, "may or may not have been posted")
    if DeliveryStatus.FAILED in statuses:
        return item(ReleaseStage.FAILED)
    if approval is None or waiting is not None:
        rejected = [r for r in store.rejections(latest.release_id) if r.revision == latest.number]
        if rejected:
            return item(ReleaseStage.DRAFT, f"rejected by {rejected[-1].by}: {rejected[-1].reason}")
        if unsubmitted(store, latest):
            return item(ReleaseStage.DRAFT)
        detail = f"{len(approvers)} of {required} approvals"
        if waiting is not None:
            detail += f"; revision {approval.revision if approval else '?'} is held back"
        return item(ReleaseStage.AWAITING, detail)
    if DeliveryStatus.SENDING in statuses:
        return item(ReleaseStage.POSTING, "being sent")
    if pending:
        if later:
            return item(ReleaseStage.SCHEDULED)
        return item(ReleaseStage.POSTING, "sent by the next drain")
    if DeliveryStatus.POSTED in statuses:
        return item(ReleaseStage.POSTED)
    if statuses and statuses <= {DeliveryStatus.RETRACTED, DeliveryStatus.WITHDRAWN}:
        if DeliveryStatus.RETRACTED in statuses:
            return item(ReleaseStage.RETRACTED)
        return item(ReleaseStage.WITHDRAWN)
    return item(ReleaseStage.POSTING, "sent by the next drain")


def release_item(
    settings: Settings, store: Store, release_id: str, now: datetime | None = None
) -> InboxItem:
    """One release's state (the head of its page in the desk)."""
    state = ReleaseState.load(store, release_id, settings.approvals_required)
    found = release_stage(
        settings, store, state, store.deliveries(release_id=release_id), now or utcnow()
    )
    if found is None:
        raise ApprovalError(f"no release {release_id!r} is known")
    return found


def inbox(
    settings: Settings,
    store: Store,
    *,
    language: str | None = None,
    network: str | None = None,
    stage: ReleaseStage | None = None,
    text: str | None = None,
    now: datetime | None = None,
) -> list[InboxItem]:
    """Every release with its state, newest first, narrowed by the filters given."""
    from socialbot.releases import scan_queue

    now = now or utcnow()
    if settings.queue_dir.is_dir():
        scan_queue(settings.queue_dir, store, now)
    latest = store.latest_revisions()
    approvals: dict[str, list[Approval]] = {}
    for approval in store.approvals():
        approvals.setdefault(approval.release_id, []).append(approval)
    withdrawals: dict[str, list[Withdrawal]] = {}
    for withdrawal in store.withdrawals():
        withdrawals.setdefault(withdrawal.release_id, []).append(withdrawal)
    rows: dict[str, list[Delivery]] = {}
    for delivery in store.deliveries():
        rows.setdefault(delivery.release_id, []).append(delivery)
    needle = (text or "").strip().casefold()
    items = []
    for release_id, revision in latest.items():
        release = revision.release
        if language and release.language != language:
            continue
        if needle and not any(
            needle in value.casefold()
            for value in (release.id, release.title, release.summary, release.body)
        ):
            continue
        state = ReleaseState(
            release_id,
            store.revisions(release_id),
            approvals.get(release_id, []),
            withdrawals.get(release_id, []),
            settings.approvals_required,
        )
        found = release_stage(settings, store, state, rows.get(release_id, []), now)
        if found is None:
            continue
        if network and network not in found.networks:
            continue
        if stage is not None and found.stage is not stage:
            continue
        items.append(found)
    items.sort(key=lambda i: (i.revision.created_at, i.release_id), reverse=True)
    return items


__all__ = [
    "DESK_SOURCE",
    "ApprovalResult",
    "DeliveryError",
    "DrainResult",
    "InDoubt",
    "InboxItem",
    "InvalidRelease",
    "LazyAdapters",
    "NetworkCheck",
    "Preview",
    "ReleaseStage",
    "Status",
    "TakeBack",
    "approve",
    "audit",
    "compose_options",
    "compose_posts",
    "create_release",
    "credential_warnings",
    "drain",
    "edit_release",
    "find_release",
    "inbox",
    "log",
    "networks",
    "pause",
    "preview",
    "reject",
    "release_from_fields",
    "release_item",
    "release_stage",
    "resolve",
    "resume",
    "retract",
    "retry",
    "status",
    "submit",
    "withdraw",
]

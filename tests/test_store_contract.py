"""The store contract, run against every backend: SQLite and PostgreSQL.

Each test states one rule of ``socialbot.store.base.Store`` and checks it on a
fresh database of each kind (``database_url`` in tests/conftest.py). Without a
PostgreSQL server the PostgreSQL runs are skipped, saying why.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from socialbot.errors import AlreadyRunning, ConfigurationError
from socialbot.logs import register_secret
from socialbot.models import Approval, Delivery, DeliveryStatus, Post, Receipt, Release
from socialbot.store import (
    AuditEntry,
    Pause,
    QueueFile,
    Rejection,
    SQLiteStore,
    Store,
    Withdrawal,
    delivery_key,
    open_store,
)
from socialbot.store.base import ALL_NETWORKS
from socialbot.store.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION

T0 = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)
SECRET = "hunter2-contract-secret"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    made = open_store(database_url)
    yield made
    made.close()


@pytest.fixture
def other(database_url: str) -> Iterator[Store]:
    """A second store on the same database: another process, or another host."""
    made = open_store(database_url)
    yield made
    made.close()


def release(release_id: str = "r1", title: str = "Regions meet in Sofia") -> Release:
    return Release(
        id=release_id,
        title=title,
        url=f"https://press.example.org/{release_id}",
        language="bg",
        summary="Регионите се срещат — 👩‍👩‍👧 ✓",
        hashtags=["#EU"],
        not_before=T0 + timedelta(hours=1),
    )


def post(network: str = "x", text: str = "Regions meet in Sofia #EU") -> Post:
    return Post(
        network=network,
        text=text,
        link="https://press.example.org/r1",
        length=len(text),
        limit=280,
        language="bg",
        title="Regions meet",
        hashtags=("#EU",),
        facets=({"index": {"byteStart": 0, "byteEnd": 3}, "features": [{"tag": "EU"}]},),
        notes=("shortened",),
    )


def approved(
    store: Store,
    release_id: str = "r1",
    networks: tuple[str, ...] = ("x", "facebook"),
    *,
    revision: int = 1,
    by: str = "Ana",
    at: datetime = T0,
    comment: str = "",
) -> Approval:
    record = Approval(
        release_id=release_id,
        content_hash=f"{revision:064d}",
        approved_by=by,
        approved_at=at,
        source=f"queue/{release_id}.json",
        networks=networks,
        revision=revision,
        posts=tuple(
            post(network, f"{release_id} v{revision} on {network}") for network in networks
        ),
        comment=comment,
    )
    return Approval(**{**record.__dict__, "id": store.record_approval(record)})


def scheduled(store: Store, approval: Approval, now: datetime = T0) -> list[Delivery]:
    """The approval's deliveries, created as the drain's sync creates them."""
    for item in approval.posts:
        assert approval.revision is not None
        store.create_delivery(
            approval,
            item,
            key=delivery_key(approval.release_id, approval.revision, item.network),
            not_before=None,
            now=now,
        )
    return [d for n in approval.networks if (d := store.get(approval.release_id, n)) is not None]


def claimed(store: Store, release_id: str = "r1", network: str = "x") -> Delivery:
    delivery = store.get(release_id, network)
    assert delivery is not None
    got = store.claim(delivery.id, "sent text", T0 + timedelta(seconds=1))
    assert got is not None
    return got


# -- releases and revisions -----------------------------------------------------------------


def test_a_revision_is_recorded_only_when_the_content_changes(store: Store):
    first = store.record_revision(release(), source="queue/r1.json", author="Ana", now=T0)
    same = store.record_revision(release(), source="queue/r1.json", author="Ben", now=T0)
    edited = store.record_revision(
        release(title="Regions meet in Plovdiv"),
        source="queue/r1.json",
        author=None,
        now=T0 + timedelta(minutes=5),
    )

    assert first is not None and edited is not None
    assert same is None
    assert (first.number, edited.number) == (1, 2)
    assert first.content_hash == release().content_hash() != edited.content_hash
    assert store.revisions("r1") == [first, edited]
    assert store.revisions("r1")[0].release == release()
    assert store.revisions("r1")[0].created_at == T0
    assert store.latest_revisions() == {"r1": edited}
    assert store.latest_revisions(["r1", "unknown"]) == {"r1": edited}
    assert store.revisions("unknown") == []
    actions = [(e.action, e.revision, e.actor) for e in store.audit_trail("r1")]
    assert actions == [("revision", 1, "Ana"), ("revision", 2, "")]


def test_revisions_are_numbered_per_release_and_listed_newest_first(store: Store):
    store.record_revision(release("r1"), source="a", author=None, now=T0)
    store.record_revision(release("r2"), source="b", author=None, now=T0 + timedelta(seconds=1))
    store.record_revision(
        release("r1", "Edited"), source="a", author=None, now=T0 + timedelta(seconds=2)
    )

    assert store.release_ids() == ["r1", "r2"]
    latest = store.latest_revisions()
    assert {k: v.number for k, v in latest.items()} == {"r1": 2, "r2": 1}
    assert list(store.latest_revisions(["r2"])) == ["r2"]


def test_two_writers_recording_one_edit_make_one_revision(store: Store, other: Store):
    barrier = threading.Barrier(2)
    results: list[object] = []

    def record(which: Store) -> None:
        barrier.wait()
        results.append(which.record_revision(release(), source="q", author=None, now=T0))

    threads = [threading.Thread(target=record, args=(s,)) for s in (store, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result is None for result in results) == [False, True]
    assert [r.number for r in store.revisions("r1")] == [1]


# -- approvals, rejections, withdrawals, the audit trail ------------------------------------


def test_an_approval_keeps_its_exact_posts(store: Store):
    register_secret(SECRET)
    first = approved(store, comment=f"fine, token {SECRET}")
    second = approved(store, revision=2, by="Ben", at=T0 + timedelta(hours=1))
    other_release = approved(store, "r2", ("mastodon",))

    assert first.id is not None
    fetched = store.approval(first.id)
    assert fetched is not None
    assert fetched.posts == first.posts
    assert fetched.posts[0].facets == first.posts[0].facets
    assert fetched.post_for("facebook") == first.post_for("facebook")
    assert fetched.approved_at == T0
    assert SECRET not in fetched.comment and fetched.comment.startswith("fine, token ")
    assert {**fetched.__dict__, "comment": ""} == {**first.__dict__, "comment": ""}
    assert store.approval(10_000) is None
    assert store.approvals("r1") == [fetched, second]
    assert store.approvals() == [fetched, second, other_release]
    assert store.latest_approvals() == {"r1": second, "r2": other_release}
    assert store.latest_approvals(["r2", "nothing"]) == {"r2": other_release}
    trail = store.audit_trail("r1")
    assert [(e.action, e.actor, e.revision) for e in trail] == [
        ("approve", "Ana", 1),
        ("approve", "Ben", 2),
    ]
    assert all(SECRET not in e.detail for e in trail)


def test_an_approval_without_a_snapshot_reads_back_empty(store: Store):
    record = Approval("r1", "a" * 64, "Ana", T0, "queue/r1.json", ("x",))
    approval_id = store.record_approval(record)
    fetched = store.approval(approval_id)
    assert fetched == Approval(**{**record.__dict__, "id": approval_id})
    assert (fetched.posts, fetched.revision, fetched.comment) == ((), None, "")


def test_rejections_are_kept_in_order(store: Store):
    register_secret(SECRET)
    store.record_rejection(Rejection("r1", 1, "Ana", T0, f"typo {SECRET}"))
    store.record_rejection(Rejection("r1", 2, "Ben", T0 + timedelta(minutes=1), "tone"))
    store.record_rejection(Rejection("r2", 1, "Ana", T0, "no"))

    found = store.rejections("r1")
    assert [(r.revision, r.by, r.at) for r in found] == [
        (1, "Ana", T0),
        (2, "Ben", T0 + timedelta(minutes=1)),
    ]
    assert SECRET not in found[0].reason
    assert found[1] == Rejection("r1", 2, "Ben", T0 + timedelta(minutes=1), "tone")
    assert store.rejections("r3") == []
    assert [e.action for e in store.audit_trail("r1")] == ["reject", "reject"]


def test_withdrawals_cover_their_network_or_all(store: Store):
    everything = Withdrawal("r1", ALL_NETWORKS, "withdraw", "Ana", T0, "embargo")
    retract = Withdrawal("r2", "x", "retract", "Ben", T0 + timedelta(minutes=1), "error")
    store.record_withdrawal(everything)
    store.record_withdrawal(retract)

    assert store.withdrawals("r1") == [everything]
    assert store.withdrawals() == [everything, retract]
    assert store.withdrawals("r3") == []
    assert everything.covers("mastodon") and retract.covers("x") and not retract.covers("bluesky")
    [entry] = store.audit_trail("r1")
    assert (entry.action, entry.network, entry.detail) == ("withdraw", None, "embargo")
    [entry] = store.audit_trail("r2")
    assert (entry.action, entry.network) == ("retract", "x")


def test_the_audit_trail_is_append_only_in_the_order_written(store: Store):
    register_secret(SECRET)
    # Times out of order on purpose: the trail is in the order things were written.
    store.audit("resolve", actor="Ana", now=T0 + timedelta(hours=2), release_id="r1", network="x")
    store.audit("retry", actor="Ben", now=T0, release_id="r1", revision=3, detail=f"k={SECRET}")
    store.audit("networks", actor="cron", now=T0 + timedelta(hours=1))

    trail = store.audit_trail()
    assert [e.action for e in trail] == ["resolve", "retry", "networks"]
    assert [e.id for e in trail] == sorted(e.id for e in trail)
    assert len({e.id for e in trail}) == 3
    assert [e.action for e in store.audit_trail("r1")] == ["resolve", "retry"]
    retry = trail[1]
    assert isinstance(retry, AuditEntry)
    assert (retry.at, retry.actor, retry.revision, retry.network) == (T0, "Ben", 3, None)
    assert SECRET not in retry.detail
    assert retry.as_dict()["release"] == "r1"
    assert trail[2].release_id is None


# -- deliveries ---------------------------------------------------------------------------


def test_a_delivery_is_created_once_per_release_and_network(store: Store):
    approval = approved(store)
    x_post = approval.post_for("x")
    assert x_post is not None
    later = T0 + timedelta(days=1)
    assert store.create_delivery(approval, x_post, key="k1", not_before=later, now=T0)
    assert not store.create_delivery(approval, x_post, key="k2", not_before=None, now=later)
    newer = approved(store, revision=2)
    newer_post = newer.post_for("x")
    assert newer_post is not None
    assert not store.create_delivery(newer, newer_post, key="k3", not_before=None, now=later)

    [delivery] = store.deliveries()
    assert (delivery.release_id, delivery.network, delivery.status) == (
        "r1",
        "x",
        DeliveryStatus.PENDING,
    )
    assert (delivery.idempotency_key, delivery.approval_id, delivery.revision) == (
        "k1",
        approval.id,
        1,
    )
    assert delivery.post == x_post and delivery.text == x_post.text
    assert (delivery.not_before, delivery.created_at, delivery.updated_at) == (later, T0, T0)
    assert (delivery.approved_by, delivery.approved_at, delivery.attempts) == ("Ana", T0, 0)
    assert delivery.content_hash == approval.content_hash


def test_deliveries_filter_and_list_newest_first(store: Store):
    scheduled(store, approved(store, "r1"), T0)
    scheduled(store, approved(store, "r2", ("x",)), T0 + timedelta(minutes=1))
    x1 = claimed(store, "r1", "x")
    store.finish(x1.id, DeliveryStatus.POSTED, T0 + timedelta(minutes=2), expect=x1.status)

    newest_first = [(d.release_id, d.network) for d in store.deliveries()]
    assert newest_first[0] == ("r1", "x")
    assert sorted(newest_first) == [("r1", "facebook"), ("r1", "x"), ("r2", "x")]
    assert {d.release_id for d in store.deliveries(network="x")} == {"r1", "r2"}
    assert [
        d.network for d in store.deliveries(release_id="r1", status=DeliveryStatus.PENDING)
    ] == ["facebook"]
    assert [d.release_id for d in store.deliveries(since=T0 + timedelta(minutes=1))] == ["r1", "r2"]
    assert len(store.deliveries(limit=1)) == 1
    assert store.get("r1", "bluesky") is None


def test_posted_under_retraction_finds_only_posted_deliveries_of_retracted_releases(
    store: Store,
):
    def posted(release_id: str, network: str) -> None:
        sending = claimed(store, release_id, network)
        store.finish(sending.id, DeliveryStatus.POSTED, T0, expect=sending.status)

    for release_id in ("r1", "r2", "r3", "r4"):
        scheduled(store, approved(store, release_id))
        posted(release_id, "x")
    assert store.posted_under_retraction() == []

    store.record_withdrawal(Withdrawal("r1", "x", "retract", "Ana", T0, "wrong figure"))
    store.record_withdrawal(Withdrawal("r2", ALL_NETWORKS, "withdraw", "Ana", T0, "embargo"))
    store.record_withdrawal(Withdrawal("r3", "facebook", "retract", "Ben", T0, ""))
    store.record_withdrawal(Withdrawal("r3", ALL_NETWORKS, "retract", "Ben", T0, ""))
    # Posted deliveries of r1 and r3, each once, whichever networks the retractions
    # name (the caller asks which they cover); r1's pending Facebook post is not one.
    found = store.posted_under_retraction()
    assert [(d.release_id, d.network, d.status) for d in found] == [
        ("r1", "x", DeliveryStatus.POSTED),
        ("r3", "x", DeliveryStatus.POSTED),
    ]
    retracted = store.get("r1", "x")
    assert retracted is not None
    store.transition(retracted, DeliveryStatus.RETRACTED, T0 + timedelta(minutes=1))
    assert [d.release_id for d in store.posted_under_retraction()] == ["r3"]


def test_due_honours_schedule_and_backoff_oldest_approval_first(store: Store):
    late = approved(store, "r-late", ("x",), at=T0 + timedelta(minutes=5))
    early = approved(store, "r-early", ("x",), at=T0)
    waiting = approved(store, "r-wait", ("x",), at=T0)
    for approval, not_before in ((late, None), (early, None), (waiting, T0 + timedelta(hours=1))):
        store.create_delivery(
            approval, approval.posts[0], key=approval.release_id, not_before=not_before, now=T0
        )

    assert [d.release_id for d in store.due("x", T0)] == ["r-early", "r-late"]
    assert [d.release_id for d in store.due("x", T0 + timedelta(hours=1))] == [
        "r-early",
        "r-wait",
        "r-late",
    ]
    assert store.due("facebook", T0) == []
    busy = claimed(store, "r-early", "x")
    store.finish(
        busy.id,
        DeliveryStatus.PENDING,
        T0,
        expect=DeliveryStatus.SENDING,
        error="503",
        next_attempt_at=T0 + timedelta(minutes=2),
    )
    assert [d.release_id for d in store.due("x", T0 + timedelta(minutes=1))] == ["r-late"]
    assert "r-early" in [d.release_id for d in store.due("x", T0 + timedelta(minutes=2))]


def test_rebase_is_compare_and_set(store: Store):
    first = approved(store, networks=("x",))
    [delivery] = scheduled(store, first)
    second = approved(store, networks=("x",), revision=2, by="Ben")
    new_post = second.post_for("x")
    assert new_post is not None

    stale = Delivery(**{**delivery.__dict__, "approval_id": 999})
    assert not store.rebase(stale, second, new_post, key="k2", not_before=None, now=T0)
    wrong_status = Delivery(**{**delivery.__dict__, "status": DeliveryStatus.UNKNOWN})
    assert not store.rebase(wrong_status, second, new_post, key="k2", not_before=None, now=T0)
    assert store.get("r1", "x") == delivery

    later = T0 + timedelta(minutes=3)
    assert store.rebase(delivery, second, new_post, key="k2", not_before=later, now=later)
    moved = store.get("r1", "x")
    assert moved is not None
    assert (moved.approval_id, moved.revision, moved.idempotency_key) == (second.id, 2, "k2")
    assert (moved.post, moved.text, moved.approved_by) == (new_post, new_post.text, "Ben")
    assert (moved.status, moved.attempts, moved.not_before, moved.updated_at) == (
        DeliveryStatus.PENDING,
        0,
        later,
        later,
    )
    # The row moved on: the same picture of it no longer matches.
    assert not store.rebase(delivery, second, new_post, key="k3", not_before=None, now=later)


def test_rebase_tells_a_delivery_without_an_approval_from_one_with(store: Store):
    """A delivery from 0.1.0 has no approval row: only a picture that says so matches it."""
    first = approved(store, networks=("x",))
    old_post = first.post_for("x")
    assert old_post is not None
    store.create_delivery(replace(first, id=None), old_post, key="k1", not_before=None, now=T0)
    delivery = store.get("r1", "x")
    assert delivery is not None and delivery.approval_id is None
    second = approved(store, networks=("x",), revision=2, by="Ben")
    new_post = second.post_for("x")
    assert new_post is not None

    with_approval = replace(delivery, approval_id=first.id)
    assert not store.rebase(with_approval, second, new_post, key="k2", not_before=None, now=T0)
    assert store.rebase(delivery, second, new_post, key="k2", not_before=None, now=T0)
    moved = store.get("r1", "x")
    assert moved is not None and moved.approval_id == second.id
    # Once it has one, the picture without an approval no longer matches.
    assert not store.rebase(delivery, second, new_post, key="k3", not_before=None, now=T0)


def test_transition_is_compare_and_set(store: Store):
    register_secret(SECRET)
    [delivery] = scheduled(store, approved(store, networks=("x",)))
    later = T0 + timedelta(minutes=1)
    assert store.transition(delivery, DeliveryStatus.WITHDRAWN, later, error=f"by Ana {SECRET}")
    done = store.get("r1", "x")
    assert done is not None
    assert (done.status, done.updated_at) == (DeliveryStatus.WITHDRAWN, later)
    assert done.error is not None and SECRET not in done.error
    # `delivery` still says pending: someone else changed it, so nothing happens.
    assert not store.transition(delivery, DeliveryStatus.FAILED, later)
    assert store.get("r1", "x") == done


def test_claim_marks_sending_once_and_counts_an_attempt(store: Store):
    [delivery] = scheduled(store, approved(store, networks=("x",)))
    at = T0 + timedelta(seconds=1)

    got = store.claim(delivery.id, "Regions meet", at)

    assert got is not None
    assert (got.status, got.attempts, got.text, got.sent_at, got.updated_at) == (
        DeliveryStatus.SENDING,
        1,
        "Regions meet",
        at,
        at,
    )
    assert got == store.get("r1", "x")
    assert store.claim(delivery.id, "Regions meet", at) is None
    assert store.due("x", at) == []
    assert store.claim(10_000, "nothing", at) is None


def test_nothing_is_claimed_on_a_paused_network(store: Store):
    x, facebook = scheduled(store, approved(store, networks=("x", "facebook")))
    store.pause(Pause("x", "Ana", T0, "crisis"))
    assert store.claim(x.id, "text", T0) is None
    assert store.get("r1", "x") == x  # untouched: still pending, no attempt counted
    assert store.claim(facebook.id, "text", T0) is not None

    store.pause(Pause(ALL_NETWORKS, "Ana", T0, "crisis"))
    store.resume("x")
    assert store.claim(x.id, "text", T0) is None
    store.resume(ALL_NETWORKS)
    got = store.claim(x.id, "text", T0)
    assert got is not None and got.attempts == 1


@pytest.mark.parametrize("withdrawn_on", ["x", ALL_NETWORKS])
def test_nothing_is_claimed_for_a_withdrawn_release(store: Store, withdrawn_on: str):
    x, facebook = scheduled(store, approved(store, networks=("x", "facebook")))
    store.record_withdrawal(Withdrawal("r1", withdrawn_on, "withdraw", "Ana", T0, "wrong date"))
    assert store.claim(x.id, "text", T0) is None
    assert store.get("r1", "x") == x
    assert (store.claim(facebook.id, "text", T0) is None) is (withdrawn_on == ALL_NETWORKS)


def test_nothing_is_claimed_of_a_revision_edited_since(store: Store):
    store.record_revision(release(), source="queue/r1.json", author=None, now=T0)
    [x] = scheduled(store, approved(store, networks=("x",)))
    store.record_revision(release(title="Regions meet in Plovdiv"), source="q", author=None, now=T0)
    assert store.claim(x.id, "text", T0) is None
    assert store.get("r1", "x") == x  # untouched: still pending, no attempt counted


def test_nothing_is_claimed_of_a_rejected_revision(store: Store):
    store.record_revision(release(), source="queue/r1.json", author=None, now=T0)
    x, facebook = scheduled(store, approved(store))
    assert store.claim(facebook.id, "text", T0) is not None
    store.record_rejection(Rejection("r1", 1, "Ben", T0, "wrong figures"))
    assert store.claim(x.id, "text", T0) is None
    assert store.get("r1", "x") == x


def test_two_hosts_claiming_the_same_delivery_exactly_one_wins(store: Store, other: Store):
    approval = approved(store, networks=("x", "facebook", "mastodon", "bluesky", "linkedin"))
    ids = [d.id for d in scheduled(store, approval)]
    for delivery_id in ids:
        barrier = threading.Barrier(2)
        wins: list[Delivery | None] = []

        def grab(which: Store, delivery_id: int = delivery_id, barrier=barrier, wins=wins) -> None:
            barrier.wait()
            wins.append(which.claim(delivery_id, "text", T0))

        threads = [threading.Thread(target=grab, args=(s,)) for s in (store, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 2
        assert sum(win is not None for win in wins) == 1
    assert all(d.attempts == 1 for d in store.deliveries())
    assert store.counts()[DeliveryStatus.SENDING] == len(ids)


def test_finish_with_the_wrong_expectation_changes_nothing(store: Store):
    scheduled(store, approved(store, networks=("x",)))
    sending = claimed(store)

    assert not store.finish(
        sending.id,
        DeliveryStatus.POSTED,
        T0 + timedelta(seconds=2),
        expect=DeliveryStatus.PENDING,
        receipt=Receipt("42", "https://x.example/42"),
    )
    assert store.get("r1", "x") == sending
    assert store.first_uncertain_at(sending.id) is None


def test_finish_records_the_receipt_and_the_attempt(store: Store):
    scheduled(store, approved(store, networks=("x",)))
    sending = claimed(store)
    done_at = T0 + timedelta(seconds=2)

    assert store.finish(
        sending.id,
        DeliveryStatus.POSTED,
        done_at,
        expect=DeliveryStatus.SENDING,
        receipt=Receipt("42", "https://x.example/42"),
    )
    done = store.get("r1", "x")
    assert done is not None
    assert (done.status, done.remote_id, done.url, done.posted_at, done.attempts) == (
        DeliveryStatus.POSTED,
        "42",
        "https://x.example/42",
        done_at,
        1,
    )
    assert done.next_attempt_at is None and done.error is None
    assert not store.uncertain(done.id)
    # It is no longer sending: a second finish (a late duplicate) loses.
    assert not store.finish(sending.id, DeliveryStatus.FAILED, done_at, expect=sending.status)


def test_finish_can_take_the_attempt_back_and_stores_errors_redacted(store: Store):
    register_secret(SECRET)
    scheduled(store, approved(store, networks=("x",)))
    sending = claimed(store)
    retry_at = T0 + timedelta(minutes=5)

    assert store.finish(
        sending.id,
        DeliveryStatus.PENDING,
        T0 + timedelta(seconds=2),
        expect=DeliveryStatus.SENDING,
        error=f"401 for token {SECRET}",
        next_attempt_at=retry_at,
        count_attempt=False,
    )
    back = store.get("r1", "x")
    assert back is not None
    assert (back.status, back.attempts, back.next_attempt_at) == (
        DeliveryStatus.PENDING,
        0,
        retry_at,
    )
    assert back.error is not None and SECRET not in back.error and "401" in back.error
    assert back.posted_at is None


def test_an_uncertain_attempt_is_remembered_until_settled(store: Store):
    scheduled(store, approved(store, networks=("x",)))
    sending = claimed(store)
    assert not store.uncertain(sending.id)
    assert store.finish(
        sending.id,
        DeliveryStatus.UNKNOWN,
        T0 + timedelta(seconds=30),
        expect=DeliveryStatus.SENDING,
        error="timeout",
        uncertain=True,
    )
    assert store.uncertain(sending.id) and store.uncertain(sending.id, unsettled_only=True)
    assert store.first_uncertain_at(sending.id) == sending.sent_at

    # Looked for on the network and not found: settled, but still an attempt that may have posted
    # under this key (the key window counts from it).
    assert store.finish(
        sending.id,
        DeliveryStatus.PENDING,
        T0 + timedelta(minutes=1),
        expect=DeliveryStatus.UNKNOWN,
        settled=True,
        count_attempt=False,
    )
    assert not store.uncertain(sending.id, unsettled_only=True)
    assert store.uncertain(sending.id)
    assert store.first_uncertain_at(sending.id) == sending.sent_at
    assert store.first_uncertain_at(sending.id, unsettled_only=True) is None


def test_rebase_supersedes_settled_attempts_of_the_old_revision(store: Store):
    first = approved(store, networks=("x",))
    scheduled(store, first)
    sending = claimed(store)
    store.finish(sending.id, DeliveryStatus.UNKNOWN, T0, expect=sending.status, uncertain=True)
    store.finish(
        sending.id, DeliveryStatus.PENDING, T0, expect=DeliveryStatus.UNKNOWN, settled=True
    )
    pending = store.get("r1", "x")
    assert pending is not None and store.uncertain(pending.id)

    second = approved(store, networks=("x",), revision=2)
    assert store.rebase(pending, second, second.posts[0], key="k2", not_before=None, now=T0)
    assert not store.uncertain(pending.id)


def test_requeue_puts_failed_deliveries_back(store: Store):
    scheduled(store, approved(store, networks=("x", "facebook", "mastodon")))
    for network in ("x", "facebook"):
        sending = claimed(store, "r1", network)
        store.finish(sending.id, DeliveryStatus.FAILED, T0, expect=sending.status, error="400")
    later = T0 + timedelta(hours=1)

    assert store.requeue("r1", "x", later) == 1
    x = store.get("r1", "x")
    assert x is not None
    assert (x.status, x.attempts, x.error, x.updated_at) == (DeliveryStatus.PENDING, 0, None, later)
    assert store.requeue("r1", None, later) == 1
    assert store.requeue("r1", None, later) == 0
    assert store.requeue("r2", None, later) == 0


def test_resolve_is_compare_and_set_on_the_status(store: Store):
    scheduled(store, approved(store, networks=("x", "facebook", "mastodon")))
    later = T0 + timedelta(hours=1)
    # Nothing to resolve on a pending delivery.
    assert store.resolve("r1", "x", later, url="https://x.example/1") is None
    assert store.resolve("r1", "x", later, url=None) is None

    x = claimed(store, "r1", "x")
    store.finish(x.id, DeliveryStatus.UNKNOWN, T0, expect=x.status, uncertain=True)
    posted = store.resolve("r1", "x", later, url="https://x.example/1")
    assert posted is not None
    assert (posted.status, posted.url, posted.posted_at) == (
        DeliveryStatus.POSTED,
        "https://x.example/1",
        later,
    )
    assert store.resolve("r1", "x", later, url=None) is None

    fb = claimed(store, "r1", "facebook")
    store.finish(fb.id, DeliveryStatus.UNKNOWN, T0, expect=fb.status, uncertain=True)
    back = store.resolve("r1", "facebook", later, url=None)
    assert back is not None and back.status is DeliveryStatus.PENDING
    assert not store.uncertain(fb.id, unsettled_only=True) and store.uncertain(fb.id)

    md = claimed(store, "r1", "mastodon")
    store.finish(md.id, DeliveryStatus.FAILED, T0, expect=md.status, error="400")
    assert store.resolve("r1", "mastodon", later, url=None) is None
    failed_then_found = store.resolve("r1", "mastodon", later, url="https://m.example/@a/2")
    assert failed_then_found is not None and failed_then_found.status is DeliveryStatus.POSTED


def test_counts_cover_every_status(store: Store):
    scheduled(store, approved(store, networks=("x", "facebook", "mastodon")))
    sending = claimed(store, "r1", "x")
    store.finish(sending.id, DeliveryStatus.POSTED, T0, expect=sending.status)
    claimed(store, "r1", "facebook")

    counts = store.counts()
    assert set(counts) == set(DeliveryStatus)
    assert (counts[DeliveryStatus.POSTED], counts[DeliveryStatus.SENDING]) == (1, 1)
    assert counts[DeliveryStatus.PENDING] == 1
    assert sum(counts.values()) == 3


def test_pending_counts_are_per_network_due_or_not(store: Store):
    assert store.pending_counts() == {}
    scheduled(store, approved(store, networks=("x", "facebook", "mastodon")))
    later = approved(store, "r2", networks=("x",))
    store.create_delivery(
        later,
        later.posts[0],
        key=delivery_key("r2", 1, "x"),
        not_before=T0 + timedelta(days=1),  # scheduled: pending, not yet due
        now=T0,
    )
    sending = claimed(store, "r1", "facebook")
    mastodon = claimed(store, "r1", "mastodon")
    store.finish(mastodon.id, DeliveryStatus.POSTED, T0, expect=mastodon.status)

    assert store.pending_counts() == {"x": 2}
    store.finish(sending.id, DeliveryStatus.PENDING, T0, expect=sending.status)
    assert store.pending_counts() == {"x": 2, "facebook": 1}


# -- holds, pauses, key-value, the queue scan cache -----------------------------------------


def test_a_hold_is_kept_per_network_with_its_reason_redacted(store: Store):
    register_secret(SECRET)
    assert store.hold("x") is None
    store.set_hold("x", T0 + timedelta(minutes=15), f"429 for {SECRET}")
    until, reason = store.hold("x") or (None, "")
    assert until == T0 + timedelta(minutes=15)
    assert SECRET not in reason and "429" in reason
    store.set_hold("x", T0 + timedelta(hours=1), "again")
    assert store.hold("x") == (T0 + timedelta(hours=1), "again")
    assert store.hold("facebook") is None


def test_pauses_are_set_replaced_and_lifted(store: Store):
    register_secret(SECRET)
    store.pause(Pause("x", "Ana", T0, f"crisis {SECRET}"))
    store.pause(Pause(ALL_NETWORKS, "Ben", T0 + timedelta(minutes=1), "all stop"))
    store.pause(Pause("x", "Cem", T0 + timedelta(minutes=2), "still"))

    pauses = store.pauses()
    assert pauses == {
        "x": Pause("x", "Cem", T0 + timedelta(minutes=2), "still"),
        ALL_NETWORKS: Pause(ALL_NETWORKS, "Ben", T0 + timedelta(minutes=1), "all stop"),
    }
    assert store.resume("x")
    assert not store.resume("x")
    assert list(store.pauses()) == [ALL_NETWORKS]
    trail = store.audit_trail()
    assert [e.action for e in trail] == ["pause", "pause", "pause"]
    assert SECRET not in trail[0].detail


def test_the_key_value_area(store: Store):
    assert store.get_value("session:bluesky") is None
    store.set_value("session:bluesky", '{"jwt": "a"}')
    store.set_value("session:bluesky", '{"jwt": "b"}')
    store.set_value("limits:mastodon", "500")
    store.set_value("limits:x", "")
    store.set_value("limitsXmastodon", "not a limit")

    assert store.get_value("session:bluesky") == '{"jwt": "b"}'
    assert store.get_value("limits:x") == ""
    assert list(store.entries("limits:").items()) == [("limits:mastodon", "500"), ("limits:x", "")]
    # A prefix is literal: `_` and `%` match only themselves.
    store.set_value("a_b", "1")
    store.set_value("axb", "2")
    store.set_value("a%c", "3")
    assert store.entries("a_") == {"a_b": "1"}
    assert store.entries("a%") == {"a%c": "3"}
    assert store.entries("nothing") == {}


def test_approved_images_are_kept_by_their_digest(store: Store, other: Store):
    import hashlib

    data = bytes(range(256)) * 40 + b"\x00\xff"  # every byte value, NULs included
    digest = hashlib.sha256(data).hexdigest()
    assert store.get_media(digest) is None
    store.put_media(digest, "image/jpeg", data)
    store.put_media(digest, "image/jpeg", data)  # approving the same image again is a no-op
    assert store.get_media(digest) == ("image/jpeg", data)
    assert other.get_media(digest) == ("image/jpeg", data)  # another process reads the same
    with pytest.raises(ValueError, match="not the SHA-256"):
        store.put_media("0" * 64, "image/png", data)
    assert store.get_media("0" * 64) is None


def test_the_queue_scan_cache(store: Store):
    one = QueueFile("queue/a.json", "1:2:3", "a", "h" * 64, T0, None)
    two = QueueFile("queue/b.json", "4:5:6", None, None, None, "queue/b.json: not JSON")
    store.remember_files([one, two], [])
    assert store.queue_files() == {one.path: one, two.path: two}

    changed = QueueFile("queue/a.json", "1:2:9", "a", "i" * 64, None, None)
    store.remember_files([changed], [two.path])
    assert store.queue_files() == {changed.path: changed}
    store.remember_files([], [])
    store.remember_files([], [changed.path])
    assert store.queue_files() == {}


# -- one drain at a time --------------------------------------------------------------------


def test_one_drain_at_a_time(store: Store, other: Store):
    with store.drain_lock(stale_after=3600):
        with pytest.raises(AlreadyRunning) as refused, other.drain_lock(stale_after=3600):
            pass
        assert not refused.value.stale
        assert "another drain" in str(refused.value)
        # The holder's own second attempt too.
        with pytest.raises(AlreadyRunning), store.drain_lock():
            pass
    with other.drain_lock():
        pass


def test_the_lock_is_released_when_the_drain_fails(store: Store, other: Store):
    with pytest.raises(RuntimeError), store.drain_lock():
        raise RuntimeError("the drain crashed")
    with other.drain_lock():
        pass


def test_a_lock_held_too_long_is_reported_as_stale(store: Store, other: Store):
    with store.drain_lock():
        time.sleep(0.05)
        with pytest.raises(AlreadyRunning) as refused, other.drain_lock(stale_after=0.01):
            pass
    assert refused.value.stale
    assert "far longer than its time budget" in str(refused.value)


HOLDER = """
import sys, time
from socialbot.store import open_store
store = open_store(sys.argv[1])
with store.drain_lock():
    print("held", flush=True)
    time.sleep(120)
"""


def test_the_lock_dies_with_its_holder(database_url: str, store: Store):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, database_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning) as refused, store.drain_lock():
            pass
        assert str(holder.pid) in str(refused.value)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    deadline = time.monotonic() + 20  # the server notices the closed connection at once
    while True:
        try:
            with store.drain_lock():
                break
        except AlreadyRunning:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- upgrades, and what only PostgreSQL has -------------------------------------------------


def test_a_0_1_0_sqlite_database_is_upgraded_in_place(tmp_path: Path):
    from socialbot.store.sqlite import LATER_INDEXES, LEGACY_KEY, MIGRATIONS

    path = tmp_path / "socialbot.db"
    old = sqlite3.connect(path)
    for statement in (*MIGRATIONS[1], *LATER_INDEXES):
        old.execute(statement)
    stamp = "2025-06-01T10:00:00.000000+00:00"
    old.execute(
        "INSERT INTO approvals (release_id, content_hash, approved_by, approved_at, source,"
        " networks) VALUES ('r1', ?, 'Ana', ?, 'queue/r1.json', 'x,facebook')",
        ("a" * 64, stamp),
    )
    old.execute("INSERT INTO schedules (release_id, approval_id) VALUES ('r1', 1)")
    for network, status, remote in (("x", "posted", "1"), ("facebook", "pending", None)):
        old.execute(
            "INSERT INTO deliveries (release_id, network, status, content_hash, approved_by,"
            " approved_at, idempotency_key, attempts, remote_id, created_at, updated_at)"
            " VALUES ('r1', ?, ?, ?, 'Ana', ?, ?, ?, ?, ?, ?)",
            (
                network,
                status,
                "a" * 64,
                stamp,
                f"key-{network}",
                int(bool(remote)),
                remote,
                *[stamp] * 2,
            ),
        )
    old.execute(
        "INSERT INTO attempts (delivery_id, started_at, finished_at, outcome)"
        " VALUES (1, ?, ?, 'posted')",
        (stamp, stamp),
    )
    old.execute("INSERT INTO queue_files (path, signature) VALUES ('queue/r1.json', '1:2:3')")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    store = SQLiteStore(str(path))
    try:
        assert store.migrate() == SQLITE_SCHEMA_VERSION  # already done on open
        [approval] = store.approvals("r1")
        assert (approval.approved_by, approval.networks, approval.revision) == (
            "Ana",
            ("x", "facebook"),
            None,
        )
        assert (approval.posts, approval.comment) == ((), "")
        x, facebook = store.get("r1", "x"), store.get("r1", "facebook")
        assert x is not None and facebook is not None
        assert (x.status, x.remote_id, x.attempts, x.idempotency_key) == (
            DeliveryStatus.POSTED,
            "1",
            1,
            "key-x",
        )
        assert (facebook.post, facebook.revision, facebook.approval_id) == (None, None, None)
        assert store.queue_files() == {}  # read again, so the queue's releases get revisions
        assert store.release_ids() == []
        assert store.get_value(LEGACY_KEY) == "pending"  # the drain adopts its approvals
        # And every new table works on the upgraded file.
        store.set_value("k", "v")
        store.pause(Pause("x", "Ana", T0, "test"))
        assert store.record_revision(release(), source="q", author=None, now=T0) is not None
    finally:
        store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SQLITE_SCHEMA_VERSION


def test_postgres_migrations_run_once_and_are_numbered(postgres_url: str):
    import psycopg

    from socialbot.store.postgres import SCHEMA_VERSION, PostgresStore

    stores: list[PostgresStore] = []
    barrier = threading.Barrier(3)

    def open_one() -> None:
        barrier.wait()
        stores.append(PostgresStore(postgres_url))

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(stores) == 3
        assert all(s.schema_version() == SCHEMA_VERSION for s in stores)
        assert stores[0].migrate() == SCHEMA_VERSION
        with psycopg.connect(postgres_url) as conn:
            versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
            kinds = conn.execute(
                "SELECT data_type FROM information_schema.columns"
                " WHERE table_name = 'deliveries' AND column_name = 'updated_at'"
            ).fetchone()
        assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))
        assert kinds == ("timestamp with time zone",)
    finally:
        for made in stores:
            made.close()


def test_a_version_1_postgres_database_is_upgraded_in_place(postgres_url: str):
    import psycopg

    from socialbot.store.postgres import MIGRATIONS, PostgresStore
    from socialbot.store.postgres import SCHEMA_VERSION as PG_SCHEMA_VERSION

    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.transaction():
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ)"
        )
        conn.execute("INSERT INTO schema_version VALUES (1, now())")
        conn.execute(
            "INSERT INTO deliveries (release_id, network, status, content_hash, approved_by,"
            " approved_at, idempotency_key, created_at, updated_at)"
            " VALUES ('r1', 'x', 'pending', 'h', 'Ana', %s, 'key-x', %s, %s)",
            (T0, T0, T0),
        )
    store = PostgresStore(postgres_url)
    try:
        assert store.schema_version() == PG_SCHEMA_VERSION
        old = store.get("r1", "x")
        assert old is not None
        assert (old.idempotency_key, old.approved_at, old.post, old.revision) == (
            "key-x",
            T0,
            None,
            None,
        )
        store.set_value("k", "v")
        assert store.entries("") == {"k": "v"}
    finally:
        store.close()


def test_postgres_indexes_agree_with_their_tables(postgres_url: str):
    from tests.postgres import integrity_check

    store = open_store(postgres_url)
    try:
        scheduled(store, approved(store, networks=("x", "facebook", "mastodon")))
        sending = claimed(store)
        store.finish(sending.id, DeliveryStatus.POSTED, T0, expect=sending.status)
        store.record_revision(release(), source="q", author=None, now=T0)
    finally:
        store.close()
    assert integrity_check(postgres_url) == "ok"


def test_postgres_keeps_no_state_in_local_files(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    store = open_store(postgres_url)
    try:
        with store.drain_lock():
            store.set_value("session:bluesky", "{}")
            store.remember_files([QueueFile("q/a.json", "s", "a", None, None, None)], [])
            scheduled(store, approved(store, networks=("x",)))
    finally:
        store.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://socialbot:{password}@127.0.0.1:1/socialbot",
        "postgresql://socialbot:{password}@[::1/socialbot",
        "postgres://127.0.0.1:1/socialbot?password={password}",
    ],
)
def test_a_database_that_cannot_be_reached_is_one_sentence_without_the_password(url: str):
    password = "pw-that-must-not-show"
    with pytest.raises(ConfigurationError) as refused:
        open_store(url.format(password=password))
    message = str(refused.value)
    assert message.startswith("SOCIALBOT_DATABASE_URL: cannot connect to ")
    assert password not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "lose_the_lock",
    [
        # The lock's session ends; this waits until the server has released its lock.
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
        " WHERE application_name LIKE 'socialbot drain %%'",
        # The lock's session (its pid) stays and the lease becomes another drain's: the
        # server reuses process ids, and a drain that took the lock over on a new session
        # with this drain's old pid writes its own lease first.
        "UPDATE drain_lease SET holder = '4242 on host-b', since = now()",
    ],
    ids=["session-ended", "pid-came-back"],
)
def test_a_postgres_drain_that_lost_its_lock_claims_nothing_more(
    postgres_url: str, lose_the_lock: str
):
    import psycopg

    from socialbot.errors import StoreError

    store = open_store(postgres_url)
    try:
        first, second = scheduled(store, approved(store))
        with store.drain_lock():
            assert store.claim(first.id, "text", T0) is not None
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(lose_the_lock)
            with pytest.raises(StoreError) as lost:
                store.claim(second.id, "text", T0)
            assert "lost its lock" in str(lost.value)
            assert store.get("r1", second.network) == second
        # Outside the lock the store works as before, and the lock can be taken again.
        with store.drain_lock():
            assert store.claim(second.id, "text", T0) is not None
    finally:
        store.close()


def test_the_cli_approves_and_drains_on_each_database(
    env: Path, sandbox, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    from tests.helpers import run, write_release

    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", database_url)
    write_release(env / "queue", "r1.json")
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    first = run("drain")
    assert (first.exit_code, first.output) == (0, "")
    networks = sorted(p["network"] for p in sandbox.posts())
    assert len(networks) == len(set(networks)) >= 5
    assert run("drain").exit_code == 0
    assert sorted(p["network"] for p in sandbox.posts()) == networks
    store = open_store(database_url)
    try:
        assert all(d.status is DeliveryStatus.POSTED for d in store.deliveries())
        assert sorted(d.network for d in store.deliveries()) == networks
    finally:
        store.close()
    if database_url.startswith("postgresql"):  # no lock file, no session file, nothing local
        assert [p.name for p in env.iterdir()] == ["queue"]

"""The posting log in SQLite: approvals, deliveries, attempts, and the queries the CLI reads."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from socialbot.models import Approval, DeliveryStatus, Post, Receipt
from socialbot.store import SQLiteStore, delivery_key

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "socialbot.db")


@pytest.fixture
def store(db: str) -> Iterator[SQLiteStore]:
    made = SQLiteStore(db)
    yield made
    made.close()


def approval(
    release: str = "r1",
    networks: tuple[str, ...] = ("x", "facebook"),
    content_hash: str = "a" * 64,
    by: str = "Ana",
    at: datetime = T0,
) -> Approval:
    return Approval(
        release_id=release,
        content_hash=content_hash,
        approved_by=by,
        approved_at=at,
        source=f"queue/{release}.json",
        networks=networks,
        revision=1,
        posts=tuple(post(network, release) for network in networks),
    )


def post(network: str, release: str = "r1") -> Post:
    return Post(network, f"Text of {release}", "https://cor.europa.eu/", 16, 280, "en")


def approved(store: SQLiteStore, **fields: object) -> Approval:
    record = approval(**fields)  # type: ignore[arg-type]
    return Approval(**{**record.__dict__, "id": store.record_approval(record)})


def schedule(store: SQLiteStore, record: Approval, now: datetime) -> None:
    """Create the record's deliveries, as the approval rules do once it is in force."""
    for item in record.posts:
        store.create_delivery(
            record,
            item,
            key=delivery_key(record.release_id, record.revision or 1, item.network),
            not_before=None,
            now=now,
        )


def test_the_database_is_wal_full_sync_and_owner_only(store: SQLiteStore, db: str):
    store.record_approval(approval())
    conn = store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    assert store.integrity_check() == "ok"


def test_approvals_are_kept_and_the_latest_wins(store: SQLiteStore):
    first = approved(store, by="Ana", at=T0)
    second = approved(store, by="Ben", at=T0 + timedelta(hours=1), content_hash="b" * 64)
    approved(store, release="r2", networks=("x",))

    assert [a.approved_by for a in store.approvals("r1")] == ["Ana", "Ben"]
    assert store.approvals("r1") == [first, second]
    latest = store.latest_approvals()
    assert latest["r1"] == second
    assert latest["r2"].networks == ("x",)
    assert len(store.approvals()) == 3


def test_create_delivery_makes_one_delivery_per_network_once(store: SQLiteStore):
    record = approved(store)
    schedule(store, record, T0)
    schedule(store, record, T0 + timedelta(minutes=5))

    rows = store.deliveries()
    assert sorted(d.network for d in rows) == ["facebook", "x"]
    assert all(d.status is DeliveryStatus.PENDING for d in rows)
    assert all(d.approved_by == "Ana" and d.content_hash == "a" * 64 for d in rows)
    assert all(d.approval_id == record.id and d.revision == 1 for d in rows)
    assert {d.idempotency_key for d in rows} == {
        delivery_key("r1", 1, "x"),
        delivery_key("r1", 1, "facebook"),
    }
    assert all(d.post == record.post_for(d.network) for d in rows)


def test_keys_are_derived_from_release_revision_and_network():
    assert delivery_key("r1", 1, "x") == delivery_key("r1", 1, "x")
    assert (
        len(
            {
                delivery_key("r1", 1, "x"),
                delivery_key("r1", 2, "x"),
                delivery_key("r2", 1, "x"),
                delivery_key("r1", 1, "mastodon"),
            }
        )
        == 4
    )
    assert all(c in "0123456789abcdef" for c in delivery_key("r1", 1, "x"))


def test_rebase_moves_only_a_delivery_still_as_seen(store: SQLiteStore):
    schedule(store, approved(store), T0)
    x = store.get("r1", "x")
    assert x is not None
    claimed = store.claim(x.id, "text", T0)
    assert claimed is not None
    store.finish(
        x.id,
        DeliveryStatus.POSTED,
        T0,
        expect=DeliveryStatus.SENDING,
        receipt=Receipt("1", "https://x.com/i/1"),
    )
    newer = approved(store, by="Ben", content_hash="b" * 64)
    newer = Approval(**{**newer.__dict__, "revision": 2})

    pending = store.get("r1", "facebook")
    assert pending is not None
    assert not store.rebase(x, newer, post("x"), key="k", not_before=None, now=T0)  # stale view
    assert store.rebase(pending, newer, post("facebook"), key="k2", not_before=None, now=T0)
    assert not store.rebase(pending, newer, post("facebook"), key="k3", not_before=None, now=T0)

    posted, moved = store.get("r1", "x"), store.get("r1", "facebook")
    assert posted is not None and moved is not None
    assert (posted.approved_by, posted.content_hash, posted.revision) == ("Ana", "a" * 64, 1)
    assert (moved.approved_by, moved.revision, moved.idempotency_key) == ("Ben", 2, "k2")


def test_finish_is_compare_and_set(store: SQLiteStore):
    schedule(store, approved(store, networks=("x",)), T0)
    [delivery] = store.due("x", T0)
    store.claim(delivery.id, "text", T0)
    store.finish(delivery.id, DeliveryStatus.UNKNOWN, T0, expect=DeliveryStatus.SENDING)
    # An operator settles it; a reconciliation that read it earlier must not overwrite that.
    assert store.resolve("r1", "x", T0, url="https://x.com/i/9") is not None
    assert not store.finish(
        delivery.id, DeliveryStatus.PENDING, T0, expect=DeliveryStatus.UNKNOWN, settled=True
    )
    current = store.get("r1", "x")
    assert current is not None and current.status is DeliveryStatus.POSTED


def test_claim_is_exclusive_and_counts_an_attempt(store: SQLiteStore):
    schedule(store, approved(store, networks=("x",)), T0)
    [delivery] = store.due("x", T0)

    claimed = store.claim(delivery.id, "Regions meet", T0 + timedelta(seconds=1))

    assert claimed is not None
    assert claimed.status is DeliveryStatus.SENDING
    assert (claimed.attempts, claimed.text) == (1, "Regions meet")
    assert claimed.sent_at == T0 + timedelta(seconds=1)
    assert store.claim(delivery.id, "Regions meet", T0) is None
    assert store.due("x", T0) == []


def test_finish_records_the_receipt(store: SQLiteStore):
    schedule(store, approved(store, networks=("x",)), T0)
    [delivery] = store.due("x", T0)
    store.claim(delivery.id, "text", T0)
    store.finish(
        delivery.id,
        DeliveryStatus.POSTED,
        T0 + timedelta(seconds=2),
        expect=DeliveryStatus.SENDING,
        receipt=Receipt("42", "u"),
    )
    done = store.get("r1", "x")
    assert done is not None
    assert (done.status, done.remote_id, done.url, done.attempts) == (
        DeliveryStatus.POSTED,
        "42",
        "u",
        1,
    )
    assert done.posted_at == T0 + timedelta(seconds=2)
    assert done.as_dict()["status"] == "posted"


def test_a_failed_attempt_waits_until_next_attempt_at(store: SQLiteStore):
    schedule(store, approved(store, networks=("x",)), T0)
    [delivery] = store.due("x", T0)
    store.claim(delivery.id, "text", T0)
    later = T0 + timedelta(minutes=2)
    store.finish(
        delivery.id,
        DeliveryStatus.PENDING,
        T0,
        expect=DeliveryStatus.SENDING,
        error="503 from X",
        next_attempt_at=later,
    )
    assert store.due("x", T0 + timedelta(minutes=1)) == []
    [due] = store.due("x", later)
    assert (due.error, due.attempts) == ("503 from X", 1)


def test_not_counting_an_attempt_takes_it_back(store: SQLiteStore):
    schedule(store, approved(store, networks=("x",)), T0)
    [delivery] = store.due("x", T0)
    store.claim(delivery.id, "text", T0)
    store.finish(
        delivery.id,
        DeliveryStatus.PENDING,
        T0,
        expect=DeliveryStatus.SENDING,
        error="bad token",
        count_attempt=False,
    )
    current = store.get("r1", "x")
    assert current is not None and current.attempts == 0


def test_an_uncertain_attempt_is_remembered(store: SQLiteStore, db: str):
    schedule(store, approved(store, networks=("x",)), T0)
    [delivery] = store.due("x", T0)
    store.claim(delivery.id, "text", T0)
    assert not store.uncertain(delivery.id)
    store.finish(
        delivery.id,
        DeliveryStatus.UNKNOWN,
        T0,
        expect=DeliveryStatus.SENDING,
        error="timeout",
        uncertain=True,
    )
    assert store.uncertain(delivery.id)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT outcome, error FROM attempts").fetchall()
    assert rows == [("unknown", "timeout")]


def test_deliveries_filters(store: SQLiteStore):
    schedule(store, approved(store, release="old", networks=("x", "facebook")), T0)
    schedule(store, approved(store, release="new", networks=("x",)), T0 + timedelta(days=2))
    old_x = store.get("old", "x")
    assert old_x is not None
    store.claim(old_x.id, "t", T0)
    store.finish(
        old_x.id,
        DeliveryStatus.FAILED,
        T0 + timedelta(hours=1),
        expect=DeliveryStatus.SENDING,
        error="refused",
    )

    assert {d.release_id for d in store.deliveries(release_id="old")} == {"old"}
    assert {d.release_id for d in store.deliveries(network="x")} == {"old", "new"}
    assert [d.network for d in store.deliveries(status=DeliveryStatus.FAILED)] == ["x"]
    recent = store.deliveries(since=T0 + timedelta(days=1))
    assert [(d.release_id, d.network) for d in recent] == [("new", "x")]
    newest = store.deliveries(limit=1)
    assert [(d.release_id, d.network) for d in newest] == [("new", "x")]
    assert len(store.deliveries()) == 3


def test_counts_cover_every_state(store: SQLiteStore):
    schedule(store, approved(store), T0)
    x = store.get("r1", "x")
    assert x is not None
    store.claim(x.id, "t", T0)
    counts = store.counts()
    assert set(counts) == set(DeliveryStatus)
    assert counts[DeliveryStatus.PENDING] == 1
    assert counts[DeliveryStatus.SENDING] == 1
    assert counts[DeliveryStatus.POSTED] == 0


def test_requeue_and_resolve(store: SQLiteStore):
    schedule(store, approved(store), T0)
    x, fb = store.get("r1", "x"), store.get("r1", "facebook")
    assert x is not None and fb is not None
    for delivery, status in ((x, DeliveryStatus.FAILED), (fb, DeliveryStatus.UNKNOWN)):
        store.claim(delivery.id, "t", T0)
        store.finish(delivery.id, status, T0, expect=DeliveryStatus.SENDING, error="trouble")

    assert store.requeue("r1", "facebook", T0) == 0
    assert store.requeue("r1", None, T0) == 1
    requeued = store.get("r1", "x")
    assert requeued is not None
    assert (requeued.status, requeued.attempts, requeued.error) == (
        DeliveryStatus.PENDING,
        0,
        None,
    )

    resolved = store.resolve("r1", "facebook", T0, url="https://www.facebook.com/1/posts/2")
    assert resolved is not None
    assert resolved.status is DeliveryStatus.POSTED
    assert resolved.url == "https://www.facebook.com/1/posts/2"
    assert store.resolve("r1", "facebook", T0, url=None) is None


def test_holds_outlive_the_store(store: SQLiteStore, db: str):
    assert store.hold("x") is None
    store.set_hold("x", T0 + timedelta(minutes=15), "429 from X")
    store.close()
    reopened = SQLiteStore(db)
    try:
        assert reopened.hold("x") == (T0 + timedelta(minutes=15), "429 from X")
    finally:
        reopened.close()


def test_an_in_memory_store_works_for_quick_checks():
    memory = SQLiteStore(":memory:")
    try:
        schedule(memory, approved(memory, networks=("x",)), T0)
        assert [d.network for d in memory.due("x", T0)] == ["x"]
    finally:
        memory.close()

"""The posting log: approvals, deliveries and their attempts, in SQLite.

``Store`` is the interface the rest of socialbot uses; ``SQLiteStore`` is the
implementation (WAL, ``synchronous=FULL``, a busy timeout, and every
read-then-write in a ``BEGIN IMMEDIATE`` transaction). A PostgreSQL store only
has to implement the same protocol.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from socialbot.logs import redact
from socialbot.models import Approval, Delivery, DeliveryStatus, Receipt

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY,
    release_id TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    source TEXT NOT NULL,
    networks TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS schedules (
    release_id TEXT PRIMARY KEY,
    approval_id INTEGER NOT NULL REFERENCES approvals (id)
);
CREATE INDEX IF NOT EXISTS approvals_by_release ON approvals (release_id, id);

CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    release_id TEXT NOT NULL,
    network TEXT NOT NULL,
    status TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    approved_by TEXT NOT NULL,
    approved_at TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    text TEXT,
    remote_id TEXT,
    url TEXT,
    error TEXT,
    next_attempt_at TEXT,
    sent_at TEXT,
    posted_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (release_id, network)
);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status, network, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_by_update ON deliveries (updated_at);

CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts (delivery_id);

CREATE TABLE IF NOT EXISTS network_holds (
    network TEXT PRIMARY KEY,
    not_before TEXT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS queue_files (
    path TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    release_id TEXT,
    content_hash TEXT,
    not_before TEXT,
    error TEXT
);
"""


# Indexes added after version 1, built on open (a no-op once they exist) so an
# existing posting log gets them too. Each serves a filter of `deliveries()` in
# its newest-first order, so `log --status/--network [--since]` and a drain's
# count of what waits read only the rows they need, whatever the log's size.
LATER_INDEXES = (
    "CREATE INDEX IF NOT EXISTS deliveries_by_status_update ON deliveries (status, updated_at)",
    "CREATE INDEX IF NOT EXISTS deliveries_by_network_update ON deliveries (network, updated_at)",
    "CREATE INDEX IF NOT EXISTS deliveries_by_network_status_update"
    " ON deliveries (network, status, updated_at)",
)
# Release ids per query; SQLite before 3.32 allows at most 999 parameters.
ID_BATCH = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_text(value: datetime | None) -> str | None:
    """Store times as fixed-width UTC ISO 8601, so text order is time order."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class QueueFile:
    """What the last scan learnt from one file, keyed by its stat signature."""

    path: str
    signature: str
    release_id: str | None
    content_hash: str | None
    not_before: datetime | None
    error: str | None


class Store(Protocol):  # pragma: no cover - an interface
    """What socialbot needs from its posting log."""

    def record_approval(self, approval: Approval) -> int: ...
    def latest_approvals(self, release_ids: Iterable[str] | None = None) -> dict[str, Approval]: ...
    def approvals(self, release_id: str | None = None) -> list[Approval]: ...
    def scheduled(self, release_ids: Iterable[str] | None = None) -> dict[str, int]: ...
    def schedule(self, approval: Approval, now: datetime) -> None: ...
    def uncertain(self, delivery_id: int, *, unsettled_only: bool = False) -> bool: ...
    def first_uncertain_at(
        self, delivery_id: int, *, unsettled_only: bool = False
    ) -> datetime | None: ...
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
    def due(self, network: str, now: datetime) -> list[Delivery]: ...
    def claim(self, delivery_id: int, text: str, now: datetime) -> Delivery | None: ...
    def finish(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        now: datetime,
        *,
        receipt: Receipt | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        uncertain: bool = False,
        count_attempt: bool = True,
        settled: bool = False,
    ) -> None: ...
    def requeue(self, release_id: str, network: str | None, now: datetime) -> int: ...
    def resolve(
        self, release_id: str, network: str, now: datetime, *, url: str | None
    ) -> Delivery | None: ...
    def counts(self) -> dict[DeliveryStatus, int]: ...
    def hold(self, network: str) -> tuple[datetime, str] | None: ...
    def set_hold(self, network: str, not_before: datetime, reason: str) -> None: ...
    def queue_files(self) -> dict[str, QueueFile]: ...
    def remember_files(self, files: Sequence[QueueFile], forget: Sequence[str]) -> None: ...
    def close(self) -> None: ...


class SQLiteStore:
    """The posting log in one SQLite file (``:memory:`` works for tests).

    Each thread gets its own connection; writers wait on the busy timeout
    rather than failing with "database is locked".
    """

    def __init__(self, path: str, *, busy_timeout_ms: int = 60_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            _create_owner_only(path)
        with self._transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            for statement in LATER_INDEXES:
                conn.execute(statement)

    # -- connections and transactions ---------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so it never deadlocks."""
        conn = self._connection()
        if conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def integrity_check(self) -> str:
        result: str = self._connection().execute("PRAGMA integrity_check").fetchone()[0]
        return result

    # -- approvals ---------------------------------------------------------------------

    def record_approval(self, approval: Approval) -> int:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO approvals"
                " (release_id, content_hash, approved_by, approved_at, source, networks)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    approval.release_id,
                    approval.content_hash,
                    approval.approved_by,
                    to_text(approval.approved_at),
                    approval.source,
                    ",".join(approval.networks),
                ),
            )
            return int(cursor.lastrowid or 0)

    def scheduled(self, release_ids: Iterable[str] | None = None) -> dict[str, int]:
        """The approval each release's deliveries were last created from.

        Only for ``release_ids`` when given (the releases in the queue), so the
        cost follows the queue rather than every release ever approved.
        """
        conn = self._connection()
        if release_ids is None:
            rows = conn.execute("SELECT release_id, approval_id FROM schedules")
            return {row["release_id"]: row["approval_id"] for row in rows}
        found: dict[str, int] = {}
        for batch in _batches(release_ids):
            rows = conn.execute(
                "SELECT release_id, approval_id FROM schedules"  # noqa: S608 - "?" marks only
                f" WHERE release_id IN ({_marks(batch)})",
                batch,
            )
            found.update((row["release_id"], row["approval_id"]) for row in rows)
        return found

    def latest_approvals(self, release_ids: Iterable[str] | None = None) -> dict[str, Approval]:
        """Each release's newest approval; only for ``release_ids`` when given."""
        conn = self._connection()
        if release_ids is None:
            rows = conn.execute(
                "SELECT a.* FROM approvals a"
                " JOIN (SELECT release_id, MAX(id) AS id FROM approvals GROUP BY release_id) m"
                " ON a.id = m.id"
            )
            return {row["release_id"]: _approval(row) for row in rows}
        approvals: dict[str, Approval] = {}
        for batch in _batches(release_ids):
            rows = conn.execute(
                "SELECT * FROM approvals WHERE id IN (SELECT MAX(id) FROM approvals"  # noqa: S608
                f" WHERE release_id IN ({_marks(batch)}) GROUP BY release_id)",
                batch,
            )
            approvals.update((row["release_id"], _approval(row)) for row in rows)
        return approvals

    def approvals(self, release_id: str | None = None) -> list[Approval]:
        if release_id is None:
            rows = self._connection().execute("SELECT * FROM approvals ORDER BY id")
        else:
            rows = self._connection().execute(
                "SELECT * FROM approvals WHERE release_id = ? ORDER BY id", (release_id,)
            )
        return [_approval(row) for row in rows]

    # -- deliveries --------------------------------------------------------------------

    def schedule(self, approval: Approval, now: datetime) -> None:
        """Create the deliveries of an approved release (once per network).

        A delivery still pending follows a newer approval; one that was sent,
        posted or failed keeps the approval it was sent under.
        """
        stamp = to_text(now)
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO schedules (release_id, approval_id) VALUES (?, ?)",
                (approval.release_id, approval.id),
            )
            for network in approval.networks:
                conn.execute(
                    "INSERT INTO deliveries (release_id, network, status, content_hash,"
                    " approved_by, approved_at, idempotency_key, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (release_id, network) DO UPDATE SET"
                    " content_hash = excluded.content_hash, approved_by = excluded.approved_by,"
                    " approved_at = excluded.approved_at"
                    " WHERE status = 'pending' AND content_hash != excluded.content_hash",
                    (
                        approval.release_id,
                        network,
                        DeliveryStatus.PENDING.value,
                        approval.content_hash,
                        approval.approved_by,
                        to_text(approval.approved_at),
                        uuid.uuid4().hex,
                        stamp,
                        stamp,
                    ),
                )

    def get(self, release_id: str, network: str) -> Delivery | None:
        row = (
            self._connection()
            .execute(
                "SELECT * FROM deliveries WHERE release_id = ? AND network = ?",
                (release_id, network),
            )
            .fetchone()
        )
        return _delivery(row) if row else None

    def deliveries(
        self,
        *,
        release_id: str | None = None,
        network: str | None = None,
        status: DeliveryStatus | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        clauses, params = [], []
        for column, value in (
            ("release_id = ?", release_id),
            ("network = ?", network),
            ("status = ?", status.value if status else None),
            ("updated_at >= ?", to_text(since)),
        ):
            if value is not None:
                clauses.append(column)
                params.append(value)
        sql = "SELECT * FROM deliveries"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY updated_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_delivery(row) for row in self._connection().execute(sql, params)]

    def due(self, network: str, now: datetime) -> list[Delivery]:
        """Pending deliveries for a network whose wait is over, oldest approval first."""
        rows = self._connection().execute(
            "SELECT * FROM deliveries WHERE status = 'pending' AND network = ?"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            " ORDER BY approved_at, release_id",
            (network, to_text(now)),
        )
        return [_delivery(row) for row in rows]

    def claim(self, delivery_id: int, text: str, now: datetime) -> Delivery | None:
        """Mark a pending delivery as being sent, durably, before the network call.

        Returns None when another run got there first.
        """
        stamp = to_text(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, text = ?,"
                " sent_at = ?, updated_at = ?, error = NULL"
                " WHERE id = ? AND status = 'pending'",
                (text, stamp, stamp, delivery_id),
            )
            if cursor.rowcount != 1:
                return None
            conn.execute(
                "INSERT INTO attempts (delivery_id, started_at) VALUES (?, ?)",
                (delivery_id, stamp),
            )
            row = conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return _delivery(row)

    def finish(
        self,
        delivery_id: int,
        status: DeliveryStatus,
        now: datetime,
        *,
        receipt: Receipt | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        uncertain: bool = False,
        count_attempt: bool = True,
        settled: bool = False,
    ) -> None:
        """Record the outcome of a delivery and of its open attempt.

        ``uncertain`` marks the attempt as one that may have posted;
        ``count_attempt=False`` takes back the attempt the claim counted (for
        failures that are not the delivery's fault, such as refused credentials);
        ``settled`` records that the uncertain attempts so far were looked for
        and did not post (they stay uncertain for ``uncertain()``, but no longer
        for ``uncertain(unsettled_only=True)``). Errors are stored redacted.
        """
        stamp = to_text(now)
        error = redact(error) if error else error
        with self._transaction() as conn:
            if settled:
                conn.execute(
                    "UPDATE attempts SET outcome = 'absent'"
                    " WHERE delivery_id = ? AND outcome = 'unknown'",
                    (delivery_id,),
                )
            conn.execute(
                "UPDATE deliveries SET status = ?, updated_at = ?, error = ?,"
                " next_attempt_at = ?, attempts = MAX(attempts - ?, 0),"
                " remote_id = COALESCE(?, remote_id), url = COALESCE(?, url),"
                " posted_at = CASE WHEN ? = 'posted' THEN ? ELSE posted_at END"
                " WHERE id = ?",
                (
                    status.value,
                    stamp,
                    error,
                    to_text(next_attempt_at),
                    0 if count_attempt else 1,
                    receipt.remote_id if receipt else None,
                    receipt.url if receipt else None,
                    status.value,
                    stamp,
                    delivery_id,
                ),
            )
            conn.execute(
                "UPDATE attempts SET finished_at = ?, outcome = ?, error = ?"
                " WHERE id = (SELECT MAX(id) FROM attempts WHERE delivery_id = ?)"
                " AND finished_at IS NULL",
                (stamp, "unknown" if uncertain else status.value, error, delivery_id),
            )

    def uncertain(self, delivery_id: int, *, unsettled_only: bool = False) -> bool:
        """True when an earlier attempt may have posted (interrupted or ambiguous).

        With ``unsettled_only``, attempts already looked for (and not found on
        the network, or declared not posted by an operator) do not count.
        """
        return self.first_uncertain_at(delivery_id, unsettled_only=unsettled_only) is not None

    def first_uncertain_at(
        self, delivery_id: int, *, unsettled_only: bool = False
    ) -> datetime | None:
        """When the earliest attempt that may have posted began (see ``uncertain``)."""
        settled = "unknown" if unsettled_only else "absent"
        row = (
            self._connection()
            .execute(
                "SELECT MIN(started_at) FROM attempts WHERE delivery_id = ?"
                " AND outcome IN ('unknown', ?)",
                (delivery_id, settled),
            )
            .fetchone()
        )
        return from_text(row[0])

    def requeue(self, release_id: str, network: str | None, now: datetime) -> int:
        """Put failed deliveries back to pending with a fresh attempt count."""
        sql = (
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL,"
            " error = NULL, updated_at = ? WHERE release_id = ? AND status = 'failed'"
        )
        params: list[str] = [to_text(now) or "", release_id]
        if network is not None:
            sql += " AND network = ?"
            params.append(network)
        with self._transaction() as conn:
            return conn.execute(sql, params).rowcount

    def resolve(
        self, release_id: str, network: str, now: datetime, *, url: str | None
    ) -> Delivery | None:
        """An operator's verdict on a delivery that may or may not have been posted.

        With ``url`` it is posted there (from ``unknown`` or ``failed``); without,
        it was not posted and goes back to ``pending`` (from ``unknown`` only).
        """
        stamp = to_text(now)
        with self._transaction() as conn:
            if url is not None:
                cursor = conn.execute(
                    "UPDATE deliveries SET status = 'posted', url = ?, posted_at = ?,"
                    " updated_at = ?, error = 'marked as posted by an operator'"
                    " WHERE release_id = ? AND network = ? AND status IN ('unknown', 'failed')",
                    (url, stamp, stamp, release_id, network),
                )
            else:
                cursor = conn.execute(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = NULL,"
                    " updated_at = ?, error = 'marked as not posted by an operator'"
                    " WHERE release_id = ? AND network = ? AND status = 'unknown'",
                    (stamp, release_id, network),
                )
                if cursor.rowcount == 1:
                    conn.execute(
                        "UPDATE attempts SET outcome = 'absent' WHERE outcome = 'unknown'"
                        " AND delivery_id = (SELECT id FROM deliveries"
                        " WHERE release_id = ? AND network = ?)",
                        (release_id, network),
                    )
            if cursor.rowcount != 1:
                return None
            row = conn.execute(
                "SELECT * FROM deliveries WHERE release_id = ? AND network = ?",
                (release_id, network),
            ).fetchone()
        return _delivery(row)

    def counts(self) -> dict[DeliveryStatus, int]:
        rows = self._connection().execute(
            "SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status"
        )
        counts = dict.fromkeys(DeliveryStatus, 0)
        for row in rows:
            counts[DeliveryStatus(row["status"])] = row["n"]
        return counts

    # -- network holds (rate limits that outlive a run) ----------------------------------

    def hold(self, network: str) -> tuple[datetime, str] | None:
        row = (
            self._connection()
            .execute("SELECT not_before, reason FROM network_holds WHERE network = ?", (network,))
            .fetchone()
        )
        if row is None:
            return None
        not_before = from_text(row["not_before"])
        assert not_before is not None
        return not_before, row["reason"]

    def set_hold(self, network: str, not_before: datetime, reason: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO network_holds (network, not_before, reason) VALUES (?, ?, ?)"
                " ON CONFLICT (network) DO UPDATE SET not_before = excluded.not_before,"
                " reason = excluded.reason",
                (network, to_text(not_before), reason),
            )

    # -- the queue scan cache ------------------------------------------------------------

    def queue_files(self) -> dict[str, QueueFile]:
        rows = self._connection().execute("SELECT * FROM queue_files")
        return {
            row["path"]: QueueFile(
                path=row["path"],
                signature=row["signature"],
                release_id=row["release_id"],
                content_hash=row["content_hash"],
                not_before=from_text(row["not_before"]),
                error=row["error"],
            )
            for row in rows
        }

    def remember_files(self, files: Sequence[QueueFile], forget: Sequence[str]) -> None:
        if not files and not forget:
            return
        with self._transaction() as conn:
            conn.executemany("DELETE FROM queue_files WHERE path = ?", [(p,) for p in forget])
            conn.executemany(
                "INSERT OR REPLACE INTO queue_files"
                " (path, signature, release_id, content_hash, not_before, error)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        f.path,
                        f.signature,
                        f.release_id,
                        f.content_hash,
                        to_text(f.not_before),
                        f.error,
                    )
                    for f in files
                ],
            )


def _batches(release_ids: Iterable[str]) -> Iterator[list[str]]:
    unique = sorted(set(release_ids))
    for start in range(0, len(unique), ID_BATCH):
        yield unique[start : start + ID_BATCH]


def _marks(values: Sequence[object]) -> str:
    """One ``?`` placeholder per value."""
    return ",".join("?" * len(values))


def _approval(row: sqlite3.Row) -> Approval:
    approved_at = from_text(row["approved_at"])
    assert approved_at is not None
    return Approval(
        release_id=row["release_id"],
        content_hash=row["content_hash"],
        approved_by=row["approved_by"],
        approved_at=approved_at,
        source=row["source"],
        networks=tuple(n for n in row["networks"].split(",") if n),
        id=row["id"],
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    def required(name: str) -> datetime:
        value = from_text(row[name])
        assert value is not None
        return value

    return Delivery(
        id=row["id"],
        release_id=row["release_id"],
        network=row["network"],
        status=DeliveryStatus(row["status"]),
        content_hash=row["content_hash"],
        approved_by=row["approved_by"],
        approved_at=required("approved_at"),
        attempts=row["attempts"],
        created_at=required("created_at"),
        updated_at=required("updated_at"),
        text=row["text"],
        remote_id=row["remote_id"],
        url=row["url"],
        error=row["error"],
        next_attempt_at=from_text(row["next_attempt_at"]),
        sent_at=from_text(row["sent_at"]),
        posted_at=from_text(row["posted_at"]),
        idempotency_key=row["idempotency_key"],
    )


def _create_owner_only(path: str) -> None:
    """Create the database file with mode 0600 (-wal and -shm inherit it) if it is new.

    Only with O_EXCL: closing any descriptor of an existing database file drops
    every POSIX lock this process holds on it, so another process may then
    delete the WAL under a live connection and corrupt the database
    (https://www.sqlite.org/howtocorrupt.html, section 2.2).
    """
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    os.close(fd)

"""The store in SQLite: the embedded default.

WAL, ``synchronous=FULL``, a busy timeout, and every read-then-write in a
``BEGIN IMMEDIATE`` transaction. Schema changes are numbered migrations
(``MIGRATIONS``) applied on open, so a posting log from 0.1.0 is upgraded in
place. Plain SQL through the standard library: the statements are few and
small, and each backend's dialect is easier to read than an ORM's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from socialbot.errors import AlreadyRunning, StoreError
from socialbot.logs import redact
from socialbot.models import (
    Approval,
    Delivery,
    DeliveryStatus,
    Post,
    Receipt,
    Release,
    Revision,
)
from socialbot.store.base import (
    ALL_NETWORKS,
    AuditEntry,
    Pause,
    QueueFile,
    Rejection,
    Withdrawal,
    batches,
    check_media,
    from_text,
    to_text,
    utcnow,
)

SCHEMA_VERSION = 3

# Version 1: the posting log of socialbot 0.1.0, kept as it was so old files upgrade.
SCHEMA_V1 = """
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
# Version 2: releases and their revisions, approved snapshots, withdrawals, the audit
# trail, pauses and a key-value area (sessions, the limits networks report).
MIGRATION_V2 = (
    """CREATE TABLE IF NOT EXISTS releases (
        id TEXT PRIMARY KEY,
        latest_revision INTEGER NOT NULL,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS revisions (
        release_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        content TEXT NOT NULL,
        source TEXT NOT NULL,
        author TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (release_id, revision)
    )""",
    "ALTER TABLE approvals ADD COLUMN revision INTEGER",
    "ALTER TABLE approvals ADD COLUMN posts TEXT",
    "ALTER TABLE approvals ADD COLUMN comment TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE deliveries ADD COLUMN revision INTEGER",
    "ALTER TABLE deliveries ADD COLUMN approval_id INTEGER",
    "ALTER TABLE deliveries ADD COLUMN not_before TEXT",
    "ALTER TABLE deliveries ADD COLUMN post TEXT",
    """CREATE TABLE IF NOT EXISTS rejections (
        id INTEGER PRIMARY KEY,
        release_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        rejected_by TEXT NOT NULL,
        rejected_at TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS withdrawals (
        id INTEGER PRIMARY KEY,
        release_id TEXT NOT NULL,
        network TEXT NOT NULL,
        kind TEXT NOT NULL,
        withdrawn_by TEXT NOT NULL,
        withdrawn_at TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS withdrawals_by_release ON withdrawals (release_id)",
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        release_id TEXT,
        network TEXT,
        revision INTEGER,
        detail TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_by_release ON audit (release_id, id)",
    """CREATE TABLE IF NOT EXISTS pauses (
        network TEXT PRIMARY KEY,
        paused_by TEXT NOT NULL,
        paused_at TEXT NOT NULL,
        reason TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_due"
    " ON deliveries (network, status, not_before, next_attempt_at)",
    # Read every file again once, so the releases of a 0.1.0 queue get their revisions.
    "DELETE FROM queue_files",
)

# Version 3: the approved image bytes, by their SHA-256 (what is uploaded is what was approved).
MIGRATION_V3 = (
    """CREATE TABLE IF NOT EXISTS media (
        digest TEXT PRIMARY KEY,
        mime TEXT NOT NULL,
        data BLOB NOT NULL,
        created_at TEXT NOT NULL
    )""",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: tuple(part for part in SCHEMA_V1.split(";") if part.strip()),
    2: MIGRATION_V2,
    3: MIGRATION_V3,
}
"""Each version's statements, applied in order in one transaction per version."""

LEGACY_KEY = "legacy-adoption"
"""Set to ``pending`` when a 0.1.0 posting log is upgraded; the drain adopts its approvals."""

# Release ids per query; SQLite before 3.32 allows at most 999 parameters.
ID_BATCH = 500


class SQLiteStore:
    """The store in one SQLite file (``:memory:`` works for tests).

    Each thread gets its own connection; writers wait on the busy timeout
    rather than failing with "database is locked". A file from an older
    version is upgraded in place when it is opened.
    """

    def __init__(self, path: str, *, busy_timeout_ms: int = 60_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer = threading.RLock()
        """Held by the one thread of this process in a write transaction (see ``_transaction``)."""
        if path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            _create_owner_only(path)
        self.migrate()

    def migrate(self) -> int:
        """Bring the schema to ``SCHEMA_VERSION``; returns the version found."""
        with self._transaction() as conn:
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
            if found == 1:
                # A posting log from 0.1.0: its approvals get their snapshots on the next drain.
                conn.execute(
                    "INSERT OR REPLACE INTO kv (key, value, updated_at) VALUES (?, 'pending', ?)",
                    (LEGACY_KEY, to_text(utcnow())),
                )
            for statement in LATER_INDEXES:
                conn.execute(statement)
            if found < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return found

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
    def _transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so it never deadlocks.

        ``durable=False`` commits without syncing the WAL to disk: the next durable
        commit (which syncs the whole WAL) or closing the store makes it durable.
        """
        conn = self._connection()
        if conn.in_transaction:
            yield conn
            return
        if not durable:
            with self._writer:
                conn.execute("PRAGMA synchronous = NORMAL")
                try:
                    with self._transaction() as same:
                        yield same
                finally:
                    conn.execute("PRAGMA synchronous = FULL")
            return
        # The drain's threads (one per network) write at the same time. Waiting on
        # SQLite's busy handler would sleep in steps of 1, 2, 5, 10... ms; a lock in
        # this process hands the database over as soon as the writer commits. Other
        # processes still wait on the busy timeout.
        with self._writer:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    with contextlib.suppress(sqlite3.OperationalError):
                        # SQLite may have rolled back by itself already (a full disk).
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise _store_error(exc, self.path) from None

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def integrity_check(self) -> str:
        result: str = self._connection().execute("PRAGMA integrity_check").fetchone()[0]
        return result

    @contextmanager
    def drain_lock(self, *, stale_after: float | None = None) -> Iterator[None]:
        """One drain at a time on this database; the kernel drops the lock if we die.

        SQLite lives on one host, so a ``flock`` on a file beside the database
        is the lease. The holder writes its pid and start time into it (it is
        never deleted: deleting it would let two runs hold two different locks).
        """
        if self.path == ":memory:":
            yield
            return
        lock_path = self.path + ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("ascii", "replace")
                raise already_running(holder, lock_path, stale_after) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {to_text(utcnow())}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- releases and revisions -----------------------------------------------------------

    def record_revision(
        self, release: Release, *, source: str, author: str | None, now: datetime
    ) -> Revision | None:
        """A new revision when the content differs from the latest one; else None."""
        content_hash = release.content_hash()
        stamp = to_text(now)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT r.latest_revision, v.content_hash FROM releases r"
                " LEFT JOIN revisions v ON v.release_id = r.id AND v.revision = r.latest_revision"
                " WHERE r.id = ?",
                (release.id,),
            ).fetchone()
            if row is not None and row["content_hash"] == content_hash:
                return None
            number = 1 if row is None else int(row["latest_revision"]) + 1
            if row is None:
                conn.execute(
                    "INSERT INTO releases (id, latest_revision, source, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (release.id, number, source, stamp, stamp),
                )
            else:
                conn.execute(
                    "UPDATE releases SET latest_revision = ?, source = ?, updated_at = ?"
                    " WHERE id = ?",
                    (number, source, stamp, release.id),
                )
            conn.execute(
                "INSERT INTO revisions (release_id, revision, content_hash, content, source,"
                " author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    release.id,
                    number,
                    content_hash,
                    release.model_dump_json(),
                    source,
                    author,
                    stamp,
                ),
            )
            conn.execute(
                "INSERT INTO audit (at, actor, action, release_id, revision, detail)"
                " VALUES (?, ?, 'revision', ?, ?, ?)",
                (stamp, author or "", release.id, number, f"from {source}"),
            )
        return Revision(release.id, number, content_hash, release, source, now, author)

    def latest_revisions(self, release_ids: Iterable[str] | None = None) -> dict[str, Revision]:
        sql = (
            "SELECT v.* FROM revisions v JOIN releases r"
            " ON v.release_id = r.id AND v.revision = r.latest_revision"
        )
        conn = self._connection()
        if release_ids is None:
            return {row["release_id"]: _revision(row) for row in conn.execute(sql)}
        found: dict[str, Revision] = {}
        for batch in batches(release_ids, ID_BATCH):
            rows = conn.execute(f"{sql} WHERE r.id IN ({_marks(batch)})", batch)
            found.update((row["release_id"], _revision(row)) for row in rows)
        return found

    def revisions(self, release_id: str) -> list[Revision]:
        rows = self._connection().execute(
            "SELECT * FROM revisions WHERE release_id = ? ORDER BY revision", (release_id,)
        )
        return [_revision(row) for row in rows]

    def release_ids(self) -> list[str]:
        rows = self._connection().execute("SELECT id FROM releases ORDER BY updated_at DESC")
        return [row["id"] for row in rows]

    # -- approvals, rejections, withdrawals, audit ---------------------------------------

    def record_approval(self, approval: Approval) -> int:
        posts = json.dumps([post.to_dict() for post in approval.posts], ensure_ascii=False)
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO approvals (release_id, content_hash, approved_by, approved_at,"
                " source, networks, revision, posts, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    approval.release_id,
                    approval.content_hash,
                    approval.approved_by,
                    to_text(approval.approved_at),
                    approval.source,
                    ",".join(approval.networks),
                    approval.revision,
                    posts if approval.posts else None,
                    redact(approval.comment),
                ),
            )
            approval_id = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT INTO audit (at, actor, action, release_id, revision, detail)"
                " VALUES (?, ?, 'approve', ?, ?, ?)",
                (
                    to_text(approval.approved_at),
                    approval.approved_by,
                    approval.release_id,
                    approval.revision,
                    redact(
                        f"for {', '.join(approval.networks)}"
                        + (f": {approval.comment}" if approval.comment else "")
                    ),
                ),
            )
        return approval_id

    def approval(self, approval_id: int) -> Approval | None:
        row = (
            self._connection()
            .execute("SELECT * FROM approvals WHERE id = ?", (approval_id,))
            .fetchone()
        )
        return _approval(row) if row else None

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
        for batch in batches(release_ids, ID_BATCH):
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

    def record_rejection(self, rejection: Rejection) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO rejections (release_id, revision, rejected_by, rejected_at, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    rejection.release_id,
                    rejection.revision,
                    rejection.by,
                    to_text(rejection.at),
                    redact(rejection.reason),
                ),
            )
            conn.execute(
                "INSERT INTO audit (at, actor, action, release_id, revision, detail)"
                " VALUES (?, ?, 'reject', ?, ?, ?)",
                (
                    to_text(rejection.at),
                    rejection.by,
                    rejection.release_id,
                    rejection.revision,
                    redact(rejection.reason),
                ),
            )

    def rejections(self, release_id: str) -> list[Rejection]:
        rows = self._connection().execute(
            "SELECT * FROM rejections WHERE release_id = ? ORDER BY id", (release_id,)
        )
        return [
            Rejection(
                row["release_id"],
                row["revision"],
                row["rejected_by"],
                _required(row, "rejected_at"),
                row["reason"],
            )
            for row in rows
        ]

    def record_withdrawal(self, withdrawal: Withdrawal) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO withdrawals (release_id, network, kind, withdrawn_by, withdrawn_at,"
                " reason) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    withdrawal.release_id,
                    withdrawal.network,
                    withdrawal.kind,
                    withdrawal.by,
                    to_text(withdrawal.at),
                    redact(withdrawal.reason),
                ),
            )
            conn.execute(
                "INSERT INTO audit (at, actor, action, release_id, network, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    to_text(withdrawal.at),
                    withdrawal.by,
                    withdrawal.kind,
                    withdrawal.release_id,
                    None if withdrawal.network == ALL_NETWORKS else withdrawal.network,
                    redact(withdrawal.reason),
                ),
            )

    def withdrawals(self, release_id: str | None = None) -> list[Withdrawal]:
        conn = self._connection()
        if release_id is None:
            rows = conn.execute("SELECT * FROM withdrawals ORDER BY id")
        else:
            rows = conn.execute(
                "SELECT * FROM withdrawals WHERE release_id = ? ORDER BY id", (release_id,)
            )
        return [
            Withdrawal(
                row["release_id"],
                row["network"],
                row["kind"],
                row["withdrawn_by"],
                _required(row, "withdrawn_at"),
                row["reason"],
            )
            for row in rows
        ]

    def audit(
        self,
        action: str,
        *,
        actor: str,
        now: datetime,
        release_id: str | None = None,
        network: str | None = None,
        revision: int | None = None,
        detail: str = "",
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO audit (at, actor, action, release_id, network, revision, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (to_text(now), actor, action, release_id, network, revision, redact(detail)),
            )

    def audit_trail(self, release_id: str | None = None) -> list[AuditEntry]:
        conn = self._connection()
        if release_id is None:
            rows = conn.execute("SELECT * FROM audit ORDER BY id")
        else:
            rows = conn.execute(
                "SELECT * FROM audit WHERE release_id = ? ORDER BY id", (release_id,)
            )
        return [
            AuditEntry(
                row["id"],
                _required(row, "at"),
                row["actor"],
                row["action"],
                row["release_id"],
                row["network"],
                row["revision"],
                row["detail"],
            )
            for row in rows
        ]

    # -- deliveries --------------------------------------------------------------------

    def create_delivery(
        self,
        approval: Approval,
        post: Post,
        *,
        key: str,
        not_before: datetime | None,
        now: datetime,
    ) -> bool:
        """A pending delivery of an approved post; False when the row already exists."""
        stamp = to_text(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO deliveries (release_id, network, status, content_hash, approved_by,"
                " approved_at, idempotency_key, created_at, updated_at, revision, approval_id,"
                " not_before, post, text) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (release_id, network) DO NOTHING",
                (
                    approval.release_id,
                    post.network,
                    approval.content_hash,
                    approval.approved_by,
                    to_text(approval.approved_at),
                    key,
                    stamp,
                    stamp,
                    approval.revision,
                    approval.id,
                    to_text(not_before),
                    _post_json(post),
                    post.text,
                ),
            )
            return cursor.rowcount == 1

    def rebase(
        self,
        delivery: Delivery,
        approval: Approval,
        post: Post,
        *,
        key: str,
        not_before: datetime | None,
        now: datetime,
    ) -> bool:
        """Point a delivery at a newer approval, if it is still as ``delivery`` shows it."""
        stamp = to_text(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = 'pending', content_hash = ?, approved_by = ?,"
                " approved_at = ?, idempotency_key = ?, revision = ?, approval_id = ?,"
                " not_before = ?, post = ?, text = ?, attempts = 0, next_attempt_at = NULL,"
                " error = NULL, updated_at = ?"
                " WHERE id = ? AND status = ? AND approval_id IS ?",
                (
                    approval.content_hash,
                    approval.approved_by,
                    to_text(approval.approved_at),
                    key,
                    approval.revision,
                    approval.id,
                    to_text(not_before),
                    _post_json(post),
                    post.text,
                    stamp,
                    delivery.id,
                    delivery.status.value,
                    delivery.approval_id,
                ),
            )
            if cursor.rowcount == 1:
                # Earlier attempts were of another revision, under another key.
                conn.execute(
                    "UPDATE attempts SET outcome = 'superseded' WHERE delivery_id = ?"
                    " AND outcome = 'absent'",
                    (delivery.id,),
                )
            return cursor.rowcount == 1

    def transition(
        self,
        delivery: Delivery,
        status: DeliveryStatus,
        now: datetime,
        *,
        error: str | None = None,
    ) -> bool:
        """Move a delivery to ``status`` if it is still in the status ``delivery`` shows."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = ?, error = COALESCE(?, error), updated_at = ?,"
                " next_attempt_at = NULL WHERE id = ? AND status = ?",
                (
                    status.value,
                    redact(error) if error else None,
                    to_text(now),
                    delivery.id,
                    delivery.status.value,
                ),
            )
            return cursor.rowcount == 1

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
        stamp = to_text(now)
        rows = self._connection().execute(
            "SELECT * FROM deliveries WHERE status = 'pending' AND network = ?"
            " AND (not_before IS NULL OR not_before <= ?)"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            " ORDER BY approved_at, release_id",
            (network, stamp, stamp),
        )
        return [_delivery(row) for row in rows]

    def claim(self, delivery_id: int, text: str, now: datetime) -> Delivery | None:
        """Mark a pending delivery as being sent, durably, before the network call.

        Returns None when another run got there first, when its network (or every
        network) is paused, or when its release is withdrawn or retracted on its network
        (or on all): nothing is claimed once a pause or a withdrawal is recorded.
        """
        stamp = to_text(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, text = ?,"
                " sent_at = ?, updated_at = ?, error = NULL"
                " WHERE id = ? AND status = 'pending'"
                " AND NOT EXISTS (SELECT 1 FROM pauses"
                " WHERE pauses.network IN (deliveries.network, ?))"
                " AND NOT EXISTS (SELECT 1 FROM withdrawals"
                " WHERE withdrawals.release_id = deliveries.release_id"
                " AND withdrawals.network IN (deliveries.network, ?))",
                (text, stamp, stamp, delivery_id, ALL_NETWORKS, ALL_NETWORKS),
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
        expect: DeliveryStatus,
        receipt: Receipt | None = None,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
        uncertain: bool = False,
        count_attempt: bool = True,
        settled: bool = False,
        durable: bool = True,
    ) -> bool:
        """Record the outcome of a delivery and of its open attempt, if it is still ``expect``.

        ``uncertain`` marks the attempt as one that may have posted;
        ``count_attempt=False`` takes back the attempt the claim counted (for
        failures that are not the delivery's fault, such as refused credentials);
        ``settled`` records that the uncertain attempts so far were looked for
        and did not post. Errors are stored redacted. Returns False (and
        changes nothing) when someone else changed the delivery first.
        ``durable=False`` skips the sync to disk (see ``_transaction``): a power
        failure before the next durable write leaves the delivery ``sending``,
        as a run killed during the call would, never ``pending``.
        """
        stamp = to_text(now)
        error = redact(error) if error else error
        with self._transaction(durable=durable) as conn:
            cursor = conn.execute(
                "UPDATE deliveries SET status = ?, updated_at = ?, error = ?,"
                " next_attempt_at = ?, attempts = MAX(attempts - ?, 0),"
                " remote_id = COALESCE(?, remote_id), url = COALESCE(?, url),"
                " posted_at = CASE WHEN ? = 'posted' THEN ? ELSE posted_at END"
                " WHERE id = ? AND status = ?",
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
                    expect.value,
                ),
            )
            if cursor.rowcount != 1:
                return False
            if settled:
                conn.execute(
                    "UPDATE attempts SET outcome = 'absent'"
                    " WHERE delivery_id = ? AND outcome = 'unknown'",
                    (delivery_id,),
                )
            conn.execute(
                "UPDATE attempts SET finished_at = ?, outcome = ?, error = ?"
                " WHERE id = (SELECT MAX(id) FROM attempts WHERE delivery_id = ?)"
                " AND finished_at IS NULL",
                (stamp, "unknown" if uncertain else status.value, error, delivery_id),
            )
            return True

    def uncertain(self, delivery_id: int, *, unsettled_only: bool = False) -> bool:
        """True when an earlier attempt of this revision may have posted.

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

    def pending_counts(self) -> dict[str, int]:
        rows = self._connection().execute(
            "SELECT network, COUNT(*) AS n FROM deliveries WHERE status = 'pending'"
            " GROUP BY network"
        )
        return {row["network"]: row["n"] for row in rows}

    # -- holds, pauses, key-value --------------------------------------------------------

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
                (network, to_text(not_before), redact(reason)),
            )

    def pause(self, pause: Pause) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO pauses (network, paused_by, paused_at, reason) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (network) DO UPDATE SET paused_by = excluded.paused_by,"
                " paused_at = excluded.paused_at, reason = excluded.reason",
                (pause.network, pause.by, to_text(pause.at), redact(pause.reason)),
            )
            conn.execute(
                "INSERT INTO audit (at, actor, action, network, detail)"
                " VALUES (?, ?, 'pause', ?, ?)",
                (to_text(pause.at), pause.by, pause.network, redact(pause.reason)),
            )

    def resume(self, network: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM pauses WHERE network = ?", (network,)).rowcount == 1

    def pauses(self) -> dict[str, Pause]:
        rows = self._connection().execute("SELECT * FROM pauses")
        return {
            row["network"]: Pause(
                row["network"], row["paused_by"], _required(row, "paused_at"), row["reason"]
            )
            for row in rows
        }

    def get_value(self, key: str) -> str | None:
        row = self._connection().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else None

    def set_value(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (key, value, to_text(utcnow())),
            )

    def entries(self, prefix: str) -> dict[str, str]:
        rows = self._connection().execute(
            "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return {row["key"]: row["value"] for row in rows}

    # -- approved images -----------------------------------------------------------------

    def put_media(self, digest: str, mime: str, data: bytes) -> None:
        check_media(digest, data)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO media (digest, mime, data, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (digest) DO NOTHING",
                (digest, mime, data, to_text(utcnow())),
            )

    def get_media(self, digest: str) -> tuple[str, bytes] | None:
        row = (
            self._connection()
            .execute("SELECT mime, data FROM media WHERE digest = ?", (digest,))
            .fetchone()
        )
        return (str(row["mime"]), bytes(row["data"])) if row else None

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


def already_running(holder: str, where: str, stale_after: float | None) -> AlreadyRunning:
    """Describe the drain holding the lock, from the ``pid start-time`` it wrote."""
    pid, _, started_text = holder.strip().partition(" ")
    try:
        started = from_text(started_text)
    except ValueError:
        started = None
    if started is None or not pid:
        return AlreadyRunning(f"another drain is running ({where} is held); this run did nothing")
    age = (utcnow() - started).total_seconds()
    who = f"another drain (pid {pid}) has been running since {started:%Y-%m-%d %H:%M:%S} UTC"
    if stale_after is not None and age > stale_after:
        return AlreadyRunning(
            f"{who}, far longer than its time budget: it may hang; check process {pid} "
            "(killing it is safe: the next run recovers its work)",
            stale=True,
        )
    return AlreadyRunning(f"{who}; this run did nothing")


def _store_error(exc: sqlite3.OperationalError, path: str) -> Exception:
    """A full disk or a read-only file as one sentence; anything else unchanged."""
    text = str(exc).lower()
    if "full" in text:
        return StoreError(f"the database {path} cannot be written: the disk is full")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"the database {path} cannot be written: it is read-only")
    if "disk i/o" in text:
        return StoreError(f"the database {path} cannot be written: a disk I/O error")
    return exc


def _marks(values: Sequence[object]) -> str:
    """One ``?`` placeholder per value."""
    return ",".join("?" * len(values))


def _required(row: sqlite3.Row, name: str) -> datetime:
    value = from_text(row[name])
    assert value is not None
    return value


def _post_json(post: Post) -> str:
    return json.dumps(post.to_dict(), ensure_ascii=False)


def _posts(text: str | None) -> tuple[Post, ...]:
    if not text:
        return ()
    return tuple(Post.from_dict(item) for item in json.loads(text))


def _revision(row: sqlite3.Row) -> Revision:
    return Revision(
        release_id=row["release_id"],
        number=row["revision"],
        content_hash=row["content_hash"],
        release=Release.model_validate_json(row["content"]),
        source=row["source"],
        created_at=_required(row, "created_at"),
        author=row["author"],
    )


def _approval(row: sqlite3.Row) -> Approval:
    return Approval(
        release_id=row["release_id"],
        content_hash=row["content_hash"],
        approved_by=row["approved_by"],
        approved_at=_required(row, "approved_at"),
        source=row["source"],
        networks=tuple(n for n in row["networks"].split(",") if n),
        id=row["id"],
        revision=row["revision"],
        posts=_posts(row["posts"]),
        comment=row["comment"] or "",
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        id=row["id"],
        release_id=row["release_id"],
        network=row["network"],
        status=DeliveryStatus(row["status"]),
        content_hash=row["content_hash"],
        approved_by=row["approved_by"],
        approved_at=_required(row, "approved_at"),
        attempts=row["attempts"],
        created_at=_required(row, "created_at"),
        updated_at=_required(row, "updated_at"),
        text=row["text"],
        remote_id=row["remote_id"],
        url=row["url"],
        error=row["error"],
        next_attempt_at=from_text(row["next_attempt_at"]),
        sent_at=from_text(row["sent_at"]),
        posted_at=from_text(row["posted_at"]),
        idempotency_key=row["idempotency_key"],
        revision=row["revision"],
        approval_id=row["approval_id"],
        not_before=from_text(row["not_before"]),
        post=Post.from_dict(json.loads(row["post"])) if row["post"] else None,
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

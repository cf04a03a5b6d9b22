"""The store in SQLite: the embedded default.

WAL, ``synchronous=FULL``, a busy timeout, and every read-then-write in a
``BEGIN IMMEDIATE`` transaction. Schema changes are numbered migrations
(``MIGRATIONS``) applied on open, so a posting log from 0.1.0 is upgraded in
place. Plain SQL through the standard library: the statements are few and
small, and each backend's dialect is easier to read than an ORM's. The
statements that read the same in PostgreSQL are in ``store/sql.py``.
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
from typing import Any

from socialbot.errors import AlreadyRunning, StoreError
from socialbot.logs import redact
from socialbot.models import (
    Approval,
    Delivery,
    DeliveryStatus,
    Receipt,
    Revision,
)
from socialbot.store.base import (
    ALL_NETWORKS,
    QueueFile,
    batches,
    from_text,
    to_text,
    utcnow,
)
from socialbot.store.sql import NOT_SUPERSEDED, Connection, SQLStore

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
# its newest-first order, so `log --status/--network [--since]` reads only the
# rows it needs, whatever the log's size.
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


class SQLiteStore(SQLStore):
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
            try:
                conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.DatabaseError as exc:  # a damaged header: "file is not a database"
                conn.close()
                raise _store_error(exc, self.path) from None
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
            except sqlite3.DatabaseError as exc:
                raise _store_error(exc, self.path) from None

    def _sql(self, sql: str) -> str:
        return sql

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _store_error(exc, self.path) from None

    def _insert(self, conn: Connection, sql: str, params: Sequence[Any]) -> int:
        cursor = conn.execute(sql, params)
        assert isinstance(cursor, sqlite3.Cursor) and cursor.lastrowid is not None
        return cursor.lastrowid

    def _time_in(self, value: datetime | None) -> str | None:
        return to_text(value)

    def _time_out(self, value: Any) -> datetime | None:
        return from_text(value)

    def _json_in(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def _json_out(self, value: Any) -> Any:
        return json.loads(value)

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

    def latest_revisions(self, release_ids: Iterable[str] | None = None) -> dict[str, Revision]:
        sql = (
            "SELECT v.* FROM revisions v JOIN releases r"
            " ON v.release_id = r.id AND v.revision = r.latest_revision"
        )
        conn = self._connection()
        if release_ids is None:
            return {row["release_id"]: self._revision(row) for row in conn.execute(sql)}
        found: dict[str, Revision] = {}
        for batch in batches(release_ids, ID_BATCH):
            rows = conn.execute(f"{sql} WHERE r.id IN ({_marks(batch)})", batch)
            found.update((row["release_id"], self._revision(row)) for row in rows)
        return found

    # -- approvals, rejections, withdrawals, audit ---------------------------------------

    def latest_approvals(self, release_ids: Iterable[str] | None = None) -> dict[str, Approval]:
        """Each release's newest approval; only for ``release_ids`` when given."""
        conn = self._connection()
        if release_ids is None:
            rows = conn.execute(
                "SELECT a.* FROM approvals a"
                " JOIN (SELECT release_id, MAX(id) AS id FROM approvals GROUP BY release_id) m"
                " ON a.id = m.id"
            )
            return {row["release_id"]: self._approval(row) for row in rows}
        approvals: dict[str, Approval] = {}
        for batch in batches(release_ids, ID_BATCH):
            rows = conn.execute(
                "SELECT * FROM approvals WHERE id IN (SELECT MAX(id) FROM approvals"  # noqa: S608
                f" WHERE release_id IN ({_marks(batch)}) GROUP BY release_id)",
                batch,
            )
            approvals.update((row["release_id"], self._approval(row)) for row in rows)
        return approvals

    # -- deliveries --------------------------------------------------------------------

    def claim(self, delivery_id: int, text: str, now: datetime) -> Delivery | None:
        """Mark a pending delivery as being sent, durably, before the network call.

        Returns None when another run got there first, when its network (or every
        network) is paused, when its release is withdrawn or retracted on its network
        (or on all), or when its revision was edited since or rejected: nothing is
        claimed once a pause, a withdrawal, a newer revision or a rejection is recorded.
        """
        stamp = to_text(now)
        with self._transaction() as conn:
            cursor = conn.execute(
                CLAIM, (text, stamp, stamp, delivery_id, ALL_NETWORKS, ALL_NETWORKS)
            )
            if cursor.rowcount != 1:
                return None
            conn.execute(
                "INSERT INTO attempts (delivery_id, started_at) VALUES (?, ?)",
                (delivery_id, stamp),
            )
            row = conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return self._delivery(row)

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

    # -- the key-value area ----------------------------------------------------------------

    def entries(self, prefix: str) -> dict[str, str]:
        rows = self._connection().execute(
            "SELECT key, value FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(prefix), prefix),
        )
        return {row["key"]: row["value"] for row in rows}

    # -- the queue scan cache ------------------------------------------------------------

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


CLAIM = (
    "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, text = ?,"  # noqa: S608
    " sent_at = ?, updated_at = ?, error = NULL"
    " WHERE id = ? AND status = 'pending'"
    " AND NOT EXISTS (SELECT 1 FROM pauses WHERE pauses.network IN (deliveries.network, ?))"
    " AND NOT EXISTS (SELECT 1 FROM withdrawals"
    " WHERE withdrawals.release_id = deliveries.release_id"
    " AND withdrawals.network IN (deliveries.network, ?))" + NOT_SUPERSEDED
)
"""A claim's compare-and-set (built from constants only, no input)."""


def _store_error(exc: sqlite3.DatabaseError, path: str) -> Exception:
    """A full disk, a read-only or a damaged file as one sentence; anything else unchanged."""
    text = str(exc).lower()
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return StoreError(
            f"the database {path} is damaged ({exc}); nothing more was done: restore it from "
            "a backup (see 'Looking after the database' in docs/going-live.md)"
        )
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

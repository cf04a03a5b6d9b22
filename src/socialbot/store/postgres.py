"""The store in PostgreSQL: for drains on several hosts sharing one posting log.

Plain SQL through psycopg 3: the statements are few, each backend's dialect
is clearer than an ORM's, and psycopg 3 is the maintained driver. The
semantics are SQLiteStore's, method by method:

- every state change is one ``UPDATE … WHERE id = %s AND status = %s`` whose
  row count says whether it won (under READ COMMITTED a second writer waits for
  the first and then re-checks the ``WHERE`` on the new row, so of two hosts
  claiming one delivery exactly one gets it);
- each write is one transaction; each thread has its own connection;
- one drain at a time is a session advisory lock held on a connection of its
  own for the duration of the drain: the server drops it when that connection
  closes (at once when the drain's process dies, within a minute when its host
  does: ``LOCK_SESSION_SETTINGS``), whichever host the drain ran on;
- nothing is kept in local files: sessions, cached limits and the queue scan
  cache are rows.

Schema changes are numbered migrations (``MIGRATIONS``, the same versions as
SQLite's in PostgreSQL's dialect), applied on open under an advisory lock so
two hosts starting at once do not both apply them.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from threading import current_thread
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg.types.json import Jsonb

from socialbot.errors import AlreadyRunning, ConfigurationError, StoreError
from socialbot.logs import redact, register_secret
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
    utcnow,
)
from socialbot.store.sql import NOT_SUPERSEDED, Connection, SQLStore

SCHEMA_VERSION = 3

# Advisory lock keys (two int4s: socialbot's class, then which lock).
LOCK_CLASS = 0x50C1A1B0 - 2**31
DRAIN_LOCK = 1
MIGRATE_LOCK = 2
REVISION_LOCKS = LOCK_CLASS + 1
"""A class of its own: one transaction lock per release id (``hashtext``), while recording."""
DRAIN_LOCK_ROW = (
    "l.locktype = 'advisory' AND l.granted"
    " AND l.classid = %(class)s::oid AND l.objid = %(lock)s::oid AND l.objsubid = 2"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
"""The drain lock's row ``l`` in ``pg_locks``: pg_try_advisory_lock(LOCK_CLASS, DRAIN_LOCK)
shows as classid, objid, objsubid 2, while its session lasts."""
DRAIN_LOCK_ROW_PARAMS = {"class": LOCK_CLASS & 0xFFFFFFFF, "lock": DRAIN_LOCK}
"""The parameters of ``DRAIN_LOCK_ROW`` (classid is an unsigned oid)."""
LOCK_SESSION_SETTINGS: dict[str, str] = {
    # A host that dies without closing its connection (power loss, a partition) leaves the
    # server's end open, and the lock held, until the server notices. Its own keepalives
    # (tcp_keepalives_idle defaults to the system's, two hours on Linux) would notice after
    # hours; these notice 20 s + 3 × 10 s after the last word from the host.
    "tcp_keepalives_idle": "20",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
    # The same bound while the server waits for the dead host to acknowledge data it sent
    # (keepalives are not sent then, and retransmissions go on for minutes). Linux servers.
    "tcp_user_timeout": "50000",
    # The session sits idle for the whole drain: a server, database or role default of
    # idle_session_timeout must not end it, and the lock with it.
    "idle_session_timeout": "0",
}
"""Session settings of the drain lock's connection (milliseconds for the timeouts); a setting
this server does not have (tcp_user_timeout before PostgreSQL 12, idle_session_timeout before 14)
or refuses is left as it was (``lock_session_block``)."""

LIBPQ_ENVIRONMENT = {"connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME"}
"""libpq's environment variables for the connection parameters the store defaults."""


def lock_session_block(settings: dict[str, str]) -> str:
    """One statement applying ``settings`` to the session, each on its own: a setting this
    server lacks, or refuses on its platform (``tcp_user_timeout`` must be 0 where the system
    has no such option), is left as it was instead of failing the drain."""
    steps = "".join(
        f" BEGIN PERFORM set_config('{name}', '{value}', false);"
        " EXCEPTION WHEN OTHERS THEN NULL; END;"
        for name, value in settings.items()
        if re.fullmatch(r"[a-z_]+", name) and re.fullmatch(r"[0-9]+", value)
    )
    return f"DO $$ BEGIN{steps} END $$"


CLAIM = (
    # The drain lock still held by the session this drain's lease names, and the lease still
    # this drain's (NULL: not inside drain_lock). A pid alone could be a new session's: the
    # server's pids are reused, and a drain that took over writes its own lease first.
    # Built from constants only, no input.
    "WITH guard AS (SELECT %(holder)s::text IS NULL OR EXISTS (SELECT 1"  # noqa: S608
    " FROM drain_lease d JOIN pg_locks l ON l.pid = d.backend_pid"
    " WHERE d.holder = %(holder)s::text AND d.since = %(since)s::timestamptz AND "
    + DRAIN_LOCK_ROW
    + ") AS held),"
    " claimed AS (UPDATE deliveries SET status = 'sending', attempts = attempts + 1,"
    " text = %(text)s, sent_at = %(now)s, updated_at = %(now)s, error = NULL"
    " WHERE id = %(id)s AND status = 'pending' AND (SELECT held FROM guard)"
    " AND NOT EXISTS (SELECT 1 FROM pauses WHERE pauses.network IN (deliveries.network, %(all)s))"
    " AND NOT EXISTS (SELECT 1 FROM withdrawals"
    " WHERE withdrawals.release_id = deliveries.release_id"
    " AND withdrawals.network IN (deliveries.network, %(all)s))" + NOT_SUPERSEDED + " RETURNING *),"
    " attempt AS (INSERT INTO attempts (delivery_id, started_at) SELECT id, %(now)s FROM claimed)"
    " SELECT guard.held AS lock_held, claimed.* FROM guard LEFT JOIN claimed ON true"
)
"""A claim in one statement (one round trip): the lock check, the delivery (if still pending,
not paused, not withdrawn, its revision neither edited since nor rejected), its attempt row."""
HOLDER = (
    "SELECT d.holder, d.since FROM drain_lease d JOIN pg_locks l"  # noqa: S608 - constants
    " ON l.pid = d.backend_pid AND " + DRAIN_LOCK_ROW
)
"""The lease of the drain that holds the lock now (none while it has not written one)."""
FINISH = (
    "WITH done AS (UPDATE deliveries SET status = %(status)s, updated_at = %(now)s,"
    " error = %(error)s, next_attempt_at = %(next)s,"
    " attempts = GREATEST(attempts - %(taken_back)s, 0),"
    " remote_id = COALESCE(%(remote_id)s, remote_id), url = COALESCE(%(url)s, url),"
    " posted_at = CASE WHEN %(posted)s THEN %(now)s ELSE posted_at END"
    " WHERE id = %(id)s AND status = %(expect)s RETURNING id),"
    # Attempts that may have posted, looked for and not found (closed ones only: the open
    # attempt, closed below, is another row).
    " settled AS (UPDATE attempts SET outcome = 'absent' WHERE %(settled)s"
    " AND delivery_id IN (SELECT id FROM done) AND outcome = 'unknown'"
    " AND finished_at IS NOT NULL),"
    " closed AS (UPDATE attempts SET finished_at = %(now)s, outcome = %(outcome)s,"
    " error = %(error)s WHERE id = (SELECT MAX(id) FROM attempts WHERE delivery_id = %(id)s)"
    " AND finished_at IS NULL AND EXISTS (SELECT 1 FROM done)),"
    # Not durable: this statement's own transaction commits without waiting for the WAL
    # flush (set_config local to it; the server's setting is left alone otherwise).
    " quick AS (SELECT CASE WHEN %(quick)s"
    " THEN set_config('synchronous_commit', 'off', true) END AS setting)"
    " SELECT done.id FROM done, quick"
)
"""A delivery's outcome and its open attempt's in one statement (one round trip, in its own
transaction), if it was still ``expect``."""

_ID = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # Version 1: the posting log of socialbot 0.1.0.
    1: (
        f"""CREATE TABLE approvals (
            id {_ID},
            release_id TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            approved_at TIMESTAMPTZ NOT NULL,
            source TEXT NOT NULL,
            networks TEXT NOT NULL
        )""",
        """CREATE TABLE schedules (
            release_id TEXT PRIMARY KEY,
            approval_id BIGINT NOT NULL REFERENCES approvals (id)
        )""",
        "CREATE INDEX approvals_by_release ON approvals (release_id, id)",
        f"""CREATE TABLE deliveries (
            id {_ID},
            release_id TEXT NOT NULL,
            network TEXT NOT NULL,
            status TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            approved_at TIMESTAMPTZ NOT NULL,
            idempotency_key TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            text TEXT,
            remote_id TEXT,
            url TEXT,
            error TEXT,
            next_attempt_at TIMESTAMPTZ,
            sent_at TIMESTAMPTZ,
            posted_at TIMESTAMPTZ,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            UNIQUE (release_id, network)
        )""",
        "CREATE INDEX deliveries_by_status ON deliveries (status, network, next_attempt_at)",
        "CREATE INDEX deliveries_by_update ON deliveries (updated_at)",
        f"""CREATE TABLE attempts (
            id {_ID},
            delivery_id BIGINT NOT NULL REFERENCES deliveries (id),
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            outcome TEXT,
            error TEXT
        )""",
        "CREATE INDEX attempts_by_delivery ON attempts (delivery_id)",
        """CREATE TABLE network_holds (
            network TEXT PRIMARY KEY,
            not_before TIMESTAMPTZ NOT NULL,
            reason TEXT NOT NULL
        )""",
        """CREATE TABLE queue_files (
            path TEXT PRIMARY KEY,
            signature TEXT NOT NULL,
            release_id TEXT,
            content_hash TEXT,
            not_before TIMESTAMPTZ,
            error TEXT
        )""",
    ),
    # Version 2: releases and their revisions, approved snapshots, withdrawals, the audit
    # trail, pauses, a key-value area (sessions, the limits networks report) and the lease
    # row that says which drain holds the lock, and since when.
    2: (
        """CREATE TABLE releases (
            id TEXT PRIMARY KEY,
            latest_revision INTEGER NOT NULL,
            source TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX releases_by_update ON releases (updated_at)",
        """CREATE TABLE revisions (
            release_id TEXT NOT NULL,
            revision INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            content TEXT NOT NULL,
            source TEXT NOT NULL,
            author TEXT,
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (release_id, revision)
        )""",
        "ALTER TABLE approvals ADD COLUMN revision INTEGER",
        "ALTER TABLE approvals ADD COLUMN posts JSONB",
        "ALTER TABLE approvals ADD COLUMN comment TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE deliveries ADD COLUMN revision INTEGER",
        "ALTER TABLE deliveries ADD COLUMN approval_id BIGINT",
        "ALTER TABLE deliveries ADD COLUMN not_before TIMESTAMPTZ",
        "ALTER TABLE deliveries ADD COLUMN post JSONB",
        "CREATE INDEX deliveries_by_status_update ON deliveries (status, updated_at)",
        "CREATE INDEX deliveries_by_network_update ON deliveries (network, updated_at)",
        "CREATE INDEX deliveries_by_network_status_update"
        " ON deliveries (network, status, updated_at)",
        "CREATE INDEX deliveries_due ON deliveries (network, status, not_before, next_attempt_at)",
        f"""CREATE TABLE rejections (
            id {_ID},
            release_id TEXT NOT NULL,
            revision INTEGER NOT NULL,
            rejected_by TEXT NOT NULL,
            rejected_at TIMESTAMPTZ NOT NULL,
            reason TEXT NOT NULL
        )""",
        "CREATE INDEX rejections_by_release ON rejections (release_id)",
        f"""CREATE TABLE withdrawals (
            id {_ID},
            release_id TEXT NOT NULL,
            network TEXT NOT NULL,
            kind TEXT NOT NULL,
            withdrawn_by TEXT NOT NULL,
            withdrawn_at TIMESTAMPTZ NOT NULL,
            reason TEXT NOT NULL
        )""",
        "CREATE INDEX withdrawals_by_release ON withdrawals (release_id)",
        f"""CREATE TABLE audit (
            id {_ID},
            at TIMESTAMPTZ NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            release_id TEXT,
            network TEXT,
            revision INTEGER,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX audit_by_release ON audit (release_id, id)",
        """CREATE TABLE pauses (
            network TEXT PRIMARY KEY,
            paused_by TEXT NOT NULL,
            paused_at TIMESTAMPTZ NOT NULL,
            reason TEXT NOT NULL
        )""",
        """CREATE TABLE kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE drain_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            backend_pid INTEGER NOT NULL,
            holder TEXT NOT NULL,
            since TIMESTAMPTZ NOT NULL
        )""",
        "DELETE FROM queue_files",
    ),
    # Version 3: the approved image bytes, by their SHA-256.
    3: (
        """CREATE TABLE media (
            digest TEXT PRIMARY KEY,
            mime TEXT NOT NULL,
            data BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )""",
    ),
}
"""Each version's statements, applied in order in one transaction per version."""


# Up to the last "@" of the authority: a password with an unencoded "@" is masked whole.
_USERINFO_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^/\s]*@")
_PARAM_PASSWORD = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def strip_password(text: str) -> str:
    """``text`` with the password of any URL or ``password=`` parameter in it masked."""
    return _PARAM_PASSWORD.sub(r"\1[redacted]", _USERINFO_PASSWORD.sub(r"\1[redacted]@", text))


def safe_url(url: str) -> str:
    """``url`` without its password or query (for messages)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the URL (it cannot be read)"
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        found = _USERINFO_PASSWORD.search(url)
        return found.group(0)[len(found.group(1)) : -1] if found else None


def _password_parts(url: str) -> list[str]:
    """The password, and each piece of it between unencoded "@": libpq ends the password at
    the first "@" and reads the rest as the host, which its errors then echo."""
    password = _password(url)
    if not password:
        return []
    return sorted({password, *password.split("@")} - {""}, key=len, reverse=True)


class PostgresStore(SQLStore):
    """The store in a PostgreSQL database, shared by drains on any number of hosts."""

    bytewise = ' COLLATE "C"'
    lock_session_settings: ClassVar[dict[str, str]] = LOCK_SESSION_SETTINGS

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.where = safe_url(url)
        register_secret(*_password_parts(url))
        self._local = threading.local()
        self._connections: list[tuple[threading.Thread, psycopg.Connection[DictRow]]] = []
        """Each thread's connection; a finished thread's is closed when another opens."""
        # A store dropped without close() (a CLI run ending) still ends its sessions.
        weakref.finalize(self, _close_all, self._connections)
        self._lock = threading.Lock()
        self._lease: tuple[str, datetime] | None = None
        """The holder and start this store wrote in the drain's lease row, while it holds
        the drain lock: the lease names the session holding it (``pg_locks`` shows its locks
        until it ends), and the next drain to take the lock writes a lease of its own."""
        self._lock_session: psycopg.Connection[DictRow] | None = None
        """The connection holding the drain lock, while this store holds it."""
        self.migrate()

    # -- connections and transactions ---------------------------------------------------

    def _connect(
        self, application_name: str = "socialbot", **options: Any
    ) -> psycopg.Connection[DictRow]:
        """A new session; ``application_name`` and ``options`` are defaults for what the URL
        and libpq's environment (``PGCONNECT_TIMEOUT``, ``PGAPPNAME``) leave unset: a keyword
        argument would override both."""
        defaults = {
            "connect_timeout": max(1, round(self.connect_timeout)),
            "application_name": application_name,
            **options,
        }
        try:
            given = conninfo_to_dict(self.url)
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                **{
                    name: value
                    for name, value in defaults.items()
                    if name not in given and not os.environ.get(LIBPQ_ENVIRONMENT.get(name, ""))
                },
            )
        except psycopg.Error as exc:
            raise ConfigurationError(
                f"SOCIALBOT_DATABASE_URL: cannot connect to {self.where}: {self._reason(exc)}"
            ) from None
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    def _reason(self, exc: BaseException) -> str:
        """The driver's message as one line, with no password in it."""
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = lines[0] if lines else type(exc).__name__
        text = text.removeprefix("connection failed: ")
        text = re.sub(r"^connection to server at .*?failed: ", "", text).rstrip(".")
        for part in _password_parts(self.url):
            # A short piece is masked only where libpq echoes it, before the host's "@".
            text = text.replace(f"{part}@", "[redacted]@")
            if len(part) >= 4:
                text = text.replace(part, "[redacted]")
        return redact(strip_password(text))

    # A session the server ended (pg_terminate_backend, a restart, a failover, its
    # idle_session_timeout) is replaced, never the statement blindly sent again:
    # - before a statement, between transactions: a connection known to be closed, or one
    #   the server has written to while it sat idle (its farewell, "terminating connection
    #   …", or the end of the stream), is replaced by a new one, since nothing was sent on it;
    # - a read (``_rows``, never inside a transaction) that loses its connection runs once
    #   more on a new one: reading twice changes nothing; so does a transaction whose BEGIN
    #   finds the session dead (one that died unseen: no farewell, no end of stream);
    # - a write that loses its connection (a claim, an outcome, any transaction) is not sent
    #   again: its COMMIT may have happened, and the caller must hear that it is unknown
    #   (StoreError); the next statement gets a new connection;
    # - inside an open transaction the connection is never replaced, so no part of it can
    #   commit on its own; the drain lock's session (``drain_lock``) is never replaced
    #   either: losing it must stop the drain.
    def _connection(self) -> psycopg.Connection[DictRow]:
        conn: psycopg.Connection[DictRow] | None = getattr(self._local, "conn", None)
        if conn is not None and (getattr(self._local, "in_transaction", False) or _usable(conn)):
            return conn
        conn = self._connect()
        self._local.conn = conn
        with self._lock:
            finished = [
                pair
                for pair in self._connections
                if pair[1].closed or not pair[0].is_alive() or pair[0] is current_thread()
            ]
            _close_all(finished)  # this thread's old connection among them
            self._connections[:] = [p for p in self._connections if p not in finished]
            self._connections.append((current_thread(), conn))
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A lost server or a full disk as one sentence (StoreError)."""
        try:
            yield
        except psycopg.OperationalError as exc:
            raise StoreError(
                f"the database {self.where} cannot be used: {self._reason(exc)}"
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[DictRow]]:
        """One transaction (or a part of the one already open on this thread)."""
        with self._errors():
            conn = self._connection()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                yield conn
                return
            try:
                with ExitStack() as stack:
                    try:
                        stack.enter_context(conn.transaction())
                    except psycopg.OperationalError:
                        # Only BEGIN went out, and it changes nothing: a session that died
                        # unseen (a failover's new host answers it with a reset) is replaced.
                        if not conn.broken:
                            raise
                        conn = self._connection()
                        stack.enter_context(conn.transaction())
                    self._local.in_transaction = True
                    yield conn
            finally:
                self._local.in_transaction = False

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        """The rows of a read; once more on a new connection if the server ended this one."""
        with self._errors():
            conn = self._connection()
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if getattr(self._local, "in_transaction", False) or not conn.broken:
                    raise
            return self._connection().execute(sql, params).fetchall()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _insert(self, conn: Connection, sql: str, params: Sequence[Any]) -> int:
        row = conn.execute(self._sql(sql) + " RETURNING id", params).fetchone()
        return int(row["id"])

    def _time_in(self, value: datetime | None) -> datetime | None:
        return value

    def _time_out(self, value: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def _json_in(self, value: Any) -> Jsonb:
        return Jsonb(value)

    def _json_out(self, value: Any) -> Any:
        return value

    def _serialize_revisions(self, conn: Connection, release_id: str) -> None:
        # Two hosts scanning the same edit at once number it in turn, never twice.
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (REVISION_LOCKS, release_id))

    def migrate(self) -> int:
        """Bring the schema to ``SCHEMA_VERSION``; returns the version found."""
        found = self.schema_version()
        if found >= SCHEMA_VERSION:  # the usual case: two reads, no lock, no DDL
            return found
        for version in range(1, SCHEMA_VERSION + 1):
            with self._transaction() as conn:
                conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATE_LOCK))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version"
                    " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
                )
                row = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
                current = int(row["v"] or 0) if row else 0
                if current >= version:
                    continue
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                    (version, utcnow()),
                )
        return found

    def schema_version(self) -> int:
        """The version of the schema in the database (0 for an empty database)."""
        row = self._one("SELECT to_regclass('schema_version') IS NOT NULL AS present")
        if row is None or not row["present"]:
            return 0
        row = self._one("SELECT MAX(version) AS v FROM schema_version")
        return int(row["v"] or 0) if row else 0

    def close(self) -> None:
        with self._lock:
            _close_all(self._connections)
        self._local = threading.local()

    @contextmanager
    def drain_lock(self, *, stale_after: float | None = None) -> Iterator[None]:
        """One drain at a time on this database, whichever host it runs on.

        A session advisory lock, held on a connection of its own for the
        duration of the context: when the process dies, its connection closes
        and the server releases the lock; when its host dies, the server notices
        within a minute (``LOCK_SESSION_SETTINGS``). The holder writes a lease row
        (pid, host, since) so a refused run can say who holds it and for how long.
        """
        holder = f"{os.getpid()} on {socket.gethostname()}"
        since = utcnow()
        conn = self._connect(
            application_name=f"socialbot drain {holder}"[:63],
            # These keep a firewall from forgetting the idle connection; the server's own
            # (LOCK_SESSION_SETTINGS, set below) end the session of a host that died.
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        try:
            with self._errors():
                conn.execute(lock_session_block(self.lock_session_settings))
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s, %s) AS got", (LOCK_CLASS, DRAIN_LOCK)
                ).fetchone()
                if row is None or not row["got"]:
                    raise self._already_running(conn, stale_after)
                conn.execute(
                    "INSERT INTO drain_lease (id, backend_pid, holder, since)"
                    " VALUES (1, pg_backend_pid(), %s, %s) ON CONFLICT (id) DO UPDATE"
                    " SET backend_pid = excluded.backend_pid, holder = excluded.holder,"
                    " since = excluded.since",
                    (holder, since),
                )
            self._lease = holder, since
            self._lock_session = conn
            yield
        finally:
            self._lease = None
            self._lock_session = None
            conn.close()  # ends the session, and with it the lock

    def _already_running(
        self, conn: psycopg.Connection[DictRow], stale_after: float | None
    ) -> AlreadyRunning:
        """Describe the drain holding the lock, from the lease row it wrote."""
        row = conn.execute(HOLDER, DRAIN_LOCK_ROW_PARAMS).fetchone()
        if row is None:  # the holder has not written its lease yet
            return AlreadyRunning(
                f"another drain holds the lock on {self.where}; this run did nothing"
            )
        since = self._time(row, "since")
        who = (
            f"another drain (pid {row['holder']}) has been running"
            f" since {since:%Y-%m-%d %H:%M:%S} UTC"
        )
        age = (utcnow() - since).total_seconds()
        if stale_after is not None and age > stale_after:
            return AlreadyRunning(
                f"{who}, far longer than its time budget: it may hang; check process"
                f" {row['holder']} (killing it is safe: the next run recovers its work)",
                stale=True,
            )
        return AlreadyRunning(f"{who}; this run did nothing")

    # -- releases and revisions -----------------------------------------------------------

    def latest_revisions(self, release_ids: Iterable[str] | None = None) -> dict[str, Revision]:
        sql = (
            "SELECT v.* FROM revisions v JOIN releases r"
            " ON v.release_id = r.id AND v.revision = r.latest_revision"
        )
        if release_ids is None:
            rows = self._rows(sql)
        else:
            rows = self._rows(sql + " WHERE r.id = ANY(%s)", (sorted(set(release_ids)),))
        return {row["release_id"]: self._revision(row) for row in rows}

    # -- approvals, rejections, withdrawals, audit ---------------------------------------

    def latest_approvals(self, release_ids: Iterable[str] | None = None) -> dict[str, Approval]:
        """Each release's newest approval; only for ``release_ids`` when given."""
        sql = "SELECT DISTINCT ON (release_id) * FROM approvals"
        if release_ids is None:
            rows = self._rows(sql + " ORDER BY release_id, id DESC")
        else:
            rows = self._rows(
                sql + " WHERE release_id = ANY(%s) ORDER BY release_id, id DESC",
                (sorted(set(release_ids)),),
            )
        return {row["release_id"]: self._approval(row) for row in rows}

    # -- deliveries --------------------------------------------------------------------

    def claim(self, delivery_id: int, text: str, now: datetime) -> Delivery | None:
        """Mark a pending delivery as being sent, durably, before the network call.

        Returns None when another run (on any host) got there first (a second
        ``UPDATE`` waits for the first to commit, then finds the row no longer pending),
        when its network (or every network) is paused, when its release is withdrawn
        or retracted on its network (or on all), or its revision edited since or rejected.
        Inside ``drain_lock``, the claim is made only while the server still counts
        the lock as held by this drain's session; otherwise StoreError. One statement,
        so one round trip: the claim, its attempt row and the lock check.
        """
        with self._errors():
            row = (
                self._connection()
                .execute(
                    CLAIM,
                    {
                        "holder": self._lease[0] if self._lease else None,
                        "since": self._lease[1] if self._lease else None,
                        **DRAIN_LOCK_ROW_PARAMS,
                        "text": text,
                        "now": now,
                        "id": delivery_id,
                        "all": ALL_NETWORKS,
                    },
                )
                .fetchone()
            )
        if row is None or not row["lock_held"]:
            raise StoreError(
                f"this drain lost its lock on {self.where} (its session ended), so it"
                " stopped before sending anything more"
            )
        return None if row["id"] is None else self._delivery(row)

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

        The same contract as ``SQLiteStore.finish``: returns False (and changes
        nothing) when someone else changed the delivery first. ``durable=False``
        commits without waiting for the WAL flush (``synchronous_commit``
        off for this transaction); the next durable commit flushes it.
        """
        error = redact(error) if error else error
        with self._errors():
            row = (
                self._connection()
                .execute(
                    FINISH,
                    {
                        "id": delivery_id,
                        "status": status.value,
                        "expect": expect.value,
                        "now": now,
                        "error": error,
                        "next": next_attempt_at,
                        "taken_back": 0 if count_attempt else 1,
                        "remote_id": receipt.remote_id if receipt else None,
                        "url": receipt.url if receipt else None,
                        "posted": status is DeliveryStatus.POSTED,
                        "settled": settled,
                        "outcome": "unknown" if uncertain else status.value,
                        "quick": not durable,
                    },
                )
                .fetchone()
            )
        return row is not None

    # -- the key-value area ----------------------------------------------------------------

    def entries(self, prefix: str) -> dict[str, str]:
        rows = self._rows(
            'SELECT key, value FROM kv WHERE starts_with(key, %s) ORDER BY key COLLATE "C"',
            (prefix,),
        )
        return {row["key"]: row["value"] for row in rows}

    # -- the queue scan cache ------------------------------------------------------------

    def remember_files(self, files: Sequence[QueueFile], forget: Sequence[str]) -> None:
        if not files and not forget:
            return
        with self._transaction() as conn, conn.cursor() as cursor:
            if forget:
                cursor.execute("DELETE FROM queue_files WHERE path = ANY(%s)", (list(forget),))
            if files:
                cursor.executemany(
                    "INSERT INTO queue_files"
                    " (path, signature, release_id, content_hash, not_before, error)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (path) DO UPDATE"
                    " SET signature = excluded.signature, release_id = excluded.release_id,"
                    " content_hash = excluded.content_hash, not_before = excluded.not_before,"
                    " error = excluded.error",
                    [
                        (f.path, f.signature, f.release_id, f.content_hash, f.not_before, f.error)
                        for f in files
                    ],
                )


def _usable(conn: psycopg.Connection[DictRow]) -> bool:
    """Whether ``conn`` may take a statement: open, and not ended by the server while idle.

    An idle session in autocommit expects nothing from the server, so anything to read on
    its socket is the server's last word (a FATAL message, then the end of the stream).
    """
    if conn.closed or conn.broken:
        return False
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return True
    # Asked before every statement: one poll(2) call, where a selector would open, fill and
    # close an epoll instance each time.
    waiting = select.poll()
    waiting.register(conn.fileno(), select.POLLIN)
    return not waiting.poll(0)


def _close_all(connections: list[tuple[threading.Thread, psycopg.Connection[DictRow]]]) -> None:
    for _, conn in connections:
        conn.close()
    connections.clear()

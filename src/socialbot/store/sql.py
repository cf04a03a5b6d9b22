"""What the SQLite and PostgreSQL stores share: the statements that mean the same in both.

They are written once here, with ``?`` placeholders. Each store says how its
database spells a placeholder (``_sql``), how it runs a query (``_transaction``,
``_rows``), and how a time or a JSON document goes in and comes out. What
differs in substance stays in each store: migrations, the drain lock, the claim
and the outcome (one round trip each on PostgreSQL), the batched reads, the key
prefix search and the queue scan cache's bulk write.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from socialbot.logs import redact
from socialbot.models import Approval, Delivery, DeliveryStatus, Post, Release, Revision
from socialbot.store.base import (
    ALL_NETWORKS,
    AuditEntry,
    Pause,
    QueueFile,
    Rejection,
    Withdrawal,
    check_media,
    utcnow,
)

NOT_SUPERSEDED = (
    " AND NOT EXISTS (SELECT 1 FROM releases WHERE releases.id = deliveries.release_id"
    " AND releases.latest_revision > deliveries.revision)"
    " AND NOT EXISTS (SELECT 1 FROM rejections WHERE rejections.release_id ="
    " deliveries.release_id AND rejections.revision = deliveries.revision)"
)
"""The part of a claim's condition that keeps a revision edited since, or rejected, from going
out, whenever the edit or the rejection is recorded (a delivery from 0.1.0 has no revision)."""


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any], /) -> Cursor: ...


class SQLStore(ABC):
    """The part of ``Store`` that both SQL dialects share (rows are read by column name)."""

    bytewise = ""
    """What orders text byte by byte after ``ORDER BY column`` (SQLite's default already)."""

    # -- what each database supplies ------------------------------------------------------

    @abstractmethod
    def _sql(self, sql: str) -> str:
        """The statement with this database's placeholders instead of ``?``."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Connection]:
        """One write transaction (or a part of the one already open on this thread)."""

    @abstractmethod
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of a query, in this database's placeholders."""

    @abstractmethod
    def _time_in(self, value: datetime | None) -> Any:
        """A time as this database stores it."""

    @abstractmethod
    def _time_out(self, value: Any) -> datetime | None:
        """A stored time as an aware UTC datetime."""

    @abstractmethod
    def _json_in(self, value: Any) -> Any:
        """A JSON document as this database stores it."""

    @abstractmethod
    def _json_out(self, value: Any) -> Any:
        """A stored JSON document, parsed."""

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._rows(self._sql(sql), params)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _run(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a write in ``conn``'s transaction; how many rows it changed."""
        return conn.execute(self._sql(sql), params).rowcount

    @abstractmethod
    def _insert(self, conn: Connection, sql: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` of one row in ``conn``'s transaction; the new row's ``id``."""

    def _audit_line(
        self,
        conn: Connection,
        at: Any,
        actor: str,
        action: str,
        detail: str,
        *,
        release_id: str | None = None,
        network: str | None = None,
        revision: int | None = None,
    ) -> None:
        """One line of the audit trail, in ``conn``'s transaction (``at`` as stored)."""
        self._run(
            conn,
            "INSERT INTO audit (at, actor, action, release_id, network, revision, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (at, actor, action, release_id, network, revision, detail),
        )

    def _time(self, row: Any, name: str) -> datetime:
        value = self._time_out(row[name])
        assert value is not None, name
        return value

    # -- rows to records -----------------------------------------------------------------

    def _revision(self, row: Any) -> Revision:
        return Revision(
            release_id=row["release_id"],
            number=row["revision"],
            content_hash=row["content_hash"],
            release=Release.model_validate_json(row["content"]),
            source=row["source"],
            created_at=self._time(row, "created_at"),
            author=row["author"],
        )

    def _approval(self, row: Any) -> Approval:
        posts = self._json_out(row["posts"]) if row["posts"] else ()
        return Approval(
            release_id=row["release_id"],
            content_hash=row["content_hash"],
            approved_by=row["approved_by"],
            approved_at=self._time(row, "approved_at"),
            source=row["source"],
            networks=tuple(n for n in row["networks"].split(",") if n),
            id=int(row["id"]),
            revision=row["revision"],
            posts=tuple(Post.from_dict(item) for item in posts),
            comment=row["comment"] or "",
        )

    def _delivery(self, row: Any) -> Delivery:
        time_out = self._time_out
        return Delivery(
            id=int(row["id"]),
            release_id=row["release_id"],
            network=row["network"],
            status=DeliveryStatus(row["status"]),
            content_hash=row["content_hash"],
            approved_by=row["approved_by"],
            approved_at=self._time(row, "approved_at"),
            attempts=row["attempts"],
            created_at=self._time(row, "created_at"),
            updated_at=self._time(row, "updated_at"),
            text=row["text"],
            remote_id=row["remote_id"],
            url=row["url"],
            error=row["error"],
            next_attempt_at=time_out(row["next_attempt_at"]),
            sent_at=time_out(row["sent_at"]),
            posted_at=time_out(row["posted_at"]),
            idempotency_key=row["idempotency_key"],
            revision=row["revision"],
            approval_id=row["approval_id"],
            not_before=time_out(row["not_before"]),
            post=Post.from_dict(self._json_out(row["post"])) if row["post"] else None,
        )

    # -- releases and revisions ----------------------------------------------------------

    def _serialize_revisions(self, conn: Connection, release_id: str) -> None:  # noqa: B027
        """Make two writers numbering one release's revisions take turns (nothing to do
        where every write transaction already excludes the others, as in SQLite)."""

    def record_revision(
        self, release: Release, *, source: str, author: str | None, now: datetime
    ) -> Revision | None:
        """A new revision when the content differs from the latest one; else None."""
        content_hash = release.content_hash()
        stamp = self._time_in(now)
        with self._transaction() as conn:
            self._serialize_revisions(conn, release.id)
            row = conn.execute(
                self._sql(
                    "SELECT r.latest_revision, v.content_hash FROM releases r"
                    " LEFT JOIN revisions v"
                    " ON v.release_id = r.id AND v.revision = r.latest_revision"
                    " WHERE r.id = ?"
                ),
                (release.id,),
            ).fetchone()
            if row is not None and row["content_hash"] == content_hash:
                return None
            number = 1 if row is None else int(row["latest_revision"]) + 1
            if row is None:
                self._run(
                    conn,
                    "INSERT INTO releases (id, latest_revision, source, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (release.id, number, source, stamp, stamp),
                )
            else:
                self._run(
                    conn,
                    "UPDATE releases SET latest_revision = ?, source = ?, updated_at = ?"
                    " WHERE id = ?",
                    (number, source, stamp, release.id),
                )
            self._run(
                conn,
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
            self._audit_line(
                conn,
                stamp,
                author or "",
                "revision",
                f"from {source}",
                release_id=release.id,
                revision=number,
            )
        return Revision(release.id, number, content_hash, release, source, now, author)

    def revisions(self, release_id: str) -> list[Revision]:
        rows = self._query(
            "SELECT * FROM revisions WHERE release_id = ? ORDER BY revision", (release_id,)
        )
        return [self._revision(row) for row in rows]

    def release_ids(self) -> list[str]:
        rows = self._query("SELECT id FROM releases ORDER BY updated_at DESC")
        return [row["id"] for row in rows]

    # -- approvals, rejections, withdrawals, audit ---------------------------------------

    def record_approval(self, approval: Approval) -> int:
        posts = [post.to_dict() for post in approval.posts]
        at = self._time_in(approval.approved_at)
        with self._transaction() as conn:
            approval_id = self._insert(
                conn,
                "INSERT INTO approvals (release_id, content_hash, approved_by, approved_at,"
                " source, networks, revision, posts, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    approval.release_id,
                    approval.content_hash,
                    approval.approved_by,
                    at,
                    approval.source,
                    ",".join(approval.networks),
                    approval.revision,
                    self._json_in(posts) if posts else None,
                    redact(approval.comment),
                ),
            )
            self._audit_line(
                conn,
                at,
                approval.approved_by,
                "approve",
                redact(
                    f"for {', '.join(approval.networks)}"
                    + (f": {approval.comment}" if approval.comment else "")
                ),
                release_id=approval.release_id,
                revision=approval.revision,
            )
        return approval_id

    def approval(self, approval_id: int) -> Approval | None:
        row = self._one("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return self._approval(row) if row else None

    def approvals(self, release_id: str | None = None) -> list[Approval]:
        if release_id is None:
            rows = self._query("SELECT * FROM approvals ORDER BY id")
        else:
            rows = self._query(
                "SELECT * FROM approvals WHERE release_id = ? ORDER BY id", (release_id,)
            )
        return [self._approval(row) for row in rows]

    def record_rejection(self, rejection: Rejection) -> None:
        at, reason = self._time_in(rejection.at), redact(rejection.reason)
        with self._transaction() as conn:
            self._run(
                conn,
                "INSERT INTO rejections (release_id, revision, rejected_by, rejected_at, reason)"
                " VALUES (?, ?, ?, ?, ?)",
                (rejection.release_id, rejection.revision, rejection.by, at, reason),
            )
            self._audit_line(
                conn,
                at,
                rejection.by,
                "reject",
                reason,
                release_id=rejection.release_id,
                revision=rejection.revision,
            )

    def rejections(self, release_id: str) -> list[Rejection]:
        rows = self._query(
            "SELECT * FROM rejections WHERE release_id = ? ORDER BY id", (release_id,)
        )
        return [
            Rejection(
                row["release_id"],
                row["revision"],
                row["rejected_by"],
                self._time(row, "rejected_at"),
                row["reason"],
            )
            for row in rows
        ]

    def record_withdrawal(self, withdrawal: Withdrawal) -> None:
        at, reason = self._time_in(withdrawal.at), redact(withdrawal.reason)
        with self._transaction() as conn:
            self._run(
                conn,
                "INSERT INTO withdrawals (release_id, network, kind, withdrawn_by, withdrawn_at,"
                " reason) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    withdrawal.release_id,
                    withdrawal.network,
                    withdrawal.kind,
                    withdrawal.by,
                    at,
                    reason,
                ),
            )
            self._audit_line(
                conn,
                at,
                withdrawal.by,
                withdrawal.kind,
                reason,
                release_id=withdrawal.release_id,
                network=None if withdrawal.network == ALL_NETWORKS else withdrawal.network,
            )

    def withdrawals(self, release_id: str | None = None) -> list[Withdrawal]:
        if release_id is None:
            rows = self._query("SELECT * FROM withdrawals ORDER BY id")
        else:
            rows = self._query(
                "SELECT * FROM withdrawals WHERE release_id = ? ORDER BY id", (release_id,)
            )
        return [
            Withdrawal(
                row["release_id"],
                row["network"],
                row["kind"],
                row["withdrawn_by"],
                self._time(row, "withdrawn_at"),
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
            self._audit_line(
                conn,
                self._time_in(now),
                actor,
                action,
                redact(detail),
                release_id=release_id,
                network=network,
                revision=revision,
            )

    def audit_trail(self, release_id: str | None = None) -> list[AuditEntry]:
        if release_id is None:
            rows = self._query("SELECT * FROM audit ORDER BY id")
        else:
            rows = self._query(
                "SELECT * FROM audit WHERE release_id = ? ORDER BY id", (release_id,)
            )
        return [
            AuditEntry(
                row["id"],
                self._time(row, "at"),
                row["actor"],
                row["action"],
                row["release_id"],
                row["network"],
                row["revision"],
                row["detail"],
            )
            for row in rows
        ]

    # -- deliveries ----------------------------------------------------------------------

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
        stamp = self._time_in(now)
        with self._transaction() as conn:
            created = self._run(
                conn,
                "INSERT INTO deliveries (release_id, network, status, content_hash, approved_by,"
                " approved_at, idempotency_key, created_at, updated_at, revision, approval_id,"
                " not_before, post, text) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (release_id, network) DO NOTHING",
                (
                    approval.release_id,
                    post.network,
                    approval.content_hash,
                    approval.approved_by,
                    self._time_in(approval.approved_at),
                    key,
                    stamp,
                    stamp,
                    approval.revision,
                    approval.id,
                    self._time_in(not_before),
                    self._json_in(post.to_dict()),
                    post.text,
                ),
            )
            return created == 1

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
        with self._transaction() as conn:
            moved = self._run(
                conn,
                "UPDATE deliveries SET status = 'pending', content_hash = ?, approved_by = ?,"
                " approved_at = ?, idempotency_key = ?, revision = ?, approval_id = ?,"
                " not_before = ?, post = ?, text = ?, attempts = 0, next_attempt_at = NULL,"
                " error = NULL, updated_at = ?"
                # The approval it showed, or none (a 0.1.0 delivery); ids start at 1.
                " WHERE id = ? AND status = ? AND COALESCE(approval_id, 0) = COALESCE(?, 0)",
                (
                    approval.content_hash,
                    approval.approved_by,
                    self._time_in(approval.approved_at),
                    key,
                    approval.revision,
                    approval.id,
                    self._time_in(not_before),
                    self._json_in(post.to_dict()),
                    post.text,
                    self._time_in(now),
                    delivery.id,
                    delivery.status.value,
                    delivery.approval_id,
                ),
            )
            if moved == 1:
                # Earlier attempts were of another revision, under another key.
                self._run(
                    conn,
                    "UPDATE attempts SET outcome = 'superseded' WHERE delivery_id = ?"
                    " AND outcome = 'absent'",
                    (delivery.id,),
                )
            return moved == 1

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
            moved = self._run(
                conn,
                "UPDATE deliveries SET status = ?, error = COALESCE(?, error), updated_at = ?,"
                " next_attempt_at = NULL WHERE id = ? AND status = ?",
                (
                    status.value,
                    redact(error) if error else None,
                    self._time_in(now),
                    delivery.id,
                    delivery.status.value,
                ),
            )
            return moved == 1

    def get(self, release_id: str, network: str) -> Delivery | None:
        row = self._one(
            "SELECT * FROM deliveries WHERE release_id = ? AND network = ?", (release_id, network)
        )
        return self._delivery(row) if row else None

    def deliveries(
        self,
        *,
        release_id: str | None = None,
        network: str | None = None,
        status: DeliveryStatus | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[Delivery]:
        clauses: list[str] = []
        params: list[object] = []
        for column, value in (
            ("release_id = ?", release_id),
            ("network = ?", network),
            ("status = ?", status.value if status else None),
            ("updated_at >= ?", self._time_in(since)),
        ):
            if value is not None:
                clauses.append(column)
                params.append(value)
        sql = "SELECT * FROM deliveries"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY updated_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._delivery(row) for row in self._query(sql, params)]

    def posted_under_retraction(self) -> list[Delivery]:
        """Posted deliveries of the releases with a retraction on record, on any network.

        Found by release (the few retracted ones), never by status: ``|| ''`` keeps SQLite
        from reading every posted delivery through the status index instead.
        """
        rows = self._query(
            "SELECT * FROM deliveries WHERE release_id IN"
            " (SELECT release_id FROM withdrawals WHERE kind = 'retract')"
            " AND status || '' = ? ORDER BY id",
            (DeliveryStatus.POSTED.value,),
        )
        return [self._delivery(row) for row in rows]

    def due(self, network: str, now: datetime) -> list[Delivery]:
        """Pending deliveries for a network whose wait is over, oldest approval first."""
        stamp = self._time_in(now)
        rows = self._query(
            # Built from constants only, no input.
            "SELECT * FROM deliveries WHERE status = 'pending' AND network = ?"  # noqa: S608
            " AND (not_before IS NULL OR not_before <= ?)"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            " ORDER BY approved_at, release_id" + self.bytewise,
            (network, stamp, stamp),
        )
        return [self._delivery(row) for row in rows]

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
        row = self._one(
            "SELECT MIN(started_at) AS first FROM attempts WHERE delivery_id = ?"
            " AND outcome IN ('unknown', ?)",
            (delivery_id, settled),
        )
        return self._time_out(row["first"]) if row else None

    def requeue(self, release_id: str, network: str | None, now: datetime) -> int:
        """Put failed deliveries back to pending with a fresh attempt count."""
        sql = (
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL,"
            " error = NULL, updated_at = ? WHERE release_id = ? AND status = 'failed'"
        )
        params: list[object] = [self._time_in(now), release_id]
        if network is not None:
            sql += " AND network = ?"
            params.append(network)
        with self._transaction() as conn:
            return self._run(conn, sql, params)

    def resolve(
        self, release_id: str, network: str, now: datetime, *, url: str | None
    ) -> Delivery | None:
        """An operator's verdict on a delivery that may or may not have been posted.

        With ``url`` it is posted there (from ``unknown`` or ``failed``); without,
        it was not posted and goes back to ``pending`` (from ``unknown`` only).
        """
        stamp = self._time_in(now)
        with self._transaction() as conn:
            if url is not None:
                moved = self._run(
                    conn,
                    "UPDATE deliveries SET status = 'posted', url = ?, posted_at = ?,"
                    " updated_at = ?, error = 'marked as posted by an operator'"
                    " WHERE release_id = ? AND network = ? AND status IN ('unknown', 'failed')",
                    (url, stamp, stamp, release_id, network),
                )
            else:
                moved = self._run(
                    conn,
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = NULL,"
                    " updated_at = ?, error = 'marked as not posted by an operator'"
                    " WHERE release_id = ? AND network = ? AND status = 'unknown'",
                    (stamp, release_id, network),
                )
                if moved == 1:
                    self._run(
                        conn,
                        "UPDATE attempts SET outcome = 'absent' WHERE outcome = 'unknown'"
                        " AND delivery_id = (SELECT id FROM deliveries"
                        " WHERE release_id = ? AND network = ?)",
                        (release_id, network),
                    )
            if moved != 1:
                return None
            row = conn.execute(
                self._sql("SELECT * FROM deliveries WHERE release_id = ? AND network = ?"),
                (release_id, network),
            ).fetchone()
        return self._delivery(row)

    def counts(self) -> dict[DeliveryStatus, int]:
        counts = dict.fromkeys(DeliveryStatus, 0)
        for row in self._query("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status"):
            counts[DeliveryStatus(row["status"])] = int(row["n"])
        return counts

    def pending_counts(self) -> dict[str, int]:
        rows = self._query(
            "SELECT network, COUNT(*) AS n FROM deliveries WHERE status = 'pending'"
            " GROUP BY network"
        )
        return {row["network"]: int(row["n"]) for row in rows}

    # -- holds, pauses, key-value --------------------------------------------------------

    def hold(self, network: str) -> tuple[datetime, str] | None:
        row = self._one(
            "SELECT not_before, reason FROM network_holds WHERE network = ?", (network,)
        )
        return None if row is None else (self._time(row, "not_before"), row["reason"])

    def set_hold(self, network: str, not_before: datetime, reason: str) -> None:
        with self._transaction() as conn:
            self._run(
                conn,
                "INSERT INTO network_holds (network, not_before, reason) VALUES (?, ?, ?)"
                " ON CONFLICT (network) DO UPDATE SET not_before = excluded.not_before,"
                " reason = excluded.reason",
                (network, self._time_in(not_before), redact(reason)),
            )

    def pause(self, pause: Pause) -> None:
        at, reason = self._time_in(pause.at), redact(pause.reason)
        with self._transaction() as conn:
            self._run(
                conn,
                "INSERT INTO pauses (network, paused_by, paused_at, reason) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (network) DO UPDATE SET paused_by = excluded.paused_by,"
                " paused_at = excluded.paused_at, reason = excluded.reason",
                (pause.network, pause.by, at, reason),
            )
            self._audit_line(conn, at, pause.by, "pause", reason, network=pause.network)

    def resume(self, network: str) -> bool:
        with self._transaction() as conn:
            return self._run(conn, "DELETE FROM pauses WHERE network = ?", (network,)) == 1

    def pauses(self) -> dict[str, Pause]:
        return {
            row["network"]: Pause(
                row["network"], row["paused_by"], self._time(row, "paused_at"), row["reason"]
            )
            for row in self._query("SELECT * FROM pauses")
        }

    def get_value(self, key: str) -> str | None:
        row = self._one("SELECT value FROM kv WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    def set_value(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            self._run(
                conn,
                "INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (key, value, self._time_in(utcnow())),
            )

    # -- approved images -----------------------------------------------------------------

    def put_media(self, digest: str, mime: str, data: bytes) -> None:
        check_media(digest, data)
        with self._transaction() as conn:
            self._run(
                conn,
                "INSERT INTO media (digest, mime, data, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (digest) DO NOTHING",
                (digest, mime, data, self._time_in(utcnow())),
            )

    def get_media(self, digest: str) -> tuple[str, bytes] | None:
        row = self._one("SELECT mime, data FROM media WHERE digest = ?", (digest,))
        return (str(row["mime"]), bytes(row["data"])) if row else None

    # -- the queue scan cache ------------------------------------------------------------

    def queue_files(self) -> dict[str, QueueFile]:
        return {
            row["path"]: QueueFile(
                path=row["path"],
                signature=row["signature"],
                release_id=row["release_id"],
                content_hash=row["content_hash"],
                not_before=self._time_out(row["not_before"]),
                error=row["error"],
            )
            for row in self._query("SELECT * FROM queue_files")
        }

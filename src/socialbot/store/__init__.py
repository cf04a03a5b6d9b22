"""The store: releases and their revisions, approvals, deliveries and the posting log.

``Store`` is the contract every backend implements with primitive,
compare-and-set operations; the rules about *which* transition to make live
in Python (``socialbot.approvals``, ``socialbot.publish``), not in SQL.
``SQLiteStore`` is the embedded default; ``open_store`` picks the backend from
``SOCIALBOT_DATABASE_URL``.
"""

from __future__ import annotations

from socialbot.store.base import (
    AuditEntry,
    Pause,
    QueueFile,
    Rejection,
    Store,
    Withdrawal,
    delivery_key,
    from_text,
    to_text,
    utcnow,
)
from socialbot.store.sqlite import ID_BATCH, SQLiteStore


def open_store(url: str) -> Store:
    """The store behind a database URL (``sqlite:///path`` or ``postgresql://…``)."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from socialbot.store.postgres import PostgresStore

        return PostgresStore(url)
    from socialbot.errors import ConfigurationError

    raise ConfigurationError("SOCIALBOT_DATABASE_URL must be a sqlite:///path or postgresql:// URL")


__all__ = [
    "ID_BATCH",
    "AuditEntry",
    "Pause",
    "QueueFile",
    "Rejection",
    "SQLiteStore",
    "Store",
    "Withdrawal",
    "delivery_key",
    "from_text",
    "open_store",
    "to_text",
    "utcnow",
]

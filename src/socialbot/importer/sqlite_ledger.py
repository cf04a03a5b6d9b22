"""A stop-gap KeyValue store: the ledger in socialbot's SQLite file, in a table of its own.

Until the store offers ``get_value``/``set_value``/``keys`` itself, the CLI uses this.
It touches nothing but the ``import_ledger`` table, which it creates when missing.
"""

from __future__ import annotations

import sqlite3


class SQLiteKeyValue:
    """KeyValue over ``import_ledger(key TEXT PRIMARY KEY, value TEXT)``."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 60000")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS import_ledger(key TEXT PRIMARY KEY, value TEXT)"
        )

    def get_value(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM import_ledger WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO import_ledger(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def keys(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._db.execute(
            "SELECT key FROM import_ledger WHERE key LIKE ? ESCAPE '\\' ORDER BY key",
            (escaped + "%",),
        ).fetchall()
        return [str(row[0]) for row in rows if str(row[0]).startswith(prefix)]

    def close(self) -> None:
        self._db.close()

"""How SQLite runs the store's queries on a big posting log.

The SQL is the store's own, captured with a trace callback while it runs (with
its real parameters), then passed to ``EXPLAIN QUERY PLAN``. A plan step that
reads a whole table is what makes a command's cost grow with the history.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from socialbot.store import SQLiteStore

if TYPE_CHECKING:
    from socialbot.config import Settings

EXPECTED_SCANS = ("queue_files",)
"""Tables read whole by design: the scan cache has one row per file in the queue."""


class TracingStore(SQLiteStore):
    """The real store, recording every SQL statement it runs (for the benchmark)."""

    def __init__(self, path: str) -> None:
        self.statements: list[str] = []
        super().__init__(path)

    def _connection(self) -> sqlite3.Connection:
        conn = super()._connection()
        conn.set_trace_callback(self.statements.append)
        return conn


@dataclass
class QueryCheck:
    """One store call (or a whole run): its time and the plans of its statements."""

    call: str
    milliseconds: float
    plans: dict[str, list[str]] = field(default_factory=dict)
    """Statement shape -> its plan steps."""

    def scans(self, *, strict: bool = False) -> list[str]:
        """Plan steps that read a whole table (``strict``: or a whole index).

        A walk along an index that stops at a LIMIT is not counted; the scan
        cache (one row per queue file) is read whole by design.
        """
        found = []
        for sql, steps in self.plans.items():
            bounded = re.search(r"\bLIMIT\b", sql, re.IGNORECASE) is not None
            for step in steps:
                match = re.match(r"SCAN (\w+)", step)
                if match is None or match[1] in EXPECTED_SCANS:
                    continue
                if match[1] in ("CONSTANT", "m") or match[1].startswith("sqlite_"):
                    continue  # a constant row, or a subquery's result
                if "INDEX" in step and (not strict or bounded):
                    continue
                found.append(step)
        return list(dict.fromkeys(found))

    def summary(self) -> str:
        steps = [step for plan in self.plans.values() for step in plan]
        return " / ".join(dict.fromkeys(steps))


def shape(sql: str) -> str:
    """A statement with its literals replaced, to group repeats."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    return re.sub(r"\b\d+(\.\d+)?\b", "?", sql)


def explain(conn: sqlite3.Connection, statements: list[str]) -> dict[str, list[str]]:
    plans: dict[str, list[str]] = {}
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
            continue
        key = shape(sql)
        if key not in plans:
            plans[key] = [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    return plans


def check_store_calls(database: Path, network: str) -> list[QueryCheck]:
    """Time the store calls behind ``log`` and ``status``; explain their SQL."""
    from socialbot.models import NETWORKS, DeliveryStatus
    from socialbot.store import utcnow

    store = TracingStore(str(database))
    queue_ids = [f.release_id for f in store.queue_files().values() if f.release_id]
    newest = store.deliveries(limit=1)
    release_id = newest[0].release_id if newest else "none"
    now = utcnow()
    day = now - timedelta(days=1)
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("log --since 1d", lambda: store.deliveries(since=day, limit=200)),
        ("log --since 1d --json", lambda: store.deliveries(since=day)),
        ("log (newest 200)", lambda: store.deliveries(limit=200)),
        ("log --network N", lambda: store.deliveries(network=network, limit=200)),
        (
            "log --network N --since 1d",
            lambda: store.deliveries(network=network, since=day, limit=200),
        ),
        (
            "log --status posted --since 1d",
            lambda: store.deliveries(status=DeliveryStatus.POSTED, since=day, limit=200),
        ),
        (
            "log --status posted",
            lambda: store.deliveries(status=DeliveryStatus.POSTED, limit=200),
        ),
        ("log --release R", lambda: store.deliveries(release_id=release_id)),
        ("status: counts per state", store.counts),
        ("status: queue scan cache", store.queue_files),
        ("status: approvals of the queue", lambda: store.latest_approvals(queue_ids)),
        ("status: failed and unknown", lambda: store.deliveries(status=DeliveryStatus.FAILED)),
        ("status: rate-limit holds", lambda: [store.hold(n) for n in NETWORKS]),
        ("drain: latest revisions of the open releases", lambda: store.latest_revisions(queue_ids)),
        ("drain: due on one network", lambda: store.due(network, now)),
        (
            "drain: waiting on one network",
            lambda: store.deliveries(network=network, status=DeliveryStatus.PENDING),
        ),
        ("every approval ever (no ids)", store.latest_approvals),
        ("every release's latest revision (no ids)", store.latest_revisions),
    ]
    checks = []
    conn = store._connection()
    try:
        for name, call in calls:
            store.statements.clear()
            started = time.perf_counter()
            call()
            elapsed = (time.perf_counter() - started) * 1000
            statements = list(store.statements)
            conn.set_trace_callback(None)
            checks.append(QueryCheck(name, elapsed, explain(conn, statements)))
            conn.set_trace_callback(store.statements.append)
    finally:
        store.close()
    return checks


@dataclass
class DrainCheck:
    """A drain run in this process: its SQL, and the queue files it opened."""

    sql: QueryCheck
    opened: list[str]
    posted: int


_opened: list[str] | None = None
"""Paths opened while a drain is watched (None: not watching)."""


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Every open() and os.open() raises the "open" audit event (PEP 578).
    path = args[0] if event == "open" and args else None
    if _opened is not None and isinstance(path, str | bytes | os.PathLike):
        _opened.append(os.fsdecode(path))


_hooked = False


def check_drain(
    database: Path, queue: Path, networks: list[str], settings: Settings | None = None
) -> DrainCheck:
    """Run a drain in this process; explain its SQL and list the queue files it opened.

    Without ``settings`` the drain has no adapters, so it must find nothing
    due. The files are seen through Python's audit hooks, which cannot be
    removed: the hook stays installed but records only while a drain runs here.
    """
    global _opened, _hooked
    from socialbot.adapters import create_adapter
    from socialbot.publish import Publisher

    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    store = TracingStore(str(database))
    adapters = {n: create_adapter(n, settings) for n in networks} if settings else {}
    try:
        store.statements.clear()
        _opened = []
        started = time.perf_counter()
        try:
            report = Publisher(
                store=store, queue_dir=queue, adapters=adapters, active=networks
            ).drain()
        finally:
            opened, _opened = _opened, None
        elapsed = (time.perf_counter() - started) * 1000
        if report.problems or (report.outcomes and not adapters):
            raise RuntimeError(f"the drain did not go as planned: {report.problems}")
        statements = list(store.statements)
        conn = sqlite3.connect(database)
        try:
            plans = explain(conn, statements)
        finally:
            conn.close()
    finally:
        for adapter in adapters.values():
            adapter.close()
        store.close()
    root = os.path.realpath(queue)
    in_queue = [path for path in opened if os.path.realpath(path).startswith(root + os.sep)]
    return DrainCheck(QueryCheck("drain, in-process", elapsed, plans), in_queue, len(report.posted))

"""Big queues and a big posting log: does a drain cost what is due, or what is past?

The queue holds thousands of settled release files (approved and posted to
every network) and a few new approved ones; the posting log holds their
deliveries and, for the largest case, enough archived releases (no longer in
the queue) to reach a million delivery rows. The history is written straight
into socialbot's schema with SQL (``seed_log``), which takes seconds where
posting a million times would take days.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import (
    Figure,
    Run,
    approve_files,
    bench_networks,
    median_seconds,
    release_data,
    run_socialbot,
    sqlite_url,
    workspace_env,
    write_release,
)
from bench.queries import check_drain, check_store_calls
from socialbot.models import NETWORKS, Release
from socialbot.sandbox import SandboxServer

if TYPE_CHECKING:
    from socialbot.config import Settings

IDLE_TARGET = 0.5
"""Seconds: an idle cron run should be well under a second."""
COMMAND_TARGET = 1.0
"""Seconds: ``log`` and ``status``, typed by a person."""
QUERY_TARGET_MS = 100.0
"""Per store call that a drain, ``log`` or ``status`` makes."""
GROWTH_TARGET = 0.1
"""Seconds a twenty times longer history may add to a drain."""
HISTORY_SPAN = timedelta(days=3 * 365)
X_POSTS_PER_WINDOW = 100
"""The X sandbox, like X, accepts 100 posts per 15 minutes."""
TRACED_DUE = 3
"""Releases of the drain whose SQL is explained."""


# -- seeding ------------------------------------------------------------------------------


def _stamp(column: str) -> str:
    """SQL for socialbot's fixed-width time text from a Unix time ``column``."""
    return f"(strftime('%Y-%m-%dT%H:%M:%S', {column}, 'unixepoch') || '.000000+00:00')"


def seed_log(
    database: Path,
    *,
    settled: Sequence[tuple[str, str, str]] = (),
    archived: int = 0,
    archived_prefix: str = "archived",
    end: datetime | None = None,
) -> int:
    """Write posted history into socialbot's schema; return the delivery rows added.

    ``settled`` are (release id, content hash, file) of releases whose files
    stay in the queue; ``archived`` more releases have left it. Each release
    gets an approval, a schedule, one posted delivery per network (all five:
    the log keeps every network it ever used) and one attempt per delivery.
    Archived releases are the oldest; all are spread evenly over three years
    ending at ``end``.
    """
    from socialbot.store import SQLiteStore

    SQLiteStore(str(database)).close()  # creates the schema, as socialbot would
    end = end or datetime.now(UTC) - timedelta(hours=1)
    total = archived + len(settled)
    if total == 0:
        return 0
    step = HISTORY_SPAN.total_seconds() / total
    start = (end - HISTORY_SPAN).timestamp() + step  # the newest approved at ``end``
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        conn.execute(
            "CREATE TEMP TABLE seed (n INTEGER PRIMARY KEY, release_id TEXT, content_hash TEXT,"
            " source TEXT, at REAL)"
        )
        if archived:
            conn.execute(
                "WITH RECURSIVE seq(n) AS"
                " (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < ?)"
                " INSERT INTO seed SELECT n, printf('%s-%07d', ?, n), lower(hex(randomblob(32))),"
                " printf('queue/%s-%07d.json', ?, n), ? + n * ? FROM seq",
                (archived, archived_prefix, archived_prefix, start, step),
            )
        conn.executemany(
            "INSERT INTO seed VALUES (?, ?, ?, ?, ?)",
            [
                (archived + i, release_id, content_hash, source, start + (archived + i) * step)
                for i, (release_id, content_hash, source) in enumerate(settled)
            ],
        )
        (first_approval,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM approvals").fetchone()
        (first_delivery,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM deliveries").fetchone()
        conn.execute(
            "INSERT INTO approvals"
            " (release_id, content_hash, approved_by, approved_at, source, networks)"
            f" SELECT release_id, content_hash, 'Ana Ruiz', {_stamp('at')}, source, ?"
            " FROM seed ORDER BY n",
            (",".join(NETWORKS),),
        )
        conn.execute(
            "INSERT OR REPLACE INTO schedules (release_id, approval_id)"
            " SELECT release_id, id FROM approvals WHERE id > ?",
            (first_approval,),
        )
        networks = " UNION ALL ".join(f"SELECT '{name}' AS name" for name in NETWORKS)
        posted = _stamp("unixepoch(substr(a.approved_at, 1, 19)) + 120")
        conn.execute(
            "INSERT INTO deliveries (release_id, network, status, content_hash, approved_by,"
            " approved_at, idempotency_key, attempts, text, remote_id, url, sent_at, posted_at,"
            " created_at, updated_at)"
            " SELECT a.release_id, net.name, 'posted', a.content_hash, a.approved_by,"
            " a.approved_at, lower(hex(randomblob(16))), 1,"
            " 'Regions call for a stronger cohesion policy after 2027 (' || a.release_id || ')"
            " https://cor.europa.eu/en/news/Pages/' || a.release_id || '.aspx #CohesionPolicy',"
            " CAST(a.id AS TEXT), 'https://' || net.name || '.example/posts/' || a.id,"
            f" {posted}, {posted}, a.approved_at, {posted}"
            f" FROM approvals a, ({networks}) net WHERE a.id > ? ORDER BY a.id",
            (first_approval,),
        )
        conn.execute(
            "INSERT INTO attempts (delivery_id, started_at, finished_at, outcome)"
            " SELECT id, sent_at, posted_at, 'posted' FROM deliveries WHERE id > ?",
            (first_delivery,),
        )
        (added,) = conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE id > ?", (first_delivery,)
        ).fetchone()
        conn.execute("DROP TABLE seed")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return int(added)


def write_settled(queue: Path, count: int, prefix: str = "settled") -> list[tuple[str, str, str]]:
    """Write ``count`` release files; return (id, content hash, path) for ``seed_log``."""
    settled = []
    for n in range(count):
        release_id = f"{prefix}-{n:06d}"
        data = release_data(release_id, n)
        path = queue / f"{release_id}.json"
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        content_hash = Release.model_validate(data).content_hash()
        settled.append((release_id, content_hash, str(path)))
    return settled


# -- the scenario -------------------------------------------------------------------------


@dataclass
class Scene:
    """A queue, a database and a sandbox without latency, in a temporary directory."""

    root: Path
    server: SandboxServer
    networks: list[str]
    rows: int = 0
    """Delivery rows in the posting log."""
    written: int = 0

    @property
    def queue(self) -> Path:
        return self.root / "queue"

    @property
    def database(self) -> Path:
        return self.root / "socialbot.db"

    def socialbot(self, *args: str, ok: Sequence[int] = (0,)) -> Run:
        env = workspace_env(self.root, self.server.settings(), self.networks)
        return run_socialbot(*args, env=env, cwd=self.root).check(*ok)

    def drain(self) -> float:
        return self.socialbot("drain").seconds

    def settings(self) -> Settings:
        """Settings for an in-process drain into this scene's sandbox."""
        from socialbot.demo import sandbox_settings

        return sandbox_settings(
            self.server,
            queue_dir=self.queue,
            database_url=f"sqlite:///{self.database}",
            networks=self.networks,
        )

    def add_due(self, count: int) -> None:
        """Write and approve ``count`` new releases, due now."""
        paths = []
        for _ in range(count):
            # Numbered past every earlier release: networks refuse a repeated text.
            self.written += 1
            paths.append(write_release(self.queue, f"due-{self.written:05d}", 10**7 + self.written))
        approve_files(
            paths, database_url=sqlite_url(self.root), queue=self.queue, networks=self.networks
        )

    def drain_due(self, count: int) -> float:
        """Approve ``count`` new releases and time the drain that posts them."""
        self.add_due(count)
        before = len(self.server.posts())
        took = self.drain()
        posted = len(self.server.posts()) - before
        if posted != count * len(self.networks):
            raise RuntimeError(f"{posted} posts for {count} releases on {self.networks}")
        return took

    def fresh_sandbox(self) -> None:
        """A new sandbox, so X's 100 posts per 15 minutes start afresh."""
        self.server.stop()
        self.server = SandboxServer().start()

    def archive_posted(self) -> None:
        """Take the posted due files out of the queue, as an operator would.

        The next drain's scan forgets them.
        """
        for path in self.queue.glob("due-*"):
            path.unlink()


@contextmanager
def scene(settled: int) -> Iterator[Scene]:
    """A scene with ``settled`` settled files and their history in the log."""
    with tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp:
        root = Path(tmp)
        (root / "queue").mkdir()
        here = Scene(root, SandboxServer().start(), bench_networks())
        try:
            here.rows = seed_log(here.database, settled=write_settled(here.queue, settled))
            yield here
        finally:
            here.server.stop()


@dataclass
class Timings:
    """What the growth figures compare, by scene."""

    first: dict[int, float]
    idle: dict[int, float]
    busy: dict[int, float]
    big_log: dict[int, float]
    """Drain times on the big log, by number of due releases."""


def run_history(
    sizes: Sequence[int] = (1_000, 10_000),
    log_rows: int = 1_000_000,
    due: int = 10,
    more_due: int = 50,
    runs: int = 3,
) -> list[Figure]:
    """Drains over growing queues, then over a growing log; ``log`` and ``status`` on it."""
    due_runs = min(runs, 3)
    if due * due_runs + more_due + TRACED_DUE > X_POSTS_PER_WINDOW:
        raise ValueError(
            f"{due} x {due_runs} + {more_due} + {TRACED_DUE} releases exceed the "
            f"{X_POSTS_PER_WINDOW} posts X takes in 15 minutes: use fewer"
        )
    figures: list[Figure] = []
    timings = Timings({}, {}, {}, {})
    for size in sizes:
        with scene(size - due) as here:
            figures += queue_figures(here, size, due, runs, due_runs, timings)
            if size == sizes[-1] and log_rows:
                figures += log_figures(here, log_rows, due, more_due, runs, due_runs, timings)
    return figures + growth_figures(sizes, log_rows, due, more_due, timings)


def queue_figures(
    here: Scene, size: int, due: int, runs: int, due_runs: int, timings: Timings
) -> list[Figure]:
    section = f"queue of {size:,} files"
    settled = size - due
    timings.first[size] = first = here.drain()
    timings.idle[size] = idle = median_seconds(here.drain, runs)
    watched = check_drain(here.database, here.queue, here.networks)
    timings.busy[size] = busy = median_seconds(partial(here.drain_due, due), due_runs)
    here.archive_posted()
    return [
        Figure(
            section,
            f"first drain: reads {settled:,} new files once",
            first,
            "s",
            note=f"log of {here.rows:,} rows",
        ),
        Figure(
            section,
            "idle drain (nothing due), median",
            idle,
            "s",
            target=f"< {IDLE_TARGET} s",
            passed=idle < IDLE_TARGET,
        ),
        Figure(
            section,
            "idle drain in-process: files it opened",
            len(watched.opened),
            "files",
            target="= 0",
            passed=not watched.opened,
            note=f"of {settled:,} settled; in {watched.sql.milliseconds:.0f} ms",
        ),
        Figure(
            section,
            f"drain with {due} due ({settled:,} settled), median",
            busy,
            "s",
            note=f"{due * len(here.networks)} posts, sandbox without latency",
        ),
    ]


def log_figures(
    here: Scene,
    log_rows: int,
    due: int,
    more_due: int,
    runs: int,
    due_runs: int,
    timings: Timings,
) -> list[Figure]:
    """Grow the log to ``log_rows`` rows; time drains, ``log`` and ``status``; explain."""
    section = f"log of {log_rows:,} rows"
    started = time.perf_counter()
    here.rows += seed_log(
        here.database,
        archived=max(log_rows - here.rows, 0) // len(NETWORKS),
    )
    seeded = time.perf_counter() - started
    idle = median_seconds(here.drain, runs)
    figures = [
        Figure(
            section,
            "seed the log with SQL",
            seeded,
            "s",
            note=f"{here.rows:,} delivery rows, as many attempts",
        ),
        Figure(
            section,
            "database size (with its WAL)",
            sum(f.stat().st_size for f in here.root.glob("socialbot.db*")) / 1e6,
            "MB",
        ),
        Figure(
            section,
            "idle drain (nothing due), median",
            idle,
            "s",
            target=f"< {IDLE_TARGET} s",
            passed=idle < IDLE_TARGET,
        ),
    ]
    here.fresh_sandbox()
    timings.big_log = {due: median_seconds(partial(here.drain_due, due), due_runs)}
    if more_due != due:
        timings.big_log[more_due] = here.drain_due(more_due)
    figures += [
        Figure(
            section,
            f"drain with {count} due" + (", median" if count == due else ""),
            took,
            "s",
            note=f"{count * len(here.networks)} posts, sandbox without latency",
        )
        for count, took in timings.big_log.items()
    ]
    for args in (("log", "--since", "1d"), ("log", "--since", "1d", "--json"), ("status",)):
        # Exit 1 is `status` saying that something needs attention, not a failure.
        done = [here.socialbot(*args, ok=(0, 1)) for _ in range(max(runs, 1))]
        took, out = statistics.median(r.seconds for r in done), done[0].stdout
        figures.append(
            Figure(
                section,
                f"socialbot {' '.join(args)}, median",
                took,
                "s",
                target=f"< {COMMAND_TARGET} s",
                passed=took < COMMAND_TARGET,
                note=f"{out.count(chr(10)):,} lines out",
            )
        )
    for name, due_now in (("idle drain", 0), (f"drain with {TRACED_DUE} due", TRACED_DUE)):
        here.add_due(due_now)
        settings = here.settings() if due_now else None
        drained = check_drain(here.database, here.queue, here.networks, settings)
        check, scans = drained.sql, drained.sql.scans(strict=True)
        figures.append(
            Figure(
                section,
                f"{name} in-process: its SQL",
                check.milliseconds / 1000,
                "s",
                target="no table read whole",
                passed=not scans and drained.posted == due_now * len(here.networks),
                note="reads whole: " + "; ".join(scans)
                if scans
                else f"{len(check.plans)} kinds of statement, each through an index",
            )
        )
    for call in check_store_calls(here.database, here.networks[0]):
        scans = call.scans()
        every = call.call.startswith("every ")
        figures.append(
            Figure(
                f"store on {here.rows:,} rows",
                call.call,
                call.milliseconds,
                "ms",
                target="" if every else f"< {QUERY_TARGET_MS:.0f} ms, indexed",
                passed=None if every else call.milliseconds < QUERY_TARGET_MS and not scans,
                note="; ".join(scans) or call.summary(),
            )
        )
    return figures


def growth_figures(
    sizes: Sequence[int], log_rows: int, due: int, more_due: int, t: Timings
) -> list[Figure]:
    """What more history costs, next to what more due work costs."""
    figures = []
    small, large = sizes[0], sizes[-1]
    if large > small:
        per_new = (t.first[large] - t.idle[large]) / (large - due)
        per_settled = (t.idle[large] - t.idle[small]) / (large - small)
        figures += [
            Figure(
                "growth",
                "first drain, per new file (read, validated, cached)",
                per_new * 1e6,
                "us",
            ),
            Figure(
                "growth",
                "idle drain, per settled file (stat, cache lookup)",
                per_settled * 1e6,
                "us",
                note=f"{large - small:,} more files: +{t.idle[large] - t.idle[small]:.3f} s",
            ),
        ]
    if t.big_log:
        more = t.big_log[due] - t.busy[large]
        figures.append(
            Figure(
                "growth",
                f"drain with {due} due: {log_rows:,}-row log vs {large * len(NETWORKS):,}",
                more,
                "s",
                target=f"< {GROWTH_TARGET} s more",
                passed=more < GROWTH_TARGET,
                note="same queue, 20x the history",
            )
        )
        if more_due > due:
            per = (t.big_log[more_due] - t.big_log[due]) / (more_due - due)
            figures.append(
                Figure(
                    "growth",
                    "drain, per due release (all networks, no latency)",
                    per * 1000,
                    "ms",
                    note="socialbot's own time: read, compose, claim, send, record",
                )
            )
    return figures

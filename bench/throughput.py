"""Drain N releases x M networks through ``socialbot drain``, against a sandbox with latency.

Every request to the sandbox waits (100 ms by default) before it is answered.
The lower bound is the slowest network's sequential time: the number of
requests the drain made to it (every request, not just the posts: sessions,
instance look-ups) times its latency. The measured time is the wall time of the
``socialbot drain`` process, as cron starts it: interpreter, imports, settings,
the store, the queue scan, the approvals, the posts and the report.

The per-delivery overhead of a network is what socialbot adds between two
requests to it besides the latency: the mean gap between the arrivals of
consecutive requests at the sandbox, minus the latency (claiming the
delivery, the HTTP exchange on loopback, recording the outcome, and waiting
for the other networks' threads to let go of the database).
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import (
    Figure,
    approve_files,
    run_socialbot,
    sqlite_url,
    workspace_env,
    write_release,
)
from socialbot.sandbox import SandboxServer

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

TARGET_RATIO = 1.2
DATABASES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class DrainMeasure:
    """One timed ``socialbot drain`` and what the sandbox saw of it."""

    wall: float
    requests: dict[str, int]
    creates: dict[str, int]
    latency: dict[str, float]
    posted: dict[str, int]
    overhead: dict[str, float]
    """Seconds socialbot adds per request to each network, besides the latency."""

    @property
    def bound(self) -> float:
        return max(self.requests[n] * self.latency[n] for n in self.requests)

    @property
    def ratio(self) -> float:
        return self.wall / self.bound if self.bound else float("inf")


@contextlib.contextmanager
def database_url(kind: str, root: Path, postgres: PostgresServer | None) -> Iterator[str]:
    """A new, empty database of ``kind`` for one run."""
    if kind == "sqlite":
        yield sqlite_url(root)
        return
    if postgres is None:
        raise RuntimeError("no PostgreSQL server for the benchmark")
    with postgres.database() as url:
        yield url


def overheads(server: SandboxServer, latency: Mapping[str, float]) -> dict[str, float]:
    """Per network: the mean gap between consecutive requests, minus the latency."""
    arrivals: defaultdict[str, list[float]] = defaultdict(list)
    for request in list(server.requests):
        arrivals[request["network"]].append(float(request["at"]))
    found = {}
    for network, times in arrivals.items():
        times.sort()
        if len(times) > 1:
            gap = (times[-1] - times[0]) / (len(times) - 1)
            found[network] = gap - latency.get(network, 0.0)
    return found


def measure_drain(
    releases: int,
    networks: Sequence[str],
    latency: Mapping[str, float],
    database: str = "sqlite",
    postgres: PostgresServer | None = None,
) -> DrainMeasure:
    """Approve ``releases`` new releases, then time one ``socialbot drain`` of all of them."""
    delays = {n: float(latency.get(n, 0.0)) for n in networks}
    with (
        tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp,
        database_url(database, Path(tmp), postgres) as url,
        SandboxServer(latency=delays) as server,
    ):
        root = Path(tmp)
        queue = root / "queue"
        queue.mkdir()
        paths = [write_release(queue, f"bench-{n:05d}", n) for n in range(releases)]
        approve_files(paths, database_url=url, queue=queue, networks=list(networks))
        env = workspace_env(root, server.settings(), networks, url)
        os.sync()  # nothing left for the kernel to write back while the drain runs
        wall = run_socialbot("drain", env=env, cwd=root).check().seconds
        requests: Counter[str] = Counter()
        creates: Counter[str] = Counter()
        for request in list(server.requests):
            network = request["network"]
            requests[network] += 1
            create_path = server.networks[network].create_path
            if request["method"] == "POST" and re.fullmatch(create_path, request["path"]):
                creates[network] += 1
        posted = {n: len(server.posts(n)) for n in networks}
        per_request = overheads(server, delays)
    return DrainMeasure(
        wall=wall,
        requests={n: requests[n] for n in networks},
        creates={n: creates[n] for n in networks},
        latency=delays,
        posted=posted,
        overhead={n: per_request.get(n, 0.0) for n in networks},
    )


def run_throughput(
    sizes: Sequence[tuple[int, Sequence[str]]],
    latency: Mapping[str, float],
    runs: int = 5,
    databases: Sequence[str] = DATABASES,
    postgres: Callable[[], AbstractContextManager[PostgresServer | None]] | None = None,
) -> list[Figure]:
    """Each size on each database: the lower bound, the median wall time, their ratio.

    The databases take turns, run by run (SQLite, PostgreSQL, then PostgreSQL,
    SQLite...), so that both meet the machine in the same state: a virtual
    machine's speed drifts over minutes. Before each timed drain, what is
    waiting to be written to disk (the files ``initdb`` created, the server's
    checkpoints, the previous run's database) is written out (``os.sync``), so no
    drain pays for another's writeback. The figures come out by size, then database.
    """
    wanted = list(dict.fromkeys(databases))
    started = postgres if "postgresql" in wanted and postgres else nullcontext
    with started() as server:
        if "postgresql" in wanted and server is None:
            wanted.remove("postgresql")
        found: dict[tuple[int, str], list[Figure]] = {}
        for index, (releases, networks) in enumerate(sizes):
            measures: dict[str, list[DrainMeasure]] = {database: [] for database in wanted}
            for turn in range(max(runs, 1)):
                for database in wanted if turn % 2 == 0 else wanted[::-1]:
                    measures[database].append(
                        measure_drain(releases, networks, latency, database, server)
                    )
            for database, taken in measures.items():
                found[index, database] = throughput_figures(releases, networks, database, taken)
    return [
        figure
        for index in range(len(sizes))
        for database in databases
        for figure in found.get((index, database), [])
    ]


def throughput_figures(
    releases: int, networks: Sequence[str], database: str, measures: Sequence[DrainMeasure]
) -> list[Figure]:
    m = sorted(measures, key=lambda one: one.wall)[len(measures) // 2]
    expected = releases * len(networks)
    section = f"drain {releases} x {len(networks)}, {database}"
    extra = {n: k - m.creates[n] for n, k in m.requests.items() if k > m.creates[n]}
    note = ", ".join(f"{n} {m.requests[n]} req x {m.latency[n] * 1000:.0f} ms" for n in networks)
    if extra:
        note += "; besides posts: " + ", ".join(f"{n} +{k}" for n, k in extra.items())
    overhead = {n: statistics.median(one.overhead[n] for one in measures) for n in networks}
    return [
        Figure(
            section, "lower bound (slowest network's requests x latency)", m.bound, "s", note=note
        ),
        Figure(
            section,
            f"socialbot drain: wall time, median of {len(measures)}",
            m.wall,
            "s",
            note=", ".join(f"{one.wall:.2f}" for one in measures),
        ),
        Figure(
            section,
            "socialbot drain: wall / lower bound",
            m.ratio,
            "x",
            target=f"<= {TARGET_RATIO}",
            passed=m.ratio <= TARGET_RATIO,
        ),
        Figure(
            section,
            "overhead per delivery besides latency (median of runs)",
            max(overhead.values()) * 1000,
            "ms",
            note=", ".join(f"{n} {seconds * 1000:.1f}" for n, seconds in overhead.items()),
        ),
        Figure(
            section,
            "posts accepted",
            min(sum(one.posted.values()) for one in measures),
            "posts",
            target=f"= {expected} every run",
            passed=all(sum(one.posted.values()) == expected for one in measures),
        ),
    ]

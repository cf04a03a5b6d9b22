"""Drain N releases x M networks against a sandbox with injected latency.

The lower bound is the slowest network's sequential time: the number of
requests the drain made to it (every request, not just the creates: sessions,
instance look-ups) times its latency. A drain that posts to the networks one
after the other would take the sum of those instead.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Figure,
    approve_files,
    bench_networks,
    run_socialbot,
    workspace_env,
    write_release,
)
from socialbot.sandbox import SandboxServer

TARGET_RATIO = 1.2


@dataclass(frozen=True)
class DrainMeasure:
    """One timed drain and what the sandbox saw of it."""

    how: str
    wall: float
    requests: dict[str, int]
    creates: dict[str, int]
    latency: dict[str, float]
    posted: dict[str, int]
    in_order: bool

    @property
    def bound(self) -> float:
        return max(self.requests[n] * self.latency[n] for n in self.requests)

    @property
    def serial(self) -> float:
        return sum(self.requests[n] * self.latency[n] for n in self.requests)

    @property
    def ratio(self) -> float:
        return self.wall / self.bound if self.bound else float("inf")


def measure_drain(
    releases: int, latency: Mapping[str, float], *, in_process: bool = False
) -> DrainMeasure:
    """Approve ``releases`` new releases, then time one drain of all of them."""
    networks = bench_networks()
    delays = {n: float(latency.get(n, 0.0)) for n in networks}
    with (
        tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp,
        SandboxServer(latency=delays) as server,
    ):
        root = Path(tmp)
        queue = root / "queue"
        queue.mkdir()
        paths = [write_release(queue, f"bench-{n:05d}", n) for n in range(releases)]
        approve_files(paths, database=root / "socialbot.db", queue=queue, networks=networks)
        if in_process:
            wall = _drain_in_process(server, root, networks)
        else:
            env = workspace_env(root, server.settings(), networks)
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
        in_order = _in_approval_order(server, root, networks)
    return DrainMeasure(
        how="in-process Publisher" if in_process else "socialbot drain",
        wall=wall,
        requests={n: requests[n] for n in networks},
        creates={n: creates[n] for n in networks},
        latency=delays,
        posted=posted,
        in_order=in_order,
    )


def _drain_in_process(server: SandboxServer, root: Path, networks: list[str]) -> float:
    """The drain without process start-up: Publisher with adapters built here."""
    from socialbot.adapters import create_adapter
    from socialbot.demo import sandbox_settings
    from socialbot.publish import Publisher
    from socialbot.store import SQLiteStore

    settings = sandbox_settings(
        server,
        queue_dir=root / "queue",
        database_url=f"sqlite:///{root / 'socialbot.db'}",
        networks=networks,
    )
    started = time.perf_counter()
    store = SQLiteStore(settings.database_path)
    adapters = {name: create_adapter(name, settings) for name in networks}
    try:
        report = Publisher(
            store=store, queue_dir=settings.queue_dir, adapters=adapters, active=networks
        ).drain()
    finally:
        for adapter in adapters.values():
            adapter.close()
        store.close()
    wall = time.perf_counter() - started
    if report.exit_status != 0:
        raise RuntimeError(f"the in-process drain reported problems: {report.problems}")
    return wall


def _in_approval_order(server: SandboxServer, root: Path, networks: list[str]) -> bool:
    """True when every network received its posts in approval order."""
    from socialbot.store import SQLiteStore

    store = SQLiteStore(str(root / "socialbot.db"))
    try:
        by_url = {(d.network, d.url): d.release_id for d in store.deliveries() if d.url}
    finally:
        store.close()
    for network in networks:
        received = [by_url.get((network, str(post.get("url")))) for post in server.posts(network)]
        if None in received or received != sorted(received, key=str):
            return False
    return True


def run_throughput(releases: int, latency: Mapping[str, float], runs: int = 3) -> list[Figure]:
    """Both drains (as cron runs it, and in-process) against the lower bound, median of runs."""
    figures: list[Figure] = []
    for in_process in (False, True):
        measures = [
            measure_drain(releases, latency, in_process=in_process) for _ in range(max(runs, 1))
        ]
        m = sorted(measures, key=lambda one: one.ratio)[len(measures) // 2]
        networks = list(m.requests)
        expected = releases * len(networks)
        section = f"drain {releases} x {len(networks)}"
        runs_note = f"median of {len(measures)}: " + ", ".join(
            f"{one.ratio:.2f}" for one in measures
        )
        if not in_process:
            extra = {n: k - m.creates[n] for n, k in m.requests.items() if k > m.creates[n]}
            note = ", ".join(
                f"{n} {m.requests[n]} req x {m.latency[n] * 1000:.0f} ms" for n in networks
            )
            if extra:
                note += "; besides creates: " + ", ".join(f"{n} +{k}" for n, k in extra.items())
            figures += [
                Figure(
                    section, "lower bound (slowest network, sequential)", m.bound, "s", note=note
                ),
                Figure(section, "networks one after another would take", m.serial, "s"),
            ]
        figures += [
            Figure(section, f"{m.how}: wall time", m.wall, "s"),
            Figure(
                section,
                f"{m.how}: wall / lower bound",
                m.ratio,
                "x",
                target=f"<= {TARGET_RATIO}",
                passed=m.ratio <= TARGET_RATIO,
                note=runs_note,
            ),
            Figure(
                section,
                f"{m.how}: posts accepted, in approval order per network",
                min(sum(one.posted.values()) for one in measures),
                "posts",
                target=f"= {expected} every run, ordered",
                passed=all(
                    sum(one.posted.values()) == expected and one.in_order for one in measures
                ),
            ),
        ]
    return figures

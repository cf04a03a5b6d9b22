"""What every part of the benchmark shares: figures, timing, the machine, running socialbot.

The benchmark measures what an operator runs: the ``socialbot`` console script
in a fresh process, pointed by ``SOCIALBOT_*`` variables at a sandbox served
from this process, in a throwaway directory (so no ``.env`` and no real
database is ever read).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from socialbot.models import NETWORKS


@dataclass(frozen=True)
class Figure:
    """One measured figure, with the target it is held against (if any)."""

    section: str
    name: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return ""
        return "PASS" if self.passed else "MISS"

    def shown(self) -> str:
        if self.unit == "s":
            return f"{self.value:.3f} s"
        if self.unit == "ms":
            return f"{self.value:.1f} ms"
        if self.unit == "us":
            return f"{self.value:.0f} µs"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        return f"{self.value:,.0f} {self.unit}".rstrip()


def format_figures(figures: Sequence[Figure]) -> str:
    """A plain-text table, one row per figure, grouped by section."""
    rows = [("SECTION", "FIGURE", "VALUE", "TARGET", "", "NOTE")]
    for f in figures:
        rows.append((f.section, f.name, f.shown(), f.target, f.verdict, f.note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    previous = None
    for row in rows:
        if previous is not None and row[0] != previous:
            lines.append("")
        previous = row[0]
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2])]
        cells += [row[3].ljust(widths[3]), row[4].ljust(widths[4]), row[5]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_markdown(figures: Sequence[Figure]) -> str:
    """The same table in Markdown, for the README's figures."""
    lines = ["| section | figure | value | target | | note |", "|---|---|---:|---|---|---|"]
    for f in figures:
        lines.append(
            f"| {f.section} | {f.name} | {f.shown()} | {f.target} | {f.verdict} | {f.note} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, str]:
    """Where the figures come from: they mean little without it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count() or "?"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "os": platform.platform(terse=True),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def figures_json(figures: Sequence[Figure]) -> str:
    return json.dumps(
        {
            "machine": machine(),
            "figures": [
                {
                    "section": f.section,
                    "name": f.name,
                    "value": f.value,
                    "unit": f.unit,
                    "target": f.target,
                    "verdict": f.verdict,
                    "note": f.note,
                }
                for f in figures
            ],
        },
        indent=2,
        ensure_ascii=False,
    )


# -- running socialbot as an operator does ----------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished ``socialbot`` process."""

    args: tuple[str, ...]
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, *allowed: int) -> Run:
        """Fail loudly when the command did not end as the benchmark expects."""
        if self.returncode not in (allowed or (0,)):
            raise RuntimeError(
                f"socialbot {' '.join(self.args)} exited {self.returncode}:\n{self.stderr.strip()}"
            )
        return self


def socialbot_command() -> list[str]:
    """The console script next to this interpreter, as cron would call it."""
    script = Path(sys.executable).with_name("socialbot")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "socialbot"]


def python_command() -> list[str]:
    return [sys.executable]


UNLIKE_CRON = ("PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "PYTHONTRACEMALLOC")
"""Settings of this shell that a cron job does not have (without bytecode caches every
run would compile socialbot's modules again: about 0.1 s)."""


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without SOCIALBOT_* variables and ``UNLIKE_CRON``, plus
    ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SOCIALBOT_") and k not in UNLIKE_CRON
    }
    env.update(extra)
    return env


def run_process(
    command: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 600
) -> Run:
    started = time.perf_counter()
    done = subprocess.run(
        list(command),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - started
    return Run(tuple(command[1:]), seconds, done.returncode, done.stdout, done.stderr)


def run_socialbot(*args: str, env: Mapping[str, str], cwd: Path) -> Run:
    return run_process([*socialbot_command(), *args], env, cwd)


def median_seconds(measure: Callable[[], float], runs: int) -> float:
    return statistics.median(measure() for _ in range(max(runs, 1)))


# -- the networks, the queue, approvals ---------------------------------------------------


def bench_networks() -> list[str]:
    """Networks the sandbox fakes and socialbot has an adapter for, in NETWORKS order."""
    from socialbot.adapters import REGISTRY
    from socialbot.sandbox.server import NETWORK_SANDBOXES

    found = []
    for name in NETWORKS:
        if name not in NETWORK_SANDBOXES or name not in REGISTRY:
            continue
        module = REGISTRY[name].partition(":")[0]
        if importlib.util.find_spec(module) is not None:
            found.append(name)
    return found


def sqlite_url(root: Path) -> str:
    """The embedded database of a workspace."""
    return f"sqlite:///{root / 'socialbot.db'}"


def workspace_env(
    root: Path,
    sandbox_settings: Mapping[str, str],
    networks: Iterable[str],
    database_url: str | None = None,
) -> dict[str, str]:
    """The environment of a ``socialbot`` run against the sandbox, in ``root``."""
    return clean_env(
        {
            **sandbox_settings,
            "SOCIALBOT_NETWORKS": ",".join(networks),
            "SOCIALBOT_DATABASE_URL": database_url or sqlite_url(root),
            "SOCIALBOT_QUEUE_DIR": str(root / "queue"),
        }
    )


def release_data(release_id: str, n: int) -> dict[str, object]:
    """A realistic release, unique per ``n`` (networks refuse duplicate texts)."""
    return {
        "id": release_id,
        "title": f"Regions call for a stronger cohesion policy after 2027 (statement {n})",
        "url": f"https://cor.europa.eu/en/news/Pages/bench-{n}.aspx",
        "language": "en",
        "summary": "Local and regional leaders ask for a place-based cohesion policy.",
        "hashtags": ["CohesionPolicy"],
    }


def write_release(queue: Path, release_id: str, n: int) -> Path:
    path = queue / f"{release_id}.json"
    path.write_text(json.dumps(release_data(release_id, n), ensure_ascii=False), encoding="utf-8")
    return path


def approve_files(
    paths: Sequence[Path], *, database_url: str, queue: Path, networks: list[str]
) -> None:
    """Approve each file in order, one millisecond apart, as the social-media team would."""
    from socialbot import operations
    from socialbot.config import Settings
    from socialbot.store import open_store

    store = open_store(database_url)
    settings = Settings(queue_dir=queue, database_url=database_url)
    try:
        start = datetime.now(UTC) - timedelta(minutes=1)
        for index, path in enumerate(paths):
            operations.approve(
                settings,
                store,
                str(path),
                by="bench",
                networks=networks,
                now=start + timedelta(milliseconds=index),
            )
    finally:
        store.close()

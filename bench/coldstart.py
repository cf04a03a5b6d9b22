"""Cold start: an idle ``socialbot drain`` (empty queue, new database) next to bare imports.

Cron starts a new process every run, so an idle run costs the interpreter, the
imports and opening the database. It must make no network request and must
not import the network libraries (tweepy, requests) at all.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from bench.common import (
    Figure,
    bench_networks,
    clean_env,
    median_seconds,
    python_command,
    run_process,
    run_socialbot,
    workspace_env,
)
from socialbot.sandbox import SandboxServer

IDLE_TARGET = 0.5
HEAVY = ("tweepy", "requests", "httpx", "yaml", "tenacity", "regex", "oauthlib")
"""Libraries an idle drain has no use for (reported when imported)."""
NEVER_IDLE = ("tweepy", "requests")
"""Libraries the adapters are built on: an idle run must not import them."""


def idle_drain_seconds(server: SandboxServer, networks: list[str]) -> float:
    """One ``socialbot drain`` in a new directory: empty queue, no database yet."""
    with tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp:
        root = Path(tmp)
        (root / "queue").mkdir()
        env = workspace_env(root, server.settings(), networks)
        return run_socialbot("drain", env=env, cwd=root).check().seconds


def import_seconds(code: str) -> float:
    with tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp:
        command = [*python_command(), "-c", code]
        return run_process(command, clean_env({}), Path(tmp)).check().seconds


def idle_imports(server: SandboxServer, networks: list[str]) -> list[str]:
    """Which of the HEAVY libraries an idle drain imports (from ``python -X importtime``)."""
    with tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp:
        root = Path(tmp)
        (root / "queue").mkdir()
        env = workspace_env(root, server.settings(), networks)
        command = [*python_command(), "-X", "importtime", "-m", "socialbot", "drain"]
        run = run_process(command, env, root).check()
    names = set()
    for line in run.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", line)
        if match:
            names.add(match[1].split(".")[0])
    return [name for name in HEAVY if name in names]


def run_coldstart(runs: int = 7) -> list[Figure]:
    networks = bench_networks()
    with SandboxServer() as server:
        bare = median_seconds(lambda: import_seconds("pass"), runs)
        package = median_seconds(lambda: import_seconds("import socialbot"), runs)
        idle = median_seconds(lambda: idle_drain_seconds(server, networks), runs)
        imported = idle_imports(server, networks)
        requests = len(server.requests)
    section = "cold start"
    avoidable = [name for name in imported if name in NEVER_IDLE]
    return [
        Figure(section, f'python -c "pass", median of {runs}', bare, "s"),
        Figure(section, f'python -c "import socialbot", median of {runs}', package, "s"),
        Figure(
            section,
            f"socialbot drain, empty queue and database, median of {runs}",
            idle,
            "s",
            target=f"< {IDLE_TARGET} s",
            passed=idle < IDLE_TARGET,
            note=f"{idle / package:.1f}x the package import" if package else "",
        ),
        Figure(
            section,
            "idle drain: network requests made",
            requests,
            "requests",
            target="= 0",
            passed=requests == 0,
        ),
        Figure(
            section,
            "idle drain: network libraries imported",
            len(avoidable),
            "libraries",
            target="= 0 (" + ", ".join(NEVER_IDLE) + ")",
            passed=not avoidable,
            note="also imported: " + (", ".join(imported) or "none of " + ", ".join(HEAVY)),
        ),
    ]

"""Cold start: what an idle cron run costs, and what ``import socialbot.cli`` costs.

Cron starts a new process every run, so an idle run (nothing due) costs the
interpreter, the imports, the settings, opening the database and looking at
the queue. The idle drain here has a realistic queue and posting log: settled
release files (approved and posted everywhere) and their history, scanned once
before the timed runs, as cron's previous runs would have. It must make no
network request and import none of the libraries only sending or composing
needs.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.common import (
    Figure,
    clean_env,
    median_seconds,
    python_command,
    run_process,
    socialbot_command,
    workspace_env,
)

IDLE_TARGET = 0.35
"""Seconds: an idle ``socialbot drain`` on SQLite."""
NEVER_IN_CLI = (
    "pydantic_settings",
    "socialbot.config",
    "socialbot.compose",
    "socialbot.adapters",
    "httpx",
    "tweepy",
    "requests",
    "PIL",
    "starlette",
    "tenacity",
)
"""What ``import socialbot.cli`` must not import: each command imports what it uses."""
NEVER_IDLE = (
    "socialbot.compose",
    "socialbot.adapters",
    "httpx",
    "tweepy",
    "requests",
    "PIL",
    "starlette",
    "yaml",
)
"""What an idle drain has no use for: composing happens at approval, sending when due, and its
queue holds JSON files only (PyYAML loads for a YAML file)."""


def imported_modules(stderr: str) -> set[str]:
    """Every module named in ``python -X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", line)
        if match:
            names.add(match[1])
    return names


def heavy(names: set[str], wanted: tuple[str, ...]) -> list[str]:
    """The ``wanted`` packages (or any of their modules) among ``names``."""
    return [w for w in wanted if any(n == w or n.startswith(w + ".") for n in names)]


def import_seconds(code: str) -> float:
    with tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp:
        command = [*python_command(), "-c", code]
        return run_process(command, clean_env({}), Path(tmp)).check().seconds


def import_modules(code: str) -> set[str]:
    with tempfile.TemporaryDirectory(prefix="socialbot-bench-") as tmp:
        command = [*python_command(), "-X", "importtime", "-c", code]
        return imported_modules(run_process(command, clean_env({}), Path(tmp)).check().stderr)


def collected_instructions(valgrind_output: str) -> int:
    """The instructions callgrind counted, summed over the processes it followed."""
    counts = re.findall(r"^==\d+== Collected : (\d+)$", valgrind_output, re.MULTILINE)
    if not counts:
        raise RuntimeError(f"callgrind counted nothing:\n{valgrind_output.strip()[-2000:]}")
    return sum(int(count) for count in counts)


def instructions(command: Sequence[str], env: Mapping[str, str], cwd: Path) -> int | None:
    """The instructions ``command`` executes, counted by callgrind; None without valgrind.

    Unlike a time, the count hardly moves with the machine's speed or load (it moves by
    under 0.1 % from run to run), so it shows what a change to the code costs or saves.
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    counting = [valgrind, "--tool=callgrind", "--trace-children=yes"]
    counting += ["--callgrind-out-file=/dev/null", *command]
    return collected_instructions(run_process(counting, env, cwd, timeout=900).check().stderr)


def run_coldstart(
    runs: int = 7, files: int = 300, history: int = 3000, *, count: bool = True
) -> list[Figure]:
    """``import socialbot.cli`` and an idle drain over ``files`` settled files, median of runs.

    With ``count``, the idle drain's instructions too, when valgrind is installed.
    """
    from bench.history import scene, seed_log

    section = "cold start"
    bare = median_seconds(lambda: import_seconds("pass"), runs)
    cli = median_seconds(lambda: import_seconds("import socialbot.cli"), runs)
    in_cli = heavy(import_modules("import socialbot.cli"), NEVER_IN_CLI)
    with scene(files) as here:
        here.rows += seed_log(here.database, archived=history)
        here.drain()  # the previous cron run: the scan cache knows every file
        idle = median_seconds(here.drain, runs)
        env = workspace_env(here.root, here.server.settings(), here.networks)
        command = [*python_command(), "-X", "importtime", "-m", "socialbot", "drain"]
        traced = run_process(command, env, here.root).check()
        in_idle = imported_modules(traced.stderr)
        counted = instructions([*socialbot_command(), "drain"], env, here.root) if count else None
        requests = len(here.server.requests)
        rows = here.rows
    if count and counted is None:
        print(
            "cold start: valgrind is not installed, so instructions are not counted",
            file=sys.stderr,
        )
    counts = [
        Figure(
            section,
            "socialbot drain, nothing due, SQLite: instructions (callgrind, one run)",
            counted / 1e6,
            "M instructions",
            note="the same scene as above; compare runs of two versions on one machine",
        )
        for counted in ([counted] if counted is not None else [])
    ]
    return [
        Figure(section, f'python -c "pass", median of {runs}', bare, "s"),
        Figure(
            section,
            f'python -c "import socialbot.cli", median of {runs}',
            cli,
            "s",
            note=f"{cli - bare:.3f} s more than an empty interpreter",
        ),
        Figure(
            section,
            "import socialbot.cli: heavy modules imported",
            len(in_cli),
            "modules",
            target="= 0 (" + ", ".join(NEVER_IN_CLI) + ")",
            passed=not in_cli,
            note=", ".join(in_cli),
        ),
        Figure(
            section,
            f"socialbot drain, nothing due, SQLite, median of {runs}",
            idle,
            "s",
            target=f"< {IDLE_TARGET} s",
            passed=idle < IDLE_TARGET,
            note=f"{files:,} settled files in the queue, {rows:,} delivery rows",
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
            "idle drain: sending or composing modules imported",
            len(heavy(in_idle, NEVER_IDLE)),
            "modules",
            target="= 0 (" + ", ".join(NEVER_IDLE) + ")",
            passed=not heavy(in_idle, NEVER_IDLE),
            note=", ".join(heavy(in_idle, NEVER_IDLE))
            or ("imports pydantic_settings" if heavy(in_idle, ("pydantic_settings",)) else ""),
        ),
        *counts,
    ]

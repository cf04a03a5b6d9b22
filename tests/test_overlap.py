"""Overlapping runs: drains started together post each delivery once and never crash.

A second drain exits at once, with status 0 and one line saying another drain
is at work (cron need not hear of it); only a drain holding the lock far
longer than its budget makes the next one exit 1.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from socialbot.sandbox import SandboxServer
from socialbot.store import to_text
from tests import drainer
from tests.helpers import write_release


@pytest.fixture
def db_env(env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``env`` on each database: a SQLite file, then a fresh PostgreSQL database."""
    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", database_url)
    return env


def test_three_drains_started_together_post_each_delivery_once(
    db_env: Path, sandbox: SandboxServer
) -> None:
    env = db_env
    for network in sandbox.networks:
        sandbox.latency[network] = 0.3  # long enough that the three runs overlap
    slugs = drainer.add_releases(env / "queue", "overlap", range(4))
    environment = drainer.environment()

    processes = [drainer.start("drain", env=environment) for _ in range(3)]
    results = [(p.wait(timeout=90), *p.communicate()) for p in processes]

    stderr = "".join(err for _, _, err in results)
    assert "database is locked" not in stderr
    assert "Traceback" not in stderr
    assert [code for code, _, _ in results] == [0, 0, 0], stderr
    waited = [err for _, _, err in results if "another drain" in err]
    assert 1 <= len(waited) <= 2, stderr
    assert all(err.count("\n") == 1 and "this run did nothing" in err for err in waited)
    counts = drainer.posts_per_delivery(sandbox, slugs)
    assert all(counts[r, n] == 1 for r in slugs for n in sandbox.networks), counts
    assert set(drainer.states().values()) == {"posted"}
    assert drainer.integrity() == "ok"


def test_drains_status_and_approvals_side_by_side_never_see_a_locked_database(
    workdir: Path, sandbox: SandboxServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No database (or no tables) yet: every process below may be the one that creates them.
    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", database_url)
    environment = drainer.environment(**sandbox.settings())
    for network in sandbox.networks:
        sandbox.latency[network] = 0.02
    slugs = {}
    for number in range(4):
        slug = drainer.release_slug("side", number)
        write_release(
            workdir / "queue",
            f"{slug}.json",
            title=f"Regions adopt opinion {slug} on cohesion after 2027",
            url=drainer.PAGE.format(slug=slug),
        )
        slugs[slug] = slug
    processes = [
        drainer.start(*args, env=environment)
        for args in (
            ("drain",),
            ("approve", "side-0000", "--by", "Ana"),
            ("status",),
            ("drain",),
            ("approve", "side-0001", "--by", "Ana"),
            ("drain",),
        )
    ]
    for process in processes:
        process.wait(timeout=90)
        _, stderr = process.communicate()
        assert "locked" not in stderr and "Traceback" not in stderr, stderr
    for number in range(2, 4):
        result = drainer.call("approve", f"side-{number:04d}", "--by", "Ana", env=environment)
        assert result.returncode == 0, result.stderr
    result = drainer.call("drain", env=environment)
    assert result.returncode == 0, result.stderr
    counts = drainer.posts_per_delivery(sandbox, slugs)
    assert all(counts[r, n] == 1 for r in slugs for n in sandbox.networks), counts
    assert drainer.integrity() == "ok"


def hold_lock(database: Path, started: datetime) -> int:
    """Take the drain lock the way a running drain does, as if it began at ``started``."""
    fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, f"4242 {to_text(started)}\n".encode())
    return fd


def test_a_drain_that_holds_the_lock_too_long_is_reported(env: Path) -> None:
    """SQLite's lock is a file beside the database; PostgreSQL's is tested with the store."""
    database = env / "socialbot.db"
    environment = drainer.environment(SOCIALBOT_RUN_BUDGET_SECONDS="60")

    fd = hold_lock(database, datetime.now(UTC))
    try:
        started = time.monotonic()
        fresh = drainer.call("drain", env=environment)
        assert time.monotonic() - started < 10
    finally:
        os.close(fd)
    assert fresh.returncode == 0
    assert "another drain (pid 4242) has been running since" in fresh.stderr

    fd = hold_lock(database, datetime.now(UTC) - timedelta(hours=2))
    try:
        stale = drainer.call("drain", env=environment)
    finally:
        os.close(fd)
    assert stale.returncode == 1
    assert "(pid 4242)" in stale.stderr and "it may hang" in stale.stderr

    # The lock file stays (deleting it would let two runs lock two files); a run proceeds.
    assert Path(f"{database}.lock").exists()
    assert drainer.call("drain", env=environment).returncode == 0


# -- PostgreSQL: drains on three hosts ------------------------------------------------------


def host(root: Path, name: str, queue: Path | None) -> tuple[Path, dict[str, str]]:
    """A host of its own: working directory, HOME and TMPDIR; its queue a copy of ``queue``."""
    home = root / name
    for folder in ("queue", "home", "tmp"):
        (home / folder).mkdir(parents=True)
    if queue is not None:
        for path in queue.iterdir():
            shutil.copy2(path, home / "queue" / path.name)
    return home, {"HOME": str(home / "home"), "TMPDIR": str(home / "tmp")}


def test_three_hosts_share_one_postgresql_database(
    env: Path, sandbox: SandboxServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three drains on three "hosts" (their own directories, HOME and TMPDIR; one database):
    one drains at a time, the others say so and exit 0; each post goes out once."""
    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", postgres_url)
    for network in sandbox.networks:
        sandbox.latency[network] = 0.3
    slugs = drainer.add_releases(env / "queue", "hosts", range(4))
    # The first host has the queue, the second a copy, the third none: approvals are in
    # the database, and a drain never needs an approved release's file.
    hosts = [
        host(env / "hosts", "a", env / "queue"),
        host(env / "hosts", "b", env / "queue"),
        host(env / "hosts", "c", None),
    ]
    processes = [
        drainer.start("drain", env=drainer.environment(**extra), cwd=cwd) for cwd, extra in hosts
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in processes]

    stderr = "".join(err for _, _, err in results)
    assert "Traceback" not in stderr
    assert [code for code, _, _ in results] == [0, 0, 0], stderr
    waited = [err for _, _, err in results if "another drain" in err]
    assert 1 <= len(waited) <= 2, stderr
    assert all("this run did nothing" in err for err in waited), waited
    counts = drainer.posts_per_delivery(sandbox, slugs)
    assert all(counts[r, n] == 1 for r in slugs for n in sandbox.networks), counts
    assert set(drainer.states().values()) == {"posted"}
    assert drainer.integrity() == "ok"
    assert not list(env.glob("*.db*")), "a PostgreSQL drain left a file behind"
    for cwd, _ in hosts:
        assert not [p for p in cwd.rglob("*") if p.is_file() and p.parent.name != "queue"]


def test_one_drain_at_a_time_across_hosts_while_others_keep_starting(
    env: Path, sandbox: SandboxServer, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one host drains slowly, drains started on the other two are turned away."""
    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", postgres_url)
    for network in sandbox.networks:
        sandbox.latency[network] = 0.25
    slugs = drainer.add_releases(env / "queue", "busy", range(5))
    hosts = [host(env / "hosts", name, None) for name in ("a", "b", "c")]
    seen = len(sandbox.requests)
    first = drainer.start("drain", env=drainer.environment(**hosts[0][1]), cwd=hosts[0][0])
    while len(sandbox.requests) == seen:
        assert first.poll() is None, first.communicate()
        time.sleep(0.01)
    others = [
        drainer.call("drain", env=drainer.environment(**extra), cwd=cwd)
        for cwd, extra in hosts[1:] * 2
    ]
    code, _, stderr = first.wait(timeout=120), *first.communicate()
    assert code == 0, stderr
    # The first host drains for more than a second; the drains started on the others meanwhile
    # are turned away. (One started as the first lets go of its lock may run, and find
    # nothing left to do: the posts below are still each made once.)
    turned_away = [other for other in others if "another drain" in other.stderr]
    assert turned_away, [other.stderr for other in others]
    assert others[0] in turned_away, others[0].stderr
    for other in others:
        assert other.returncode == 0, other.stderr
    for other in turned_away:
        assert "on " in other.stderr, other.stderr
    counts = drainer.posts_per_delivery(sandbox, slugs)
    assert all(counts[r, n] == 1 for r in slugs for n in sandbox.networks), counts


# -- overlapping drains while people take things back ---------------------------------------


def test_overlapping_drains_while_people_withdraw_retract_pause_and_reapprove(
    db_env: Path, sandbox: SandboxServer
) -> None:
    """Drains on three hosts (no queue files there: a drain needs none) run side by side
    with withdraw, retract, pause/resume and a re-approval: 0 duplicates, 0 lost,
    nothing posted that was withdrawn before it was claimed, paused or never approved."""
    overlap_with_takebacks(db_env, sandbox, rounds=1)


@pytest.mark.slow
def test_long_overlap_with_takebacks(db_env: Path, sandbox: SandboxServer) -> None:
    overlap_with_takebacks(db_env, sandbox, rounds=5)


def side_by_side(*actions: Callable[[], object]) -> None:
    """Run each action (a command of its own) at the same time; re-raise what failed."""
    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        for result in [pool.submit(action) for action in actions]:
            result.result()


def overlap_with_takebacks(env: Path, sandbox: SandboxServer, *, rounds: int) -> None:
    for network in sandbox.networks:
        sandbox.latency[network] = 0.06
    environment = drainer.environment()
    hosts = [host(env / "hosts", name, None) for name in ("a", "b", "c")]
    ledger = drainer.TakeBacks()
    networks = sorted(sandbox.networks)

    def drains() -> list[subprocess.Popen[str]]:
        return [
            drainer.start("drain", env={**environment, **extra}, cwd=cwd) for cwd, extra in hosts
        ]

    def finish(processes: list[subprocess.Popen[str]]) -> None:
        for process in processes:
            code = process.wait(timeout=120)
            _, stderr = process.communicate()
            assert "Traceback" not in stderr and "locked" not in stderr, stderr
            assert code in (0, 1), stderr

    def pause_and_resume(network: str) -> None:
        ledger.pause(environment, network)
        time.sleep(0.5)
        ledger.resume(environment, network)

    for round_number in range(rounds):
        made = drainer.add_releases(
            env / "queue", "side", range(round_number * 5, round_number * 5 + 5)
        )
        ledger.slugs.update(made)
        a, b, c, d, e = made
        ledger.edit(env / "queue", c)
        running = drains()
        side_by_side(
            partial(ledger.withdraw, a, environment),
            partial(ledger.retract, b, environment),
            partial(ledger.approve, c, environment),
            partial(pause_and_resume, networks[round_number % len(networks)]),
        )
        finish(running)
        running = drains()
        side_by_side(
            partial(ledger.retract, d, environment), partial(ledger.withdraw, e, environment)
        )
        finish(running)
        drained = [drainer.call("drain", env=environment) for _ in range(2)]
        assert drained[-1].returncode == 0, drained[-1].stderr
        drainer.check_takebacks(sandbox, ledger, settled=False)
    for (release, _), status in drainer.states().items():
        taken_back = release in ledger.withdrawn and release not in ledger.retracted
        if taken_back and status == "posted":
            assert ledger.retract(release, environment) == 0, ledger.last_output
    assert drainer.call("drain", env=environment).returncode == 0
    drainer.check_takebacks(sandbox, ledger, settled=True)
    assert drainer.integrity() == "ok"

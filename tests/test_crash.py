"""Kill a draining process with SIGKILL, restart until quiescent, then count posts.

Each drain is a real ``python -m socialbot drain`` process talking HTTP to the
sandbox in this process. It dies at named points (``SOCIALBOT_CRASH_AT``) and
at seeded random instants, while the sandbox answers slowly enough that many
kills land mid-request. Afterwards, for every approved (release, network):
exactly one post on the sandbox, or the delivery is flagged ``unknown`` or
``failed`` with at most one post; nothing unaccounted for; an intact database.
Then an operator settles what is flagged, as the README tells them to, and
every delivery ends with exactly one post.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from socialbot.adapters import adapter_class
from socialbot.publish import CRASH_ENV, CRASH_POINTS
from socialbot.sandbox import SandboxServer
from tests import drainer

SETTLE_RUNS = 12


def crash_env(sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    return drainer.environment(
        SOCIALBOT_RECONCILE_AFTER_SECONDS="0",
        SOCIALBOT_REQUEST_TIMEOUT_SECONDS="5",
        SOCIALBOT_RUN_BUDGET_SECONDS="60",
        **extra,
    )


def assert_clean_exit(result_stderr: str) -> None:
    assert "Traceback" not in result_stderr, result_stderr
    assert "database is locked" not in result_stderr, result_stderr


def kill_at(env: dict[str, str], point: str, **extra: str) -> int:
    """One drain that dies at ``point``; its exit status (-9 when it got there)."""
    result = drainer.call("drain", env={**env, CRASH_ENV: point, **extra})
    assert_clean_exit(result.stderr)
    return result.returncode


def kill_after(env: dict[str, str], delay: float, sandbox: SandboxServer | None = None) -> int:
    """One drain killed with SIGKILL ``delay`` seconds after it started or, given the
    sandbox, ``delay`` seconds after its first request reached the sandbox."""
    seen = len(sandbox.requests) if sandbox is not None else 0
    process = drainer.start("drain", env=env)
    if sandbox is not None:
        deadline = time.monotonic() + 30
        while len(sandbox.requests) == seen and process.poll() is None:
            assert time.monotonic() < deadline, "the drain never called a network"
            time.sleep(0.002)
    try:
        process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert_clean_exit(stderr)
    return process.returncode


def settle(env: dict[str, str]) -> None:
    """Clean drains until one exits 0 or two in a row change nothing."""
    before = drainer.states()
    for _ in range(SETTLE_RUNS):
        result = drainer.call("drain", env=env)
        assert_clean_exit(result.stderr)
        assert result.returncode in (0, 1), result.stderr
        after = drainer.states()
        if result.returncode == 0 or (
            after == before and not {"pending", "sending"} & set(after.values())
        ):
            return
        before = after
    pytest.fail(f"no quiescence after {SETTLE_RUNS} drains: {drainer.states()}")


def check_invariants(sandbox: SandboxServer, slugs: dict[str, str]) -> None:
    """Exactly once, or flagged for a human with at most one post; nothing lost."""
    assert drainer.integrity() == "ok"
    counts = drainer.posts_per_delivery(sandbox, slugs)
    states = drainer.states()
    approved = drainer.approved_networks()
    assert set(approved) == set(slugs), "a release was approved but not recorded"
    for release, networks in approved.items():
        for network in networks:
            status = states.get((release, network))
            posts = counts[release, network]
            assert status is not None, f"{release} on {network} has no delivery"
            assert posts <= 1, f"{release} on {network} was posted {posts} times"
            assert status in ("posted", "unknown", "failed"), (release, network, status)
            if status == "posted":
                assert posts == 1, f"{release} on {network} is logged posted but not on the network"
    assert set(counts) <= {(r, n) for r, ns in approved.items() for n in ns}
    # Where a resend could duplicate, nothing was sent again once the network had it.
    requests = drainer.create_requests_per_delivery(sandbox, slugs)
    for network in non_idempotent(sandbox):
        for release in approved:
            assert requests[release, network] <= 1, (
                f"{release} on {network} was sent {requests[release, network]} times"
            )


def operator_settles(env: dict[str, str], sandbox: SandboxServer, slugs: dict[str, str]) -> None:
    """Do what the README asks of an operator: look at the account, then resolve or retry."""
    counts = drainer.posts_per_delivery(sandbox, slugs)
    for (release, network), status in drainer.states().items():
        if status == "unknown":
            if counts[release, network]:
                url = next(
                    p["url"]
                    for p in sandbox.posts(network)
                    if drainer.PAGE.format(slug=slugs[release]) in str(p)
                    or f"opinion {slugs[release]} " in str(p)
                )
                args = ["resolve", release, "--network", network, "--posted", url]
            else:
                args = ["resolve", release, "--network", network, "--not-posted"]
        elif status == "failed":
            args = ["retry", release, "--network", network]
        else:
            continue
        result = drainer.call(*args, env=env)
        assert result.returncode == 0, result.stderr


def non_idempotent(sandbox: SandboxServer) -> list[str]:
    return [name for name in sandbox.networks if not adapter_class(name).idempotent]


def startup_seconds(env: dict[str, str]) -> float:
    """How long a drain with nothing to do takes: random kills aim past it."""
    started = time.monotonic()
    result = drainer.call("drain", env=env)
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


def crash_rounds(
    env_dir: Path,
    sandbox: SandboxServer,
    *,
    seed: int,
    rounds: int,
    releases_per_round: int,
    random_kills: int,
) -> None:
    rng = random.Random(seed)
    queue = env_dir / "queue"
    env = crash_env(sandbox)
    startup = startup_seconds(env)
    for network in sandbox.networks:
        sandbox.latency[network] = 0.05
    slugs: dict[str, str] = {}
    killed_mid_run = 0
    prefix = f"crash{seed}"
    for round_number in range(rounds):
        first = round_number * (releases_per_round + random_kills)
        slugs.update(drainer.add_releases(queue, prefix, range(first, first + releases_per_round)))
        # One approval killed before its deliveries exist: the drain applies it (mid-schedule).
        slugs.update(
            drainer.add_releases(
                queue, f"{prefix}k", range(round_number, round_number + 1), killed_approving=env
            )
        )
        # Named points, in an order that reaches each one.
        assert kill_at(env, "after-recover") == -signal.SIGKILL
        assert kill_at(env, "mid-schedule") == -signal.SIGKILL
        assert kill_at(env, f"after-claim:{rng.randint(1, 3)}") == -signal.SIGKILL
        # A network without an idempotency key, so the next run has something to reconcile.
        plain = ",".join(non_idempotent(sandbox))
        assert kill_at(env, "after-send-before-record", SOCIALBOT_NETWORKS=plain) == (
            -signal.SIGKILL
        )
        assert kill_at(env, "mid-reconcile") == -signal.SIGKILL
        kill_at(env, f"after-record:{rng.randint(1, 4)}")
        for point in rng.sample(CRASH_POINTS, k=2):
            kill_at(env, f"{point}:{rng.randint(1, 3)}")
        # Random instants, each with fresh work so the kill lands inside a run: half
        # timed from the start (often in recovery or scheduling), half from the first
        # request (while posts are in flight).
        for index in range(random_kills):
            number = first + releases_per_round + index
            slugs.update(drainer.add_releases(queue, prefix, range(number, number + 1)))
            if index % 2:
                killed = kill_after(env, rng.uniform(0, 0.4), sandbox)
                killed_mid_run += killed == -signal.SIGKILL
            else:
                kill_after(env, rng.uniform(startup / 2, startup + 0.5))
        settle(env)
        check_invariants(sandbox, slugs)
    assert killed_mid_run >= (random_kills // 2) * rounds // 2, "the random kills missed the runs"
    operator_settles(env, sandbox, slugs)
    settle(env)
    check_invariants(sandbox, slugs)
    counts = drainer.posts_per_delivery(sandbox, slugs)
    states = drainer.states()
    assert set(states.values()) == {"posted"}, states
    assert all(counts[key] == 1 for key in states), counts
    assert sandbox.errors == []


@pytest.fixture
def db_env(env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``env`` on each database: a SQLite file, then a fresh PostgreSQL database."""
    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", database_url)
    return env


def test_sigkill_at_named_points_and_random_instants_never_duplicates(
    db_env: Path, sandbox: SandboxServer
) -> None:
    env = db_env
    assert set(sandbox.networks) >= {"x", "facebook"}
    started = time.monotonic()
    crash_rounds(env, sandbox, seed=20260, rounds=1, releases_per_round=3, random_kills=6)
    assert time.monotonic() - started < 90


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_crash_loop(db_env: Path, sandbox: SandboxServer, seed: int) -> None:
    sandbox.networks["x"].window_limit = 10_000  # type: ignore[attr-defined]
    crash_rounds(db_env, sandbox, seed=seed, rounds=6, releases_per_round=4, random_kills=12)


# -- withdraw, retract, pause and re-approval between and during killed drains ------------------


def during_drain(
    env: dict[str, str],
    sandbox: SandboxServer,
    actions: list[Callable[[], object]],
    *,
    kill_after: float | None = None,
) -> None:
    """Start a drain; once it talks to a network, run ``actions`` side by side with it
    (each a command of its own); kill the drain ``kill_after`` seconds in, if given."""
    seen = len(sandbox.requests)
    process = drainer.start("drain", env=env)
    deadline = time.monotonic() + 30
    while len(sandbox.requests) == seen and process.poll() is None:
        assert time.monotonic() < deadline, "the drain never called a network"
        time.sleep(0.002)
    with ThreadPoolExecutor(max_workers=len(actions)) as pool:
        for future in [pool.submit(action) for action in actions]:
            future.result()
    try:
        process.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=60)
    assert_clean_exit(stderr)


def takeback_rounds(env_dir: Path, sandbox: SandboxServer, *, seed: int, rounds: int) -> None:
    """Each round: eight releases, and a person taking things back while drains die.

    A is withdrawn before any drain; a network is paused while drains die at
    named points; B is edited (held back) and re-approved during a drain; C is
    withdrawn and D retracted during a drain; every network is paused and
    resumed; E is retracted by a command that dies before its second delete,
    and by a drain that dies before its first; F is withdrawn after it went out
    (nothing changes) and retracted during a drain; G is edited after it went
    out everywhere (approval refused: the edit never goes out); H is left alone.
    """
    rng = random.Random(seed)
    queue = env_dir / "queue"
    env = crash_env(sandbox)
    networks = sorted(sandbox.networks)
    plain = ",".join(non_idempotent(sandbox))
    ledger = drainer.TakeBacks()
    for round_number in range(rounds):
        for network in networks:
            sandbox.latency[network] = 0.05
        made = drainer.add_releases(
            queue, f"take{seed}", range(round_number * 8, round_number * 8 + 8)
        )
        ledger.slugs.update(made)
        a, b, c, d, e, f, g, _ = made
        ledger.withdraw(a, env)
        paused = rng.choice(networks)
        ledger.pause(env, paused)
        assert kill_at(env, f"after-claim:{rng.randint(1, 3)}") == -signal.SIGKILL
        assert kill_at(env, "after-send-before-record", SOCIALBOT_NETWORKS=plain) == (
            -signal.SIGKILL
        )
        ledger.edit(queue, b)
        kill_at(env, "mid-schedule")
        kill_at(env, "mid-reconcile")
        for network in networks:
            sandbox.latency[network] = 0.15  # long enough for commands to land mid-drain
        during_drain(
            env,
            sandbox,
            [
                partial(ledger.approve, b, env),
                partial(ledger.withdraw, c, env),
                partial(ledger.retract, d, env),
            ],
            kill_after=rng.uniform(0.3, 1.5),
        )
        ledger.resume(env, paused)
        during_drain(env, sandbox, [partial(ledger.pause, env)], kill_after=rng.uniform(0.2, 1.0))
        kill_at(env, f"after-claim:{rng.randint(1, 2)}")
        drainer.call("drain", env=env)
        ledger.resume(env)
        for network in networks:
            sandbox.latency[network] = 0.05
        settle(env)
        drainer.check_takebacks(sandbox, ledger, settled=False)
        # Everything of E and F is out (or flagged): take it back while things die.
        assert ledger.retract(e, env, **{CRASH_ENV: "before-delete:2"}) in (0, 1, -signal.SIGKILL)
        kill_at(env, "before-delete")
        ledger.withdraw(f, env)
        ledger.edit(queue, g)
        ledger.approve(g, env)
        during_drain(env, sandbox, [partial(ledger.retract, f, env)])
        settle(env)
        drainer.check_takebacks(sandbox, ledger, settled=False)
    operator_settles(env, sandbox, ledger.slugs)
    settle(env)
    # What went out of a withdrawn release (claimed before the withdrawal) is logged
    # posted; a retraction takes it down.
    for (release, _), status in drainer.states().items():
        taken_back = release in ledger.withdrawn and release not in ledger.retracted
        if taken_back and status == "posted" and ledger.retract(release, env) != 0:
            assert "by hand" in ledger.last_output, ledger.last_output
    for release in ledger.edited - ledger.approved_edits:
        ledger.withdraw(release, env)
    settle(env)
    drainer.check_takebacks(sandbox, ledger, settled=True)
    assert drainer.integrity() == "ok"
    assert sandbox.errors == []


def test_withdraw_retract_pause_and_reapproval_between_and_during_killed_drains(
    db_env: Path, sandbox: SandboxServer
) -> None:
    started = time.monotonic()
    takeback_rounds(db_env, sandbox, seed=8, rounds=1)
    assert time.monotonic() - started < 90


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_long_takeback_loop(db_env: Path, sandbox: SandboxServer, seed: int) -> None:
    takeback_rounds(db_env, sandbox, seed=seed, rounds=4)

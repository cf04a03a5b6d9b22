"""The delivery state machine: recovery, reconciliation, idempotency windows, dead letters.

A run killed at a named point (``SOCIALBOT_CRASH_AT``, in a real process) sets
the scene; the next run happens in this process with the clock in the test's
hands, so "two hours later" takes no time. Posts are counted on the sandbox.
"""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest

from socialbot.adapters import adapter_class, create_adapter
from socialbot.compose import compose
from socialbot.config import load_settings
from socialbot.models import Delivery, Post
from socialbot.publish import CRASH_ENV
from socialbot.releases import read_release
from socialbot.sandbox import Fault, SandboxServer
from socialbot.store import SQLiteStore
from tests import drainer, faulty
from tests.faulty import Clock
from tests.helpers import run
from tests.test_faults import SANDBOXED

PLAIN = [n for n in SANDBOXED if not adapter_class(n).idempotent]
SEARCHABLE = [n for n in PLAIN if adapter_class(n).can_find]
BLIND = [n for n in PLAIN if not adapter_class(n).can_find]
"""Networks whose account cannot be searched (a Telegram bot cannot read its channel)."""
KEYED = [n for n in SANDBOXED if adapter_class(n).idempotent]
WINDOWED = [n for n in KEYED if adapter_class(n).idempotency_window is not None]
FOREVER = [n for n in KEYED if adapter_class(n).idempotency_window is None]


def test_the_networks_split_into_keyed_and_plain() -> None:
    assert {"x", "facebook"} <= set(PLAIN)
    assert set(PLAIN) | set(KEYED) == set(SANDBOXED)


def only(network: str, workdir: Path, prefix: str) -> tuple[str, dict[str, str]]:
    slugs = drainer.add_releases(workdir / "queue", prefix, range(1), networks=[network])
    return next(iter(slugs)), slugs


def killed_at(point: str, network: str) -> None:
    """A drain of ``network`` alone, killed at ``point``."""
    result = drainer.call(
        "drain", env=drainer.environment(**{CRASH_ENV: point, "SOCIALBOT_NETWORKS": network})
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


def delivery(workdir: Path, release: str, network: str) -> Delivery:
    store = SQLiteStore(str(workdir / "socialbot.db"))
    try:
        found = store.get(release, network)
    finally:
        store.close()
    assert found is not None
    return found


def count(sandbox: SandboxServer, slugs: dict[str, str], network: str) -> int:
    return drainer.posts_per_delivery(sandbox, slugs)[next(iter(slugs)), network]


@pytest.mark.parametrize("network", SEARCHABLE)
def test_killed_after_sending_then_found_on_the_network(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"found{network}")
    killed_at("after-send-before-record", network)
    assert delivery(env, release, network).status.value == "sending"

    report = faulty.drain(env)

    assert delivery(env, release, network).status.value == "posted"
    assert delivery(env, release, network).url in {p["url"] for p in sandbox.posts(network)}
    assert count(sandbox, slugs, network) == 1
    assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] == 1
    assert report.exit_status == 0, report.problems


@pytest.mark.parametrize("network", SEARCHABLE)
def test_killed_before_sending_is_looked_for_then_sent(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"claimed{network}")
    killed_at("after-claim", network)

    faulty.drain(env)

    assert delivery(env, release, network).status.value == "posted"
    assert count(sandbox, slugs, network) == 1


@pytest.mark.parametrize("network", SEARCHABLE)
def test_an_unknown_delivery_waits_for_reconcile_after(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"young{network}")
    killed_at("after-send-before-record", network)
    clock = Clock()

    report = faulty.drain(env, clock=clock, reconcile_after=timedelta(minutes=5))

    assert delivery(env, release, network).status.value == "unknown"
    assert any("looks for it" in str(p) for p in report.problems), report.problems
    reads = faulty.requests_to(sandbox, network, "GET")
    clock.advance(minutes=6)
    faulty.drain(env, clock=clock)
    assert faulty.requests_to(sandbox, network, "GET") > reads
    assert delivery(env, release, network).status.value == "posted"
    assert count(sandbox, slugs, network) == 1


@pytest.mark.parametrize("network", KEYED)
def test_a_key_the_network_still_remembers_makes_the_resend_safe(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"resend{network}")
    killed_at("after-send-before-record", network)
    clock = Clock()
    clock.advance(minutes=10)

    faulty.drain(env, clock=clock)

    assert delivery(env, release, network).status.value == "posted"
    assert count(sandbox, slugs, network) == 1
    assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] == 2


@pytest.mark.parametrize("network", WINDOWED)
def test_past_the_key_window_an_interrupted_delivery_is_looked_for_not_resent(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"window{network}")
    killed_at("after-send-before-record", network)
    sandbox.networks[network].idempotency_ttl = 0.0  # type: ignore[attr-defined]
    clock = Clock()
    clock.advance(hours=2)

    faulty.drain(env, clock=clock)

    assert delivery(env, release, network).status.value == "posted"
    assert count(sandbox, slugs, network) == 1
    assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] == 1


@pytest.mark.parametrize("network", WINDOWED)
def test_a_pending_retry_past_the_key_window_is_looked_for_not_resent(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"late{network}")
    sandbox.inject(network, Fault(kind="accept-then-reset"))
    clock = Clock()
    faulty.drain(env, clock=clock, tries_per_run=1)
    assert delivery(env, release, network).status.value == "pending"
    assert count(sandbox, slugs, network) == 1
    sandbox.networks[network].idempotency_ttl = 0.0  # type: ignore[attr-defined]

    clock.advance(hours=2)
    faulty.drain(env, clock=clock)
    assert delivery(env, release, network).status.value == "unknown"
    faulty.drain(env, clock=clock)

    assert delivery(env, release, network).status.value == "posted"
    assert count(sandbox, slugs, network) == 1
    assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] == 1


@pytest.mark.parametrize("network", FOREVER)
def test_a_record_key_makes_the_resend_safe_however_late(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"rkey{network}")
    killed_at("after-send-before-record", network)
    clock = Clock()
    clock.advance(days=3)

    faulty.drain(env, clock=clock)

    assert delivery(env, release, network).status.value == "posted"
    assert count(sandbox, slugs, network) == 1


def test_a_duplicate_without_an_earlier_uncertain_attempt_is_a_failure(
    env: Path, sandbox: SandboxServer
) -> None:
    release, slugs = only("x", env, "dupx")
    # Someone posted the very same text by hand first.
    settings = load_settings()
    adapter = create_adapter("x", settings)
    text = compose(read_release(env / "queue" / f"{release}.json"), "x").text
    adapter.publish(Post("x", text, "", 0, 280, "en"), key="by-hand")
    adapter.close()

    report = faulty.drain(env)

    failed = delivery(env, release, "x")
    assert failed.status.value == "failed"
    assert "duplicate" in (failed.error or "")
    assert any(
        p.kind == "failed" and (p.release, p.network) == (release, "x") for p in report.problems
    )
    assert count(sandbox, slugs, "x") == 1


@pytest.mark.parametrize("network", SEARCHABLE)
def test_an_attempt_that_never_lands_is_dead_lettered_after_reconciling(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = only(network, env, f"never{network}")
    sandbox.inject(network, Fault(kind="reset", times=10))
    for _ in range(4):
        faulty.drain(env, max_attempts=2)

    dead = delivery(env, release, network)
    assert dead.status.value == "failed"
    assert dead.attempts == 2
    assert "not on the account" in (dead.error or "")
    assert count(sandbox, slugs, network) == 0


@pytest.mark.parametrize("network", SANDBOXED)
def test_refused_credentials_stop_the_network_without_using_attempts(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    slugs = drainer.add_releases(env / "queue", f"auth{network}", range(2))
    # Every create refused, so a client that first renews its session is refused too.
    sandbox.inject(network, Fault(status=401, times=5))

    report = faulty.drain(env)
    sandbox.faults.clear()

    first = delivery(env, next(iter(slugs)), network)
    assert first.status.value == "pending" and first.attempts == 0
    assert any(str(p).startswith(f"{network}: ") for p in report.problems), report.problems
    assert faulty.requests_to(sandbox, network, "POST") >= 1
    for other in sandbox.networks:
        if other != network:
            assert all(delivery(env, r, other).status.value == "posted" for r in slugs)
    faulty.drain(env)
    counts = drainer.posts_per_delivery(sandbox, slugs)
    assert all(counts[r, n] == 1 for r in slugs for n in sandbox.networks), counts


@pytest.mark.parametrize("network", BLIND)
@pytest.mark.parametrize("point", ["after-claim", "after-send-before-record"])
def test_where_the_account_cannot_be_searched_a_person_decides(
    env: Path, sandbox: SandboxServer, network: str, point: str
) -> None:
    """Killed with the send in doubt: it waits, unknown, for an operator; never sent twice."""
    release, slugs = only(network, env, f"blind{network}{point[:5]}")
    killed_at(point, network)

    report = faulty.drain(env)
    faulty.drain(env)

    assert delivery(env, release, network).status.value == "unknown"
    assert any(p.kind == "unknown" and p.network == network for p in report.problems)
    assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] <= 1
    posted = count(sandbox, slugs, network)
    if posted:
        url = sandbox.posts(network)[0]["url"]
        assert run("resolve", release, "--network", network, "--posted", url).exit_code == 0
    else:
        assert run("resolve", release, "--network", network, "--not-posted").exit_code == 0
    faulty.drain(env)
    assert delivery(env, release, network).status.value == "posted"
    assert count(sandbox, slugs, network) == 1

"""Fault injection over real HTTP: what each failure turns into, and that nothing doubles.

Every test runs against every network the sandbox offers. The sandbox's
accepted posts are the oracle; waits are recorded by an injected ``sleep``.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from socialbot.adapters import adapter_class
from socialbot.models import NETWORKS
from socialbot.sandbox import Fault, SandboxServer
from socialbot.sandbox.server import NETWORK_SANDBOXES
from tests import drainer, faulty
from tests.faulty import Clock, Sleeps
from tests.helpers import run

SANDBOXED = [name for name in NETWORKS if name in NETWORK_SANDBOXES]


def test_every_network_with_a_sandbox_is_under_test() -> None:
    assert set(SANDBOXED) == set(NETWORK_SANDBOXES), "a sandbox network is missing from NETWORKS"
    assert {"x", "facebook"} <= set(SANDBOXED)


def one_release(workdir: Path, prefix: str) -> tuple[str, dict[str, str]]:
    slugs = drainer.add_releases(workdir / "queue", prefix, range(1))
    return next(iter(slugs)), slugs


def assert_once_everywhere(sandbox: SandboxServer, slugs: dict[str, str]) -> None:
    counts = drainer.posts_per_delivery(sandbox, slugs)
    for release in slugs:
        for network in sandbox.networks:
            assert counts[release, network] == 1, (release, network, counts)


@pytest.fixture
def env(env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every fault, on a SQLite file and on PostgreSQL."""
    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", database_url)
    return env


@pytest.fixture
def short_timeout(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOCIALBOT_REQUEST_TIMEOUT_SECONDS", "0.5")
    return env


def look_or_ask(env: Path, sandbox: SandboxServer, release: str, network: str) -> None:
    """Settle an ``unknown`` delivery: the next drain looks for the post; where the network
    cannot be searched (Telegram), a drain sends nothing and a person checks the account."""
    if faulty.can_find(network):
        faulty.drain(env)
        return
    creates = len(sandbox.posts(network))
    faulty.drain(env)
    assert faulty.status_of(env, release, network) == "unknown"
    assert len(sandbox.posts(network)) == creates, "resent without anyone looking"
    found = [p["url"] for p in sandbox.posts(network) if release in str(p)]
    answer = ["--posted", found[0]] if found else ["--not-posted"]
    assert run("resolve", release, "--network", network, *answer).exit_code == 0
    faulty.drain(env)


# -- ambiguous outcomes -------------------------------------------------------------------


@pytest.mark.parametrize("network", SANDBOXED)
def test_a_5xx_on_create_is_never_blindly_resent(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = one_release(env, f"err500{network}")
    sandbox.inject(network, Fault(kind="error", status=500))
    sleeps = Sleeps()

    first = faulty.drain(env, sleeps=sleeps)

    creates = drainer.create_requests_per_delivery(sandbox, slugs)
    if faulty.idempotent(network):
        # The same key makes the retry safe: retried within the run.
        assert faulty.status_of(env, release, network) == "posted"
        assert len(sleeps.waits) == 1
    else:
        assert faulty.status_of(env, release, network) == "unknown"
        assert creates[release, network] == 1, "resent after an ambiguous 500"
        assert first.exit_status == 1
        if not findable(network):
            settle_by_hand(env, sandbox, release, network, slugs)
        # The next run looks for it, does not find it, and only then sends again.
        faulty.drain(env)
        assert faulty.status_of(env, release, network) == "posted"
    assert_once_everywhere(sandbox, slugs)


@pytest.mark.parametrize("kind", ["accept-then-hang", "accept-then-reset"])
@pytest.mark.parametrize("network", SANDBOXED)
def test_a_post_made_but_unanswered_is_found_not_repeated(
    short_timeout: Path, sandbox: SandboxServer, network: str, kind: str
) -> None:
    env = short_timeout
    release, slugs = one_release(env, f"{kind.split('-')[-1]}{network}")
    sandbox.inject(network, Fault(kind=kind, delay=1.5))  # type: ignore[arg-type]

    first = faulty.drain(env)

    assert drainer.posts_per_delivery(sandbox, slugs)[release, network] == 1
    if faulty.idempotent(network):
        assert faulty.status_of(env, release, network) == "posted"
    elif not findable(network):
        assert faulty.status_of(env, release, network) == "unknown"
        settle_by_hand(env, sandbox, release, network, slugs)
    else:
        assert faulty.status_of(env, release, network) == "unknown"
        assert first.exit_status == 1
        assert any(
            f"{release} on {network}" in str(p) and "looks for it" in str(p) for p in first.problems
        ), first.problems
        second = faulty.drain(env)
        assert faulty.status_of(env, release, network) == "posted"
        assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] == 1
        with drainer.opened() as store:
            url = store.get(release, network)
        assert url is not None and url.url is not None
        assert url.url in {p["url"] for p in sandbox.posts(network)}
        assert second.exit_status == 0, second.problems
    assert_once_everywhere(sandbox, slugs)


@pytest.mark.parametrize("network", SANDBOXED)
def test_a_connection_reset_before_processing_is_resent_after_a_look(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = one_release(env, f"reset{network}")
    sandbox.inject(network, Fault(kind="reset"))

    faulty.drain(env)
    if not faulty.idempotent(network):
        assert faulty.status_of(env, release, network) == "unknown"
        assert drainer.posts_per_delivery(sandbox, slugs)[release, network] == 0
        if not findable(network):
            settle_by_hand(env, sandbox, release, network, slugs)
        faulty.drain(env)
    assert faulty.status_of(env, release, network) == "posted"
    assert_once_everywhere(sandbox, slugs)


@pytest.mark.parametrize("network", SANDBOXED)
def test_slow_replies_within_the_timeout_are_just_slow(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = one_release(env, f"slow{network}")
    sandbox.inject(network, Fault(kind="slow", delay=0.4))
    sleeps = Sleeps()

    report = faulty.drain(env, sleeps=sleeps)

    assert report.exit_status == 0, report.problems
    assert sleeps.waits == []
    assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] == 1
    assert_once_everywhere(sandbox, slugs)


# -- rate limits --------------------------------------------------------------------------

# The Graph API sends no reset time, only minutes until access returns
# (developers.facebook.com/docs/graph-api/overview/rate-limiting).
NO_DATE_HINT = {"facebook", "telegram"}
# The Bot API always names the wait in seconds (parameters.retry_after), never a date or nothing
# (core.telegram.org/bots/api#responseparameters).
SECONDS_ONLY = {"telegram"}


def findable(network: str) -> bool:
    return adapter_class(network).can_find


def settle_by_hand(
    env: Path, sandbox: SandboxServer, release: str, network: str, slugs: dict[str, str]
) -> None:
    """A network that cannot be searched (Telegram): the delivery waits for a person.

    A later run neither sends it again nor settles it; the operator checks the channel
    and resolves it, as the docs say.
    """
    posted = drainer.posts_per_delivery(sandbox, slugs)[release, network]
    faulty.drain(env)
    assert faulty.status_of(env, release, network) == "unknown"
    assert drainer.create_requests_per_delivery(sandbox, slugs)[release, network] <= 1
    if posted:
        url = sandbox.posts(network)[0]["url"]
        assert run("resolve", release, "--network", network, "--posted", url).exit_code == 0
    else:
        assert run("resolve", release, "--network", network, "--not-posted").exit_code == 0


def hold_of(env: Path, network: str) -> datetime | None:
    with drainer.opened() as store:
        hold = store.hold(network)
    return hold[0] if hold else None


@pytest.mark.parametrize("hint", ["native", "retry-after-seconds", "retry-after-date", "none"])
@pytest.mark.parametrize("network", SANDBOXED)
def test_a_rate_limit_holds_the_network_across_runs_while_others_carry_on(
    env: Path, sandbox: SandboxServer, network: str, hint: str
) -> None:
    if network in SECONDS_ONLY and hint not in ("native", "retry-after-seconds"):
        pytest.skip(f"{network} always says how many seconds to wait")
    release, slugs = one_release(env, f"hold{network}{hint[:5]}")
    sandbox.inject(network, Fault(status=429, retry_after=600, hint=hint))  # type: ignore[arg-type]
    started = time.monotonic()

    first = faulty.drain(env)

    # No sleeping through the window (tweepy's wait_on_rate_limit is off, too).
    assert time.monotonic() - started < 10
    hold = hold_of(env, network)
    now = datetime.now(UTC)
    assert hold is not None and hold > now + timedelta(seconds=30)
    if hint.startswith("retry-after"):
        assert abs((hold - now).total_seconds() - 600) < 90
    assert faulty.status_of(env, release, network) == "pending"
    assert first.exit_status == 1
    assert any(f"{network} asked us to wait until" in str(p) for p in first.problems)
    for other in sandbox.networks:
        if other != network:
            assert faulty.status_of(env, release, other) == "posted"

    # A later run, before the time the network named, does not call it at all.
    calls = faulty.requests_to(sandbox, network)
    second = faulty.drain(env)
    assert faulty.requests_to(sandbox, network) == calls
    assert second.exit_status == 1

    # Once that time has passed, the delivery goes out, once.
    faulty.drain(env, clock=Clock(hold - now + timedelta(seconds=1)))
    assert faulty.status_of(env, release, network) == "posted"
    assert_once_everywhere(sandbox, slugs)


@pytest.mark.parametrize("network", SANDBOXED)
def test_a_reset_time_in_the_past_means_now_not_a_day(
    env: Path, sandbox: SandboxServer, network: str, caplog: pytest.LogCaptureFixture
) -> None:
    if network in NO_DATE_HINT:
        pytest.skip(f"{network} gives no reset time that could lie in the past")
    release, slugs = one_release(env, f"past{network}")
    sandbox.inject(network, Fault(status=429, hint="past-date"))
    sleeps = Sleeps()

    with caplog.at_level(logging.INFO, logger="socialbot.publish"):
        report = faulty.drain(env, sleeps=sleeps)

    assert faulty.status_of(env, release, network) == "posted"
    assert sleeps.waits == [0.0]
    assert report.exit_status == 0, report.problems
    assert any(
        "retrying in 0.0s" in r.getMessage() and "RateLimited" in r.getMessage()
        for r in caplog.records
    )
    assert_once_everywhere(sandbox, slugs)


@pytest.mark.parametrize("network", SANDBOXED)
def test_a_short_rate_limit_is_waited_out_within_the_run(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = one_release(env, f"short{network}")
    hint = "native" if network in NO_DATE_HINT else "retry-after-seconds"
    sandbox.inject(network, Fault(status=429, retry_after=30, hint=hint))  # type: ignore[arg-type]
    sleeps = Sleeps()

    faulty.drain(env, sleeps=sleeps, budget=300, max_rate_limit_wait=90.0)

    assert faulty.status_of(env, release, network) == "posted"
    assert len(sleeps.waits) == 1 and 20 <= sleeps.waits[0] <= 61
    assert_once_everywhere(sandbox, slugs)


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_graph_api_throttling_codes_are_rate_limits(
    env: Path, sandbox: SandboxServer, code: int
) -> None:
    facebook = sandbox.networks["facebook"]
    if not hasattr(facebook, "throttle_code"):
        pytest.skip("this Facebook sandbox only answers throttling with code 32")
    facebook.throttle_code = code
    release, _ = one_release(env, f"code{code}")
    sandbox.inject("facebook", Fault(status=429, retry_after=300))

    report = faulty.drain(env)

    assert faulty.status_of(env, release, "facebook") == "pending"
    assert any("facebook asked us to wait until" in str(p) for p in report.problems)
    with drainer.opened() as store:
        delivery = store.get(release, "facebook")
    assert delivery is not None and delivery.error is not None
    assert "unknown" not in delivery.error.lower()
    assert f"code {code}" in delivery.error


# -- transient failures, budgets and dead letters ----------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("network", SANDBOXED)
def test_refused_connections_back_off_then_dead_letter_then_retry(
    env: Path,
    sandbox: SandboxServer,
    network: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release, slugs = one_release(env, f"refused{network}")
    working = sandbox.networks[network].base_url
    monkeypatch.setenv(
        f"SOCIALBOT_{network.upper()}__BASE_URL", f"http://127.0.0.1:{closed_port()}/{network}"
    )
    clock, sleeps = Clock(), Sleeps()

    with caplog.at_level(logging.INFO, logger="socialbot.publish"):
        first = faulty.drain(env, clock=clock, sleeps=sleeps, max_attempts=2)

    # Exponential backoff with jitter inside the run: ~1 s, then ~2 s.
    assert len(sleeps.waits) == 2
    assert 1.0 <= sleeps.waits[0] <= 2.0 and 2.0 <= sleeps.waits[1] <= 3.0
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and all(network in m and "TransientError" in m for m in retries)
    with drainer.opened() as store:
        delivery = store.get(release, network)
    assert delivery is not None and delivery.status.value == "pending"
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at > clock()
    assert "attempt 1 of 2" in (delivery.error or "")
    assert first.exit_status == 1

    # Not before its time: a run now leaves it alone.
    faulty.drain(env, clock=clock)
    assert faulty.status_of(env, release, network) == "pending"

    # Past its time, the second failed attempt is the last: a dead letter.
    clock.advance(hours=1)
    second = faulty.drain(env, clock=clock, max_attempts=2)
    assert faulty.status_of(env, release, network) == "failed"
    assert any(
        p.kind == "failed" and (p.release, p.network) == (release, network) for p in second.problems
    )
    clock.advance(hours=1)
    faulty.drain(env, clock=clock, max_attempts=2)
    assert faulty.status_of(env, release, network) == "failed"

    # The operator fixes the cause and requeues it.
    monkeypatch.setenv(f"SOCIALBOT_{network.upper()}__BASE_URL", working)
    assert drainer.call("retry", release, "--network", network, env=drainer.environment())
    result = drainer.call("retry", release, "--network", network, env=drainer.environment())
    assert result.returncode == 1  # already requeued: nothing failed is left
    faulty.drain(env, clock=clock)
    assert faulty.status_of(env, release, network) == "posted"
    assert_once_everywhere(sandbox, slugs)


def test_the_run_budget_ends_the_run_and_leaves_the_rest_pending(
    env: Path, sandbox: SandboxServer
) -> None:
    slugs = drainer.add_releases(env / "queue", "budget", range(4))
    for network in sandbox.networks:
        sandbox.inject(network, Fault(kind="slow", delay=0.6, times=10))
    started = time.monotonic()

    report = faulty.drain(env, budget=1.0)

    elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed
    assert report.exit_status == 1
    assert "pending" in drainer.states().values()
    assert any("time budget ran out" in str(p) for p in report.problems)
    sandbox.faults.clear()
    # A request the deadline cut short may have posted: idempotent networks retry it after
    # their backoff, the others look for it first. Later runs finish the work, once.
    later = Clock(timedelta(minutes=10))
    faulty.drain(env, clock=later)
    faulty.drain(env, clock=later)
    # Where the account cannot be searched (Telegram), a cut-short send waits for a person,
    # who looks at the channel once the slow requests have landed (or not).
    time.sleep(1.0)
    for (release, network), state in drainer.states().items():
        if state == "unknown":
            assert not findable(network), (release, network)
            made = drainer.posts_per_delivery(sandbox, slugs)[release, network]
            url = next((p["url"] for p in sandbox.posts(network) if release in p["text"]), None)
            verdict = ["--posted", str(url)] if made else ["--not-posted"]
            assert run("resolve", release, "--network", network, *verdict).exit_code == 0
    faulty.drain(env, clock=later)
    assert_once_everywhere(sandbox, slugs)


def test_no_retry_wait_overruns_the_budget(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, _ = one_release(env, "overrun")
    monkeypatch.setenv("SOCIALBOT_X__BASE_URL", f"http://127.0.0.1:{closed_port()}/x")
    sleeps = Sleeps()

    faulty.drain(env, sleeps=sleeps, budget=3.0, initial_wait=5.0)

    assert sleeps.waits == []
    assert faulty.status_of(env, release, "x") == "pending"


# -- taking things back while the network misbehaves ----------------------------------------


@pytest.mark.parametrize("network", SANDBOXED)
def test_withdrawn_while_unanswered_is_looked_for_then_retracted_once(
    short_timeout: Path, sandbox: SandboxServer, network: str
) -> None:
    """A withdrawal that meets an attempt with no answer waits for the look; what was
    posted stays posted (once) until a retraction deletes it, once."""
    env = short_timeout
    release, slugs = one_release(env, f"wd{network}")
    ledger = drainer.TakeBacks(slugs=slugs)
    sandbox.inject(network, Fault(kind="accept-then-reset"))
    faulty.drain(env)
    if faulty.idempotent(network):
        # Posted by the same-key retry within the run: nothing is left to withdraw.
        assert faulty.status_of(env, release, network) == "posted"
    else:
        assert faulty.status_of(env, release, network) == "unknown"

    in_doubt = faulty.status_of(env, release, network) == "unknown"
    withdrawn = run("withdraw", release, "--by", "Olga", "--reason", "wrong day")
    # Where nothing can look for the post (Telegram), a person must: withdraw says so, exit 1.
    assert withdrawn.exit_code == (1 if in_doubt and not faulty.can_find(network) else 0)
    ledger.withdrawn[release] = drainer.now()
    if in_doubt:
        look_or_ask(env, sandbox, release, network)
    faulty.drain(env)
    assert faulty.status_of(env, release, network) == "posted"
    drainer.check_takebacks(sandbox, ledger, settled=True)

    retracted = run("retract", release, "--by", "Olga", "--reason", "embargo")
    ledger.retracted[release] = drainer.now()
    assert retracted.exit_code in (0, 1), retracted.output
    faulty.drain(env)
    assert run("retract", release, "--by", "Olga").exit_code in (0, 1)
    drainer.check_takebacks(sandbox, ledger, settled=True)


@pytest.mark.parametrize("network", SANDBOXED)
def test_a_retraction_whose_delete_fails_is_finished_by_the_next_drain(
    env: Path, sandbox: SandboxServer, network: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, slugs = one_release(env, f"del{network}")
    ledger = drainer.TakeBacks(slugs=slugs)
    faulty.drain(env)
    working = sandbox.networks[network].base_url
    monkeypatch.setenv(
        f"SOCIALBOT_{network.upper()}__BASE_URL", f"http://127.0.0.1:{closed_port()}/{network}"
    )

    failed = run("retract", release, "--by", "Olga", "--reason", "embargo")
    ledger.retracted[release] = drainer.now()

    assert failed.exit_code == 1
    assert faulty.status_of(env, release, network) == "posted"
    assert len(sandbox.posts(network)) == 1
    monkeypatch.setenv(f"SOCIALBOT_{network.upper()}__BASE_URL", working)
    report = faulty.drain(env)
    assert report.exit_status == 0, report.problems
    assert faulty.status_of(env, release, network) == "retracted"
    assert faulty.drain(env).exit_status == 0
    drainer.check_takebacks(sandbox, ledger, settled=True)


@pytest.mark.parametrize("network", ["x", "mastodon"])
def test_paused_during_an_uncertain_attempt_nothing_is_looked_for_or_sent(
    short_timeout: Path, sandbox: SandboxServer, network: str
) -> None:
    env = short_timeout
    release, slugs = one_release(env, f"pz{network}")
    ledger = drainer.TakeBacks(slugs=slugs)
    sandbox.inject(network, Fault(kind="accept-then-reset", times=3))
    faulty.drain(env, tries_per_run=1)
    ledger.pause(drainer.environment(), network)
    calls = faulty.requests_to(sandbox, network)

    faulty.drain(env)
    faulty.drain(env)

    assert faulty.requests_to(sandbox, network) == calls
    sandbox.faults.clear()
    ledger.resume(drainer.environment(), network)
    later = Clock(timedelta(minutes=10))  # past the retry time an idempotent network gets
    faulty.drain(env, clock=later)
    faulty.drain(env, clock=later)
    assert faulty.status_of(env, release, network) == "posted"
    drainer.check_takebacks(sandbox, ledger, settled=True)


@pytest.mark.parametrize("network", [n for n in SANDBOXED if not faulty.idempotent(n)])
def test_a_post_an_operator_marked_posted_can_be_retracted(
    short_timeout: Path, sandbox: SandboxServer, network: str
) -> None:
    """Only its address is known: the adapter reads the post's id from it to delete it."""
    env = short_timeout
    release, _ = one_release(env, f"byhand{network}")
    sandbox.inject(network, Fault(kind="accept-then-reset"))
    faulty.drain(env)
    [post] = sandbox.posts(network)
    assert run("resolve", release, "--network", network, "--posted", post["url"]).exit_code == 0

    retracted = run("retract", release, "--network", network, "--by", "Olga", "--reason", "x")

    assert retracted.exit_code == 0, retracted.output
    assert sandbox.posts(network) == []
    assert faulty.status_of(env, release, network) == "retracted"

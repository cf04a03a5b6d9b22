"""What operators do with the CLI: resolve unknown deliveries, requeue dead letters,
and read ``status`` and ``drain`` exit codes from cron."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from socialbot.sandbox import Fault, SandboxServer
from tests import drainer
from tests.helpers import run

# The sandboxes of these networks refuse a repeated text, as X (403 "duplicate
# content") and the Graph API (#506) do.
REFUSE_DUPLICATES = ["x", "facebook"]


def row(release: str, network: str) -> dict[str, object]:
    rows = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    return next(r for r in rows if r["release"] == release and r["network"] == network)


def unknown(
    env: Path, sandbox: SandboxServer, network: str, kind: str
) -> tuple[str, dict[str, str]]:
    slugs = drainer.add_releases(env / "queue", f"op{kind[:5]}{network}", range(1))
    release = next(iter(slugs))
    sandbox.inject(network, Fault(kind=kind))  # type: ignore[arg-type]
    assert run("drain").exit_code == 1
    assert row(release, network)["status"] == "unknown"
    return release, slugs


@pytest.mark.parametrize("network", ["x", "facebook"])
def test_resolve_posted_records_the_url_and_never_resends(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = unknown(env, sandbox, network, "accept-then-reset")
    status = run("status")
    assert status.exit_code == 1 and f"{release} on {network}: unknown" in status.output
    url = sandbox.posts(network)[0]["url"]

    result = run("resolve", release, "--network", network, "--posted", url)

    assert result.exit_code == 0 and "is now posted" in result.output
    assert row(release, network) | {"url": url} == row(release, network)
    assert run("drain").exit_code == 0
    assert run("status").exit_code == 0
    assert drainer.posts_per_delivery(sandbox, slugs)[release, network] == 1


@pytest.mark.parametrize("network", ["x", "facebook"])
def test_resolve_not_posted_sends_it_once(env: Path, sandbox: SandboxServer, network: str) -> None:
    release, slugs = unknown(env, sandbox, network, "reset")
    assert drainer.posts_per_delivery(sandbox, slugs)[release, network] == 0

    assert run("resolve", release, "--network", network, "--not-posted").exit_code == 0
    assert row(release, network)["status"] == "pending"
    assert run("drain").exit_code == 0

    assert row(release, network)["status"] == "posted"
    assert drainer.posts_per_delivery(sandbox, slugs)[release, network] == 1


@pytest.mark.parametrize("network", REFUSE_DUPLICATES)
def test_a_mistaken_not_posted_ends_as_posted_when_the_network_says_duplicate(
    env: Path, sandbox: SandboxServer, network: str
) -> None:
    release, slugs = unknown(env, sandbox, network, "accept-then-reset")
    # The operator did not look carefully: it was posted.
    assert run("resolve", release, "--network", network, "--not-posted").exit_code == 0

    assert run("drain").exit_code == 0

    assert row(release, network)["status"] == "posted"
    assert drainer.posts_per_delivery(sandbox, slugs)[release, network] == 1


def test_resolve_refuses_what_it_cannot_do(env: Path, sandbox: SandboxServer) -> None:
    slugs = drainer.add_releases(env / "queue", "refuse", range(1))
    release = next(iter(slugs))
    assert run("drain").exit_code == 0

    posted = run("resolve", release, "--network", "x", "--not-posted")
    assert posted.exit_code == 1 and "is posted" in posted.output
    both = run("resolve", release, "--network", "x", "--not-posted", "--posted", "https://x.com/")
    assert both.exit_code == 2
    neither = run("resolve", release, "--network", "x")
    assert neither.exit_code == 2
    script = run("resolve", release, "--network", "x", "--posted", "javascript:alert(1)")
    assert script.exit_code == 2
    missing = run("resolve", "no-such-release", "--network", "x", "--not-posted")
    assert missing.exit_code == 1 and "not in the log" in missing.output


def test_retry_requeues_only_the_failed_network(env: Path, sandbox: SandboxServer) -> None:
    slugs = drainer.add_releases(env / "queue", "requeue", range(1))
    release = next(iter(slugs))
    sandbox.inject("x", Fault(status=400))
    sandbox.inject("facebook", Fault(status=400))

    drained = run("drain")

    assert drained.exit_code == 1
    assert f"socialbot retry {release} --network x" in drained.output
    assert {row(release, n)["status"] for n in ("x", "facebook")} == {"failed"}
    status = run("status")
    assert status.exit_code == 1 and "need a person" in status.output
    # Failed stays failed, run after run; cron hears of it once a day, status always.
    again = run("drain")
    assert (again.exit_code, again.stderr) == (0, "")
    assert row(release, "x")["status"] == "failed"
    assert run("status").exit_code == 1

    result = run("retry", release, "--network", "x")
    assert result.exit_code == 0 and "1 delivery" in result.output
    assert row(release, "x")["status"] == "pending"
    assert row(release, "x")["attempts"] == 0
    assert row(release, "facebook")["status"] == "failed"
    assert run("retry", release, "--network", "x").exit_code == 1

    assert run("drain").exit_code == 0  # facebook still needs a person, as cron was told
    assert run("status").exit_code == 1
    assert row(release, "x")["status"] == "posted"
    assert run("retry", release).exit_code == 0
    assert run("drain").exit_code == 0
    assert run("status").exit_code == 0
    counts = drainer.posts_per_delivery(sandbox, slugs)
    assert all(counts[release, n] == 1 for n in sandbox.networks), counts


def test_exit_codes_for_cron(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("drain").exit_code == 0  # nothing to do is all well
    drainer.add_releases(env / "queue", "cron", range(1))
    sandbox.inject("x", Fault(status=429, retry_after=900))
    held = run("drain")
    assert held.exit_code == 1 and "x asked us to wait until" in held.output
    status = run("status")
    assert status.exit_code == 0 and "rate limited" in status.output  # waits; no human needed
    monkeypatch.setenv("SOCIALBOT_MAX_ATTEMPTS", "0")
    configuration = run("drain")
    assert configuration.exit_code == 2 and "SOCIALBOT_MAX_ATTEMPTS" in configuration.output

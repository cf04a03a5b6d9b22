"""What operators do with the CLI: resolve unknown deliveries, requeue dead letters,
and read ``status`` and ``drain`` exit codes from cron."""

from __future__ import annotations

import json
import signal
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


# -- what a review of the operators' flows found ------------------------------------------------


def test_resolve_refuses_another_releases_post_or_another_networks_address(
    env: Path, sandbox: SandboxServer
) -> None:
    """A retraction deletes the post the address names: never another release's."""
    other = drainer.add_releases(env / "queue", "other", range(1), networks=["x", "facebook"])
    assert run("drain").exit_code == 0
    theirs = {p["network"]: p["url"] for p in sandbox.posts()}
    release, _ = unknown(env, sandbox, "x", "accept-then-reset")

    taken = run("resolve", release, "--network", "x", "--posted", theirs["x"])
    assert taken.exit_code == 1
    assert f"that is the post of {next(iter(other))} on x" in taken.stderr
    elsewhere = run("resolve", release, "--network", "x", "--posted", theirs["facebook"])
    assert elsewhere.exit_code == 1 and "not the address of a post on x" in elsewhere.stderr
    assert row(release, "x")["status"] == "unknown"

    own = [p["url"] for p in sandbox.posts("x") if p["url"] != theirs["x"]]
    done = run("resolve", release, "--network", "x", "--posted", own[0], "--by", "Olga")
    assert done.exit_code == 0
    audit = [json.loads(line) for line in run("log", "--audit", "--json").output.splitlines()]
    assert [(a["action"], a["actor"]) for a in audit if a["action"] == "resolve"] == [
        ("resolve", "Olga")
    ]


def test_a_retried_delivery_that_fails_again_is_news_for_cron(
    env: Path, sandbox: SandboxServer
) -> None:
    slugs = drainer.add_releases(env / "queue", "again", range(1), networks=["x"])
    release = next(iter(slugs))
    sandbox.inject("x", Fault(status=400, times=2))
    assert run("drain").exit_code == 1
    assert run("drain").exit_code == 0  # told once; it stands
    assert run("retry", release).exit_code == 0

    again = run("drain")  # the same failure, in this run: cron hears of it

    assert again.exit_code == 1 and f"{release} on x: failed" in again.stderr
    assert run("drain").exit_code == 0  # and then it stands again


def test_status_shows_a_retraction_whose_delete_has_not_gone_through(
    env: Path, sandbox: SandboxServer
) -> None:
    slugs = drainer.add_releases(env / "queue", "embargo", range(1), networks=["x"])
    release = next(iter(slugs))
    assert run("drain").exit_code == 0
    sandbox.inject("x", Fault(status=503, times=10, path=r"/2/tweets/\d+", method="DELETE"))

    assert run("retract", release, "--by", "Olga", "--reason", "embargo").exit_code == 1
    status = run("status")

    assert status.exit_code == 1
    assert f"{release} on x: retracted by Olga, but the post is still up" in status.output
    assert len(sandbox.posts("x")) == 1


def test_taking_back_a_telegram_post_in_doubt_says_a_person_must_look(
    env: Path, sandbox: SandboxServer
) -> None:
    release, _ = unknown(env, sandbox, "telegram", "accept-then-reset")
    result = run("retract", release, "--by", "Olga", "--reason", "embargo")
    assert result.exit_code == 1
    assert "telegram cannot be searched: look at it" in result.stderr
    assert "it is looked for first" not in result.output


@pytest.mark.parametrize(
    ("verb", "then"),
    [("withdraw", "`socialbot retract"), ("retract", "the next drain deletes it")],
)
def test_taking_back_a_telegram_post_a_drain_is_sending_leaves_it_to_that_drain(
    env: Path, sandbox: SandboxServer, verb: str, then: str
) -> None:
    """Nobody can settle a delivery being sent (resolve takes only unknown ones): the drain's
    record does, and cron hears from the next drain if it could not."""
    slugs = drainer.add_releases(env / "queue", f"sending{verb}", range(1), networks=["telegram"])
    release = next(iter(slugs))
    killed = drainer.call("drain", env=drainer.environment(SOCIALBOT_CRASH_AT="after-claim"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert row(release, "telegram")["status"] == "sending"

    result = run(verb, release, "--by", "Olga", "--reason", "embargo")

    assert result.exit_code == 0, result.output
    assert "telegram: a drain is sending it (or was, when it stopped); if it goes out" in (
        result.output
    )
    assert then in result.output
    assert "cannot be searched" not in result.output
    after = run("drain")  # the claim was never sent, and a bot cannot tell: a person must
    assert after.exit_code == 1 and "telegram" in after.stderr
    assert row(release, "telegram")["status"] == "unknown"
    again = run(verb, release, "--by", "Olga", "--reason", "embargo")
    assert again.exit_code == 1 and "telegram cannot be searched: look at it" in again.stderr


def test_log_filters_apply_to_the_audit_and_the_approvals(env: Path, sandbox: SandboxServer):
    drainer.add_releases(env / "queue", "filters", range(2), networks=["x", "facebook"])
    run("pause", "--network", "facebook", "--by", "Olga", "--reason", "crisis")
    audit = run("log", "--audit", "--network", "facebook", "--json").output.splitlines()
    assert [json.loads(line)["action"] for line in audit] == ["pause"]
    assert len(run("log", "--audit", "--limit", "1").output.splitlines()) == 1
    assert len(run("log", "--approvals", "--limit", "1").output.splitlines()) == 1
    assert run("log", "--approvals", "--network", "mastodon").output == ""
    refused = run("log", "--audit", "--status", "failed")
    assert refused.exit_code == 2 and "--status filters deliveries" in refused.stderr


@pytest.mark.parametrize("since", ["5000000d", "999999999999d"])
def test_log_since_too_far_back_is_one_sentence(env: Path, since: str):
    result = run("log", "--since", since)
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"socialbot: --since {since!r}: reaches back before the year 1: use a shorter time\n"
    )


def test_a_database_damaged_in_its_header_is_one_sentence_and_exit_1(env: Path) -> None:
    assert run("status").exit_code == 0  # creates the database
    database = env / "socialbot.db"
    data = bytearray(database.read_bytes())
    data[:16] = bytes(16)
    database.write_bytes(bytes(data))
    result = run("status")
    assert result.exit_code == 1
    assert "is damaged (file is not a database)" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_refused_credentials_are_told_once_then_daily(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong token stands until someone changes it: a mail every five minutes helps no one."""
    drainer.add_releases(env / "queue", "token", range(1), networks=["x"])
    monkeypatch.setenv("SOCIALBOT_X__ACCESS_TOKEN", "wrong-token")
    first = run("drain")
    assert first.exit_code == 1 and "x credentials" in first.stderr
    again = run("drain")
    assert (again.exit_code, again.stderr) == (0, "")
    assert run("status").exit_code == 1  # status always shows it

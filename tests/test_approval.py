"""Approval is a contract: exactly the approved posts go out, once, and can be taken back.

Each test reproduces one finding of the approval issue through the CLI (or the
drain) against the sandbox, whose accepted posts are the oracle.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from socialbot.models import DeliveryStatus
from socialbot.publish import DrainReport
from socialbot.sandbox import Fault, SandboxServer
from tests import drainer, faulty
from tests.faulty import Clock
from tests.helpers import run, write_release

if TYPE_CHECKING:
    from socialbot.config import Settings
    from socialbot.store import SQLiteStore


def log_rows() -> list[dict[str, object]]:
    return [json.loads(line) for line in run("log", "--json").output.splitlines()]


def approve(release: str, by: str = "Ana") -> dict[str, str]:
    """Approve through the CLI; the exact posts it approved, per network."""
    result = run("approve", release, "--by", by, "--json")
    assert result.exit_code == 0, result.stderr
    return {post["network"]: post["text"] for post in json.loads(result.stdout)}


# -- what is approved is what is posted -------------------------------------------------------


def test_the_mapping_file_utm_and_shaping_after_approval_change_nothing(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    mapping = env / "hashtags.yaml"
    mapping.write_text("topics:\n  Enlargement: EUEnlargement\n", encoding="utf-8")
    write_release(env / "queue", "r1.json", networks=["x", "mastodon"], topics=["Enlargement"])
    texts = approve("r1")
    assert all("#EUEnlargement" in text for text in texts.values())

    mapping.write_text("topics:\n  Enlargement: StopEnlargement\n", encoding="utf-8")
    monkeypatch.setenv("SOCIALBOT_UTM", "true")
    assert run("drain").exit_code == 0

    sent = {p["network"]: p["text"] for p in sandbox.posts()}
    assert all("#StopEnlargement" not in text and "utm_" not in text for text in sent.values())
    assert {row["network"]: row["text"] for row in log_rows()} == {
        "x": texts["x"],
        "mastodon": texts["mastodon"],
    }


def test_a_preview_approve_and_drain_use_the_same_instance_limit(env: Path, sandbox: SandboxServer):
    """Finding 2: approve counted against 500 while the drain composed against the instance."""
    sandbox.networks["mastodon"].max_characters = 1000  # type: ignore[attr-defined]
    write_release(
        env / "queue",
        "long.json",
        networks=["mastodon"],
        summary=" ".join(["Regions and cities ask for a stronger cohesion policy."] * 30),
    )
    assert "/500" in run("preview", "long").output  # no limit was ever read: the default
    first = approve("long")
    assert run("drain").exit_code == 0
    [post] = sandbox.posts("mastodon")
    assert post["text"] == first["mastodon"]
    assert len(post["text"]) <= 500

    # The drain remembered the instance's real limit: preview and approval use it now.
    write_release(
        env / "queue",
        "longer.json",
        networks=["mastodon"],
        summary=" ".join(["Regions and cities ask for a stronger cohesion policy."] * 30),
        title="A second statement",
    )
    preview = run("preview", "queue/longer.json")
    assert "/1000" in preview.output
    second = approve("longer")
    assert run("drain").exit_code == 0
    sent = [p["text"] for p in sandbox.posts("mastodon") if "second" in p["text"]]
    assert sent == [second["mastodon"]]


def test_a_lowered_limit_fails_with_a_sentence_saying_to_approve_again(
    env: Path, sandbox: SandboxServer
):
    write_release(
        env / "queue", "r1.json", networks=["mastodon"], summary="A lead of some length. " * 8
    )
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    sandbox.networks["mastodon"].max_characters = 100  # type: ignore[attr-defined]

    result = run("drain")

    assert result.exit_code == 1
    assert "approve it again" in result.stderr
    assert sandbox.posts() == []
    # Approving again composes against the limit the drain just read, and it goes out.
    assert "/100" in run("preview", "r1").output
    again = approve("r1")
    assert run("drain").exit_code == 0
    [post] = sandbox.posts()
    assert post["text"] == again["mastodon"]


def test_approving_an_id_never_approves_another_file(env: Path, sandbox: SandboxServer):
    """Finding 3: budget-2027.json claiming id draft-leak, final.json claiming budget-2027."""
    write_release(env / "queue", "budget-2027.json", id="draft-leak", title="DRAFT do not post")
    write_release(env / "queue", "final.json", id="budget-2027", title="Final budget statement")

    result = run("approve", "budget-2027", "--by", "Ana")

    assert result.exit_code == 1
    assert "differs from its file name" in result.stderr
    assert run("log", "--approvals").output == ""
    assert run("drain").exit_code == 1
    assert sandbox.posts() == []


def test_an_id_two_files_share_cannot_be_approved(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "same.json", title="One")
    write_release(env / "queue", "same.yaml", title="Other")
    result = run("approve", "same", "--by", "Ana")
    assert result.exit_code == 1
    assert "is also used by" in result.stderr
    assert run("log", "--approvals").output == ""


def test_a_network_dropped_on_reapproval_is_never_posted(env: Path, sandbox: SandboxServer):
    """Finding 4."""
    path = write_release(env / "queue", "r1.json", networks=["x", "facebook"])
    old = path.read_bytes()
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    sandbox.inject("facebook", Fault(status=429, retry_after=3600))
    run("drain")
    write_release(env / "queue", "r1.json", networks=["x"])
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    rows = {row["network"]: row["status"] for row in log_rows()}
    assert rows == {"x": "posted", "facebook": "withdrawn"}

    path.write_bytes(old)  # the old file back: a new revision nobody approved
    sandbox.faults.clear()
    faulty.drain(env, clock=Clock(timedelta(hours=2)))
    assert [p["network"] for p in sandbox.posts()] == ["x"]


def test_a_correction_never_picks_up_the_old_status_with_the_old_key(
    env: Path, sandbox: SandboxServer
):
    """Finding 5: an uncertain attempt of revision 1 is settled before revision 2 is sent."""
    write_release(env / "queue", "r1.json", networks=["mastodon"], title="Typo in the title")
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    sandbox.inject("mastodon", Fault(kind="accept-then-reset", times=3))
    faulty.drain(env)  # revision 1 reached the network; its answer was lost
    write_release(env / "queue", "r1.json", networks=["mastodon"], title="Title corrected")
    approval = run("approve", "r1", "--by", "Ana")
    assert approval.exit_code == 0
    assert "may have posted the previous revision" in approval.output

    # The attempt of revision 1 is looked for, found, and recorded as what was posted.
    faulty.drain(env, clock=Clock(timedelta(minutes=5)))
    faulty.drain(env, clock=Clock(timedelta(minutes=6)))

    [post] = sandbox.posts("mastodon")
    [row] = log_rows()
    # The log tells the truth: revision 1 is what is on the network.
    assert row["status"] == "posted" and row["revision"] == 1
    assert row["text"] == post["text"] and "Typo" in post["text"]
    refused = run("approve", "r1", "--by", "Ana")
    assert refused.exit_code == 1 and "retract it" in refused.stderr


# -- nothing lost, nothing stuck --------------------------------------------------------------


def test_new_content_under_a_posted_id_is_refused_with_what_to_do(
    env: Path, sandbox: SandboxServer
):
    """Finding 6: no silent loss."""
    write_release(env / "queue", "r1.json", networks=["x"])
    run("approve", "r1", "--by", "Ana")
    assert run("drain").exit_code == 0
    write_release(env / "queue", "r1.json", networks=["x"], title="Completely new statement")

    result = run("approve", "r1", "--by", "Ana")

    assert result.exit_code == 1
    assert "already posted on every network it names" in result.stderr
    assert "under a new id" in result.stderr
    assert len(sandbox.posts()) == 1


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_time_outside_utc_is_one_line_and_the_rest_goes_out(
    env: Path, sandbox: SandboxServer, when: str
):
    """Finding 7."""
    write_release(env / "queue", "good.json", networks=["x"])
    assert run("approve", "good", "--by", "Ana").exit_code == 0
    write_release(env / "queue", "odd.json", networks=["x"], not_before=when)

    drained = run("drain")
    status = run("status")
    refused = run("approve", "odd", "--by", "Ana")

    assert drained.exit_code == 1 and "Traceback" not in drained.stderr
    assert drained.stderr.count("\n") == 1 and "cannot be expressed in UTC" in drained.stderr
    assert len(sandbox.posts()) == 1
    assert status.exit_code == 1 and "queue/odd.json" in status.output
    assert refused.exit_code == 1 and "cannot be expressed in UTC" in refused.stderr


def test_a_removed_file_changes_nothing_and_withdraw_stops_it_for_good(
    env: Path, sandbox: SandboxServer
):
    """Finding 8."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    path = write_release(env / "queue", "r1.json", networks=["x"], not_before=later)
    content = path.read_bytes()
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    path.unlink()
    assert run("drain").exit_code == 0  # nothing due, nothing wrong
    assert {row["status"] for row in log_rows()} == {"pending"}

    result = run("withdraw", "r1", "--by", "Ben", "--reason", "embargo moved")
    assert result.exit_code == 0, result.output
    assert "will never be posted on x" in result.output
    path.write_bytes(content)
    faulty.drain(env, clock=Clock(timedelta(days=2)))
    assert sandbox.posts() == []
    assert {row["status"] for row in log_rows()} == {"withdrawn"}
    assert run("status").exit_code == 0
    again = run("approve", "r1", "--by", "Ana")
    assert again.exit_code == 1 and "withdrawn" in again.stderr


def test_an_approved_release_is_posted_without_its_file(env: Path, sandbox: SandboxServer):
    path = write_release(env / "queue", "r1.json", networks=["x"])
    approval = approve("r1")
    path.unlink()
    assert run("drain").exit_code == 0
    [post] = sandbox.posts()
    assert post["text"] == approval["x"]


def test_sigint_stops_the_drain_between_deliveries(env: Path, sandbox: SandboxServer):
    """Finding 11: Ctrl-C stops a drain; it records what it did and says so."""
    slugs = drainer.add_releases(env / "queue", "sig", range(6), networks=["x"])
    sandbox.inject("x", Fault(kind="slow", delay=0.7, times=10))
    process = drainer.start("drain", env=drainer.environment())
    deadline = time.monotonic() + 20
    while not sandbox.posts("x") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Aborted" not in stderr
    assert "stopped by a signal" in stderr
    posted = len(sandbox.posts("x"))
    assert 1 <= posted < len(slugs)
    states = drainer.states()
    assert "sending" not in states.values()
    sandbox.faults.clear()
    assert drainer.call("drain", env=drainer.environment()).returncode == 0
    assert all(n == 1 for n in drainer.posts_per_delivery(sandbox, slugs).values())


def test_sigterm_exits_143(env: Path, sandbox: SandboxServer):
    drainer.add_releases(env / "queue", "term", range(4), networks=["x"])
    sandbox.inject("x", Fault(kind="slow", delay=0.7, times=10))
    process = drainer.start("drain", env=drainer.environment())
    deadline = time.monotonic() + 20
    while not sandbox.posts("x") and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 143


# -- duplicates -------------------------------------------------------------------------------


def test_a_correction_over_a_telegram_send_in_doubt_asks_a_person_and_exits_1(
    env: Path, sandbox: SandboxServer
):
    """Nothing can look on Telegram: `approve` records the correction, says a person must
    settle the earlier attempt, and exits 1 as withdraw and retract do."""
    write_release(env / "queue", "r1.json", networks=["telegram"], title="Typo in the title")
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    sandbox.inject("telegram", Fault(kind="accept-then-reset", times=3))
    faulty.drain(env)  # revision 1 reached the channel; its answer was lost
    write_release(env / "queue", "r1.json", networks=["telegram"], title="Title corrected")

    approval = run("approve", "r1", "--by", "Ana")

    assert approval.exit_code == 1, approval.output
    assert "approved r1 revision 2" in approval.output
    assert "nothing can look for it there" in approval.stderr
    assert "`socialbot resolve`" in approval.stderr
    assert "it is looked for first" not in approval.output


@pytest.mark.parametrize("network", ["mastodon", "bluesky"])
def test_restoring_a_backup_meets_the_networks_own_refusal(
    env: Path, sandbox: SandboxServer, network: str
):
    """Finding 12: keys derive from release, revision and network."""
    slugs = drainer.add_releases(env / "queue", f"backup{network}", range(2), networks=[network])
    database = env / "socialbot.db"
    backup = env / "backup.db"
    with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(backup)) as target:
        source.backup(target)
    assert run("drain").exit_code == 0
    assert len(sandbox.posts(network)) == 2

    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, database)
    run("drain")

    assert all(n == 1 for n in drainer.posts_per_delivery(sandbox, slugs).values())
    assert {row["status"] for row in log_rows()} == {"posted"}


def test_an_ambiguous_create_followed_by_other_errors_stays_uncertain(
    env: Path, sandbox: SandboxServer
):
    """Finding 13: accept-then-reset, then 503 and 429 in the same run; a later run
    after the key has expired looks for the post instead of sending it again."""
    slugs = drainer.add_releases(env / "queue", "uncertain", range(1), networks=["mastodon"])
    sandbox.inject("mastodon", Fault(kind="accept-then-reset"))
    sandbox.inject("mastodon", Fault(status=503))
    sandbox.inject("mastodon", Fault(status=429, retry_after=5))
    faulty.drain(env)
    assert len(sandbox.posts("mastodon")) == 1

    faulty.drain(env, clock=Clock(timedelta(hours=2)))  # past the 1-hour key window
    faulty.drain(env, clock=Clock(timedelta(hours=3)))

    assert all(n == 1 for n in drainer.posts_per_delivery(sandbox, slugs).values())
    assert {row["status"] for row in log_rows()} == {"posted"}


def test_resolve_during_reconciliation_is_not_overwritten(env: Path, sandbox: SandboxServer):
    """Finding 16: the operator's verdict and the drain's are compare-and-set."""
    slugs = drainer.add_releases(env / "queue", "race", range(1), networks=["x"])
    release = next(iter(slugs))
    sandbox.inject("x", Fault(kind="accept-then-reset"))
    faulty.drain(env)
    url = sandbox.posts("x")[0]["url"]
    with faulty.publisher(env) as publisher:
        [unknown] = publisher.store.deliveries(status=DeliveryStatus.UNKNOWN)
        assert run("resolve", release, "--network", "x", "--posted", url).exit_code == 0
        publisher.reconcile(unknown, DrainReport())  # read before the operator acted
        assert publisher.store.get(release, "x").status.value == "posted"  # type: ignore[union-attr]
    faulty.drain(env)
    assert drainer.posts_per_delivery(sandbox, slugs)[release, "x"] == 1


# -- the rest of what was found ---------------------------------------------------------------


def test_an_unquoted_hashtag_in_yaml_is_refused_with_what_to_do(workdir: Path):
    (workdir / "queue" / "r1.yaml").write_text(
        "title: Regions call for a stronger #CohesionPolicy after 2027\n"
        "url: https://cor.europa.eu/en/news/Pages/cohesion.aspx\n"
        "language: en  # English\n",
        encoding="utf-8",
    )
    result = run("preview", "queue/r1.yaml")
    assert result.exit_code == 1
    assert "stops before '#CohesionPolicy'" in result.stderr
    assert "double quotes" in result.stderr
    (workdir / "queue" / "r1.yaml").write_text(
        'title: "Regions call for a stronger #CohesionPolicy after 2027"\n'
        "url: https://cor.europa.eu/en/news/Pages/cohesion.aspx\n"
        "language: en  # English\n",
        encoding="utf-8",
    )
    assert run("preview", "queue/r1.yaml").exit_code == 0


def test_every_problem_of_a_file_is_reported(workdir: Path):
    path = workdir / "queue" / "r1.json"
    path.write_text(
        json.dumps({"titel": "Typo", "url": "ftp://x", "language": "english"}), encoding="utf-8"
    )
    result = run("preview", str(path))
    assert result.exit_code == 1
    message = result.stderr
    assert message.count("\n") == 1
    for part in ("'titel'", "did you mean 'title'", "'url'", "'language'", "'title': is required"):
        assert part in message, part


def test_topics_as_the_media_centre_writes_them(workdir: Path):
    write_release(
        workdir / "queue", "r1.json", topics="Cohesion policy reform;Territorial cohesion;"
    )
    result = run("preview", "queue/r1.json", "--json")
    assert result.exit_code == 0, result.stderr


def test_status_exits_1_while_credentials_are_missing_or_refused(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    write_release(env / "queue", "r1.json", networks=["x", "facebook"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("facebook", Fault(status=401, times=5))
    run("drain")
    status = run("status")
    assert status.exit_code == 1
    assert "facebook credentials:" in status.output
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "x")
    status = run("status")
    assert status.exit_code == 1
    assert "deliveries to facebook wait, but its credentials are not set" in status.output


def test_each_problem_is_printed_once_and_standing_ones_once_a_day(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    write_release(env / "queue", "r1.json", networks=["facebook"])
    (env / "queue" / "broken.yaml").write_text("title: [\n", encoding="utf-8")
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("facebook", Fault(status=400))

    first = run("drain")
    second = run("drain")

    assert first.exit_code == 1
    lines = first.stderr.splitlines()
    assert len(lines) == len(set(lines)) == 2, lines
    assert (second.exit_code, second.stderr) == (0, "")
    monkeypatch.setenv("SOCIALBOT_PROBLEM_REPEAT_HOURS", "0.0001")
    time.sleep(0.5)
    third = run("drain")
    assert third.exit_code == 1 and sorted(third.stderr.splitlines()) == sorted(lines)


def test_a_full_disk_is_one_sentence(tmp_path: Path):
    from socialbot.errors import StoreError
    from socialbot.models import Release
    from socialbot.store import SQLiteStore

    store = SQLiteStore(str(tmp_path / "s.db"))
    conn = store._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    release = Release(id="r1", title="x" * 900, url="https://cor.europa.eu/", language="en")
    with pytest.raises(StoreError, match="the disk is full"):
        for n in range(200):
            store.record_revision(
                release.model_copy(update={"summary": str(n) * 4000}),
                source="t",
                author=None,
                now=datetime.now(UTC),
            )
    store.close()


@pytest.mark.parametrize("command", [("status",), ("drain",), ("log",)])
def test_a_damaged_database_is_one_sentence(
    env: Path, sandbox: SandboxServer, command: tuple[str, ...]
):
    write_release(env / "queue", "r1.json", networks=["x"])
    approve("r1")
    database = env / "socialbot.db"
    with closing(sqlite3.connect(database)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        [root] = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'deliveries'")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    start = (root[0] - 1) * page_size  # the deliveries table's first page, and only it
    data[start : start + page_size] = b"\xa5" * page_size
    database.write_bytes(bytes(data))

    result = run(*command)

    assert result.exit_code == 1
    assert "is damaged" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert sandbox.posts() == []


# -- approvals by more than one person --------------------------------------------------------


def test_two_approvals_by_different_people_are_needed(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_APPROVALS_REQUIRED", "2")
    write_release(env / "queue", "r1.json", networks=["x"])
    first = run("approve", "r1", "--by", "Ana")
    assert first.exit_code == 0 and "1 of 2 approvals" in first.output
    assert run("approve", "r1", "--by", "ana").output.startswith("──")  # same person
    assert run("drain").exit_code == 0
    assert sandbox.posts() == []
    assert "r1 (revision 1, 1 of 2 approvals)" in run("status").output

    assert run("approve", "r1", "--by", "Ben").exit_code == 0
    assert run("drain").exit_code == 0
    assert len(sandbox.posts()) == 1


def test_reject_is_recorded_and_posts_nothing(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x"])
    result = run("reject", "r1", "--by", "Ben", "--reason", "wrong figures")
    assert result.exit_code == 0 and "rejected r1 revision 1" in result.output
    assert run("drain").exit_code == 0
    assert sandbox.posts() == []
    audit = [json.loads(line) for line in run("log", "--audit", "--json").output.splitlines()]
    assert [(a["action"], a["actor"]) for a in audit] == [("revision", ""), ("reject", "Ben")]
    assert audit[1]["detail"] == "wrong figures"


def test_the_audit_trail_records_every_action(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x", "facebook"])
    run("approve", "r1", "--by", "Ana")
    run("pause", "--network", "facebook", "--by", "Olga", "--reason", "crisis")
    run("drain")
    run("resume", "--network", "facebook", "--by", "Olga")
    run("retract", "r1", "--network", "x", "--by", "Olga", "--reason", "embargo")
    actions = [
        (a["action"], a["actor"], a["network"])
        for a in map(json.loads, run("log", "--audit", "--json").output.splitlines())
    ]
    assert actions == [
        ("revision", "", None),
        ("approve", "Ana", None),
        ("pause", "Olga", "facebook"),
        ("resume", "Olga", "facebook"),
        ("retract", "Olga", "x"),
    ]
    text = run("log", "--audit", "--release", "r1").output
    assert "approve   r1 revision 1 by Ana" in text


# -- withdraw, retract, pause -----------------------------------------------------------------


def test_retract_deletes_what_was_posted_and_is_safe_to_repeat(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x", "mastodon", "bluesky"])
    run("approve", "r1", "--by", "Ana")
    assert run("drain").exit_code == 0
    assert len(sandbox.posts()) == 3

    first = run("retract", "r1", "--by", "Olga", "--reason", "embargo broken")
    second = run("retract", "r1", "--by", "Olga")

    assert first.exit_code == 0, first.output
    assert "deleted from" in first.output
    assert sandbox.posts() == []
    assert second.exit_code == 0
    assert {row["status"] for row in log_rows()} == {"retracted"}
    assert run("drain").exit_code == 0


def test_pause_sends_nothing_and_status_shows_it_first(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x", "facebook"])
    run("approve", "r1", "--by", "Ana")
    assert run("pause", "--by", "Olga", "--reason", "crisis at HQ").exit_code == 0

    drained = run("drain")
    status = run("status")

    assert (drained.exit_code, drained.stderr) == (0, "")
    assert sandbox.posts() == []
    assert status.output.startswith("PAUSED every network: paused by Olga")
    assert "crisis at HQ" in status.output
    assert run("resume", "--by", "Olga").exit_code == 0
    assert run("drain").exit_code == 0
    assert len(sandbox.posts()) == 2


def test_a_0_1_0_posting_log_is_upgraded_and_drained_without_a_duplicate(
    env: Path, sandbox: SandboxServer
):
    from socialbot.store.sqlite import MIGRATIONS

    database = env / "socialbot.db"
    done = write_release(env / "queue", "done.json", networks=["x"], title="Already out")
    waiting = write_release(env / "queue", "waiting.json", networks=["x"], title="Still to go")
    from socialbot.releases import read_release

    now = "2026-11-25T09:00:00.000000+00:00"
    with sqlite3.connect(database) as conn:
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        for release_id, path in (("done", done), ("waiting", waiting)):
            conn.execute(
                "INSERT INTO approvals (release_id, content_hash, approved_by, approved_at,"
                " source, networks) VALUES (?, ?, 'Ana', ?, ?, 'x')",
                (release_id, read_release(path).content_hash(), now, f"queue/{path.name}"),
            )
        conn.execute(
            "INSERT INTO deliveries (release_id, network, status, content_hash, approved_by,"
            " approved_at, idempotency_key, attempts, text, remote_id, url, created_at,"
            " updated_at, posted_at) VALUES ('done', 'x', 'posted', ?, 'Ana', ?, 'k0', 1,"
            " 'Already out', '1', 'https://x.com/i/1', ?, ?, ?)",
            (read_release(done).content_hash(), now, now, now, now),
        )
        conn.execute(
            "INSERT INTO deliveries (release_id, network, status, content_hash, approved_by,"
            " approved_at, idempotency_key, created_at, updated_at) VALUES"
            " ('waiting', 'x', 'pending', ?, 'Ana', ?, 'k1', ?, ?)",
            (read_release(waiting).content_hash(), now, now, now),
        )

    assert run("drain").exit_code == 0
    assert run("drain").exit_code == 0

    [post] = sandbox.posts()
    assert post["text"].startswith("Still to go")
    rows = {row["release"]: row for row in log_rows()}
    assert rows["done"]["status"] == rows["waiting"]["status"] == "posted"
    assert rows["waiting"]["text"] == post["text"]


# -- answers that cannot be trusted (findings 9, 10, 14, 15) ----------------------------------


def test_a_bluesky_200_without_a_uri_is_not_taken_as_posted(env: Path, sandbox: SandboxServer):
    """Finding 9: a proxy's HTML page with a 200 is no receipt; nothing is made up."""
    slugs = drainer.add_releases(env / "queue", "nouri", range(1), networks=["bluesky"])
    sandbox.inject("bluesky", Fault(kind="html", status=200))
    faulty.drain(env)
    [row] = log_rows()
    # Posted only when proved: looked up under its record key, at its real address.
    assert row["status"] != "posted" or row["url"] == sandbox.posts("bluesky")[0]["url"]
    faulty.drain(env, clock=Clock(timedelta(minutes=10)))
    assert all(n == 1 for n in drainer.posts_per_delivery(sandbox, slugs).values())
    [row] = log_rows()
    assert row["status"] == "posted"
    assert row["url"] == sandbox.posts("bluesky")[0]["url"]


def test_a_trickled_answer_is_bounded_by_the_run_budget(env: Path, sandbox: SandboxServer):
    """Finding 10: one byte a second defeats a per-read timeout, not the run's deadline."""
    drainer.add_releases(env / "queue", "trickle", range(1), networks=["facebook"])
    sandbox.inject("facebook", Fault(kind="trickle", delay=1.0))
    started = time.monotonic()
    faulty.drain(env, budget=3.0)
    assert time.monotonic() - started < 8
    [row] = log_rows()
    assert row["status"] == "unknown"  # the post was made; its answer never arrived whole


@pytest.mark.parametrize("network", ["x", "facebook", "linkedin"])
def test_an_unreadable_search_never_proves_absence(env: Path, sandbox: SandboxServer, network: str):
    """Finding 14: a 200 HTML page on the search leaves the delivery unknown; no second post."""
    slugs = drainer.add_releases(env / "queue", f"search{network}", range(1), networks=[network])
    sandbox.inject(network, Fault(kind="accept-then-reset"))
    faulty.drain(env)
    fake = sandbox.networks[network]
    sandbox.inject(network, Fault(kind="html", status=200, path=fake.list_path, method="GET"))
    faulty.drain(env)
    [row] = log_rows()
    assert row["status"] == "unknown"
    faulty.drain(env)  # a readable answer now finds it
    assert all(n == 1 for n in drainer.posts_per_delivery(sandbox, slugs).values())
    assert {row["status"] for row in log_rows()} == {"posted"}


def test_an_x_201_with_a_cut_off_body_is_ambiguous_not_failed(env: Path, sandbox: SandboxServer):
    """Finding 15: anything after a success status on a create may have posted."""
    slugs = drainer.add_releases(env / "queue", "cutoff", range(1), networks=["x"])
    sandbox.inject("x", Fault(kind="truncated"))
    faulty.drain(env)
    [row] = log_rows()
    assert row["status"] == "unknown"
    faulty.drain(env)
    assert all(n == 1 for n in drainer.posts_per_delivery(sandbox, slugs).values())
    [row] = log_rows()
    assert row["status"] == "posted" and row["url"] == sandbox.posts("x")[0]["url"]


def test_a_429_that_echoes_the_token_stores_no_secret(env: Path, sandbox: SandboxServer):
    drainer.add_releases(env / "queue", "echo", range(1), networks=["mastodon"])
    sandbox.inject("mastodon", Fault(status=429, retry_after=600, echo_secret=True))
    faulty.drain(env)
    token = sandbox.settings()["SOCIALBOT_MASTODON__ACCESS_TOKEN"]
    blob = b"".join(p.read_bytes() for p in env.iterdir() if p.name.startswith("socialbot.db"))
    assert token.encode() not in blob
    assert token not in run("status").output


@pytest.fixture
def desk_release(workdir: Path) -> Iterator[tuple[Settings, SQLiteStore]]:
    """Revision 1 of ``desk-1``, written in the desk by Ana and not yet submitted."""
    from socialbot.config import load_settings
    from socialbot.models import Release
    from socialbot.store import SQLiteStore

    settings = load_settings()
    store = SQLiteStore(settings.database_path)
    release = Release(
        id="desk-1",
        title="Written in the desk",
        url="https://cor.europa.eu/en/news/desk",
        language="en",
        networks=["x"],
    )
    store.record_revision(release, source="desk", author="Ana", now=datetime.now(UTC))
    try:
        yield settings, store
    finally:
        store.close()


def test_the_author_of_a_revision_cannot_approve_it(desk_release: tuple[Settings, SQLiteStore]):
    from socialbot import operations
    from socialbot.errors import ApprovalError

    settings, store = desk_release
    with pytest.raises(ApprovalError, match="someone else must approve it"):
        operations.approve(settings, store, "desk-1", by="ana")
    with pytest.raises(ApprovalError, match="Ana has not submitted it for approval yet"):
        operations.approve(settings, store, "desk-1", by="Ben")
    with pytest.raises(ApprovalError, match="so it cannot be rejected"):
        operations.reject(settings, store, "desk-1", by="Ben", reason="no")
    operations.submit(store, "desk-1", by="Ana")
    result = operations.approve(settings, store, "desk-1", by="Ben")
    assert result.in_force and [p.network for p in result.approval.posts] == ["x"]


@pytest.mark.parametrize("made", [True, False])
def test_withdrawing_a_delivery_in_doubt_looks_for_it_first(
    env: Path, sandbox: SandboxServer, made: bool
):
    slugs = drainer.add_releases(env / "queue", f"doubt{made}", range(1), networks=["x"])
    release = next(iter(slugs))
    sandbox.inject("x", Fault(kind="accept-then-reset" if made else "reset"))
    faulty.drain(env)
    [row] = log_rows()
    assert row["status"] == "unknown"

    result = run("withdraw", release, "--by", "Ana", "--reason", "wrong day")
    assert "may already have been posted; it is looked for first" in result.output

    faulty.drain(env)
    faulty.drain(env)
    [row] = log_rows()
    assert row["status"] == ("posted" if made else "withdrawn")
    assert drainer.posts_per_delivery(sandbox, slugs)[release, "x"] == (1 if made else 0)
    if made:  # it was out before the withdrawal: retract takes it down
        assert run("retract", release, "--by", "Ana").exit_code == 0
        assert sandbox.posts("x") == []


def test_an_approval_killed_before_its_deliveries_exist_is_finished_by_the_drain(
    env: Path, sandbox: SandboxServer
):
    write_release(env / "queue", "r1.json", networks=["x", "mastodon"])
    killed = drainer.call(
        "approve", "r1", "--by", "Ana", env=drainer.environment(SOCIALBOT_CRASH_AT="mid-approve")
    )
    assert killed.returncode == -signal.SIGKILL
    assert log_rows() == []  # the approval is recorded, its deliveries are not

    assert run("drain").exit_code == 0
    assert sorted(p["network"] for p in sandbox.posts()) == ["mastodon", "x"]
    assert run("drain").exit_code == 0
    assert len(sandbox.posts()) == 2


# -- what the review of the approval rules found ----------------------------------------------


def failed_in_doubt(env: Path, sandbox: SandboxServer, release: str, *, made: bool) -> None:
    """A Mastodon delivery out of attempts, its last attempt perhaps posted."""
    write_release(env / "queue", f"{release}.json", networks=["mastodon"], title="First version")
    approve(release)
    sandbox.inject("mastodon", Fault(kind="accept-then-reset" if made else "reset", times=4))
    faulty.drain(env, max_attempts=1, tries_per_run=1)
    sandbox.faults.clear()
    [row] = log_rows()
    assert row["status"] == "failed" and "may exist" in str(row["error"])


@pytest.mark.parametrize("made", [True, False])
def test_a_new_revision_never_overtakes_a_failed_attempt_that_may_have_posted(
    env: Path, sandbox: SandboxServer, made: bool
):
    failed_in_doubt(env, sandbox, "r1", made=made)

    write_release(env / "queue", "r1.json", networks=["mastodon"], title="Second version")
    result = run("approve", "r1", "--by", "Ana")
    assert result.exit_code == 0 and "it is looked for first" in result.output
    faulty.drain(env)
    faulty.drain(env)

    titles = [p["text"].split("\n")[0] for p in sandbox.posts("mastodon")]
    assert titles == (["First version"] if made else ["Second version"])
    [row] = log_rows()
    assert row["status"] == "posted" and row["revision"] == (1 if made else 2)


def test_retracting_a_failed_attempt_that_may_have_posted_finds_and_deletes_it(
    env: Path, sandbox: SandboxServer
):
    failed_in_doubt(env, sandbox, "r1", made=True)
    assert len(sandbox.posts("mastodon")) == 1

    result = run("retract", "r1", "--by", "Olga", "--reason", "embargo")
    assert "it is looked for first" in result.output
    faulty.drain(env)
    faulty.drain(env)

    assert sandbox.posts("mastodon") == []
    [row] = log_rows()
    assert row["status"] == "retracted"


def test_a_network_named_again_by_a_later_revision_is_posted(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["mastodon", "facebook"], title="One")
    approve("r1")
    write_release(env / "queue", "r1.json", networks=["facebook"], title="Two")
    approve("r1")
    write_release(env / "queue", "r1.json", networks=["mastodon", "facebook"], title="Three")
    approve("r1")

    assert run("drain").exit_code == 0
    posts = {p["network"]: p["text"].split("\n")[0] for p in sandbox.posts()}
    assert posts == {"mastodon": "Three", "facebook": "Three"}


def test_a_network_withdrawn_by_a_person_says_so_when_named_again(
    env: Path, sandbox: SandboxServer
):
    write_release(env / "queue", "r1.json", networks=["mastodon", "facebook"], title="One")
    approve("r1")
    run("withdraw", "r1", "--network", "mastodon", "--by", "Olga")
    write_release(env / "queue", "r1.json", networks=["mastodon", "facebook"], title="Two")
    result = run("approve", "r1", "--by", "Ana")
    assert result.exit_code == 0
    assert "mastodon: r1 was withdrawn there by Olga" in result.output
    assert run("drain").exit_code == 0
    assert [p["network"] for p in sandbox.posts()] == ["facebook"]


def test_a_rejected_revision_is_never_posted_whoever_approves_it(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_APPROVALS_REQUIRED", "2")
    write_release(env / "queue", "r1.json", networks=["x"], title="Wrong figures")
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    assert run("reject", "r1", "--by", "Boss", "--reason", "wrong figures").exit_code == 0

    late = run("approve", "r1", "--by", "Ben")
    assert late.exit_code == 1
    assert "revision 1 of r1 was rejected by Boss (wrong figures)" in late.stderr
    assert run("drain").exit_code == 0
    assert sandbox.posts() == []

    write_release(env / "queue", "r1.json", networks=["x"], title="Right figures")
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    assert run("approve", "r1", "--by", "Ben").exit_code == 0
    assert run("drain").exit_code == 0
    assert [p["text"].split("\n")[0] for p in sandbox.posts()] == ["Right figures"]


def test_a_revision_in_force_is_withdrawn_not_rejected(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x"])
    approve("r1")
    result = run("reject", "r1", "--by", "Boss", "--reason", "wrong figures")
    assert result.exit_code == 1
    assert "already approved by Ana; to stop it, withdraw it" in result.stderr
    assert run("withdraw", "r1", "--by", "Boss").exit_code == 0
    assert run("drain").exit_code == 0
    assert sandbox.posts() == []


def test_a_rejection_that_meets_a_completed_approval_withdraws_its_deliveries(workdir: Path):
    """Two people at the same moment: the approval completed, the rejection recorded after
    its check. The rejection wins: nothing of the revision is sent."""
    from socialbot import operations
    from socialbot.approvals import ReleaseState, sync
    from socialbot.config import load_settings
    from socialbot.store import Rejection, SQLiteStore

    write_release(workdir / "queue", "r1.json", networks=["x", "mastodon"])
    settings = load_settings()
    store = SQLiteStore(settings.database_path)
    try:
        operations.approve(settings, store, "r1", by="Ana")
        now = datetime.now(UTC)
        store.record_rejection(Rejection("r1", 1, "Boss", now, "wrong figures"))
        sync(store, ReleaseState.load(store, "r1", 1), now)
        rows = {d.network: d for d in store.deliveries(release_id="r1")}
        assert {d.status for d in rows.values()} == {DeliveryStatus.WITHDRAWN}
        assert "rejected by Boss: wrong figures" in str(rows["x"].error)
    finally:
        store.close()


def test_the_author_of_a_revision_cannot_reject_it(desk_release: tuple[Settings, SQLiteStore]):
    from socialbot import operations
    from socialbot.errors import ApprovalError

    settings, store = desk_release
    with pytest.raises(ApprovalError, match="someone else must review it"):
        operations.reject(settings, store, "desk-1", by="ana", reason="mine")
    assert store.rejections("desk-1") == []


def test_a_second_file_with_the_id_holds_the_release_and_its_content_is_read_later(
    env: Path, sandbox: SandboxServer
):
    """A fix saved next to the approved file (r1.yaml beside r1.json) is a clash: nothing goes
    out; once the old file is removed, the fix is a new revision that holds the old one back."""
    queue = env / "queue"
    write_release(queue, "r1.json", networks=["mastodon"], title="Wrong figure: 12 billion")
    approve("r1")
    fix = write_release(queue, "r1.json", networks=["mastodon"], title="Right figure: 21 billion")
    fix.rename(queue / "r1.yaml")  # JSON is YAML: the same content under the other name
    write_release(queue, "r1.json", networks=["mastodon"], title="Wrong figure: 12 billion")

    result = run("drain")
    assert result.exit_code == 1 and "cannot be used" in result.stderr
    assert sandbox.posts() == []

    (queue / "r1.json").unlink()
    result = run("drain")
    assert result.exit_code == 1 and "revision 2 was made after revision 1" in result.stderr
    assert sandbox.posts() == []
    texts = approve("r1")
    assert texts["mastodon"].startswith("Right figure")
    assert run("drain").exit_code == 0
    assert [p["text"].split("\n")[0] for p in sandbox.posts()] == ["Right figure: 21 billion"]


def test_an_approved_release_whose_file_breaks_is_held(env: Path, sandbox: SandboxServer):
    path = write_release(env / "queue", "r1.json", networks=["mastodon"])
    approve("r1")
    path.write_text('{"title": "half a fix', encoding="utf-8")
    result = run("drain")
    assert result.exit_code == 1 and "claims this release but cannot be used" in result.stderr
    assert sandbox.posts() == []
    path.unlink()  # taken away: the approved revision goes out
    assert run("drain").exit_code == 0
    assert len(sandbox.posts()) == 1


def test_still_up_pairs_each_posted_delivery_with_the_latest_retraction_covering_it(
    tmp_path: Path,
):
    from socialbot.approvals import still_up
    from socialbot.store import SQLiteStore, Withdrawal
    from socialbot.store.base import ALL_NETWORKS
    from tests.test_store_contract import T0, approved, scheduled

    store = SQLiteStore(str(tmp_path / "socialbot.db"))
    try:
        on_x, on_facebook = scheduled(store, approved(store, "r1"))
        (other,) = scheduled(store, approved(store, "r2", ("x",)))
    finally:
        store.close()
    posted_x, posted_facebook, posted_other = (
        replace(d, status=DeliveryStatus.POSTED) for d in (on_x, on_facebook, other)
    )
    withdrawn = Withdrawal("r1", "facebook", "withdraw", "Ana", T0, "")
    first = Withdrawal("r1", "x", "retract", "Ana", T0, "")
    latest = Withdrawal(
        "r1", ALL_NETWORKS, "retract", "Olga", T0 + timedelta(minutes=1), "wrong figure"
    )
    everything = [on_x, posted_x, posted_facebook, posted_other]
    assert still_up(everything, [withdrawn, first]) == [(posted_x, first)]
    assert still_up(everything, [withdrawn, first, latest]) == [
        (posted_x, latest),
        (posted_facebook, latest),
    ]
    assert still_up(everything, [withdrawn]) == []


@pytest.mark.parametrize(
    ("left", "note"),
    [
        (
            DeliveryStatus.SENDING,
            "telegram: a drain is sending the previous revision (or was, when it stopped); "
            "this revision is sent only if that one did not go out",
        ),
        (
            DeliveryStatus.UNKNOWN,
            "telegram: an earlier attempt may have posted the previous revision, and nothing "
            "can look for it there: look at the account, then resolve that delivery as posted or "
            "not posted; this revision is sent only if it was not posted",
        ),
    ],
)
def test_a_correction_says_what_settles_a_send_nothing_can_look_for(
    tmp_path: Path, left: DeliveryStatus, note: str
):
    """Approving a correction over a Telegram send in doubt never promises a search a bot
    cannot make: the drain's record decides a send under way, a person one in doubt."""
    from socialbot import operations
    from socialbot.config import load_settings
    from socialbot.store import SQLiteStore, utcnow

    settings = load_settings()
    store = SQLiteStore(str(tmp_path / "socialbot.db"))
    fields = {
        "id": "r1",
        "title": "Regions call for a stronger cohesion policy",
        "url": "https://example.eu/press/r1",
        "language": "en",
        "summary": "The Committee adopted its opinion on cohesion policy after 2027.",
        "networks": ["telegram"],
    }
    operations.create_release(store, fields, author="Alice")
    operations.submit(store, "r1", by="Alice")
    operations.approve(settings, store, "r1", by="Bob")
    delivery = store.get("r1", "telegram")
    assert delivery is not None and store.claim(delivery.id, "text", utcnow()) is not None
    if left is DeliveryStatus.UNKNOWN:
        assert store.finish(
            delivery.id, left, utcnow(), expect=DeliveryStatus.SENDING, uncertain=True
        )
    operations.edit_release(store, "r1", {"title": "Title corrected"}, author="Alice")
    operations.submit(store, "r1", by="Alice")

    result = operations.approve(settings, store, "r1", by="Bob")

    telegram = [n for n in result.notes + result.to_settle if n.startswith("telegram")]
    assert telegram == [note]
    # A person's step is told apart, so each face can show it as one (the CLI exits 1).
    assert result.to_settle == ([note] if left is DeliveryStatus.UNKNOWN else [])
    assert not any("looked for" in n for n in result.notes)
    store.close()

"""Every ``socialbot`` command through the CLI runner: exit status and output."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import httpx
import pytest

from socialbot.adapters import Adapter, create_adapter
from socialbot.cli import cli
from socialbot.config import load_settings
from socialbot.models import DeliveryStatus
from socialbot.operations import LazyAdapters
from socialbot.problems import Kind
from socialbot.publish import DrainReport, Publisher
from socialbot.releases import read_release
from socialbot.sandbox import Fault, SandboxServer
from socialbot.store import SQLiteStore
from tests.helpers import run, write_release

BOTH = ["x", "facebook"]


@pytest.fixture
def store(workdir: Path) -> Iterator[SQLiteStore]:
    """The same posting log the CLI uses in ``workdir``."""
    made = SQLiteStore(str(workdir / "socialbot.db"))
    yield made
    made.close()


def approve_and_drain(name: str = "r1", **fields: object) -> None:
    write_release(Path("queue"), f"{name}.json", **{"networks": BOTH, **fields})
    approved = run("approve", name, "--by", "Ana")
    assert approved.exit_code == 0, approved.output
    drained = run("drain")
    assert drained.exit_code == 0, drained.output


def log_rows(*args: str) -> list[dict[str, object]]:
    result = run("log", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- --help ---------------------------------------------------------------------------


def test_the_top_level_help_lists_every_command():
    result = run("--help")
    assert result.exit_code == 0
    for name in cli.commands:
        assert re.search(rf"^\s+{name}\b", result.output, re.MULTILINE), name
    assert "SOCIALBOT_" in result.output


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help(name: str):
    result = run(name, "--help")
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: cli {name}") or f"{name} [OPTIONS]" in result.output
    doc = (cli.commands[name].help or "").strip().splitlines()[0]
    assert doc and doc in " ".join(result.output.split())


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_option_is_explained(name: str):
    undocumented = [
        option.opts
        for option in cli.commands[name].params
        if isinstance(option, click.Option) and not option.help
    ]
    assert undocumented == []


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert re.fullmatch(r"socialbot, version \S+\n", result.output)


def test_the_command_starts_with_the_collector_paused_then_back_on():
    # In a process of its own: freezing is for a process that runs one command and exits.
    code = """
import gc, sys
from socialbot import start
sys.argv = ["socialbot", "--version"]
try:
    start.main()
except SystemExit as exc:
    assert exc.code == 0, exc.code
assert gc.isenabled(), "the command ran with the collector off"
assert gc.get_freeze_count() > 0, "start-up was not frozen"
assert "pydantic_settings" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("socialbot, version ")


# -- preview --------------------------------------------------------------------------


def test_preview_needs_no_credentials(workdir: Path):
    path = write_release(workdir / "queue", "r1.json")
    result = run("preview", str(path))
    assert result.exit_code == 0, result.output
    for network in ("x", "facebook"):
        header = re.search(rf"^── {network} ── (\d+)/(\d+)$", result.output, re.MULTILINE)
        assert header, network
        assert int(header[1]) <= int(header[2])
    assert "Regions call for a stronger cohesion policy" in result.output


def test_preview_json(workdir: Path):
    path = write_release(workdir / "queue", "r1.yaml", networks=BOTH)
    result = run("preview", str(path), "--json")
    assert result.exit_code == 0, result.output
    posts = json.loads(result.stdout)
    assert [p["network"] for p in posts] == BOTH
    for post in posts:
        assert {"network", "text", "length", "limit"} <= set(post)
        assert 0 < post["length"] <= post["limit"]
        assert "cor.europa.eu" in post["text"] or post["network"] == "facebook"
    assert posts[0]["limit"] == 280


def test_preview_one_network(workdir: Path):
    path = write_release(workdir / "queue", "r1.json")
    result = run("preview", str(path), "--network", "facebook", "--json")
    assert result.exit_code == 0, result.output
    assert [p["network"] for p in json.loads(result.stdout)] == ["facebook"]
    assert run("preview", str(path), "--network", "myspace").exit_code == 2


def test_preview_of_an_invalid_file_names_file_and_field(workdir: Path):
    path = write_release(workdir / "queue", "bad.json", url="javascript:alert(1)")
    result = run("preview", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"socialbot: {path}: field 'url': must be an http or https URL, not 'javascript'"
    ]


def test_preview_does_not_touch_the_network(workdir: Path, sandbox: SandboxServer):
    path = write_release(workdir / "queue", "r1.json")
    assert run("preview", str(path)).exit_code == 0
    assert sandbox.requests == []
    assert sandbox.posts() == []


# -- approve --------------------------------------------------------------------------


def test_approve_by_path_records_approver_and_hash(workdir: Path, store: SQLiteStore):
    path = write_release(workdir / "queue", "r1.json", networks=BOTH)
    result = run("approve", "queue/r1.json", "--by", "Ana Ruiz")
    assert result.exit_code == 0, result.output
    digest = read_release(path).content_hash()
    lines = result.output.splitlines()
    assert lines[-1] == f"approved r1 revision 1 for x, facebook by Ana Ruiz (sha256 {digest[:12]})"
    # The exact posts approved are shown first.
    assert lines[0] == "── x ── 79/280" and "── facebook ──" in result.output
    [approval] = store.approvals("r1")
    assert (approval.approved_by, approval.content_hash) == ("Ana Ruiz", digest)
    assert approval.networks == ("x", "facebook")
    assert datetime.now(UTC) - approval.approved_at < timedelta(minutes=1)


def test_approve_by_id(workdir: Path, store: SQLiteStore):
    write_release(workdir / "queue", "plenary.yaml", id="plenary", networks=["x"])
    result = run("approve", "plenary", "--by", "Ana")
    assert result.exit_code == 0, result.output
    assert [a.release_id for a in store.approvals()] == ["plenary"]


def test_approve_mentions_not_before(workdir: Path):
    write_release(
        workdir / "queue", "r1.json", networks=["x"], not_before="2030-01-01T09:00:00+01:00"
    )
    result = run("approve", "r1", "--by", "Ana")
    assert result.exit_code == 0
    assert "not before 2030-01-01T08:00:00+00:00" in result.output


def test_approve_refuses_a_file_outside_the_queue(workdir: Path, store: SQLiteStore):
    path = write_release(workdir, "elsewhere.json", networks=["x"])
    result = run("approve", str(path), "--by", "Ana")
    assert result.exit_code == 1
    assert "is not in the queue directory" in result.stderr
    assert store.approvals() == []


def test_approve_refuses_an_invalid_file(workdir: Path, store: SQLiteStore):
    write_release(workdir / "queue", "bad.json", language="english", networks=["x"])
    result = run("approve", "queue/bad.json", "--by", "Ana")
    assert result.exit_code == 1
    assert "field 'language'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert store.approvals() == []


def test_approve_refuses_an_unknown_release(workdir: Path):
    result = run("approve", "nothing-like-it", "--by", "Ana")
    assert result.exit_code == 1
    assert "no release file or release id 'nothing-like-it'" in result.stderr


def test_approve_needs_by(workdir: Path):
    write_release(workdir / "queue", "r1.json", networks=["x"])
    result = run("approve", "r1")
    assert result.exit_code == 2
    assert "--by" in result.output


def test_approve_without_networks_and_none_configured(workdir: Path):
    write_release(workdir / "queue", "r1.json")
    result = run("approve", "r1", "--by", "Ana")
    assert result.exit_code == 1
    assert "names no networks and none is configured" in result.stderr


def test_approvals_are_listed_in_the_log(workdir: Path):
    path = write_release(workdir / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")
    write_release(workdir / "queue", "r1.json", networks=BOTH, summary="Edited.")
    run("approve", "r1", "--by", "Ben")

    table = run("log", "--approvals")
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert len(lines) == 2
    assert "r1 revision 1 approved by Ana for x, facebook" in lines[0]
    assert "r1 revision 2 approved by Ben for x, facebook" in lines[1]

    records = [
        json.loads(line) for line in run("log", "--approvals", "--json").output.split("\n")[:-1]
    ]
    assert [r["approved_by"] for r in records] == ["Ana", "Ben"]
    assert records[1]["sha256"] == read_release(path).content_hash()
    assert records[0]["file"] == "queue/r1.json"
    assert records[0]["networks"] == BOTH


# -- drain ----------------------------------------------------------------------------


def test_drain_is_quiet_on_success_and_posts_once(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")

    first = run("drain")
    assert (first.exit_code, first.output) == (0, "")
    assert sorted(p["network"] for p in sandbox.posts()) == sorted(BOTH)

    second = run("drain")
    assert (second.exit_code, second.output) == (0, "")
    assert len(sandbox.posts()) == 2
    creates = [r for r in sandbox.requests if r["method"] == "POST"]
    assert len(creates) == 2


@pytest.mark.parametrize("args", [("-v", "drain"), ("drain", "-v"), ("drain", "--verbose")])
def test_drain_verbose_shows_progress(env: Path, sandbox: SandboxServer, args: tuple[str, str]):
    write_release(env / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")
    result = run(*args)
    assert result.exit_code == 0
    for post in sandbox.posts():
        assert f"posted   r1 on {post['network']}: {post['url']}" in result.stdout


def test_drain_with_nothing_to_do(env: Path, sandbox: SandboxServer):
    result = run("drain")
    assert (result.exit_code, result.output) == (0, "")
    assert sandbox.requests == []


def test_drain_posts_a_release_to_every_active_network_by_default(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "x,facebook")
    write_release(env / "queue", "r1.json")
    run("approve", "r1", "--by", "Ana")
    assert run("drain").exit_code == 0
    assert sorted(p["network"] for p in sandbox.posts()) == sorted(BOTH)


def test_an_unapproved_release_is_never_posted(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "approved.json", networks=["x"])
    write_release(env / "queue", "unapproved.json", networks=["x"], title="Not approved yet")
    run("approve", "approved", "--by", "Ana")
    assert run("drain").exit_code == 0
    assert run("drain").exit_code == 0
    [post] = sandbox.posts()
    assert "Not approved yet" not in post["text"]
    assert {r["release"] for r in log_rows()} == {"approved"}


def test_a_release_edited_after_approval_is_reported_and_not_posted(
    env: Path, sandbox: SandboxServer
):
    write_release(env / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")
    write_release(env / "queue", "r1.json", networks=BOTH, title="Quietly changed afterwards")

    result = run("drain")

    assert result.exit_code == 1
    assert "revision 2 was made after revision 1 was approved" in result.stderr
    assert len(result.stderr.splitlines()) == 2  # once per network
    assert sandbox.posts() == []
    status = run("status")
    assert status.exit_code == 1
    assert "changed after approval (approve again):" in status.output
    assert "r1: revision 2 was made after revision 1 was approved by Ana" in status.output

    run("approve", "r1", "--by", "Ben")
    assert run("drain").exit_code == 0
    assert all("Quietly changed afterwards" in p["text"] for p in sandbox.posts())
    assert {r["approved_by"] for r in log_rows()} == {"Ben"}


def test_a_release_edited_between_schedule_and_send_is_not_posted(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    """A delivery already in the log still checks the file against its approval."""
    write_release(env / "queue", "r1.json", networks=["x"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("x", Fault(kind="error", status=429, retry_after=3600))
    assert run("drain").exit_code == 1
    write_release(env / "queue", "r1.json", networks=["x"], title="Changed while waiting")
    store.set_hold("x", datetime.now(UTC) - timedelta(seconds=1), "over")
    x = store.get("r1", "x")
    assert x is not None
    store.finish(
        x.id,
        DeliveryStatus.PENDING,
        datetime.now(UTC),
        expect=DeliveryStatus.PENDING,
        count_attempt=False,
    )

    result = run("drain")

    assert result.exit_code == 1
    assert "revision 2 was made after revision 1 was approved" in result.stderr
    assert sandbox.posts() == []


def test_not_before_in_the_future_waits(env: Path, sandbox: SandboxServer):
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    write_release(env / "queue", "later.json", networks=["x"], not_before=soon, title="Later")
    write_release(env / "queue", "now.json", networks=["x"], not_before=past, title="Now")
    run("approve", "later", "--by", "Ana")
    run("approve", "now", "--by", "Ana")

    result = run("drain")

    assert (result.exit_code, result.output) == (0, "")
    [post] = sandbox.posts()
    assert post["text"].startswith("Now")
    assert {(r["release"], r["status"]) for r in log_rows()} == {
        ("now", "posted"),
        ("later", "pending"),
    }
    assert "later on x at " in run("status").output


def test_not_before_is_honoured_by_the_publisher_clock(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    not_before = datetime(2030, 1, 1, 9, tzinfo=UTC)
    write_release(env / "queue", "r1.json", networks=["x"], not_before=not_before.isoformat())
    run("approve", "r1", "--by", "Ana")
    settings = load_settings()
    adapters = {"x": create_adapter("x", settings)}

    def drain_at(now: datetime) -> None:
        Publisher(
            store=store,
            queue_dir=settings.queue_dir,
            adapters=adapters,
            active=["x"],
            now=lambda: now,
        ).drain()

    try:
        drain_at(not_before - timedelta(seconds=1))
        assert sandbox.posts() == []
        assert [d.status for d in store.deliveries()] == [DeliveryStatus.PENDING]
        drain_at(not_before)
    finally:
        adapters["x"].close()
    assert len(sandbox.posts()) == 1
    [delivery] = store.deliveries()
    assert delivery.status is DeliveryStatus.POSTED


class RecordingAdapters(LazyAdapters):
    """The drain's adapters, recording each one built (and on which thread) and whether a
    network thread has asked for its own; ``before_build`` runs before each build."""

    def __init__(
        self,
        store: SQLiteStore,
        before_build: Callable[[RecordingAdapters, str], None] | None = None,
        networks: list[str] | None = None,
    ) -> None:
        networks = networks or BOTH
        super().__init__(load_settings(), networks, store)
        self.networks = networks
        self.posting_log = store
        self.built: list[tuple[str, str]] = []
        self.asked_by_a_network_thread = threading.Event()
        self.before_build = before_build

    def __getitem__(self, network: str) -> Adapter:
        here = threading.current_thread()
        if here is not threading.main_thread():
            self.asked_by_a_network_thread.set()
        if network not in self._made:
            self.built.append((network, here.name))
            if self.before_build is not None:
                self.before_build(self, network)
        return super().__getitem__(network)

    def drain(self) -> DrainReport:
        try:
            return Publisher(
                store=self.posting_log,
                queue_dir=self.settings.queue_dir,
                adapters=self,
                active=self.networks,
            ).drain()
        finally:
            self.close()


def test_the_adapters_are_built_on_the_main_thread_and_not_for_a_paused_network(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    from socialbot.store import Pause

    write_release(env / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")
    store.pause(Pause("facebook", "Ana", datetime.now(UTC), "checking a reply"))
    adapters = RecordingAdapters(store)
    adapters.drain()
    # Built one after another on the main thread: imports would only interleave in threads.
    assert adapters.built == [("x", threading.main_thread().name)]
    assert [p["network"] for p in sandbox.posts()] == ["x"]


def approve_two_releases(env: Path, *, second_to: str) -> None:
    """r1 approved for x and facebook, r2 for ``second_to`` alone: two deliveries to it."""
    write_release(env / "queue", "r1.json", networks=BOTH)
    write_release(
        env / "queue",
        "r2.json",
        networks=[second_to],
        title="Mayors ask for direct access to EU funds",
        url="https://cor.europa.eu/en/news/Pages/funds.aspx",
    )
    run("approve", "r1", "--by", "Ana")
    run("approve", "r2", "--by", "Ana")


def test_the_network_with_most_to_send_starts_while_the_next_adapter_is_built(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    approve_two_releases(env, second_to="x")
    x_sent_first: list[bool] = []

    def wait_for_x(adapters: RecordingAdapters, network: str) -> None:
        if network == "facebook":
            x_sent_first.append(adapters.asked_by_a_network_thread.wait(10))

    adapters = RecordingAdapters(store, before_build=wait_for_x)
    report = adapters.drain()
    main = threading.main_thread().name
    assert adapters.built == [("x", main), ("facebook", main)]
    # x, with two posts to facebook's one, was sending in its thread by then.
    assert x_sent_first == [True]
    assert len(sandbox.posts()) == 3
    # The report lists the networks in a stable order, whichever finished first.
    assert [o.network for o in report.outcomes] == ["facebook", "x", "x"]


def test_networks_with_as_much_to_send_start_in_the_registry_order(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    write_release(env / "queue", "r1.json", networks=["facebook", "x"])
    run("approve", "r1", "--by", "Ana")
    adapters = RecordingAdapters(store)
    adapters.drain()
    # As NETWORKS lists them, not alphabetically.
    assert [network for network, _ in adapters.built] == ["x", "facebook"]


def test_a_network_that_logs_in_first_starts_before_one_with_as_many_posts(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    write_release(env / "queue", "r1.json", networks=["x", "bluesky"])
    run("approve", "r1", "--by", "Ana")
    adapters = RecordingAdapters(store, networks=["x", "bluesky"])
    adapters.drain()
    # Bluesky's login and its post are two requests in a row, x's post one.
    assert [network for network, _ in adapters.built] == ["bluesky", "x"]
    assert sorted(p["network"] for p in sandbox.posts()) == ["bluesky", "x"]


def test_a_network_whose_adapter_cannot_be_built_says_how_many_deliveries_wait(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    approve_two_releases(env, second_to="facebook")

    def refuse_facebook(adapters: RecordingAdapters, network: str) -> None:
        if network == "facebook":
            raise RuntimeError("the Graph API version is not served")

    report = RecordingAdapters(store, before_build=refuse_facebook).drain()
    [problem] = [p for p in report.problems if p.network == "facebook"]
    assert (problem.kind, problem.standing) == (Kind.NOT_CONFIGURED, True)
    assert problem.detail == (
        "facebook could not be set up (the Graph API version is not served); "
        "2 deliveries to it wait"
    )
    assert [p["network"] for p in sandbox.posts()] == ["x"]


def test_an_idle_drain_reads_as_much_of_the_store_after_many_releases_as_after_one(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    """Markers that approvals and told problems leave behind are read in one query each,
    not one read per release ever approved."""
    settings = load_settings()

    def reads_of_an_idle_drain() -> int:
        reads = 0
        get_value = store.get_value

        def counting(key: str) -> str | None:
            nonlocal reads
            reads += 1
            return get_value(key)

        store.get_value = counting  # type: ignore[method-assign]
        try:
            Publisher(store=store, queue_dir=settings.queue_dir, adapters={}, active=BOTH).drain()
        finally:
            del store.get_value
        return reads

    approve_and_drain("r0")
    after_one = reads_of_an_idle_drain()
    for n in range(1, 8):
        approve_and_drain(f"r{n}", title=f"Statement {n} of the regions on cohesion policy")
    assert len(sandbox.posts()) == 16
    assert reads_of_an_idle_drain() == after_one


def test_an_idle_drain_makes_as_many_queries_after_many_retractions_as_after_one(
    env: Path, sandbox: SandboxServer, store: SQLiteStore
):
    """Retracted releases whose posts may still be up are found in one query, not in
    one query per retraction ever made."""
    settings = load_settings()

    def statements_of_an_idle_drain() -> list[str]:
        seen: list[str] = []
        connection = store._connection()
        connection.set_trace_callback(seen.append)
        try:
            Publisher(store=store, queue_dir=settings.queue_dir, adapters={}, active=BOTH).drain()
        finally:
            connection.set_trace_callback(None)
        return seen

    def retract(name: str) -> None:
        result = run("retract", name, "--by", "Olga", "--reason", "wrong figure")
        assert result.exit_code == 0, result.output

    for n in range(6):
        approve_and_drain(f"r{n}", title=f"Statement {n} of the regions on cohesion policy")
    retract("r0")
    after_one = statements_of_an_idle_drain()
    for n in range(1, 6):
        retract(f"r{n}")
    assert len(sandbox.posts()) == 0
    assert len(statements_of_an_idle_drain()) == len(after_one)
    assert all(d.status is DeliveryStatus.RETRACTED for d in store.deliveries())


def test_drain_exits_1_when_a_delivery_fails(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("facebook", Fault(kind="error", status=400))

    result = run("drain")

    assert result.exit_code == 1
    assert "r1 on facebook: failed (" in result.stderr
    assert "socialbot retry r1 --network facebook" in result.stderr
    assert [p["network"] for p in sandbox.posts()] == ["x"]
    assert {(r["network"], r["status"]) for r in log_rows()} == {
        ("x", "posted"),
        ("facebook", "failed"),
    }


def test_drain_exits_1_while_a_delivery_is_left_pending(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("x", Fault(kind="error", status=429, retry_after=3600))

    result = run("drain")

    assert result.exit_code == 1
    assert "x asked us to wait until" in result.stderr
    assert sandbox.posts() == []
    [row] = log_rows()
    assert row["status"] == "pending"


def test_drain_exits_1_for_a_network_that_is_not_configured(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    write_release(env / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "x")
    result = run("drain")
    assert result.exit_code == 1
    assert "facebook is not configured" in result.stderr
    assert [p["network"] for p in sandbox.posts()] == ["x"]


def test_drain_reports_invalid_files_and_posts_the_rest(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "good.json", networks=["x"])
    (env / "queue" / "broken.yaml").write_text("title: [\n", encoding="utf-8")
    run("approve", "good", "--by", "Ana")
    result = run("drain")
    assert result.exit_code == 1
    assert result.stderr.startswith("socialbot: queue/broken.yaml: is not valid YAML")
    assert len(sandbox.posts()) == 1


def test_a_partial_x_credential_set_is_exit_2_naming_the_variable(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    write_release(env / "queue", "r1.json", networks=BOTH)
    monkeypatch.delenv("SOCIALBOT_X__API_SECRET")
    result = run("drain")
    assert result.exit_code == 2
    assert result.stderr == (
        "socialbot: SOCIALBOT_X__API_SECRET is not set, but other x credentials are: "
        "set it or remove them\n"
    )
    assert sandbox.requests == []


@pytest.mark.parametrize("command", ["drain", "status"])
def test_a_missing_queue_directory_is_exit_2(
    env: Path, monkeypatch: pytest.MonkeyPatch, command: str
):
    monkeypatch.setenv("SOCIALBOT_QUEUE_DIR", "releases")
    result = run(command)
    assert result.exit_code == 2
    assert result.stderr == (
        "socialbot: SOCIALBOT_QUEUE_DIR: the queue directory releases does not exist\n"
    )


@pytest.mark.parametrize(
    ("name", "value", "start"),
    [
        ("SOCIALBOT_DATABASE_URL", "mysql://db/socialbot", "SOCIALBOT_DATABASE_URL:"),
        ("SOCIALBOT_NETWORKS", "x,myspace", "SOCIALBOT_NETWORKS: unknown network 'myspace'"),
        ("SOCIALBOT_FACEBOOK__API_VERSION", "latest", "SOCIALBOT_FACEBOOK__API_VERSION:"),
    ],
)
def test_a_bad_setting_is_exit_2_with_one_sentence(
    env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, start: str
):
    monkeypatch.setenv(name, value)
    result = run("drain")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"socialbot: {start}")
    assert len(result.stderr.splitlines()) == 1


def test_drain_never_shows_a_secret(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=BOTH)
    run("approve", "r1", "--by", "Ana")
    sandbox.networks["facebook"].credentials["page_access_token"] = "rotated"
    result = run("-vv", "drain")
    assert result.exit_code == 1
    secrets = load_settings().secret_values()
    assert secrets
    for secret in secrets:
        assert secret not in result.output
        assert all(secret not in json.dumps(row) for row in log_rows())


# -- log ------------------------------------------------------------------------------


def test_log_table(env: Path, sandbox: SandboxServer):
    approve_and_drain()
    result = run("log")
    assert result.exit_code == 0
    header, *rows = result.output.splitlines()
    assert header.split()[:3] == ["UPDATED", "(UTC)", "RELEASE"]
    assert {"NETWORK", "STATUS", "TRIES", "URL / ERROR"} <= set(re.split(r"\s{2,}", header))
    assert len(rows) == 2
    for post in sandbox.posts():
        [row] = [r for r in rows if f" {post['network']} " in r]
        assert re.search(rf"\br1\s+1\s+{post['network']}\s+posted\s+1\s+Ana\s+{post['url']}$", row)


def test_log_json_fields(env: Path, sandbox: SandboxServer):
    approve_and_drain()
    rows = log_rows()
    assert len(rows) == 2
    for row in rows:
        assert {
            "release",
            "network",
            "status",
            "remote_id",
            "url",
            "attempts",
            "error",
            "updated_at",
        } <= set(row)
        assert (row["release"], row["status"], row["attempts"], row["error"]) == (
            "r1",
            "posted",
            1,
            None,
        )
        assert datetime.fromisoformat(str(row["updated_at"])).tzinfo is not None
    by_network = {row["network"]: row for row in rows}
    for post in sandbox.posts():
        assert by_network[post["network"]]["remote_id"] == post["id"]
        assert by_network[post["network"]]["url"] == post["url"]


def test_log_filters(env: Path, sandbox: SandboxServer):
    approve_and_drain("r1")
    sandbox.inject("facebook", Fault(kind="error", status=400))
    write_release(env / "queue", "r2.json", networks=BOTH, title="Second release")
    run("approve", "r2", "--by", "Ben")
    assert run("drain").exit_code == 1

    assert {(r["release"], r["network"]) for r in log_rows("--release", "r2")} == {
        ("r2", "x"),
        ("r2", "facebook"),
    }
    assert {r["release"] for r in log_rows("--network", "facebook")} == {"r1", "r2"}
    assert all(r["network"] == "facebook" for r in log_rows("--network", "facebook"))
    assert [(r["release"], r["network"]) for r in log_rows("--status", "failed")] == [
        ("r2", "facebook")
    ]
    assert len(log_rows("--since", "1h")) == 4
    assert len(log_rows("--since", "30 s")) == 4
    assert len(log_rows("--limit", "1")) == 1
    assert run("log", "--release", "nothing").output == "no deliveries match\n"
    assert run("log", "--status", "lost").exit_code == 2


def test_log_since_excludes_older_rows(env: Path, sandbox: SandboxServer, store: SQLiteStore):
    approve_and_drain()
    with store._transaction() as conn:
        conn.execute("UPDATE deliveries SET updated_at = '2020-01-01T00:00:00.000000+00:00'")
    assert log_rows("--since", "2w") == []
    assert len(log_rows("--since", "9999d")) == 2


@pytest.mark.parametrize("since", ["yesterday", "1y", "-1d", "1.5h", ""])
def test_log_since_rejects_what_it_cannot_read(workdir: Path, since: str):
    result = run("log", "--since", since)
    assert result.exit_code == 2
    assert result.stderr == (
        f"socialbot: --since {since!r}: use a number and a unit, e.g. 30m, 12h, 1d, 2w\n"
    )


def test_log_of_an_empty_database(workdir: Path):
    result = run("log")
    assert (result.exit_code, result.output) == (0, "no deliveries match\n")
    assert run("log", "--json").output == ""


# -- status ---------------------------------------------------------------------------


def test_status_of_a_clean_queue(env: Path, sandbox: SandboxServer):
    approve_and_drain()
    result = run("status")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "deliveries: 0 pending, 0 sending, 2 posted, 0 failed, 0 unknown, 0 withdrawn, 0 retracted"
    )
    assert "approved:\n  r1: revision 1 approved by Ana on " in result.output


def test_status_lists_awaiting_invalid_and_reapproval(env: Path, sandbox: SandboxServer):
    queue = env / "queue"
    write_release(queue, "waiting.json", networks=["x"])
    (queue / "bad.json").write_text('{"title": "t", "url": "mailto:a@b", "language": "en"}')
    write_release(queue, "edited.json", networks=["x"])
    run("approve", "edited", "--by", "Ana")
    write_release(queue, "edited.json", networks=["x"], summary="Edited.")

    result = run("status")

    assert result.exit_code == 1
    text = result.output
    assert "awaiting approval:\n  waiting (revision 1, 0 of 1 approvals)" in text
    assert "invalid release files:\n  queue/bad.json: field 'url': must be an http" in text
    assert "changed after approval (approve again):\n  edited: revision 2 was made" in text

    data = json.loads(run("status", "--json").stdout)
    assert data["awaiting_approval"] == ["waiting (revision 1, 0 of 1 approvals)"]
    assert len(data["invalid"]) == 1
    assert len(data["needs_reapproval"]) == 1
    assert set(data["deliveries"]) == {s.value for s in DeliveryStatus}


def test_status_exits_0_when_only_awaiting_approval(env: Path):
    write_release(env / "queue", "waiting.json", networks=["x"])
    result = run("status")
    assert result.exit_code == 0
    assert "awaiting approval:" in result.output


def test_status_shows_failed_deliveries_as_needing_a_human(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["facebook"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("facebook", Fault(kind="error", status=400))
    run("drain")
    result = run("status")
    assert result.exit_code == 1
    assert "need a person:\n  r1 on facebook: failed" in result.output


def test_status_shows_a_rate_limit_hold(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("x", Fault(kind="error", status=429, retry_after=3600))
    run("drain")
    assert "rate limited:\n  x: until " in run("status").output


# -- retry, resolve, networks ------------------------------------------------------------


def test_retry_sends_a_failed_delivery_again(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["facebook"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("facebook", Fault(kind="error", status=400))
    assert run("drain").exit_code == 1

    result = run("retry", "r1", "--network", "facebook")
    assert (result.exit_code, result.output) == (0, "1 delivery of r1 will be retried\n")
    assert run("drain").exit_code == 0
    assert len(sandbox.posts("facebook")) == 1

    again = run("retry", "r1")
    assert again.exit_code == 1
    assert "r1 has no failed delivery to retry" in again.stderr


def test_resolve_an_unknown_delivery(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("x", Fault(kind="error", status=503))
    result = run("drain")
    assert result.exit_code == 1
    assert "socialbot resolve r1 --network x --posted URL" in result.stderr
    assert [r["status"] for r in log_rows()] == ["unknown"]

    usage = run("resolve", "r1", "--network", "x")
    assert usage.exit_code == 2
    bad = run("resolve", "r1", "--network", "x", "--posted", "javascript:1")
    assert bad.exit_code == 2

    done = run("resolve", "r1", "--network", "x", "--posted", "https://x.com/EU_CoR/status/1")
    assert (done.exit_code, done.output) == (0, "r1 on x is now posted\n")
    [row] = log_rows()
    assert (row["status"], row["url"]) == ("posted", "https://x.com/EU_CoR/status/1")
    twice = run("resolve", "r1", "--network", "x", "--not-posted")
    assert twice.exit_code == 1
    assert "r1 on x is posted" in twice.stderr
    assert sandbox.posts() == []


def test_resolve_not_posted_sends_it_again(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x"])
    run("approve", "r1", "--by", "Ana")
    sandbox.inject("x", Fault(kind="error", status=503))
    run("drain")
    result = run("resolve", "r1", "--network", "x", "--not-posted")
    assert (result.exit_code, result.output) == (0, "r1 on x is now pending\n")
    assert run("drain").exit_code == 0
    assert len(sandbox.posts("x")) == 1


def test_networks_checks_the_credentials(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "x,facebook")
    result = run("networks")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines())
    assert lines["x"] == "active, credentials accepted (@EU_CoR)"
    assert lines["facebook"].startswith("active, credentials accepted (Page CoR sandbox Page")
    assert sandbox.posts() == []

    # A secret is masked for the rest of the process, in every test that follows: this one
    # is distinctive, so no other test's output contains it.
    monkeypatch.setenv("SOCIALBOT_X__ACCESS_TOKEN_SECRET", "not-the-right-secret-7f3a")
    broken = run("networks")
    assert broken.exit_code == 1
    assert "x         active, credentials NOT accepted" in broken.output
    assert "not-the-right-secret-7f3a" not in broken.output


def test_networks_without_configuration(workdir: Path):
    result = run("networks")
    assert result.exit_code == 0
    assert "x         not configured" in result.output


# -- sandbox --------------------------------------------------------------------------


def test_the_sandbox_command_serves_its_pages(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALBOT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "socialbot", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"sandbox listening on http://127.0.0.1:{port}")
        exports = [process.stdout.readline() for _ in range(2)]
        assert all(line.startswith("export SOCIALBOT_") for line in exports)
        base = f"http://127.0.0.1:{port}"
        page = httpx.get(f"{base}/", timeout=5)
        assert page.status_code == 200
        assert "socialbot sandbox" in page.text
        posts = httpx.get(f"{base}/_sandbox/posts", timeout=5)
        assert (posts.status_code, posts.json()) == (200, [])
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
    assert process.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_sandbox_command_stops_on_a_signal_even_as_a_background_job(
    tmp_path: Path, sig: signal.Signals
):
    """A script's background job starts with SIGINT ignored; the sandbox still stops."""
    process = subprocess.Popen(
        [sys.executable, "-m", "socialbot", "sandbox", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("sandbox listening")
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_the_sandbox_command_refuses_a_busy_port(workdir: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("sandbox", "--port", str(port))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"socialbot: cannot listen on 127.0.0.1:{port}:")


def test_a_drain_into_a_running_sandbox_command(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """What the README shows: start the sandbox, use its printed settings, drain."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "socialbot", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=workdir,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("sandbox listening")
        served = httpx.get(f"http://127.0.0.1:{port}/_sandbox/settings", timeout=5).json()
        for name, value in served.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SOCIALBOT_NETWORKS", "x,facebook")
        write_release(workdir / "queue", "r1.json")
        assert run("approve", "r1", "--by", "Ana").exit_code == 0
        assert run("drain").exit_code == 0
        posts = httpx.get(f"http://127.0.0.1:{port}/_sandbox/posts", timeout=5).json()
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    assert sorted(p["network"] for p in posts) == sorted(BOTH)
    assert "<h2>x (1)</h2>" in page
    assert "<h2>facebook (1)</h2>" in page
    assert all(html.escape(p["url"], quote=True) in page for p in posts)
    assert all(str(r["url"]).startswith(f"http://127.0.0.1:{port}/") for r in log_rows())

"""The speed benchmark in miniature, so it never rots, and the speed claims it rests on.

The figures of a tiny run mean nothing; what is checked is that every part
runs against the real sandbox and CLI, and the facts that do not depend on
the machine: every post arrives once and in order, an idle drain makes no
request, imports no network library and reads no settled file, and the
posting log's queries stay on their indexes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bench.coldstart import collected_instructions, instructions
from bench.common import bench_networks
from bench.drain import main
from bench.history import scene, seed_log
from bench.queries import check_drain, check_store_calls
from bench.throughput import run_throughput

from socialbot.models import NETWORKS, Approval, DeliveryStatus, Release
from socialbot.store import ID_BATCH, SQLiteStore
from tests.postgres import NO_SERVER, PostgresServer


def figures_by_name(path: Path) -> dict[str, dict[str, object]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert {"cpu", "cores", "python", "date"} <= set(data["machine"])
    return {f"{f['section']}: {f['name']}": f for f in data["figures"]}


def test_quick_benchmark_runs_every_part(tmp_path: Path, capsys):
    out = tmp_path / "figures.json"
    args = ["--quick", "--databases", "sqlite", "--json", str(out), "--markdown"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| drain 3 x 2, sqlite | socialbot drain: wall / lower bound |" in printed
    assert "targets met" in printed
    figures = figures_by_name(out)

    networks = bench_networks()
    posts = {name: f for name, f in figures.items() if name.endswith("posts accepted")}
    sections = ["drain 3 x 2, sqlite", "drain 2 x 6, sqlite"]
    assert set(posts) == {f"{section}: posts accepted" for section in sections}
    assert posts["drain 3 x 2, sqlite: posts accepted"]["value"] == 3 * 2
    assert posts["drain 2 x 6, sqlite: posts accepted"]["value"] == 2 * len(networks)
    for figure in posts.values():
        assert figure["verdict"] == "PASS", "a post was lost or doubled"
    for name, figure in figures.items():
        if name.endswith("wall / lower bound"):
            # The bound counts every request at the injected latency: nothing beats it.
            assert float(str(figure["value"])) >= 0.95
        if name.endswith("overhead per delivery besides latency (median of runs)"):
            # One figure per network: the gap between its requests, less the latency.
            shown = dict(item.split(" ") for item in str(figure["note"]).split(", "))
            assert set(shown) in ({*networks[:2]}, set(networks))
            assert all(float(ms) > -5 for ms in shown.values())

    assert figures["cold start: idle drain: network requests made"]["value"] == 0
    assert figures["cold start: import socialbot.cli: heavy modules imported"]["verdict"] == "PASS"
    idle = figures["cold start: idle drain: sending or composing modules imported"]
    assert idle["verdict"] == "PASS", idle["note"]


def test_the_throughput_drain_runs_on_postgresql(postgres_server: object):
    if postgres_server is None:
        pytest.skip(NO_SERVER)
    assert isinstance(postgres_server, PostgresServer)
    networks = bench_networks()[:2]
    figures = run_throughput(
        [(2, networks)],
        dict.fromkeys(networks, 0.01),
        1,
        ["postgresql"],
        lambda: contextlib.nullcontext(postgres_server),
    )
    by_name = {f.name: f for f in figures}
    assert all(f.section == "drain 2 x 2, postgresql" for f in figures)
    assert by_name["posts accepted"].value == 4 and by_name["posts accepted"].passed
    assert by_name["socialbot drain: wall / lower bound"].value >= 0.95


def test_history_part_runs_and_the_log_queries_use_indexes(tmp_path: Path):
    out = tmp_path / "figures.json"
    assert main(["--quick", "--only", "history", "--json", str(out)]) == 0
    figures = figures_by_name(out)
    store_calls = {n: f for n, f in figures.items() if n.startswith("store on ")}
    assert any("log --since 1d" in name for name in store_calls)
    for name, figure in store_calls.items():
        if figure["target"]:
            assert figure["verdict"] == "PASS", f"{name}: {figure['note']}"


def test_an_idle_drain_notices_a_rewrite_that_sets_its_time_back():
    """Settled files are known by their stat signature, the change time included: a rewrite
    in place that restores the modification time (as ``cp -p`` does) is read again."""
    with scene(5) as here:
        here.drain()  # the first scan reads and caches every file
        assert here.socialbot("drain").stderr == ""
        settled = sorted(here.queue.glob("settled-*.json"))
        st = settled[0].stat()
        with settled[0].open("r+b") as handle:  # same inode, size and modification time
            handle.write(b"!" * st.st_size)
        os.utime(settled[0], ns=(st.st_atime_ns, st.st_mtime_ns))
        run = here.socialbot("drain", ok=(1,))
        assert settled[0].name in run.stderr and "JSON" in run.stderr


def test_idle_drain_opens_no_queue_file_and_stays_on_indexes():
    with scene(3) as here:
        here.drain()
        check = check_drain(here.database, here.queue, here.networks)
        assert check.opened == []
        assert check.sql.plans, "the tracing store saw no statement"
        steps = [step for plan in check.sql.plans.values() for step in plan]
        assert not [s for s in steps if s.startswith("SCAN deliveries") and "INDEX" not in s]

        # The control: the watch does see a file the drain has to read again.
        touched = sorted(here.queue.glob("settled-*.json"))[0]
        os.utime(touched, ns=(0, 0))
        check = check_drain(here.database, here.queue, here.networks)
        assert [Path(path).name for path in check.opened] == [touched.name]


def test_seeded_history_reads_like_real_history(tmp_path: Path):
    database = tmp_path / "socialbot.db"
    end = datetime.now(UTC) - timedelta(hours=1)
    rows = seed_log(
        database, settled=[("kept-1", "a" * 64, "queue/kept-1.json")], archived=3, end=end
    )
    assert rows == 4 * len(NETWORKS)

    store = SQLiteStore(str(database))
    try:
        assert store.counts()[DeliveryStatus.POSTED] == rows
        newest = store.get("kept-1", "x")
        assert newest is not None and newest.url and newest.posted_at is not None
        assert end < newest.updated_at <= datetime.now(UTC)
        assert store.latest_approvals(["kept-1"])["kept-1"].content_hash == "a" * 64
        assert store.deliveries(since=end - timedelta(minutes=1))[0].release_id == "kept-1"
        assert len(store.deliveries(release_id="archived-0000002")) == len(NETWORKS)
        calls = {c.call: c for c in check_store_calls(database, "x")}
        assert not calls["log --since 1d"].scans()
    finally:
        store.close()


def test_approvals_and_revisions_of_some_releases():
    """The drain asks only about the releases it needs, in batches of ids."""
    store = SQLiteStore(":memory:")
    try:
        now = datetime.now(UTC)
        count = ID_BATCH + 20
        for n in range(count):
            store.record_approval(Approval(f"r{n}", "a" * 64, "Ana", now, "", ("x",)))
            store.record_revision(
                Release(id=f"r{n}", title=f"T{n}", url="https://cor.europa.eu/", language="en"),
                source="test",
                author=None,
                now=now,
            )
        for n in range(0, count, 7):  # approved again: the newer approval counts
            store.record_approval(Approval(f"r{n}", "b" * 64, "Ana", now, "", ("x",)))
        wanted = [f"r{n}" for n in range(0, count, 3)] + ["r7", "absent"]
        every = store.latest_approvals()
        some = store.latest_approvals(wanted)
        assert some == {k: v for k, v in every.items() if k in wanted}
        assert some["r21"].content_hash == "b" * 64 and some["r3"].content_hash == "a" * 64
        revisions = store.latest_revisions(wanted)
        assert revisions == {k: v for k, v in store.latest_revisions().items() if k in wanted}
        assert "r7" in revisions and "absent" not in revisions
        assert store.latest_approvals([]) == {} and store.latest_revisions(iter(())) == {}
    finally:
        store.close()


def test_an_older_log_gets_the_new_indexes(tmp_path: Path):
    path = tmp_path / "socialbot.db"
    SQLiteStore(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX deliveries_by_status_update")
    conn.execute("DROP INDEX deliveries_by_network_update")
    conn.close()

    SQLiteStore(str(path)).close()
    conn = sqlite3.connect(path)
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert {"deliveries_by_status_update", "deliveries_by_network_update"} <= names


def test_instructions_are_summed_over_the_processes_callgrind_followed():
    output = (
        "==101== Callgrind, a call-graph generating cache profiler\n"
        "==102== Collected : 70702674\n"
        "==101== Collected : 1028603194\n"
        "==101== I   refs:      1,028,603,194\n"
    )
    assert collected_instructions(output) == 70_702_674 + 1_028_603_194
    with pytest.raises(RuntimeError, match="counted nothing"):
        collected_instructions("valgrind: no such tool\n")


def test_instructions_are_counted_with_valgrind_and_left_out_without(tmp_path: Path):
    counted = instructions([sys.executable, "-c", "pass"], dict(os.environ), tmp_path)
    if shutil.which("valgrind") is None:
        assert counted is None
    else:
        assert counted is not None and 1_000_000 < counted < 1_000_000_000

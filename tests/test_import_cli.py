"""`socialbot import` end to end: files written, previews printed, failures counted."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from socialbot.cli import cli
from socialbot.models import Approval
from socialbot.releases import read_release
from socialbot.store import SQLiteStore, utcnow
from tests.helpers import fresh_python
from tests.import_server import serving


@pytest.fixture
def server():
    with serving() as running:
        yield running


def invoke(*args):
    return CliRunner().invoke(cli, ["import", *args], catch_exceptions=False)


def test_import_prints_paths_and_previews(workdir, server, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES", "true")
    result = invoke(server.url("/de/news/affordable-housing-plan"), "--no-versions")
    assert result.exit_code == 0, result.output
    path = workdir / "queue" / "affordable-housing-plan-de.yaml"
    assert f"created: queue/{path.name}" in result.output
    assert "affordable-housing-plan-de [de] Regionen fordern" in result.output
    assert "lead image:" in result.output
    assert read_release(path).language == "de"
    # The ledger lives in the store's key-value area; the draft is a revision in the store.
    store = SQLiteStore(str(workdir / "socialbot.db"))
    try:
        assert "import:release:affordable-housing-plan-de" in store.entries("import:")
        [revision] = store.revisions("affordable-housing-plan-de")
        assert revision.release.language == "de"
        assert store.approvals() == []
    finally:
        store.close()
    again = invoke(server.url("/de/news/affordable-housing-plan"), "--no-versions")
    assert again.exit_code == 0
    assert "already imported:" in again.output


def test_approved_release_is_not_rewritten(workdir, server, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES", "true")
    assert invoke(server.url("/en/news/affordable-housing-plan"), "--no-versions").exit_code == 0
    path = workdir / "queue" / "affordable-housing-plan-en.yaml"
    release = read_release(path)
    # Approved (as `socialbot approve` records it; its compose check would refuse the
    # loopback link this test server has).
    store = SQLiteStore(str(workdir / "socialbot.db"))
    store.record_approval(
        Approval(release.id, release.content_hash(), "Ana", utcnow(), str(path), ("mastodon",))
    )
    store.close()
    server.raw(
        "/en/news/affordable-housing-plan",
        server.fixture("cor-new-en.html").replace(b"red tape", b"paperwork"),
        {"Content-Type": "text/html; charset=utf-8"},
    )
    again = invoke(server.url("/en/news/affordable-housing-plan"), "--no-versions")
    assert "which is approved" in again.output
    assert "red tape" in read_release(path).summary


def test_failures_are_one_sentence_each_and_exit_1(workdir, server):
    # Private addresses are not allowed here: the loopback server is refused.
    result = invoke(
        server.url("/en/news/affordable-housing-plan"), "ftp://example.org/a", "missing.html"
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line]
    assert len(lines) == 3
    assert "a loopback address" in lines[0]
    assert "only http and https" in lines[1]
    assert lines[2] == "missing.html: is neither an http(s) address nor a saved page."


def test_feed_and_listing_from_cron(workdir, server, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES", "true")
    first = invoke("--feed", server.url("/feeds/atom.xml"), "--listing", server.url("/en/news"))
    assert first.exit_code == 0, first.output
    assert first.output.count("created: ") >= 3
    second = invoke("--feed", server.url("/feeds/atom.xml"), "--listing", server.url("/en/news"))
    assert "created: " not in second.output and "updated: " not in second.output


def test_no_source_is_a_usage_error(workdir):
    assert invoke().exit_code == 2


def test_import_cost_stays_out_of_the_cli():
    code = (
        "import sys, socialbot.cli; print(sorted(m for m in ('trafilatura', 'feedparser', "
        "'py3langid', 'lxml', 'socialbot.importer') if m in sys.modules))"
    )
    assert fresh_python(code) == "[]"

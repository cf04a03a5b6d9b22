"""The pipeline end to end: approve, drain into the sandbox, read the log."""

from __future__ import annotations

import json
from pathlib import Path

from socialbot.sandbox import SandboxServer
from tests.helpers import run, write_release


def test_approved_release_is_posted_once_to_each_network(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json", networks=["x", "facebook"])
    assert run("approve", "queue/r1.json", "--by", "Ana").exit_code == 0

    first = run("drain")
    assert first.exit_code == 0, first.output
    posts = sandbox.posts()
    assert sorted(p["network"] for p in posts) == ["facebook", "x"]

    second = run("drain")
    assert second.exit_code == 0, second.output
    assert len(sandbox.posts()) == 2

    rows = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert {(r["network"], r["status"]) for r in rows} == {("x", "posted"), ("facebook", "posted")}
    assert all(r["url"].startswith(sandbox.url) for r in rows)


def test_unapproved_release_is_never_posted(env: Path, sandbox: SandboxServer):
    write_release(env / "queue", "r1.json")
    result = run("drain")
    assert result.exit_code == 0
    assert sandbox.posts() == []

"""Helpers for the reliability tests: drains as real processes, the sandbox as the oracle.

The sandbox records every post it accepts; duplicates and losses are counted
there, never in socialbot's own log.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from socialbot.sandbox import SandboxServer
from tests.helpers import run, write_release

PAGE = "https://cor.europa.eu/en/news/Pages/{slug}.aspx"


def release_slug(prefix: str, number: int) -> str:
    """A slug unique to one release; it appears in every post made from it."""
    return f"{prefix}-{number:04d}"


def add_releases(queue: Path, prefix: str, numbers: range, **fields: Any) -> dict[str, str]:
    """Write and approve releases; return release id -> the slug its posts carry."""
    made = {}
    for number in numbers:
        slug = release_slug(prefix, number)
        write_release(
            queue,
            f"{slug}.json",
            title=f"Regions adopt opinion {slug} on cohesion after 2027",
            url=PAGE.format(slug=slug),
            **fields,
        )
        result = run("approve", f"queue/{slug}.json", "--by", "Ana Editor")
        assert result.exit_code == 0, result.output
        made[slug] = slug
    return made


def posts_per_delivery(sandbox: SandboxServer, slugs: dict[str, str]) -> Counter[tuple[str, str]]:
    """How many accepted posts each (release, network) has on the sandbox."""
    counts: Counter[tuple[str, str]] = Counter()
    for post in sandbox.posts():
        blob = json.dumps(post, ensure_ascii=False)
        for release_id, slug in slugs.items():
            if PAGE.format(slug=slug) in blob or f"opinion {slug} " in blob:
                counts[release_id, post["network"]] += 1
    return counts


def create_requests_per_delivery(
    sandbox: SandboxServer, slugs: dict[str, str]
) -> Counter[tuple[str, str]]:
    """How many complete create requests for each (release, network) reached the sandbox.

    A request cut short by a killed client (fewer body bytes than its
    Content-Length) is not counted: the network could not have acted on it.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for request in list(sandbox.requests):
        network = request["network"]
        create = sandbox.networks[network].create_path
        if request["method"] != "POST" or not re.fullmatch(create, request["path"]):
            continue
        body = request["body"]
        length = {k.lower(): v for k, v in request["headers"].items()}.get("content-length")
        if length is None or len(body.encode("utf-8")) != int(length):
            continue
        for release_id, slug in slugs.items():
            if re.search(re.escape(slug) + r"(?!\d)", body):
                counts[release_id, network] += 1
    return counts


def environment(**extra: str) -> dict[str, str]:
    """The current (test) environment plus ``extra``, for a drain subprocess."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "socialbot", *args]


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``socialbot ARGS`` as a process of its own."""
    return subprocess.Popen(
        command(*args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def call(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``socialbot ARGS`` to completion."""
    return subprocess.run(
        command(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def states(database: Path) -> dict[tuple[str, str], str]:
    """(release, network) -> delivery status, read straight from the database."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT release_id, network, status FROM deliveries").fetchall()
    return {(release, network): status for release, network, status in rows}


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as conn:
        result: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
    return result


def approved_networks(database: Path) -> dict[str, set[str]]:
    """Release id -> the networks its latest approval names."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT release_id, networks FROM approvals WHERE id IN"
            " (SELECT MAX(id) FROM approvals GROUP BY release_id)"
        ).fetchall()
    return {release: set(networks.split(",")) for release, networks in rows}

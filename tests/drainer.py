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
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from socialbot.models import DeliveryStatus
from socialbot.sandbox import SandboxServer
from socialbot.store import Store, open_store
from tests.helpers import run, write_release

PAGE = "https://cor.europa.eu/en/news/Pages/{slug}.aspx"


def release_slug(prefix: str, number: int) -> str:
    """A slug unique to one release; it appears in every post made from it."""
    return f"{prefix}-{number:04d}"


def add_releases(
    queue: Path,
    prefix: str,
    numbers: range,
    *,
    killed_approving: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, str]:
    """Write and approve releases; return release id -> the slug its posts carry.

    With ``killed_approving`` (an environment), each approval is killed after it is
    recorded and before its deliveries exist, so the next drain has to apply it.
    """
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
        if killed_approving is not None:
            env = {**killed_approving, "SOCIALBOT_CRASH_AT": "mid-approve"}
            killed = call("approve", f"queue/{slug}.json", "--by", "Ana Editor", env=env)
            assert killed.returncode == -9, killed.stderr
        else:
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


def start(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``socialbot ARGS`` as a process of its own (in ``cwd``, default: the test's)."""
    return subprocess.Popen(
        command(*args),
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def call(
    *args: str, env: dict[str, str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``socialbot ARGS`` to completion (in ``cwd``, default: the test's)."""
    return subprocess.run(
        command(*args),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def database_url() -> str:
    """The database the tests' commands use (``SOCIALBOT_DATABASE_URL``)."""
    return os.environ["SOCIALBOT_DATABASE_URL"]


@contextmanager
def opened(url: str | None = None) -> Iterator[Store]:
    """The store behind ``url`` (default: the test's database), read as socialbot reads it."""
    store = open_store(url or database_url())
    try:
        yield store
    finally:
        store.close()


def states(url: str | None = None) -> dict[tuple[str, str], str]:
    """(release, network) -> delivery status, read through the store."""
    with opened(url) as store:
        return {(d.release_id, d.network): d.status.value for d in store.deliveries()}


def integrity(url: str | None = None) -> str:
    """ "ok", or what SQLite's integrity check or PostgreSQL's amcheck found wrong."""
    url = url or database_url()
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            result: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return result
    from tests.postgres import integrity_check

    return integrity_check(url)


def approved_networks(url: str | None = None) -> dict[str, set[str]]:
    """Release id -> the networks its latest approval names."""
    with opened(url) as store:
        return {
            release: set(approval.networks)
            for release, approval in store.latest_approvals().items()
        }


# -- taking things back while drains run: what the test did, and the oracle ----------------


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class TakeBacks:
    """What the test asked for, with the wall-clock times its commands ran.

    A command's effect is recorded at some instant between its start and its
    return; the oracle allows a drain to act on the old state only before the
    return, and only for work it had claimed before.
    """

    slugs: dict[str, str] = field(default_factory=dict)
    withdrawn: dict[str, datetime] = field(default_factory=dict)
    """Release -> when ``withdraw`` returned (every network)."""
    retracted: dict[str, datetime] = field(default_factory=dict)
    """Release -> when ``retract`` returned (every network)."""
    paused: list[tuple[str | None, datetime, datetime]] = field(default_factory=list)
    """(network or None for all, when ``pause`` returned, when ``resume`` started)."""
    pause_started: dict[str | None, datetime] = field(default_factory=dict)
    edited: set[str] = field(default_factory=set)
    """Releases with a revision made after their first approval."""
    approved_edits: set[str] = field(default_factory=set)
    last_output: str = ""

    def withdraw(self, release: str, env: dict[str, str], **extra: str) -> None:
        result = call("withdraw", release, "--by", "Olga Desk", "--reason", "test",
                      env={**env, **extra})  # fmt: skip
        # 1 only for a delivery in doubt that nothing can look for (Telegram): a person must.
        in_doubt = result.returncode == 1 and "cannot be searched: look at it" in result.stderr
        assert result.returncode in (0, -9) or in_doubt, result.stderr
        assert "Traceback" not in result.stderr, result.stderr
        self.withdrawn.setdefault(release, now())

    def retract(self, release: str, env: dict[str, str], **extra: str) -> int:
        """Retract; a retraction the test kills still counts as recorded (checked at the end)."""
        result = call("retract", release, "--by", "Olga Desk", "--reason", "embargo",
                      env={**env, **extra})  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        self.retracted.setdefault(release, now())
        self.last_output = result.stdout + result.stderr
        return result.returncode

    def pause(self, env: dict[str, str], network: str | None = None) -> None:
        where = ["--network", network] if network else []
        self.pause_started[network] = now()
        result = call("pause", *where, "--by", "Olga Desk", "--reason", "crisis", env=env)
        assert result.returncode == 0, result.stderr
        self.pause_started[network] = now()

    def resume(self, env: dict[str, str], network: str | None = None) -> None:
        started = self.pause_started.pop(network)
        check_nothing_claimed_while_paused(network, started)
        resumed = now()
        where = ["--network", network] if network else []
        result = call("resume", *where, "--by", "Olga Desk", env=env)
        assert result.returncode == 0, result.stderr
        self.paused.append((network, started, resumed))

    def edit(self, queue: Path, release: str) -> None:
        """Edit the release's file: a new revision, which holds the approved one back."""
        slug = self.slugs[release]
        path = queue / f"{slug}.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        data["title"] = f"Regions adopt opinion {slug} (revised {time.monotonic_ns()}) on cohesion"
        path.write_text(json.dumps(data), encoding="utf-8")
        self.edited.add(release)

    def approve(self, release: str, env: dict[str, str]) -> bool:
        """Approve the release's latest revision; True if approved.

        Approving is refused once the release is posted everywhere: then the new
        revision is never posted (the oracle checks that its text never appears).
        """
        result = call("approve", f"queue/{self.slugs[release]}.json", "--by", "Ana Editor", env=env)
        assert "Traceback" not in result.stderr, result.stderr
        # An approval recorded over a Telegram attempt in doubt exits 1 as well: a person
        # must settle that attempt before the new revision can go out.
        approved = result.returncode == 0 or (
            result.returncode == 1 and "nothing can look for it there" in result.stderr
        )
        if approved:
            self.approved_edits.add(release)
        else:
            assert "retract" in result.stderr, result.stderr
        return approved


def check_nothing_claimed_while_paused(network: str | None, paused_at: datetime) -> None:
    """No delivery on a paused network was claimed after the pause was recorded."""
    with opened() as store:
        for delivery in store.deliveries():
            if network is not None and delivery.network != network:
                continue
            assert delivery.sent_at is None or delivery.sent_at <= paused_at, (
                f"{delivery.release_id} on {delivery.network} was claimed at "
                f"{delivery.sent_at:%H:%M:%S.%f}, while paused since {paused_at:%H:%M:%S.%f}"
            )


def release_of(post: dict[str, Any], slugs: dict[str, str]) -> str | None:
    blob = json.dumps(post, ensure_ascii=False)
    for release_id, slug in slugs.items():
        if PAGE.format(slug=slug) in blob or f"opinion {slug} " in blob:
            return release_id
    return None


def first_claimed(store: Store, delivery_id: int, sent_at: datetime | None) -> datetime | None:
    times = [t for t in (store.first_uncertain_at(delivery_id), sent_at) if t is not None]
    return min(times) if times else None


def check_takebacks(sandbox: SandboxServer, ledger: TakeBacks, *, settled: bool) -> None:
    """The sandbox is the oracle; the store only says what each post belongs to.

    - each (release, network) was created at most once on the network, ever;
    - every post's text is the text of an approved snapshot for its network;
    - a withdrawn release has nothing on a network unless that delivery was
      claimed before the withdrawal returned, and then it is logged ``posted``;
    - a retracted release has nothing left on any network: each of its posts was
      deleted exactly once and its delivery is ``retracted`` (or ``withdrawn``
      where nothing went out);
    - nothing was created on a network while it was paused.
    With ``settled``, every other approved delivery is ``posted``, exactly once.
    """
    live: dict[tuple[str, str], list[dict[str, Any]]] = {}
    gone: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for bucket, posts in ((live, sandbox.posts()), (gone, deleted_posts(sandbox))):
        for post in posts:
            release = release_of(post, ledger.slugs)
            assert release is not None, f"a post nobody approved: {post}"
            bucket.setdefault((release, post["network"]), []).append(post)
    with opened() as store:
        deliveries = {(d.release_id, d.network): d for d in store.deliveries()}
        approved_texts: dict[tuple[str, str], set[str]] = {}
        for release in ledger.slugs:
            for approval in store.approvals(release):
                for snapshot in approval.posts:
                    approved_texts.setdefault((release, snapshot.network), set()).add(snapshot.text)
        claimed = {key: first_claimed(store, d.id, d.sent_at) for key, d in deliveries.items()}
    for key in set(live) | set(gone):
        made = live.get(key, []) + gone.get(key, [])
        assert len(made) == 1, f"{key[0]} on {key[1]} was posted {len(made)} times"
        text = made[0].get("text")
        assert text in approved_texts.get(key, set()), (
            f"{key[0]} on {key[1]}: posted text that was never approved: {text!r}"
        )
        assert len(gone.get(key, [])) <= 1
        assert key in deliveries, f"{key} is on the network but not in the log"
    for network, paused_at, resumed_at in ledger.paused:
        for (release, net), posts in [*live.items(), *gone.items()]:
            if network is not None and net != network:
                continue
            for post in posts:
                posted_at = datetime.fromisoformat(post["created_at"].replace("Z", "+00:00"))
                if paused_at < posted_at < resumed_at:
                    when = claimed[release, net]
                    assert when is not None and when <= paused_at, (
                        f"{release} on {net} was posted at {posted_at:%H:%M:%S.%f}, while paused"
                    )
    for key, delivery in deliveries.items():
        release, network = key
        status = delivery.status
        created = len(live.get(key, [])) + len(gone.get(key, []))
        if release in ledger.retracted:
            if settled:
                assert status in (DeliveryStatus.RETRACTED, DeliveryStatus.WITHDRAWN), (key, status)
            assert not live.get(key) or not settled, f"{key} is still on the network"
            if status is DeliveryStatus.RETRACTED:
                assert len(gone.get(key, [])) == 1, f"{key} is retracted but was not deleted"
                assert not live.get(key)
            if status is DeliveryStatus.WITHDRAWN:
                assert created == 0, f"{key} is withdrawn but was posted"
        elif release in ledger.withdrawn:
            if settled:
                assert status in (DeliveryStatus.WITHDRAWN, DeliveryStatus.POSTED), (key, status)
            if status is DeliveryStatus.WITHDRAWN:
                assert created == 0, f"{key} is withdrawn but was posted"
            if created:
                when = claimed[key]
                assert when is not None and when <= ledger.withdrawn[release], (
                    f"{release} on {network} was claimed after its withdrawal was recorded"
                )
        elif settled:
            if status is DeliveryStatus.WITHDRAWN:
                # Only a network the re-approved revision dropped: never posted.
                assert created == 0 and release in ledger.edited, (key, status)
            else:
                assert status is DeliveryStatus.POSTED, (key, status, delivery.error)
                assert len(live.get(key, [])) == 1, f"{key} is logged posted but not online"
        if status is DeliveryStatus.POSTED:
            assert created == 1 and len(live.get(key, [])) == 1, (
                f"{key} posted, {created} on the network"
            )


def deleted_posts(sandbox: SandboxServer) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for net in sandbox.networks.values():
        with net.lock:
            result.extend(dict(p) for p in net.deleted)
    return result

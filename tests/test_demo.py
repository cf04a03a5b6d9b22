"""``socialbot demo`` as a user runs it: twice, the same posts, and their own state untouched."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from socialbot.models import Release
from socialbot.releases import read_release
from socialbot.sandbox.server import NETWORK_SANDBOXES
from socialbot.store import SQLiteStore
from tests.helpers import write_release

REPO_QUEUE = Path(__file__).resolve().parent.parent / "queue"
POSTED = re.compile(r"^── (\S+) → (\S+): posted (http://127\.0\.0\.1:\d+/\S+)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALBOT_")}
    env["SOCIALBOT_DATABASE_URL"] = f"sqlite:///{cwd / 'mine.db'}"
    return subprocess.run(
        [sys.executable, "-m", "socialbot", "demo", "--port", str(free_port()), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def normalised(output: str) -> str:
    """The output without what differs between runs: ports, times, time-based ids."""
    output = re.sub(r"(http://127\.0\.0\.1:)\d+(/\w+/)\S*", r"\1PORT\2POST", output)
    output = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:PORT", output)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "TIME", output)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory holding a copy of the repository's sample queue."""
    shutil.copytree(REPO_QUEUE, tmp_path / "queue")
    return tmp_path


def test_demo_twice_shows_the_same_posts_and_leaves_the_users_state_alone(project: Path):
    mine = SQLiteStore(str(project / "mine.db"))
    write_release(project / "queue", "zz-own.json", networks=["x"], title="The user's own")
    mine.close()
    (project / ".env").write_text(
        "SOCIALBOT_X__API_KEY=real-key\nSOCIALBOT_X__API_SECRET=real-secret\n"
        "SOCIALBOT_X__ACCESS_TOKEN=real-token\nSOCIALBOT_X__ACCESS_TOKEN_SECRET=real-ts\n"
        "SOCIALBOT_X__BASE_URL=http://127.0.0.1:9/nowhere\n",
        encoding="utf-8",
    )
    before = digest(project / "mine.db")

    first = demo(project)
    second = demo(project)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert normalised(first.stdout) == normalised(second.stdout)
    assert digest(project / "mine.db") == before
    assert sorted(p.name for p in project.iterdir()) == [".env", "mine.db", "queue"]
    assert "real-" not in first.stdout + first.stderr

    posted = POSTED.findall(first.stdout)
    releases = [read_release(p) for p in (project / "queue").iterdir()]
    # The demo first imports a press-release page the sandbox serves, into its own copy.
    assert "imported affordable-housing-plan-en from http://127.0.0.1:" in first.stdout
    releases.append(
        Release(
            id="affordable-housing-plan-en",
            title="Regions call for a European affordable housing plan",
            url="https://cor.europa.eu/en/news/affordable-housing-plan",
            language="en",
        )
    )
    expected = {(r.id, n) for r in releases for n in r.target_networks(list(NETWORK_SANDBOXES))}
    assert {(release, network) for release, network, _ in posted} == expected
    assert len(posted) == len(expected)
    for release, network, url in posted:
        assert f"/{network}/" in url
        assert re.search(
            rf"{release}\s+1\s+{network}\s+posted\s+1\s+demo\s+{re.escape(url)}$",
            first.stdout,
            re.MULTILINE,
        ), (release, network)
    assert f"{len(posted)} posts published to the sandbox" in first.stdout

    by_id = {release.id: release for release in releases}
    for section in first.stdout.split("\n── ")[1:]:
        header, _, text = section.partition("\n")
        release = by_id[header.split(" → ")[0]]
        assert text.strip().startswith(release.title[:40])
        from socialbot.compose.links import bluesky_display  # Bluesky shows a short link

        assert release.url in text or bluesky_display(release.url) in text


def test_demo_with_no_queue_is_a_usage_error(tmp_path: Path):
    result = demo(tmp_path)
    assert result.returncode == 2
    assert result.stderr == "socialbot: the queue directory queue does not exist\n"
    assert not (tmp_path / "mine.db").exists()

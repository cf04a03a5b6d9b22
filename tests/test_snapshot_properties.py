"""One string from preview to the network: for arbitrary releases and settings changed
between approval and drain, ``preview``, ``approve``'s output, the stored snapshot, what
the sandbox received and ``log --json``'s text are the same, on every network."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialbot.cli import cli
from socialbot.models import NETWORKS
from socialbot.sandbox import SandboxServer
from socialbot.store import SQLiteStore
from tests.test_compose_properties import prose, release_url

TOPICS = ["Cohesion policy reform", "Urban policy", "Enlargement"]

release_data = st.fixed_dictionaries(
    {
        "title": prose(20, min_words=1).filter(str.strip),
        "summary": prose(40),
        "body": prose(80),
        "url": release_url,
        "language": st.sampled_from(["en", "de", "bg", "el", "fr"]),
        "topics": st.lists(st.sampled_from(TOPICS), max_size=3, unique=True),
        "hashtags": st.lists(
            st.from_regex(r"[A-Za-zΑ-ω][A-Za-z0-9_]{0,9}", fullmatch=True), max_size=3
        ),
    }
)
mapping = st.dictionaries(
    st.sampled_from(TOPICS),
    st.from_regex(r"[A-Z][A-Za-z]{2,14}", fullmatch=True),
    max_size=3,
)
later_settings = st.fixed_dictionaries(
    {
        "mapping": mapping,
        "utm": st.booleans(),
        "mastodon_limit": st.sampled_from([500, 1000, 5000]),
    }
)


@contextmanager
def project(server: SandboxServer) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh working directory and environment pointing at ``server``."""
    with tempfile.TemporaryDirectory(prefix="socialbot-snapshot-") as folder:
        root = Path(folder)
        (root / "queue").mkdir()
        env = {name: value for name, value in server.settings().items()}
        env["SOCIALBOT_DATABASE_URL"] = f"sqlite:///{root / 'socialbot.db'}"
        env["SOCIALBOT_HASHTAGS_FILE"] = str(root / "hashtags.yaml")
        env["SOCIALBOT_QUEUE_DIR"] = str(root / "queue")
        yield root, env


def invoke(env: dict[str, str], *args: str) -> Result:
    cleared = {name: None for name in os.environ if name.startswith("SOCIALBOT_")}
    return CliRunner().invoke(cli, list(args), env={**cleared, **env}, catch_exceptions=False)


def write_mapping(root: Path, topics: dict[str, str]) -> None:
    lines = ["topics:"] + [f"  {topic}: {tag}" for topic, tag in topics.items()]
    (root / "hashtags.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def texts(output: str) -> dict[str, str]:
    return {post["network"]: post["text"] for post in json.loads(output)}


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=release_data, first=mapping, utm=st.booleans(), later=later_settings)
def test_the_approved_posts_are_what_every_network_receives(
    data: dict[str, Any], first: dict[str, str], utm: bool, later: dict[str, Any]
) -> None:
    with SandboxServer() as server, project(server) as (root, env):
        write_mapping(root, first)
        env["SOCIALBOT_UTM"] = "true" if utm else "false"
        (root / "queue" / "r1.json").write_text(
            json.dumps({**data, "networks": list(NETWORKS)}), encoding="utf-8"
        )
        preview = invoke(env, "preview", "r1", "--json")
        approved = invoke(env, "approve", "r1", "--by", "Ana", "--json")
        if approved.exit_code != 0:  # a release no network can take (e.g. a title too long)
            assert preview.exit_code != 0
            return
        assert preview.exit_code == 0, preview.stderr
        wanted = texts(approved.stdout)
        assert texts(preview.stdout) == wanted

        # Everything that shapes posts changes between approval and drain.
        write_mapping(root, later["mapping"])
        env["SOCIALBOT_UTM"] = "false" if utm else "true"
        server.networks["mastodon"].max_characters = later["mastodon_limit"]  # type: ignore[attr-defined]
        drained = invoke(env, "drain")
        assert drained.exit_code == 0, drained.stderr

        store = SQLiteStore(str(root / "socialbot.db"))
        try:
            [approval] = store.approvals("r1")
            assert {post.network: post.text for post in approval.posts} == wanted
        finally:
            store.close()
        received = {post["network"]: post["text"] for post in server.posts()}
        assert received == wanted
        logged = {
            row["network"]: row["text"]
            for row in map(json.loads, invoke(env, "log", "--json").stdout.splitlines())
        }
        assert logged == wanted

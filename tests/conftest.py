"""Shared fixtures: a live sandbox on loopback, an isolated environment, the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from socialbot.cli import cli
from socialbot.sandbox import SandboxServer


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """Every fake network, serving real HTTP on a free loopback port."""
    with SandboxServer() as server:
        yield server
    assert server.errors == [], "the sandbox itself failed"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory with no SOCIALBOT_* variables and no .env."""
    for name in list(os.environ):
        if name.startswith("SOCIALBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "queue").mkdir()
    monkeypatch.setenv("SOCIALBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'socialbot.db'}")
    return tmp_path


@pytest.fixture
def env(workdir: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``workdir`` with every network's settings pointing at the sandbox."""
    for name, value in sandbox.settings().items():
        monkeypatch.setenv(name, value)
    return workdir


def write_release(queue: Path, name: str, **fields: Any) -> Path:
    """Write a release file (JSON or YAML by the name's suffix) into ``queue``."""
    data = {
        "title": "Regions call for a stronger cohesion policy after 2027",
        "url": "https://cor.europa.eu/en/news/Pages/cohesion.aspx",
        "language": "en",
        **fields,
    }
    path = queue / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def run(*args: str) -> Result:
    """Run the CLI in-process, as a user would type it."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)

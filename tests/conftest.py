"""Shared fixtures: a live sandbox on loopback, an isolated environment, the CLI."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from socialbot.sandbox import SandboxServer

# The default suite (and CI) runs the same examples every time; a failure is a bug to fix,
# never a flake. `HYPOTHESIS_PROFILE=explore make test` searches new ones at random.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


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

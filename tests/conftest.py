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


# -- PostgreSQL: one throwaway server per session, a fresh database per test (tests/postgres.py).
# `postgres_url` is a new empty database; `database_url` runs a test once on a SQLite file and
# once on PostgreSQL. Without a server, the PostgreSQL runs are skipped, saying why.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[object]:
    """The session's PostgreSQL server (a ``tests.postgres.PostgresServer``), or None."""
    from tests.postgres import postgres_server as start

    with start() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: object) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    from tests.postgres import fresh_postgres_url

    yield from fresh_postgres_url(postgres_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of each kind: a SQLite file, then a fresh PostgreSQL database."""
    from tests.postgres import fresh_postgres_url

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'socialbot.db'}"
    else:
        yield from fresh_postgres_url(request.getfixturevalue("postgres_server"))

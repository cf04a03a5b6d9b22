"""PostgreSQL sessions: what the URL asks for, connections the server ends, the lock's session.

Every test runs against a real server (tests/postgres.py) and ends sessions the way a server,
an administrator or a network does: a listening socket that never answers,
``pg_terminate_backend``, ``idle_session_timeout``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from socialbot.errors import ConfigurationError
from socialbot.store.postgres import PostgresStore

Admin = psycopg.Connection[tuple[Any, ...]]


def with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


@pytest.fixture
def admin(postgres_url: str) -> Iterator[Admin]:
    """A connection of the test's own to the same database (an administrator's psql)."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        yield conn


def sessions(admin: Admin) -> dict[int, str]:
    """The other sessions on the database: server pid to application_name."""
    rows = admin.execute(
        "SELECT pid, application_name FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchall()
    return {int(pid): str(name) for pid, name in rows}


# -- the URL's own parameters -----------------------------------------------------------------


def test_the_urls_connect_timeout_wins_over_the_default():
    with socket.socket() as silent:  # accepts the TCP connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConfigurationError) as refused:
            PostgresStore(f"postgresql://socialbot@127.0.0.1:{port}/socialbot?connect_timeout=2")
        waited = time.monotonic() - started
    assert 1.5 < waited < 6  # not the store's default of 10 s
    assert str(refused.value).startswith("SOCIALBOT_DATABASE_URL: cannot connect to ")


def test_the_urls_application_name_wins_and_the_defaults_fill_the_rest(
    postgres_url: str, admin: Admin
):
    named = PostgresStore(with_query(postgres_url, "application_name=desk-a&connect_timeout=3"))
    plain = PostgresStore(postgres_url)
    try:
        named.get_value("k")
        plain.get_value("k")
        assert sorted(sessions(admin).values()) == ["desk-a", "socialbot"]
        parameters = named._connection().info.get_parameters()
        assert (parameters["application_name"], parameters["connect_timeout"]) == ("desk-a", "3")
        assert plain._connection().info.get_parameters()["connect_timeout"] == "10"
    finally:
        named.close()
        plain.close()

"""PostgreSQL sessions: what the URL asks for, connections the server ends, the lock's session.

Every test runs against a real server (tests/postgres.py) and ends sessions the way a server,
an administrator or a network does: a listening socket that never answers,
``pg_terminate_backend``, ``idle_session_timeout``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import psycopg
import pytest

from socialbot.errors import ConfigurationError, StoreError
from socialbot.models import DeliveryStatus
from socialbot.store.postgres import LOCK_SESSION_SETTINGS, PostgresStore
from tests.test_store_contract import T0, approved, scheduled

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


def terminate(admin: Admin, pid: int) -> None:
    """End a session as an administrator would, waiting until it has ended."""
    assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)


def waiting_on_a_lock(admin: Admin, but: int = 0, timeout: float = 5.0) -> int:
    """The pid of the session (other than ``but``) waiting on a table lock, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> %s",
            (but,),
        ).fetchone()
        if row is not None:
            return int(row[0])
        time.sleep(0.02)
    raise AssertionError("no session waited on the lock")


@contextlib.contextmanager
def table_locked(url: str, table: str) -> Iterator[None]:
    """``table`` locked by another session until the context ends: statements on it wait."""
    with psycopg.connect(url, autocommit=True) as locker, locker.transaction():
        locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run ``call`` in a thread of its own; its result or exception lands in the list."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


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


def test_libpqs_connect_timeout_variable_wins_over_the_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "2")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConfigurationError):
            PostgresStore(f"postgresql://socialbot@127.0.0.1:{port}/socialbot")
        waited = time.monotonic() - started
    assert 1.5 < waited < 6  # not the store's default of 10 s


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


# -- sessions the server ends ------------------------------------------------------------------


def test_a_session_the_server_ended_while_idle_is_replaced(postgres_url: str, admin: Admin):
    store = PostgresStore(postgres_url)
    try:
        store.set_value("k", "v")
        assert store.get_value("k") == "v"
        (pid,) = sessions(admin)
        terminate(admin, pid)  # pg_terminate_backend, a restart, a failover: the same to us
        assert store.get_value("k") == "v"
        (replaced,) = sessions(admin)
        assert replaced != pid
        terminate(admin, replaced)
        store.set_value("k", "w")  # a write too: nothing had been sent on the old session
        assert store.get_value("k") == "w"
    finally:
        store.close()


def test_a_read_cut_off_midway_runs_once_more_on_a_new_session(postgres_url: str, admin: Admin):
    store = PostgresStore(postgres_url)
    try:
        store.set_value("k", "v")
        with table_locked(postgres_url, "kv"):
            thread, outcome = in_thread(lambda: store.get_value("k"))
            first = waiting_on_a_lock(admin)
            terminate(admin, first)
            waiting_on_a_lock(admin, but=first)  # the same read, on a new session
        thread.join(timeout=10)
        assert outcome == ["v"]
    finally:
        store.close()


def test_a_claim_cut_off_midway_is_not_sent_again(postgres_url: str, admin: Admin):
    store = PostgresStore(postgres_url)
    try:
        first, _ = scheduled(store, approved(store))
        with table_locked(postgres_url, "deliveries"):
            thread, outcome = in_thread(lambda: store.claim(first.id, "text", T0))
            terminate(admin, waiting_on_a_lock(admin))
            thread.join(timeout=10)
        # Whether a lost write committed is unknown in general: the caller is told.
        assert len(outcome) == 1 and isinstance(outcome[0], StoreError), outcome
        assert "cannot be used" in str(outcome[0])
        assert store.get("r1", "x") == first  # it had not committed, and was not sent again
        claimed = store.claim(first.id, "text", T0)  # the next statement has a new session
        assert claimed is not None and claimed.status is DeliveryStatus.SENDING
    finally:
        store.close()


class UnseenDeath:
    """A TCP relay to the server whose sessions can die unseen, as a host's do in a failover.

    After ``sever()`` the relay drops its side towards the server without a word to the
    client, which sees nothing until it sends: then it gets a reset (what the address's new
    host answers to a connection it never had). Connections made after that relay normally.
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            pytest.skip("this server is reached through a Unix socket, not over TCP")
        self.upstream = (parts.hostname, parts.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        here = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.url = parts._replace(
            netloc=parts.netloc.replace(f"{parts.hostname}:{parts.port}", here)
        ).geturl()
        self.relays: list[tuple[threading.Event, threading.Event]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def sever(self) -> None:
        """Every open connection dies unseen; returns once each relay has let go."""
        relays, self.relays = self.relays, []
        for severed, _ in relays:
            severed.set()
        for _, let_go in relays:
            assert let_go.wait(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            events = (threading.Event(), threading.Event())
            self.relays.append(events)
            threading.Thread(
                target=self._relay, args=(client, server, *events), daemon=True
            ).start()

    @staticmethod
    def _relay(
        client: socket.socket,
        server: socket.socket,
        severed: threading.Event,
        let_go: threading.Event,
    ) -> None:
        with client, server:
            while True:
                ready, _, _ = select.select([client, server], [], [], 0.02)
                if severed.is_set():
                    break
                for source in ready:
                    data = source.recv(65536)
                    if not data:
                        let_go.set()
                        return
                    (server if source is client else client).sendall(data)
            server.close()
            let_go.set()
            select.select([client], [], [], 30)  # silence, until the client sends
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self) -> None:
        self.listener.close()


def test_a_transaction_whose_session_died_unseen_begins_again_on_a_new_one(postgres_url: str):
    relay = UnseenDeath(postgres_url)
    store = PostgresStore(relay.url)
    try:
        store.set_value("k", "v")
        relay.sever()
        # Only BEGIN went out on the dead session, and BEGIN changes nothing: it is sent
        # again on a new session rather than failing the approval or the drain.
        store.set_value("k", "w")
        assert store.get_value("k") == "w"
        relay.sever()
        assert store.get_value("k") == "w"  # a read: run once more, as before
    finally:
        store.close()
        relay.close()


# -- the drain lock's session ------------------------------------------------------------------


def test_the_lock_session_is_ended_within_a_minute_of_its_host_dying(postgres_url: str):
    store = PostgresStore(postgres_url)
    try:
        with store.drain_lock():
            session = store._lock_session
            assert session is not None
            if session.info.host.startswith("/"):
                pytest.skip("keepalives apply to TCP connections, and this one is a Unix socket")
            rows = session.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (list(LOCK_SESSION_SETTINGS),),
            ).fetchall()
    finally:
        store.close()
    settings = {row["name"]: int(row["setting"]) for row in rows}
    assert settings == {name: int(value) for name, value in LOCK_SESSION_SETTINGS.items()}
    # The server's defaults would leave a dead host's lock held for over two hours.
    probes = settings["tcp_keepalives_interval"] * settings["tcp_keepalives_count"]
    assert settings["tcp_keepalives_idle"] + probes <= 60
    assert 0 < settings["tcp_user_timeout"] <= 60_000
    assert settings["idle_session_timeout"] == 0


def test_a_drain_outlasts_the_databases_idle_session_timeout(postgres_url: str, admin: Admin):
    admin.execute(f"ALTER DATABASE \"{admin.info.dbname}\" SET idle_session_timeout = '1500ms'")
    store = PostgresStore(postgres_url)
    try:
        first, second = scheduled(store, approved(store))
        with store.drain_lock():
            assert store.claim(first.id, "text", T0) is not None
            time.sleep(2.5)  # a slow network call: every session of the drain sits idle
            assert store.claim(second.id, "text", T0) is not None
        assert store.get_value("k") is None  # the store's own session was replaced meanwhile
    finally:
        store.close()


def test_a_lock_session_setting_the_server_refuses_is_left_as_it_was(postgres_url: str):
    """tcp_user_timeout must be 0 on servers whose system lacks the option, and a setting may
    be missing from an older server: the drain still takes its lock."""

    class Refused(PostgresStore):
        lock_session_settings: ClassVar[dict[str, str]] = {
            "no_such_setting": "1",
            "statement_timeout": "99999999999999",  # out of range: refused
            "idle_session_timeout": "0",
            "lock_timeout": "4321",
        }

    store = Refused(postgres_url)
    try:
        with store.drain_lock():
            session = store._lock_session
            assert session is not None
            rows = session.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (["statement_timeout", "lock_timeout"],),
            ).fetchall()
    finally:
        store.close()
    assert {row["name"]: row["setting"] for row in rows} == {
        "statement_timeout": "0",
        "lock_timeout": "4321",
    }

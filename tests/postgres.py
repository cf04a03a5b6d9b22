"""A throwaway PostgreSQL server for the tests, and a fresh database per test.

With ``SOCIALBOT_TEST_POSTGRES_URL`` set, that server is used (its user must
be allowed to create databases). Otherwise the PostgreSQL binaries are looked
for (``initdb`` and ``pg_ctl`` on PATH, then ``/usr/lib/postgresql/*/bin``)
and a cluster is started in a temporary directory on a free loopback port,
with ``fsync=off``, and stopped when the session ends. ``initdb`` refuses to
run as root, so as root the cluster belongs to the ``postgres`` system user.
When neither exists, the PostgreSQL tests are skipped with ``NO_SERVER``.

Other suites use the fixtures of ``tests/conftest.py``: ``postgres_url`` (a
fresh, empty database of its own) or ``database_url`` (parametrized: a SQLite
file, then a PostgreSQL database); outside pytest, ``postgres_server()``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

NO_SERVER = "no PostgreSQL server (install postgresql or set SOCIALBOT_TEST_POSTGRES_URL)"
ENV_URL = "SOCIALBOT_TEST_POSTGRES_URL"


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, newest version first."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def with_database(url: str, name: str) -> str:
    """``url`` pointing at the database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PostgresServer:
    """A server the tests may create and drop databases on."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def create_database(self) -> str:
        name = f"socialbot_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database for the duration of the context."""
        url = self.create_database()
        try:
            yield url
        finally:
            self.drop_database(url)


class LocalCluster:
    """A cluster of our own in a temporary directory, run by an unprivileged user."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="socialbot-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
            owner = pwd.getpwnam(self.user)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.root.chmod(0o700)

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()} {log}"
            )

    def start(self) -> str:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        for _ in range(3):  # a free port may be taken between choosing and binding it
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync=off"
                " -c synchronous_commit=off -c full_page_writes=off"
                f" -c unix_socket_directories={self.root} -c max_connections=200"
            )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                          "-w", "-t", "60", "start")  # fmt: skip
            except RuntimeError:
                continue
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        raise RuntimeError(f"the test PostgreSQL cluster did not start: {self.log.read_text()}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no postgres or nobody user to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer | None]:
    """The server the session's PostgreSQL tests use, or None when there is none."""
    url = os.environ.get(ENV_URL)
    if url:
        yield PostgresServer(url)
        return
    bindir = find_bindir()
    if bindir is None:
        yield None
        return
    cluster = LocalCluster(bindir)
    try:
        yield PostgresServer(cluster.start())
    finally:
        cluster.stop()


def fresh_postgres_url(server: object) -> Iterator[str]:
    """Yield the URL of a new database on ``server`` and drop it afterwards; skip without one."""
    if server is None:
        pytest.skip(NO_SERVER)
    assert isinstance(server, PostgresServer)
    with server.database() as url:
        yield url


def integrity_check(url: str) -> str:
    """PostgreSQL's counterpart of SQLite's ``PRAGMA integrity_check``: "ok", or the problems.

    Every B-tree index of the database is checked against its table with
    amcheck (``bt_index_check`` with ``heapallindexed``): a row missing from
    an index, or an index out of order, is reported. Needs the right to create
    the extension (the test cluster's superuser has it).
    """
    problems: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        indexes = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_am a ON a.oid = c.relam"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE a.amname = 'btree' AND n.nspname = current_schema()"
        ).fetchall()
        for (index,) in indexes:
            try:
                conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
            except psycopg.Error as exc:
                problems.append(f"{index}: {exc}")
    return "; ".join(problems) or "ok"

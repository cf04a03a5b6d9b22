"""The secret canary: every credential a unique marker, everything at DEBUG with faults,
then stdout, stderr, the database, the lock file and the queue are
searched for each marker, plain, URL-encoded and base64-encoded: zero hits.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import stat
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from pydantic import SecretStr

from socialbot import logs
from socialbot.config import ENV_PREFIX, Settings
from socialbot.sandbox import Fault, SandboxServer
from socialbot.sandbox.server import NETWORK_SANDBOXES
from tests import drainer


def forms(secret: str) -> set[str]:
    """The ways a secret can show up: as is, URL-encoded (once or twice), base64."""
    raw = secret.encode()
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(quote(secret, safe=""), safe=""),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }


def secret_fields(network: str) -> list[str]:
    """The settings fields of a network that hold secrets (typed SecretStr)."""
    section = type(Settings().section(network))
    return [
        name
        for name, info in section.model_fields.items()
        if SecretStr in getattr(info.annotation, "__args__", (info.annotation,))
    ]


def canaries(tag: str) -> dict[str, dict[str, str]]:
    """A unique marker per secret of every sandboxed network, with characters that
    URL-encoding and base64 change."""
    made: dict[str, dict[str, str]] = {}
    for network in NETWORK_SANDBOXES:
        made[network] = {
            field: f"Cnry{tag}+{network}/{field}={index}Zq"
            for index, field in enumerate(secret_fields(network))
        }
    return made


@pytest.fixture
def canary_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(credentials=canaries("A")) as server:
        yield server
    assert server.errors == []


def hits(blob: bytes, secrets: list[str]) -> list[str]:
    found = []
    for secret in secrets:
        for form in forms(secret):
            if form.encode() in blob:
                found.append(f"{secret} as {form}")
    return found


def test_no_secret_leaks_anywhere_at_debug_with_faults(
    workdir: Path, canary_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = canary_sandbox
    markers = [value for creds in canaries("A").values() for value in creds.values()]
    wrong = canaries("B")
    markers += [value for creds in wrong.values() for value in creds.values()]
    settings = sandbox.settings()
    # Every secret setting the sandbox provides is a marker: none is left out unseen.
    for network in sandbox.networks:
        for field in secret_fields(network):
            name = f"{ENV_PREFIX}{network}__{field}".upper()
            assert settings.get(name) in markers, name
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    env = drainer.environment(
        SOCIALBOT_LOG_LEVEL="DEBUG",
        SOCIALBOT_REQUEST_TIMEOUT_SECONDS="1",
        SOCIALBOT_RECONCILE_AFTER_SECONDS="0",
        SOCIALBOT_MAX_RATE_LIMIT_WAIT_SECONDS="5",
    )
    # The same settings with every secret wrong: refused credentials, at DEBUG.
    refused = dict(env)
    for network, creds in wrong.items():
        for field, value in creds.items():
            refused[f"{ENV_PREFIX}{network}__{field}".upper()] = value

    outputs: list[str] = []

    def call(*args: str, environment: dict[str, str] = env) -> None:
        result = drainer.call("-vv", *args, env=environment)
        outputs.extend([result.stdout, result.stderr])
        assert "Traceback" not in result.stderr or "[redacted]" in result.stderr

    drainer.add_releases(workdir / "queue", "canary", range(4))
    call("networks")
    call("networks", environment=refused)
    for network in sandbox.networks:
        sandbox.inject(network, Fault(status=500))
        sandbox.inject(network, Fault(kind="accept-then-reset"))
        sandbox.inject(network, Fault(status=429, retry_after=1, hint="retry-after-seconds"))
    call("drain")
    call("drain")
    call("drain", environment=refused)
    for network in sandbox.networks:
        sandbox.inject(network, Fault(status=401))
    call("drain")
    call("status")
    call("log")
    call("log", "--json")
    call("preview", "queue/canary-0000.json")
    for network in ("x", "facebook"):
        call("resolve", "canary-0000", "--network", network, "--not-posted")
        call("retry", "canary-0001", "--network", network)
    call("drain")
    # Something did happen: posts went out and errors were recorded.
    assert sandbox.posts()
    assert any("401" in out or "refused" in out for out in outputs)

    files = [p for p in workdir.rglob("*") if p.is_file()]
    state = [p for p in files if p.name.startswith("socialbot.db")]
    assert any(p.name == "socialbot.db.lock" for p in state)
    runtime = []
    for path in state:
        if path.name.endswith("session.json"):
            session = json.loads(path.read_text())
            runtime += [v for k, v in session.items() if k.endswith("jwt")]
    blobs = {f"file {p}": p.read_bytes() for p in files}
    blobs |= {f"output {i}": out.encode() for i, out in enumerate(outputs)}
    for where, blob in blobs.items():
        assert hits(blob, markers) == [], where
        if "session.json" not in where:
            assert hits(blob, runtime) == [], where
    for path in state:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_redacting_filter_covers_arguments_children_tracebacks_and_encodings() -> None:
    secret = "Cnry+unit/filter=Zq"
    logs.register_secret(secret)
    stream = io.StringIO()
    handler = logs.configure("DEBUG", stream)
    try:
        child = logging.getLogger("httpx.some.child")
        child.debug("GET https://example.org/?token=%s", quote(secret, safe=""))
        child.info("Authorization: Basic %s", base64.b64encode(secret.encode()).decode())
        logging.getLogger("tweepy").debug("headers: %r", {"Authorization": f"Bearer {secret}"})
        try:
            raise RuntimeError(f"request failed with token {secret}")
        except RuntimeError:
            logging.getLogger("socialbot.publish").exception("boom")
        try:
            raise ValueError(quote_plus(secret))
        except ValueError:
            logging.getLogger("x").error("failed", stack_info=True, exc_info=sys.exc_info())
        logging.getLogger("socialbot").warning("%(a)s", {"a": secret})
        traceback_text = "".join(traceback.format_stack())
        logging.getLogger("socialbot").debug(traceback_text + secret)
    finally:
        logging.getLogger().removeHandler(handler)
    output = stream.getvalue()
    assert hits(output.encode(), [secret]) == []
    assert output.count(logs.MASK) >= 7


def test_errors_are_stored_redacted(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from socialbot.models import Approval, DeliveryStatus, Post
    from socialbot.store import Pause, SQLiteStore, Withdrawal

    secret = "Cnry+store/error=Zq"
    logs.register_secret(secret)
    store = SQLiteStore(str(tmp_path / "s.db"))
    now = datetime.now(UTC)
    post = Post("x", "text", "https://cor.europa.eu/", 27, 280, "en")
    approval = Approval("r1", "h", "Ana", now, "queue/r1.json", ("x",), revision=1, posts=(post,))
    approval = approval.__class__(**{**approval.__dict__, "id": store.record_approval(approval)})
    store.create_delivery(approval, post, key="k", not_before=None, now=now)
    delivery = store.get("r1", "x")
    assert delivery is not None
    store.claim(delivery.id, "text", now)
    store.finish(
        delivery.id,
        DeliveryStatus.FAILED,
        now,
        expect=DeliveryStatus.SENDING,
        error=f"echoed {secret} back",
    )
    # A 429 body that echoes the token ends up in a hold's reason; people's words too.
    store.set_hold("x", now, f'429 {{"error": "slow down", "token": "{secret}"}}')
    store.pause(Pause("x", "Ana", now, f"leaked {secret}"))
    store.record_withdrawal(Withdrawal("r1", "x", "withdraw", "Ana", now, f"see {secret}"))
    store.audit("note", actor="Ana", now=now, detail=secret)
    assert secret not in str(store.hold("x"))
    store.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert hits(blob, [secret]) == []
    reopened = SQLiteStore(str(tmp_path / "s.db"))
    assert reopened.get("r1", "x").error == f"echoed {logs.MASK} back"  # type: ignore[union-attr]


def test_the_desk_server_logs_through_the_redacting_handler(monkeypatch: pytest.MonkeyPatch):
    """uvicorn logs an application error with its traceback: through socialbot's handler,
    so a secret in it is redacted, never through a handler of uvicorn's own."""
    import io
    import logging

    import uvicorn
    from starlette.applications import Starlette

    from socialbot import logs
    from socialbot.desk.app import server_config

    uvicorn.Config(Starlette(), log_level="warning")  # uvicorn's own logging, set up as by default
    stream = io.StringIO()
    handler = logs.configure("WARNING", stream)
    logs.register_secret("desk-secret-0123456789")
    try:
        server_config(Starlette(), "127.0.0.1", 0)
        logging.getLogger("uvicorn.error").error(
            "Exception in ASGI application: desk-secret-0123456789"
        )
    finally:
        logging.getLogger().removeHandler(handler)
    assert "Exception in ASGI application" in stream.getvalue()
    assert "desk-secret-0123456789" not in stream.getvalue()


UNENCODED_AT = "postgresql://bob:SECRET@PW123zz@127.0.0.1:{port}/db"
"""A password with an unencoded "@": libpq would read ``PW123zz@127.0.0.1`` as the host."""


@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_a_database_password_with_an_unencoded_at_is_refused_unseen(
    workdir: Path, verbosity: list[str]
) -> None:
    url = UNENCODED_AT.format(port=free_port())
    done = drainer.call(*verbosity, "status", env=drainer.environment(SOCIALBOT_DATABASE_URL=url))
    assert done.returncode == 2
    assert done.stderr == (
        "socialbot: SOCIALBOT_DATABASE_URL: the user name or password holds an '@': "
        "percent-encode it as %40 (each '@' before the one that ends the password)\n"
    )
    assert hits((done.stdout + done.stderr).encode(), ["SECRET", "PW123zz"]) == []


def test_the_store_masks_every_piece_of_a_password_with_an_unencoded_at() -> None:
    from socialbot.errors import ConfigurationError
    from socialbot.store.postgres import PostgresStore, strip_password

    url = UNENCODED_AT.format(port=free_port())
    with pytest.raises(ConfigurationError) as raised:
        PostgresStore(url, connect_timeout=2)
    assert "SECRET" not in str(raised.value) and "PW123zz" not in str(raised.value)
    assert str(raised.value).startswith("SOCIALBOT_DATABASE_URL: cannot connect to ")
    assert strip_password(f"at {url}: x") == (
        f"at postgresql://bob:[redacted]@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/db: x"
    )
    assert logs.redact("host 'PW123zz@127.0.0.1'") == f"host '{logs.MASK}@127.0.0.1'"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

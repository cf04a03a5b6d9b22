"""``socialbot demo``: the whole pipeline against the sandbox, in a throwaway state.

The sandbox runs in this process; settings come only from here (never from the
environment or ``.env``), so real credentials are never used and the user's own
database is never touched. Every run starts afresh, so it shows the same posts.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from socialbot.config import Settings
from socialbot.errors import SocialbotError
from socialbot.models import DeliveryStatus
from socialbot.releases import scan_queue
from socialbot.sandbox import SandboxServer
from socialbot.sandbox.server import stopped_by_signals
from socialbot.store import SQLiteStore


class DemoSettings(Settings):
    """Settings from keyword arguments only."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def sandbox_settings(server: SandboxServer, **overrides: Any) -> Settings:
    """Settings that point every network at ``server``."""
    nested: dict[str, Any] = {}
    for name, value in server.settings().items():
        network, _, field = name.removeprefix("SOCIALBOT_").lower().partition("__")
        nested.setdefault(network, {})[field] = value
    return DemoSettings(**nested, **overrides)


def start_sandbox(port: int) -> SandboxServer:
    try:
        return SandboxServer(port=port).start()
    except OSError:
        return SandboxServer(port=0).start()


DEMO_PAGE = "/media-centre/en/news/affordable-housing-plan"
"""A press-release page the sandbox serves, imported by the demo."""


def import_demo_page(
    server: SandboxServer, settings: Settings, store: SQLiteStore, echo: Callable[..., None]
) -> None:
    """Import a press-release page from the sandbox's media centre, as `socialbot import` does."""
    from socialbot import operations
    from socialbot.config import ImportSettings

    url = server.url + DEMO_PAGE
    report = operations.import_releases(
        settings,
        store,
        sources=[url],
        follow_versions=False,
        import_settings=ImportSettings(allow_private_addresses=True),
    )
    for result in report.results:
        if result.status.value == "error":
            echo(f"socialbot: {result.message}", err=True)
        else:
            echo(f"imported {result.release_id} from {url} (a draft, approved below as 'demo')")
    echo()


def run_demo(queue_dir: Path, *, port: int, echo: Callable[..., None], serve: bool = False) -> int:
    """Import a page, approve the queue and drain it into a local sandbox; print what happened.

    The user's queue is copied into the throwaway state first, so nothing of
    theirs changes.
    """
    from socialbot import operations
    from socialbot.render import format_table, render_problem

    if not queue_dir.is_dir():
        echo(f"socialbot: the queue directory {queue_dir} does not exist", err=True)
        return 2
    server = start_sandbox(port)
    with tempfile.TemporaryDirectory(prefix="socialbot-demo-") as state:
        shown_queue = queue_dir
        queue_dir = Path(state) / "queue"
        shutil.copytree(shown_queue, queue_dir, symlinks=True)
        settings = sandbox_settings(
            server,
            queue_dir=queue_dir,
            database_url=f"sqlite:///{state}/demo.db",
            run_budget_seconds=60,
        )
        store = SQLiteStore(settings.database_path)
        active = settings.active_networks()
        echo(f"sandbox: {server.url}  (networks: {', '.join(active)})")
        echo(f"queue:   {shown_queue}\n")
        import_demo_page(server, settings, store, echo)
        for entry in scan_queue(queue_dir, store):
            if entry.error or entry.release_id is None:
                continue
            try:
                operations.approve(settings, store, entry.release_id, by="demo")
            except SocialbotError as exc:
                echo(f"socialbot: {exc}", err=True)
        result = operations.drain(settings, store)
        report = result.report
        order = {name: index for index, name in enumerate(active)}
        for outcome in sorted(report.outcomes, key=lambda o: (o.release_id, order[o.network])):
            where = outcome.receipt.url if outcome.receipt else outcome.error
            echo(f"── {outcome.release_id} → {outcome.network}: {outcome.status.value} {where}")
            echo(f"{outcome.text}\n")
        for problem in result.told:
            echo(f"socialbot: {render_problem(problem)}", err=True)
        echo("posting log:")
        # In post order, not by update time: the networks finish in any order,
        # and a second run must show the same log.
        rows = sorted(store.deliveries(), key=lambda d: (d.release_id, order[d.network]))
        echo(format_table(rows) if rows else "(empty: no valid release in the queue)")
        posted = sum(1 for row in rows if row.status is DeliveryStatus.POSTED)
        echo(f"\n{posted} posts published to the sandbox at {server.url}/")
        store.close()
    if serve:
        with stopped_by_signals():
            echo("the sandbox keeps running; Ctrl-C stops it")
            while True:
                time.sleep(3600)
    server.stop()
    return result.exit_status


# -- socialbot demo --desk: the sandbox, a drain every few seconds, and the desk --------------

DEMO_ROLES = ("author", "approver", "operator", "admin")


def make_demo_users(store: Any, echo: Callable[..., None]) -> dict[str, str]:
    """One user per role, each with a fresh random password (printed, never reused)."""
    import secrets

    from socialbot.desk.users import Users, parse_role

    users = Users(store)
    passwords = {}
    for role in DEMO_ROLES:
        password = secrets.token_urlsafe(12)
        users.add(role, parse_role(role), password)
        passwords[role] = password
    return passwords


def run_desk_demo(
    queue_dir: Path,
    *,
    port: int,
    desk_port: int,
    echo: Callable[..., None],
    drain_every: float = 10.0,
) -> int:
    """Serve the desk over a throwaway database and the sandbox until Ctrl-C."""
    import secrets
    import threading

    import uvicorn

    from socialbot import operations
    from socialbot.desk.app import create_app

    if not queue_dir.is_dir():
        echo(f"socialbot: the queue directory {queue_dir} does not exist", err=True)
        return 2
    server = start_sandbox(port)
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="socialbot-desk-demo-") as state:
        settings = sandbox_settings(
            server,
            queue_dir=queue_dir,
            database_url=f"sqlite:///{state}/demo.db",
            run_budget_seconds=60,
            desk={"secret_key": secrets.token_urlsafe(48)},
        )
        store = SQLiteStore(settings.database_path)
        scan_queue(queue_dir, store)
        passwords = make_demo_users(store, echo)
        app = create_app(settings, store)
        config = uvicorn.Config(app, host="127.0.0.1", port=desk_port, log_level="warning")
        desk = uvicorn.Server(config)

        def drains() -> None:
            drain_store = SQLiteStore(settings.database_path)
            try:
                while not stop.wait(drain_every):
                    try:
                        operations.drain(settings, drain_store)
                    except SocialbotError as exc:
                        echo(f"socialbot: drain: {exc}", err=True)
            finally:
                drain_store.close()

        drainer = threading.Thread(target=drains, name="demo-drain", daemon=True)
        drainer.start()
        echo(f"sandbox: {server.url}  (the posts the drain sends appear there)")
        echo(f"desk:    http://127.0.0.1:{desk_port}/  (a drain runs every {drain_every:g}s)")
        echo("sign in as any of these (throwaway accounts, this run only):")
        for role, password in passwords.items():
            echo(f"  name {role:9} password {password}")
        echo("Ctrl-C stops the desk, the drain and the sandbox; nothing is kept.")
        try:
            desk.run()
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            drainer.join(timeout=drain_every + 60)
            store.close()
            server.stop()
    return 0

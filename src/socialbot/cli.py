"""The ``socialbot`` command: thin, it parses, calls the modules, and prints.

Operator errors are one line on stderr without a traceback. Exit status: 0 all
well, 1 something needs attention (a failed, pending or invalid item), 2 a usage
or configuration error.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import click

from socialbot import __version__
from socialbot.config import Settings, load_settings
from socialbot.errors import ConfigurationError, SocialbotError
from socialbot.models import NETWORKS, Delivery, DeliveryStatus, Post
from socialbot.store import SQLiteStore, utcnow

EXIT_ATTENTION = 1
EXIT_USAGE = 2


class Failure(click.ClickException):
    """One plain sentence on stderr, then exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_ATTENTION) -> None:
        from socialbot.logs import redact

        super().__init__(redact(message))
        self.exit_code = exit_code  # type: ignore[misc]

    def show(self, file: Any = None) -> None:
        click.echo(f"socialbot: {self.format_message()}", err=True)


def fail(exc: SocialbotError) -> NoReturn:
    code = EXIT_USAGE if isinstance(exc, ConfigurationError) else EXIT_ATTENTION
    raise Failure(str(exc), code) from None


def say(message: str = "", *, err: bool = False) -> None:
    from socialbot.logs import redact

    click.echo(redact(message), err=err)


class App:
    """What every command shares: verbosity, settings and the store, made on demand."""

    def __init__(self, verbose: int) -> None:
        self.verbose = verbose
        self._settings: Settings | None = None
        self._store: SQLiteStore | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigurationError as exc:
                fail(exc)
            from socialbot import logs

            logs.register_secret(*self._settings.secret_values())
            level = ("INFO", "DEBUG")[min(self.verbose, 2) - 1] if self.verbose else None
            logs.configure(level or self._settings.log_level.upper())
        return self._settings

    @property
    def store(self) -> SQLiteStore:
        if self._store is None:
            try:
                self._store = SQLiteStore(self.settings.database_path)
            except Exception as exc:  # noqa: BLE001 - sqlite3 and the OS raise many kinds
                raise Failure(
                    f"cannot open the database {self.settings.database_path}: {exc}", EXIT_USAGE
                ) from None
        return self._store

    @property
    def queue_dir(self) -> Path:
        """The queue directory; a missing one is a setting to fix, not an empty queue."""
        queue = self.settings.queue_dir
        if not queue.is_dir():
            raise Failure(
                f"SOCIALBOT_QUEUE_DIR: the queue directory {queue} does not exist", EXIT_USAGE
            )
        return queue

    def active(self) -> list[str]:
        try:
            return self.settings.active_networks()
        except ConfigurationError as exc:
            fail(exc)


pass_app = click.make_pass_decorator(App)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="Show progress (-v) or debug detail (-vv).")
@click.version_option(__version__, prog_name="socialbot")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Cross-post approved press releases to every network, exactly once.

    Releases are files in the queue directory (SOCIALBOT_QUEUE_DIR). Preview
    them, approve them, and let `socialbot drain` (run by cron) publish them.
    Settings come from SOCIALBOT_* environment variables and .env.
    """
    ctx.obj = App(verbose)


# -- the social-media team ------------------------------------------------------------


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-n",
    "--network",
    "networks",
    multiple=True,
    type=click.Choice(NETWORKS),
    help="Only this network (repeatable). Default: every network.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of text.")
@pass_app
def preview(app: App, file: Path, networks: tuple[str, ...], as_json: bool) -> None:
    """Show the post each network would get for FILE, with its length.

    Lengths are counted the way each network counts them. Needs no credentials
    and no network access.
    """
    from socialbot.compose import compose
    from socialbot.errors import ComposeError
    from socialbot.releases import read_release

    try:
        release = read_release(file)
    except SocialbotError as exc:
        fail(exc)
    targets = list(networks) or release.networks or list(NETWORKS)
    options = compose_options(app.settings)
    posts: list[Post] = []
    problems: list[str] = []
    for network in targets:
        try:
            posts.append(compose(release, network, options))
        except ComposeError as exc:
            problems.append(str(exc))
    if as_json:
        say(json.dumps([post.as_dict() for post in posts], ensure_ascii=False, indent=2))
    else:
        for post in posts:
            say(f"── {post.network} ── {post.length}/{post.limit}")
            say(post.text)
            for note in post.notes:
                say(f"   note: {note}")
            say()
    for problem in problems:
        say(f"socialbot: {file}: {problem}", err=True)
    if problems:
        sys.exit(EXIT_ATTENTION)


@cli.command()
@click.argument("release")
@click.option("--by", "approver", required=True, help="Who approves (recorded in the log).")
@pass_app
def approve(app: App, release: str, approver: str) -> None:
    """Approve RELEASE (a file in the queue, or its id) for publishing.

    Records who approved, when, the networks, and a SHA-256 of exactly the
    content that will be published: a file edited afterwards is not posted
    until it is approved again.
    """
    from socialbot.releases import approve as record_approval
    from socialbot.releases import find_release_file

    settings = app.settings
    try:
        path = find_release_file(release, settings.queue_dir, app.store)
        approved, approval = record_approval(
            path,
            by=approver,
            networks=app.active(),
            queue_dir=settings.queue_dir,
            store=app.store,
            now=utcnow(),
            options=compose_options(settings),
        )
    except SocialbotError as exc:
        fail(exc)
    when = f", not before {approved.not_before.isoformat()}" if approved.not_before else ""
    say(
        f"approved {approved.id} for {', '.join(approval.networks)} by {approval.approved_by} "
        f"(sha256 {approval.content_hash[:12]}){when}"
    )


# -- cron -----------------------------------------------------------------------------


@cli.command()
@click.option("-v", "--verbose", count=True, help="Show progress (-v) or debug detail (-vv).")
@pass_app
def drain(app: App, verbose: int) -> None:
    """Publish every approved, due release once to each of its networks.

    What cron runs. Quiet when all went well; problems go to stderr. Exit 0
    when every due delivery was posted, 1 when anything failed, is left
    pending or needs a human, 2 for a configuration error.
    """
    from socialbot.publish import AlreadyRunning, Publisher, RetryPolicy, drain_lock

    app.verbose += verbose
    settings = app.settings
    active = app.active()
    # A drain that holds the lock much longer than its budget allows is reported as hung.
    stale_after = settings.run_budget_seconds + 4 * settings.request_timeout_seconds + 300
    try:
        with drain_lock(settings.database_path, stale_after=stale_after):
            adapters = LazyAdapters(settings, active)
            try:
                publisher = Publisher(
                    store=app.store,
                    queue_dir=app.queue_dir,
                    adapters=adapters,
                    active=active,
                    options=compose_options(settings),
                    policy=RetryPolicy(
                        max_attempts=settings.max_attempts,
                        max_rate_limit_wait=settings.max_rate_limit_wait_seconds,
                        reconcile_after=timedelta(seconds=settings.reconcile_after_seconds),
                    ),
                    budget_seconds=settings.run_budget_seconds,
                )
                report = publisher.drain()
            finally:
                adapters.close()
    except AlreadyRunning as exc:
        # Not an error for cron: the running drain does this run's work.
        say(f"socialbot: {exc}", err=True)
        sys.exit(EXIT_ATTENTION if exc.stale else 0)
    except SocialbotError as exc:
        fail(exc)
    if app.verbose:
        for outcome in report.outcomes:
            where = outcome.receipt.url if outcome.receipt else outcome.error
            say(f"{outcome.status.value:8} {outcome.release_id} on {outcome.network}: {where}")
    for problem in report.problems:
        say(f"socialbot: {problem}", err=True)
    if report.left_pending and not report.problems:
        say(f"socialbot: {report.left_pending} deliveries left pending", err=True)
    sys.exit(report.exit_status)


class LazyAdapters(Mapping[str, Any]):
    """Adapters built on first use, so an idle run never imports tweepy."""

    def __init__(self, settings: Settings, active: list[str]) -> None:
        self.settings = settings
        self.active = active
        self._made: dict[str, Any] = {}

    def __getitem__(self, network: str) -> Any:
        if network not in self.active:
            raise KeyError(network)
        if network not in self._made:
            from socialbot import logs
            from socialbot.adapters import create_adapter

            self._made[network] = create_adapter(network, self.settings)
            logs.register_secret(*self._made[network].secret_values())
        return self._made[network]

    def __iter__(self) -> Iterator[str]:
        return iter(self.active)

    def __len__(self) -> int:
        return len(self.active)

    def close(self) -> None:
        for adapter in self._made.values():
            adapter.close()


# -- operators ------------------------------------------------------------------------


@cli.command(name="log")
@click.option("--release", help="Only this release id.")
@click.option("--network", type=click.Choice(NETWORKS), help="Only this network.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in DeliveryStatus]),
    help="Only deliveries in this state.",
)
@click.option("--since", help="Only what changed in this period: 30m, 12h, 1d, 2w.")
@click.option("--limit", type=int, default=None, help="At most this many rows (newest first).")
@click.option("--approvals", is_flag=True, help="List the approval records instead.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_app
def log_command(
    app: App,
    release: str | None,
    network: str | None,
    status: str | None,
    since: str | None,
    limit: int | None,
    approvals: bool,
    as_json: bool,
) -> None:
    """Read the posting log: what went where and when, or why it failed."""
    if approvals:
        records = app.store.approvals(release)
        for record in records:
            if as_json:
                say(
                    json.dumps(
                        {
                            "release": record.release_id,
                            "approved_by": record.approved_by,
                            "approved_at": record.approved_at.isoformat(),
                            "sha256": record.content_hash,
                            "networks": list(record.networks),
                            "file": record.source,
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                say(
                    f"{record.approved_at:%Y-%m-%d %H:%M} {record.release_id} approved by "
                    f"{record.approved_by} for {', '.join(record.networks)} "
                    f"(sha256 {record.content_hash[:12]}, {record.source})"
                )
        return
    cutoff = utcnow() - parse_duration(since) if since is not None else None
    rows = app.store.deliveries(
        release_id=release,
        network=network,
        status=DeliveryStatus(status) if status else None,
        since=cutoff,
        limit=limit if limit is not None else (None if as_json else 200),
    )
    if as_json:
        for row in rows:
            say(json.dumps(row.as_dict(), ensure_ascii=False))
        return
    if not rows:
        say("no deliveries match")
        return
    say(format_table(rows))


def format_table(rows: list[Delivery]) -> str:
    header = (
        "UPDATED (UTC)",
        "RELEASE",
        "NETWORK",
        "STATUS",
        "TRIES",
        "APPROVED BY",
        "URL / ERROR",
    )
    lines = [header]
    for row in rows:
        lines.append(
            (
                f"{row.updated_at:%Y-%m-%d %H:%M:%S}",
                row.release_id,
                row.network,
                row.status.value,
                str(row.attempts),
                row.approved_by,
                (row.url or row.error or "").replace("\n", " "),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not match:
        raise Failure(
            f"--since {text!r}: use a number and a unit, e.g. 30m, 12h, 1d, 2w", EXIT_USAGE
        )
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """Counts per state, releases awaiting approval, invalid files, and what needs a human.

    Exits 1 when anything needs attention (an invalid file, a release changed
    after approval, a failed or unknown delivery).
    """
    from socialbot.releases import scan_queue

    settings = app.settings
    store = app.store
    counts = store.counts()
    entries = scan_queue(app.queue_dir, store)
    approvals = store.latest_approvals(e.release_id for e in entries if e.release_id)
    awaiting, reapprove, invalid, approved = [], [], [], []
    for entry in entries:
        if entry.error:
            invalid.append(entry.error)
            continue
        assert entry.release_id is not None
        approval = approvals.get(entry.release_id)
        if approval is None:
            awaiting.append(f"{entry.release_id} ({entry.path})")
        elif approval.content_hash != entry.content_hash:
            reapprove.append(
                f"{entry.release_id} ({entry.path}): changed since {approval.approved_by} "
                f"approved it on {approval.approved_at:%Y-%m-%d %H:%M} UTC"
            )
        else:
            approved.append(
                f"{entry.release_id}: approved by {approval.approved_by} on "
                f"{approval.approved_at:%Y-%m-%d %H:%M} UTC"
            )
    holds = {}
    for network in NETWORKS:
        hold = store.hold(network)
        if hold is not None and hold[0] > utcnow():
            holds[network] = f"until {hold[0]:%Y-%m-%d %H:%M:%S} UTC ({hold[1]})"
    warnings = network_warnings(settings)
    needs_human = [
        f"{d.release_id} on {d.network}: {d.status.value} ({d.error or 'no reason recorded'})"
        for s in (DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED)
        for d in store.deliveries(status=s)
    ]
    if as_json:
        say(
            json.dumps(
                {
                    "deliveries": {s.value: n for s, n in counts.items()},
                    "awaiting_approval": awaiting,
                    "needs_reapproval": reapprove,
                    "invalid": invalid,
                    "approved": approved,
                    "needs_attention": needs_human,
                    "rate_limited": holds,
                    "warnings": warnings,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        say("deliveries: " + ", ".join(f"{n} {s.value}" for s, n in counts.items()))
        for title, items in (
            ("awaiting approval", awaiting),
            ("changed after approval (approve again)", reapprove),
            ("invalid release files", invalid),
            ("need a human", needs_human),
            ("rate limited", [f"{k}: {v}" for k, v in holds.items()]),
            ("warnings", warnings),
            ("approved", approved),
        ):
            if items:
                say(f"{title}:")
                for item in items:
                    say(f"  {item}")
    if invalid or reapprove or needs_human:
        sys.exit(EXIT_ATTENTION)


def network_warnings(settings: Settings) -> list[str]:
    """Things an operator should act on before they break a drain."""
    warnings = []
    expires = settings.linkedin.token_expires
    if settings.linkedin.is_configured() and expires is not None:
        left = (expires - utcnow().date()).days
        if left < 0:
            warnings.append(f"the LinkedIn access token expired on {expires}: renew it")
        elif left < 14:
            warnings.append(
                f"the LinkedIn access token expires on {expires} ({left} days): renew it"
            )
    return warnings


@cli.command()
@click.argument("release")
@click.option("--network", type=click.Choice(NETWORKS), help="Only this network.")
@pass_app
def retry(app: App, release: str, network: str | None) -> None:
    """Put RELEASE's failed deliveries back in the queue for the next drain."""
    count = app.store.requeue(release, network, utcnow())
    if not count:
        where = f" on {network}" if network else ""
        raise Failure(f"{release} has no failed delivery{where} to retry")
    say(f"{count} deliver{'y' if count == 1 else 'ies'} of {release} will be retried")


@cli.command()
@click.argument("release")
@click.option(
    "--network",
    type=click.Choice(NETWORKS),
    required=True,
    help="The network of the delivery to settle.",
)
@click.option("--posted", "url", metavar="URL", help="It was posted, at this address.")
@click.option("--not-posted", is_flag=True, help="It was not posted: send it again.")
@pass_app
def resolve(app: App, release: str, network: str, url: str | None, not_posted: bool) -> None:
    """Settle a delivery that may or may not have been posted (status unknown).

    Check the account first; then say --posted URL, or --not-posted to have
    the next drain send it.
    """
    if bool(url) == not_posted:
        raise Failure("give exactly one of --posted URL or --not-posted", EXIT_USAGE)
    if url is not None:
        from socialbot.models import check_url

        try:
            check_url(url)
        except ValueError as exc:
            raise Failure(f"--posted {url!r}: {exc}", EXIT_USAGE) from None
    delivery = app.store.resolve(release, network, utcnow(), url=url)
    if delivery is None:
        current = app.store.get(release, network)
        state = current.status.value if current else "not in the log"
        raise Failure(
            f"{release} on {network} is {state}; only an unknown delivery "
            "(or a failed one, with --posted) can be resolved"
        )
    say(f"{release} on {network} is now {delivery.status.value}")


@cli.command()
@pass_app
def networks(app: App) -> None:
    """List the supported networks and check the credentials of the active ones.

    Each check asks the network who the credentials belong to; nothing is posted.
    """
    from socialbot.adapters import create_adapter

    settings = app.settings
    active = app.active()
    broken = 0
    for network in NETWORKS:
        if network not in active:
            configured = settings.section(network).is_configured()
            state = "configured but not in SOCIALBOT_NETWORKS" if configured else "not configured"
            say(f"{network:9} {state}")
            continue
        try:
            adapter = create_adapter(network, settings)
            try:
                who = adapter.check()
            finally:
                adapter.close()
        except SocialbotError as exc:
            broken += 1
            say(f"{network:9} active, credentials NOT accepted: {exc}")
            continue
        say(f"{network:9} active, credentials accepted ({who})")
    for warning in network_warnings(settings):
        say(f"warning: {warning}")
    if broken:
        sys.exit(EXIT_ATTENTION)


# -- trying it out --------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on.")
def sandbox(host: str, port: int) -> None:
    """Run the local fake networks, to drain into them by hand.

    Prints the settings that point socialbot at it; open the address in a
    browser to see the accepted posts.
    """
    from socialbot.sandbox import SandboxServer

    try:
        server = SandboxServer(host, port)
    except OSError as exc:
        raise Failure(f"cannot listen on {host}:{port}: {exc.strerror}", EXIT_USAGE) from None
    say(f"sandbox listening on {server.url} (Ctrl-C to stop); settings to use it:")
    for name, value in server.settings().items():
        say(f"export {name}={value}")
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


@cli.command()
@click.option(
    "--queue",
    "queue_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The releases to post (default: SOCIALBOT_QUEUE_DIR, i.e. queue/).",
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=int,
    help="Sandbox port (any free port if taken).",
)
@click.option("--serve", is_flag=True, help="Keep the sandbox running afterwards (Ctrl-C stops).")
@pass_app
def demo(app: App, queue_dir: Path | None, port: int, serve: bool) -> None:
    """Drain the queue into the local sandbox: no accounts, nothing leaves this machine.

    Approves every valid release as "demo" in a throwaway database (your own
    approvals and posting log are not touched), posts them to every network
    the sandbox fakes, and prints each post, its address, and the posting log.
    """
    from socialbot.demo import run_demo

    try:
        queue = queue_dir or load_settings().queue_dir
    except ConfigurationError:
        queue = Path("queue")
    sys.exit(run_demo(queue, port=port, echo=say, serve=serve))


# -- shared ---------------------------------------------------------------------------


def compose_options(settings: Settings) -> Any:
    """The hashtag mapping file (missing is fine unless named explicitly) and the UTM flag."""
    from socialbot.compose import load_options

    try:
        return load_options(
            settings.hashtags_file,
            utm=settings.utm,
            required="hashtags_file" in settings.model_fields_set,
        )
    except ConfigurationError as exc:
        fail(exc)


def main() -> None:
    """Entry point of the ``socialbot`` console script."""
    os.umask(0o077)
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - printed below, redacted
        # A bug's traceback may quote a secret: print it redacted, never raw.
        import traceback

        from socialbot.logs import redact

        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
        sys.exit(EXIT_ATTENTION)


# -- import: pages, listings and feeds become draft releases (issue 12) -----------------


@cli.command(name="import")
@click.argument("sources", nargs=-1, metavar="URL|FILE...")
@click.option(
    "--listing", "listings", multiple=True, metavar="URL", help="A page listing releases."
)
@click.option("--feed", "feeds", multiple=True, metavar="URL", help="An RSS 2.0 or Atom feed.")
@click.option("--no-versions", is_flag=True, help="Leave out the pages' other language versions.")
@pass_app
def import_command(
    app: App,
    sources: tuple[str, ...],
    listings: tuple[str, ...],
    feeds: tuple[str, ...],
    no_versions: bool,
) -> None:
    """Turn press-release pages, listings or feeds into draft releases in the queue.

    Each draft is written as a release file and printed with a preview; nothing is
    approved. A listing or feed imports only the items it has not imported before,
    so it can run from cron. Exit status 1 when any source failed.
    """
    from socialbot.config import load_import_settings
    from socialbot.importer import ImportReport, run_import
    from socialbot.importer.ledger import KeyValueLedger
    from socialbot.importer.sqlite_ledger import SQLiteKeyValue

    if not (sources or listings or feeds):
        raise click.UsageError("name a page (URL or saved .html file), --listing URL or --feed URL")
    try:
        settings = load_import_settings()
    except ConfigurationError as exc:
        fail(exc)
    queue, store = app.queue_dir, app.store
    kv = SQLiteKeyValue(app.settings.database_path)
    report = ImportReport()
    try:
        for batch, is_listing, is_feed in (
            (sources, False, False),
            (listings, True, False),
            (feeds, False, True),
        ):
            if batch:
                part = run_import(
                    list(batch),
                    queue_dir=queue,
                    ledger=KeyValueLedger(kv),
                    is_approved=lambda release_id: bool(store.approvals(release_id)),
                    settings=settings,
                    listing=is_listing,
                    feed=is_feed,
                    follow_versions=not no_versions,
                )
                report.results.extend(part.results)
                report.notes.extend(part.notes)
    finally:
        kv.close()
    for result in report.results:
        if result.status.value == "error":
            say(result.message, err=True)
            continue
        say(f"{result.status.value}: {result.path}")
        say(result.preview if result.status.value in ("created", "updated") else result.message)
    for note in report.notes:
        say(note, err=True)
    if report.failed:
        sys.exit(EXIT_ATTENTION)

"""The ``socialbot`` command: thin, it parses, calls the modules, and prints.

Operator errors are one line on stderr without a traceback. Exit status: 0 all
well, 1 something needs attention (a failed, pending or invalid item), 2 a usage
or configuration error.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from socialbot import __version__
from socialbot.errors import ConfigurationError, SocialbotError
from socialbot.models import NETWORKS, DeliveryStatus
from socialbot.problems import Kind
from socialbot.render import format_table, render_post, render_problem

if TYPE_CHECKING:  # imported on use: `import socialbot.cli` stays cheap for every cron run
    from socialbot.config import Settings
    from socialbot.operations import TakeBack
    from socialbot.store import Store

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


def login_name() -> str:
    """Who runs the command, as the system knows them: the actor of an operator's fix when
    ``--by`` is not given."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return ""


def say(message: str = "", *, err: bool = False) -> None:
    from socialbot.logs import redact

    click.echo(redact(message), err=err)


class App:
    """What every command shares: verbosity, settings and the store, made on demand."""

    def __init__(self, verbose: int) -> None:
        self.verbose = verbose
        self._settings: Settings | None = None
        self._store: Store | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from socialbot.config import load_settings

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
    def store(self) -> Store:
        if self._store is None:
            from socialbot.store import open_store

            try:
                self._store = open_store(self.settings.database_url)
            except SocialbotError as exc:
                fail(exc)
            except Exception as exc:  # noqa: BLE001 - the drivers and the OS raise many kinds
                from socialbot.logs import redact

                raise Failure(
                    f"cannot open the database: {redact(str(exc)).splitlines()[0]}", EXIT_USAGE
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

    def close(self) -> None:
        """Close the store's connections when the command ends."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def active(self) -> list[str]:
        try:
            return self.settings.active_networks()
        except ConfigurationError as exc:
            fail(exc)


pass_app = click.make_pass_decorator(App)


class Commands(click.Group):
    """The command group: a socialbot error out of any command (a refused approval, the
    database found damaged halfway through) is one sentence, never a traceback; the
    commands themselves catch only what they answer otherwise."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SocialbotError as exc:
            fail(exc)


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.call_on_close(ctx.obj.close)


# -- the social-media team ------------------------------------------------------------


@cli.command()
@click.argument("release")
@click.option(
    "-n",
    "--network",
    "networks",
    multiple=True,
    type=click.Choice(NETWORKS),
    help="Only this network (repeatable). Default: the release's networks, or every one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of text.")
@pass_app
def preview(app: App, release: str, networks: tuple[str, ...], as_json: bool) -> None:
    """Show the post each network would get for RELEASE (a file, or a known id).

    Lengths are counted the way each network counts them, with the limits the
    networks last reported. Needs no credentials; it goes online only to fetch
    the images a release names by an https address.
    """
    from socialbot import operations

    result = operations.preview(app.settings, app.store, release, list(networks) or None)
    if as_json:
        say(json.dumps([post.as_dict() for post in result.posts], ensure_ascii=False, indent=2))
    else:
        for post in result.posts:
            say(render_post(post))
    for problem in result.problems:
        say(f"socialbot: {release}: {problem}", err=True)
    if result.problems:
        sys.exit(EXIT_ATTENTION)


@cli.command()
@click.argument("release")
@click.option("--by", "approver", required=True, help="Who approves (recorded in the log).")
@click.option("--comment", default="", help="A note kept with the approval.")
@click.option("--json", "as_json", is_flag=True, help="Print the approved posts as JSON.")
@pass_app
def approve(app: App, release: str, approver: str, comment: str, as_json: bool) -> None:
    """Approve the latest revision of RELEASE (a file in the queue, or its id).

    Composes every network's post now, prints it, and stores exactly these
    posts with the approval: the drain sends them and nothing else. With
    SOCIALBOT_APPROVALS_REQUIRED=2, two different people must approve the same
    revision; its author never counts.
    """
    from socialbot import operations

    result = operations.approve(app.settings, app.store, release, by=approver, comment=comment)
    approval, revision = result.approval, result.revision
    if as_json:
        say(json.dumps([p.as_dict() for p in approval.posts], ensure_ascii=False, indent=2))
    else:
        for post in approval.posts:
            say(render_post(post))
    when = (
        f", not before {revision.release.not_before.isoformat()}"
        if revision.release.not_before
        else ""
    )
    verb = "approved" if result.recorded else "already approved"
    say(
        f"{verb} {revision.release_id} revision {revision.number} for "
        f"{', '.join(approval.networks)} by {approver} (sha256 {approval.content_hash[:12]})"
        f"{when}",
        err=as_json,
    )
    if not result.in_force:
        say(
            f"{len(result.approvers)} of {result.required} approvals "
            f"({', '.join(result.approvers) or 'none'}); nothing is posted until "
            f"{result.required - len(result.approvers)} more",
            err=as_json,
        )
    for note in result.notes:
        say(f"note: {note}", err=as_json)
    for note in result.to_settle:
        say(f"socialbot: {note} (`socialbot resolve`)", err=True)
    if result.to_settle:
        sys.exit(EXIT_ATTENTION)


@cli.command()
@click.argument("release")
@click.option("--by", "person", required=True, help="Who refuses (recorded in the audit trail).")
@click.option("--reason", required=True, help="Why, in a few words.")
@pass_app
def reject(app: App, release: str, person: str, reason: str) -> None:
    """Refuse the latest revision of RELEASE, with a reason (nothing of it is posted)."""
    from socialbot import operations

    rejection = operations.reject(app.settings, app.store, release, by=person, reason=reason)
    say(f"rejected {rejection.release_id} revision {rejection.revision} ({rejection.reason})")


@cli.command()
@click.argument("release")
@click.option("--network", type=click.Choice(NETWORKS), help="Only this network.")
@click.option("--by", "person", required=True, help="Who withdraws (recorded).")
@click.option("--reason", default="", help="Why, in a few words.")
@pass_app
def withdraw(app: App, release: str, network: str | None, person: str, reason: str) -> None:
    """Take back RELEASE's approval: what is not yet posted is never posted.

    Whatever happens to the release file later. A delivery that may already
    be on the network is looked for first where the network can be searched
    (on Telegram a person settles it with resolve); posted ones stay (see
    retract).
    """
    from socialbot import operations

    result = operations.withdraw(
        app.settings, app.store, release, by=person, network=network, reason=reason
    )
    render_take_back(result, "withdrawn")
    if result.in_doubt.to_settle:
        sys.exit(EXIT_ATTENTION)


@cli.command()
@click.argument("release")
@click.option("--network", type=click.Choice(NETWORKS), help="Only this network.")
@click.option("--by", "person", required=True, help="Who retracts (recorded).")
@click.option("--reason", default="", help="Why, in a few words.")
@pass_app
def retract(app: App, release: str, network: str | None, person: str, reason: str) -> None:
    """Delete RELEASE's posts from the networks, and withdraw what is not posted yet.

    Safe to repeat: a post already deleted counts as done.
    """
    from socialbot import operations

    result = operations.retract(
        app.settings, app.store, release, by=person, network=network, reason=reason
    )
    render_take_back(result, "retracted")
    if result.failed or result.in_doubt.to_settle:
        sys.exit(EXIT_ATTENTION)


def render_take_back(result: TakeBack, verb: str) -> None:
    release, doubt = result.release_id, result.in_doubt
    if result.retracted:
        say(f"{release}: deleted from {', '.join(result.retracted)}")
    if result.withdrawn:
        say(f"{release}: will never be posted on {', '.join(result.withdrawn)}")
    for network in doubt.looked_for:
        say(
            f"{release} on {network}: may already have been posted; it is looked for first, "
            f"then {verb}"
        )
    for network in doubt.being_sent:
        then = (
            "the next drain deletes it"
            if verb == "retracted"
            else f"`socialbot retract {release} --network {network}` deletes it"
        )
        say(
            f"{release} on {network}: a drain is sending it (or was, when it stopped); "
            f"if it goes out, {then}, and if not it is withdrawn"
        )
    for network in doubt.to_settle:
        say(
            f"socialbot: {release} on {network}: may already have been posted, and {network} "
            f"cannot be searched: look at it, then settle it with `socialbot resolve {release} "
            f"--network {network} --posted URL` (or `--not-posted`)",
            err=True,
        )
    for network in result.posted:
        say(
            f"{release} on {network}: already posted; "
            f"`socialbot retract {release} --network {network}` deletes it"
        )
    for failure in result.failed:
        say(f"socialbot: {release} on {failure}", err=True)
    if not (result.retracted or result.withdrawn or doubt.networks or result.posted):
        say(f"{release}: recorded as {verb}; nothing of it is posted from now on")


# -- cron -----------------------------------------------------------------------------


@cli.command()
@click.option("-v", "--verbose", count=True, help="Show progress (-v) or debug detail (-vv).")
@pass_app
def drain(app: App, verbose: int) -> None:
    """Send every approved, due post once to its network.

    What cron runs. Quiet when all went well. Exit 0 when nothing needs
    attention, 1 when something went wrong in this run or a problem is new
    (a standing problem is repeated once a day; `status` always shows it),
    2 for a configuration error, 130/143 when stopped by SIGINT/SIGTERM.
    """
    import signal
    import threading

    from socialbot import operations
    from socialbot.errors import AlreadyRunning

    app.verbose += verbose
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.signal = signum  # type: ignore[attr-defined]
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = operations.drain(app.settings, app.store, stop=stop)
    except AlreadyRunning as exc:
        # Not an error for cron: the running drain does this run's work.
        say(f"socialbot: {exc}", err=True)
        sys.exit(EXIT_ATTENTION if exc.stale else 0)
    except SocialbotError as exc:
        fail(exc)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if app.verbose:
        for outcome in result.report.outcomes:
            where = outcome.receipt.url if outcome.receipt else outcome.error
            say(f"{outcome.status.value:8} {outcome.release_id} on {outcome.network}: {where}")
    for problem in result.told:
        say(f"socialbot: {render_problem(problem)}", err=True)
    sys.exit(result.exit_status)


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
@click.option("--audit", is_flag=True, help="Show the audit trail: every action, who, when.")
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
    audit: bool,
    as_json: bool,
) -> None:
    """Read the posting log: what went where and when (with the exact text), or why it failed."""
    from socialbot import operations

    if status is not None and (audit or approvals):
        raise Failure("--status filters deliveries, not --audit or --approvals", EXIT_USAGE)
    cutoff = parse_since(since) if since is not None else None
    if audit:
        entries = operations.audit(app.store, release, network=network, since=cutoff, limit=limit)
        for entry in entries:
            if as_json:
                say(json.dumps(entry.as_dict(), ensure_ascii=False))
            else:
                what = " ".join(
                    part
                    for part in (
                        entry.release_id or "",
                        f"revision {entry.revision}" if entry.revision else "",
                        f"on {entry.network}" if entry.network else "",
                    )
                    if part
                )
                say(
                    f"{entry.at:%Y-%m-%d %H:%M:%S} {entry.action:9} {what} "
                    f"by {entry.actor or '(socialbot)'}"
                    + (f": {entry.detail}" if entry.detail else "")
                )
        return
    if approvals:
        records = operations.approvals(
            app.store, release, network=network, since=cutoff, limit=limit
        )
        for record in records:
            if as_json:
                say(
                    json.dumps(
                        {
                            "release": record.release_id,
                            "revision": record.revision,
                            "approved_by": record.approved_by,
                            "approved_at": record.approved_at.isoformat(),
                            "sha256": record.content_hash,
                            "networks": list(record.networks),
                            "file": record.source,
                            "posts": [p.as_dict() for p in record.posts],
                        },
                        ensure_ascii=False,
                    )
                )
            else:
                say(
                    f"{record.approved_at:%Y-%m-%d %H:%M} {record.release_id} revision "
                    f"{record.revision} approved by {record.approved_by} for "
                    f"{', '.join(record.networks)} (sha256 {record.content_hash[:12]}, "
                    f"{record.source})"
                )
        return
    rows = operations.log(
        app.store,
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


def parse_since(text: str) -> datetime:
    """``--since``: the moment that long ago, or a usage error."""
    from socialbot.operations import cutoff
    from socialbot.store import utcnow

    try:
        return cutoff(text, utcnow())
    except ValueError as exc:
        raise Failure(f"--since {text!r}: {exc}", EXIT_USAGE) from None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """Pauses first, then counts, releases awaiting approval, and what needs a person.

    Exits 1 while anything needs a person: an invalid file, a release changed
    after approval, a failed or unknown delivery, credentials that are missing,
    refused or about to expire.
    """
    from socialbot import operations

    report = operations.status(app.settings, app.store)
    pauses = [
        f"{'every network' if p.network == '*' else p.network}: paused by {p.by} on "
        f"{p.at:%Y-%m-%d %H:%M} UTC ({p.reason})"
        for p in report.pauses
    ]
    if as_json:
        say(
            json.dumps(
                {
                    "paused": [
                        {
                            "network": p.network,
                            "by": p.by,
                            "at": p.at.isoformat(),
                            "reason": p.reason,
                        }
                        for p in report.pauses
                    ],
                    "deliveries": {s.value: n for s, n in report.counts.items()},
                    "awaiting_approval": report.awaiting,
                    "scheduled": report.scheduled,
                    "approved": report.approved,
                    "needs_attention": [p.as_dict() for p in report.problems],
                    "invalid": [p.detail for p in report.problems if p.kind is Kind.INVALID_FILE],
                    "needs_reapproval": [
                        str(p) for p in report.problems if p.kind is Kind.CHANGED_AFTER_APPROVAL
                    ],
                    "rate_limited": report.holds,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for line in pauses:
            say(f"PAUSED {line}")
        say("deliveries: " + ", ".join(f"{n} {s.value}" for s, n in report.counts.items()))
        by_kind = {
            "invalid release files": [Kind.INVALID_FILE],
            "changed after approval (approve again)": [Kind.CHANGED_AFTER_APPROVAL],
        }
        grouped = {k for kinds in by_kind.values() for k in kinds}
        for title, items in (
            *(
                (title, [render_problem(p) for p in report.problems if p.kind in kinds])
                for title, kinds in by_kind.items()
            ),
            (
                "need a person",
                [render_problem(p) for p in report.problems if p.kind not in grouped],
            ),
            ("awaiting approval", report.awaiting),
            ("scheduled", report.scheduled),
            ("rate limited", [f"{k}: {v}" for k, v in report.holds.items()]),
            ("approved", report.approved),
        ):
            if items:
                say(f"{title}:")
                for item in items:
                    say(f"  {item}")
    sys.exit(report.exit_status)


@cli.command()
@click.option("--network", type=click.Choice(NETWORKS), help="Only this network (default: all).")
@click.option("--by", "person", required=True, help="Who pauses (shown to everyone).")
@click.option("--reason", required=True, help="Why (shown by status and the desk).")
@pass_app
def pause(app: App, network: str | None, person: str, reason: str) -> None:
    """The crisis switch: send nothing (to NETWORK, or anywhere) until resumed."""
    from socialbot import operations

    record = operations.pause(app.store, by=person, reason=reason, network=network)
    where = "every network" if record.network == "*" else record.network
    say(f"paused {where}: drains send nothing there until `socialbot resume`")


@cli.command()
@click.option("--network", type=click.Choice(NETWORKS), help="Only this network (default: all).")
@click.option("--by", "person", required=True, help="Who resumes (recorded).")
@pass_app
def resume(app: App, network: str | None, person: str) -> None:
    """Lift the crisis switch set by `socialbot pause`."""
    from socialbot import operations

    lifted = operations.resume(app.store, by=person, network=network)
    where = network or "every network"
    say(f"resumed {where}" if lifted else f"{where} was not paused")


@cli.command()
@click.argument("release")
@click.option("--network", type=click.Choice(NETWORKS), help="Only this network.")
@click.option("--by", "person", help="Who retries (recorded; default: your login name).")
@pass_app
def retry(app: App, release: str, network: str | None, person: str | None) -> None:
    """Put RELEASE's failed deliveries back in the queue for the next drain."""
    from socialbot import operations

    count = operations.retry(app.store, release, network, by=person or login_name())
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
@click.option("--by", "person", help="Who settles it (recorded; default: your login name).")
@pass_app
def resolve(
    app: App, release: str, network: str, url: str | None, not_posted: bool, person: str | None
) -> None:
    """Settle a delivery that may or may not have been posted (status unknown).

    Check the account first; then say --posted URL, or --not-posted to have
    the next drain send it.
    """
    from socialbot import operations

    if bool(url) == not_posted:
        raise Failure("give exactly one of --posted URL or --not-posted", EXIT_USAGE)
    delivery = operations.resolve(
        app.settings, app.store, release, network, url=url, by=person or login_name()
    )
    say(f"{release} on {network} is now {delivery.status.value}")


@cli.command()
@pass_app
def networks(app: App) -> None:
    """List the supported networks and check the credentials of the active ones.

    Each check asks the network who the credentials belong to; nothing is
    posted. The text limits a network reports are remembered for preview and
    approval.
    """
    from socialbot import operations

    checks = operations.networks(app.settings, app.store)
    for check in checks:
        if not check.active:
            say(f"{check.network:9} {check.detail}")
        elif check.accepted:
            say(f"{check.network:9} active, credentials accepted ({check.detail})")
        else:
            say(f"{check.network:9} active, credentials NOT accepted: {check.detail}")
    for _, warning in operations.credential_warnings(app.settings):
        say(f"warning: {warning}")
    if any(check.accepted is False for check in checks):
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
    from socialbot.sandbox.server import stopped_by_signals

    try:
        server = SandboxServer(host, port)
    except OSError as exc:
        raise Failure(f"cannot listen on {host}:{port}: {exc.strerror}", EXIT_USAGE) from None
    try:
        with stopped_by_signals():  # before saying so: a signal from then on stops it
            say(f"sandbox listening on {server.url} (Ctrl-C to stop); settings to use it:")
            for name, value in server.settings().items():
                say(f"export {name}={value}")
            server.httpd.serve_forever()
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
@click.option(
    "--desk",
    "with_desk",
    is_flag=True,
    help="Serve the desk with demo users instead, drain every few seconds (Ctrl-C stops).",
)
@click.option(
    "--desk-port", default=8080, show_default=True, type=int, help="The desk's port with --desk."
)
@pass_app
def demo(
    app: App,
    queue_dir: Path | None,
    port: int,
    serve: bool,
    with_desk: bool,
    desk_port: int,
) -> None:
    """Drain the queue into the local sandbox: no accounts, nothing leaves this machine.

    Approves every valid release as "demo" in a throwaway database (your own
    approvals and posting log are not touched), posts them to every network
    the sandbox fakes, and prints each post, its address, and the posting log.
    """
    from socialbot.config import load_settings
    from socialbot.demo import run_demo

    try:
        queue = queue_dir or load_settings().queue_dir
    except ConfigurationError:
        queue = Path("queue")
    if with_desk:
        from socialbot.demo import run_desk_demo

        sys.exit(run_desk_demo(queue, port=port, desk_port=desk_port, echo=say))
    sys.exit(run_demo(queue, port=port, echo=say, serve=serve))


def main() -> None:
    """Run the command line (``socialbot.start`` calls this once it is imported)."""
    os.umask(0o077)
    # A command runs once and exits: what is imported and built to start it lives until
    # the end. Frozen, the collector no longer walks it on every full collection (one
    # stalls every drain thread for tens of milliseconds) nor once more at exit.
    gc.freeze()
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
    finally:
        gc.freeze()


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
    from socialbot import operations

    if not (sources or listings or feeds):
        raise click.UsageError("name a page (URL or saved .html file), --listing URL or --feed URL")
    report = operations.import_releases(
        app.settings,
        app.store,
        sources=list(sources),
        listings=list(listings),
        feeds=list(feeds),
        follow_versions=not no_versions,
    )
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


# -- the desk: the web console and its users (issue 10) -----------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@pass_app
def desk(app: App, host: str, port: int) -> None:
    """Serve the desk, the web console: review, edit, approve and follow every post.

    Needs SOCIALBOT_DESK__SECRET_KEY and at least one user (`socialbot users add`).
    """
    from socialbot.desk.app import serve

    settings = app.settings
    if settings.desk.secret_key is None:
        raise Failure(
            "SOCIALBOT_DESK__SECRET_KEY is not set: set it to a long random value "
            "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')",
            EXIT_USAGE,
        )
    say(f"desk on http://{host}:{port}/ (Ctrl-C to stop)")
    serve(settings, host, port)


@cli.group()
def users() -> None:
    """Manage the desk's users: add, list, disable, set-role."""


@users.command(name="add")
@click.argument("name")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["author", "approver", "operator", "admin"]),
    help="author, approver, operator or admin.",
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input (one line)."
)
@pass_app
def users_add(app: App, name: str, role: str, password_stdin: bool) -> None:
    """Add a desk user NAME with ROLE; the password is asked for (never an argument)."""
    from socialbot.desk.users import Users, parse_role

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = Users(app.store).add(name, parse_role(role), password)
    say(f"added {user.name} ({user.role.value})")


@users.command(name="list")
@pass_app
def users_list(app: App) -> None:
    """List the desk's users, their roles and whether they are enabled."""
    from socialbot.desk.users import Users

    found = Users(app.store).all()
    if not found:
        say("no desk users yet: socialbot users add NAME --role admin")
    for user in found:
        say(f"{user.name:24} {user.role.value:9} {'disabled' if user.disabled else 'enabled'}")


@users.command(name="disable")
@click.argument("name")
@pass_app
def users_disable(app: App, name: str) -> None:
    """Disable NAME: their sessions stop working at once."""
    from socialbot.desk.users import Users

    Users(app.store).disable(name)
    say(f"disabled {name}")


@users.command(name="set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(["author", "approver", "operator", "admin"]))
@pass_app
def users_set_role(app: App, name: str, role: str) -> None:
    """Give NAME another ROLE (they sign in again)."""
    from socialbot.desk.users import Users, parse_role

    Users(app.store).set_role(name, parse_role(role))
    say(f"{name} is now {role}")

"""socialbot's speed benchmark (``make bench``): prints a table of figures against targets.

1. Throughput: N releases x M networks drained by ``socialbot drain`` (a new
   process, as cron runs it) against the sandbox with 100 ms of latency per
   request, on SQLite and on PostgreSQL; the median wall time against the
   lower bound (the slowest network's requests x latency). Target: at most
   1.2x. Also socialbot's overhead per delivery on each network.
2. Cold start: ``import socialbot.cli``, and an idle ``socialbot drain``
   (nothing due, a realistic queue and posting log) on SQLite. Target: < 0.35 s.
3. History (``--only history``, not run by default): drains over queues of
   1 000 and 10 000 files, then over a posting log of a million rows.

Exits 1 only when the benchmark itself fails; a missed target prints MISS.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # run as `python bench/drain.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.coldstart import run_coldstart
from bench.common import (
    Figure,
    bench_networks,
    figures_json,
    format_figures,
    format_markdown,
    machine,
)
from bench.history import run_history
from bench.throughput import run_throughput

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

PARTS = ("throughput", "coldstart", "history")
DEFAULT_PARTS = ("throughput", "coldstart")


def latencies(values: Sequence[str]) -> dict[str, float]:
    """``0.1`` for every network, ``x=0.2`` for one; the last plain value is the default."""
    default, specific = 0.0, {}
    for value in values:
        name, _, seconds = value.rpartition("=")
        if name:
            specific[name] = float(seconds)
        else:
            default = float(seconds)
    return {**dict.fromkeys(bench_networks(), default), **specific}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/drain.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--sizes",
        default="40x2,50x6",
        help="releases x networks for the throughput drains (default 40x2,50x6;"
        " the first M networks of x, facebook, mastodon, bluesky, linkedin, telegram)",
    )
    p.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="databases for the throughput drains (default sqlite,postgresql; PostgreSQL"
        " is a throwaway cluster from /usr/lib/postgresql/*/bin, or"
        " SOCIALBOT_TEST_POSTGRES_URL)",
    )
    p.add_argument("--idle-files", type=int, default=300, help="settled files for the idle drain")
    p.add_argument(
        "--idle-history", type=int, default=3000, help="archived releases in the idle drain's log"
    )
    p.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="[NETWORK=]SECONDS",
        help="injected latency per request (default 0.1 for every network)",
    )
    p.add_argument("--runs", type=int, default=5, help="runs per median (default 5)")
    p.add_argument(
        "--files",
        default="1000,10000",
        help="queue sizes for the history part, comma-separated (default 1000,10000)",
    )
    p.add_argument("--log-rows", type=int, default=1_000_000, help="posting-log rows")
    p.add_argument("--due", type=int, default=10, help="due releases among the queue files")
    p.add_argument("--more-due", type=int, default=50, help="a larger batch, to show growth")
    p.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only this part (repeatable; default throughput and coldstart)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the code, not speed")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    return p


def sizes(text: str) -> list[tuple[int, list[str]]]:
    """``40x2,50x6`` as (releases, networks) pairs."""
    networks = bench_networks()
    found = []
    for item in text.split(","):
        releases, _, count = item.strip().partition("x")
        found.append((int(releases), networks[: int(count or len(networks))]))
    return found


def run(args: argparse.Namespace) -> list[Figure]:
    if args.quick:
        args.sizes, args.runs, args.files = "3x2,2x6", 1, "30,60"
        args.idle_files, args.idle_history = 20, 50
        args.log_rows, args.due, args.more_due = 2_000, 3, 3
        args.latency = args.latency or ["0.02"]
    parts = args.only or DEFAULT_PARTS
    figures: list[Figure] = []
    if "throughput" in parts:
        delays = latencies(["0.1", *args.latency])
        databases = [d.strip() for d in args.databases.split(",") if d.strip()]
        figures += run_throughput(
            sizes(args.sizes),
            delays,
            args.runs,
            databases,
            lambda: postgres_server(databases),
        )
    if "coldstart" in parts:
        figures += run_coldstart(
            args.runs, args.idle_files, args.idle_history, count=not args.quick
        )
    if "history" in parts:
        files = [int(size) for size in args.files.split(",") if size.strip()]
        figures += run_history(files, args.log_rows, args.due, args.more_due, args.runs)
    return figures


@contextlib.contextmanager
def postgres_server(databases: Sequence[str]) -> Iterator[PostgresServer | None]:
    """The test suite's throwaway PostgreSQL cluster, when PostgreSQL is asked for."""
    if "postgresql" not in databases:
        yield None
        return
    from tests.postgres import NO_SERVER
    from tests.postgres import postgres_server as server

    with server() as found:
        if found is None:
            print(f"bench: PostgreSQL skipped: {NO_SERVER}", file=sys.stderr)
        yield found


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not bench_networks():
        print("bench: no network has both a sandbox and an adapter", file=sys.stderr)
        return 1
    started = time.perf_counter()
    figures = run(args)
    took = time.perf_counter() - started
    about = machine()
    header = "  ".join(f"{key}: {value}" for key, value in about.items())
    print(f"socialbot benchmark ({took:.0f} s)  {header}")
    print(f"networks: {', '.join(bench_networks())}\n")
    print(format_markdown(figures) if args.markdown else format_figures(figures))
    verdicts = [f.verdict for f in figures if f.verdict]
    print(f"\n{verdicts.count('PASS')} targets met, {verdicts.count('MISS')} missed")
    if args.json:
        args.json.write_text(figures_json(figures) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

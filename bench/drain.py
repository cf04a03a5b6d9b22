"""socialbot's speed benchmark (``make bench``): prints a table of figures against targets.

1. Throughput: N releases x M networks drained against the sandbox with
   injected latency; wall time against the lower bound (the slowest network's
   sequential time), as a ratio. Target: at most 1.2.
2. Cold start: an idle ``socialbot drain`` against ``python -c "import socialbot"``.
   Target: well under a second.
3. History: drains over queues of 1 000 and 10 000 files (10 due), then over a
   posting log of a million rows; ``log --since 1d`` and ``status`` on it, and
   the query plans of everything they run. Target: cost follows due work.

Exits 1 only when the benchmark itself fails; a missed target prints MISS.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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

PARTS = ("throughput", "coldstart", "history")


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
    p.add_argument("--releases", type=int, default=50, help="N for the throughput drain")
    p.add_argument(
        "--latency",
        action="append",
        default=[],
        metavar="[NETWORK=]SECONDS",
        help="injected latency per request (default 0.1 for every network)",
    )
    p.add_argument("--runs", type=int, default=5, help="runs per median")
    p.add_argument(
        "--files",
        default="1000,10000",
        help="queue sizes for the history part, comma-separated (default 1000,10000)",
    )
    p.add_argument("--log-rows", type=int, default=1_000_000, help="posting-log rows")
    p.add_argument("--due", type=int, default=10, help="due releases among the queue files")
    p.add_argument("--more-due", type=int, default=50, help="a larger batch, to show growth")
    p.add_argument("--only", choices=PARTS, action="append", help="run only this part")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the code, not speed")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    return p


def run(args: argparse.Namespace) -> list[Figure]:
    if args.quick:
        args.releases, args.runs, args.files = 4, 1, "30,60"
        args.log_rows, args.due, args.more_due = 2_000, 3, 3
        args.latency = args.latency or ["0.02"]
    parts = args.only or PARTS
    figures: list[Figure] = []
    if "throughput" in parts:
        delays = latencies(["0.1", *args.latency])
        figures += run_throughput(args.releases, delays, min(args.runs, 3))
    if "coldstart" in parts:
        figures += run_coldstart(args.runs)
    if "history" in parts:
        sizes = [int(size) for size in args.files.split(",") if size.strip()]
        figures += run_history(sizes, args.log_rows, args.due, args.more_due, args.runs)
    return figures


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

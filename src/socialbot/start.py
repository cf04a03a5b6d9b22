"""Where the ``socialbot`` command starts (the console script and ``python -m socialbot``).

Importing the command line builds long-lived objects by the hundred thousand (modules,
classes, pydantic's validators) and almost no garbage, yet the collector's young
collections walk them again and again while they load: about 3 % of an idle cron run
(docs/benchmark.md). So the collector pauses while a command's code loads.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loading(*, freeze: bool = False) -> Iterator[None]:
    """No collection while the block imports.

    With ``freeze``, what exists at the end is moved out of the collector's reach for
    good: only for a process that runs one command and exits (never the test suite's).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if enabled:
            gc.enable()


def main() -> None:
    """Entry point of the ``socialbot`` console script."""
    with loading(freeze=True):
        from socialbot.cli import main as run
    run()

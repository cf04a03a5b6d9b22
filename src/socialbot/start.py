"""Where the ``socialbot`` command starts (the console script and ``python -m socialbot``).

Importing the command line builds long-lived objects by the hundred thousand (modules,
classes, pydantic's validators) and almost no garbage, yet the collector's young
collections walk them again and again while they load: about 2 % of an idle cron run
(docs/benchmark.md). So the collector is off while ``socialbot.cli`` loads, and what
loaded is frozen (never walked again) before it is switched back on.
"""

from __future__ import annotations

import gc


def main() -> None:
    """Entry point of the ``socialbot`` console script."""
    gc.disable()
    try:
        from socialbot.cli import main as run
    finally:
        gc.freeze()
        gc.enable()
    run()

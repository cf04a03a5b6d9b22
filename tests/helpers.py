"""Helpers shared by the tests: writing release files, running the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from socialbot.cli import cli


def write_release(queue: Path, name: str, **fields: Any) -> Path:
    """Write a release file (JSON or YAML by the name's suffix) into ``queue``."""
    data = {
        "title": "Regions call for a stronger cohesion policy after 2027",
        "url": "https://cor.europa.eu/en/news/Pages/cohesion.aspx",
        "language": "en",
        **fields,
    }
    path = queue / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def run(*args: str) -> Result:
    """Run the CLI in-process, as a user would type it."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def fresh_python(code: str) -> str:
    """What ``code`` prints in a new interpreter, stripped: for what an import loads."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()

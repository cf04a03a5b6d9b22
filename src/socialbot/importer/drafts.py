"""Writing a draft release file: YAML a person can edit, that reads back exactly.

Strings are emitted plain only where YAML reads them back as the same string, quoted
otherwise (a ``#``, a leading ``-``, ``yes``/``no``, a number-like ``2024``), and multi-line
texts as literal blocks. The file is read back with ``read_release`` and compared with
the intended release before it replaces anything; if it differs, every scalar is
double-quoted instead. The write is atomic (a hidden temporary file, then a rename).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from socialbot.errors import InvalidRelease
from socialbot.models import Release
from socialbot.releases import read_release

FIELD_ORDER = (
    "id",
    "title",
    "language",
    "url",
    "summary",
    "body",
    "topics",
    "published",
    "version_of",
    "source_url",
)


class _Dumper(yaml.SafeDumper):
    quote_all = False


def _str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    if dumper.quote_all:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    if "\n" in value and not any(ch in value for ch in "\r\t\x85\u2028\u2029"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def release_data(release: Release) -> dict[str, Any]:
    """The fields worth writing, in a readable order, dates as ISO text."""
    data = release.model_dump(mode="json", exclude_defaults=True)
    ordered = {name: data.pop(name) for name in FIELD_ORDER if name in data}
    ordered.update(data)
    return ordered


def render(release: Release, comments: list[str], *, quote_all: bool = False) -> str:
    dumper = type("Dumper", (_Dumper,), {"quote_all": quote_all})
    text = yaml.dump(
        release_data(release),
        Dumper=dumper,
        allow_unicode=True,
        sort_keys=False,
        width=100,
        default_flow_style=False,
    )
    header = "".join(f"# {line}\n" for line in comments if "\n" not in line)
    return header + text


def write_draft(release: Release, path: Path, comments: list[str]) -> None:
    """Write ``release`` to ``path`` so that read_release gives it back exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for quote_all in (False, True):
        text = render(release, comments, quote_all=quote_all)
        # Written under its own name in a hidden folder beside the queue (the file name is
        # the release id), then renamed into place: readers never see half a file.
        folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=".import-"))
        tmp_path = folder / path.name
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if _read_back(tmp_path) == release:
                os.replace(tmp_path, path)
                return
        finally:
            tmp_path.unlink(missing_ok=True)
            folder.rmdir()
    raise InvalidRelease(str(path), "could not be written so that it reads back unchanged")


def _read_back(tmp: Path) -> Release | None:
    """The temporary file as the queue will read it (its id comes from the data)."""
    try:
        return read_release(tmp)
    except InvalidRelease:
        return None

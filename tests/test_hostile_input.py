"""Hostile files in the queue: one clear line each, nothing posted from them, bounded memory.

Each bad file sits beside a valid approved release, which must still go out
once to every network; the drain runs as a real process so a blocking read or
a runaway parser would show as a timeout, not a hung test run.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest

from socialbot.errors import InvalidRelease
from socialbot.releases import MAX_FILE_BYTES, read_release
from socialbot.sandbox import SandboxServer
from tests import drainer
from tests.helpers import run, write_release

VALID = {
    "title": "Regions call for a stronger cohesion policy after 2027",
    "url": "https://cor.europa.eu/en/news/Pages/cohesion.aspx",
    "language": "en",
}

ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["title: *i", "url: https://cor.europa.eu/", "language: en"]
)


def hostile_files(queue: Path, outside: Path) -> dict[str, str]:
    """Create every kind of bad file; return its name -> words its error must contain."""
    valid = json.dumps(VALID)
    files: dict[str, tuple[str | bytes, str]] = {
        "truncated.json": (valid[:40], "not valid JSON"),
        "latin1.json": (
            json.dumps({**VALID, "title": "Régions"}, ensure_ascii=False).encode("latin-1"),
            "not valid UTF-8",
        ),
        "python-tag.yaml": (
            "title: !!python/object/apply:os.system ['touch pwned']\n"
            "url: https://cor.europa.eu/\nlanguage: en\n",
            "!!python/object/apply:os.system",
        ),
        "alias-bomb.yaml": (ALIAS_BOMB, "alias"),
        "unknown-field.json": (json.dumps({**VALID, "colour": "red"}), "'colour'"),
        "javascript.json": (
            json.dumps({**VALID, "url": "javascript:alert(document.cookie)"}),
            "'url'",
        ),
        "huge-number.json": (valid[:-1] + ', "summary": ' + "9" * 5000 + "}", "digits"),
        "surrogate.json": (valid.replace("Regions", "Regions \\ud800"), "surrogate"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        "list.yaml": ("- just\n- a list\n", "mapping"),
        "new\nline.json": ("{", "not valid JSON"),
    }
    expected = {}
    for name, (content, words) in files.items():
        data = content.encode() if isinstance(content, str) else content
        (queue / name).write_bytes(data)
        expected[name] = words
    with open(queue / "huge.json", "wb") as handle:  # 10 MB, and no need to write them
        handle.truncate(10 * 1024 * 1024)
    expected["huge.json"] = "bytes"
    os.mkfifo(queue / "fifo.json")
    expected["fifo.json"] = "not a regular file"
    (outside / "escape.json").write_text(valid)
    (queue / "escape.json").symlink_to(outside / "escape.json")
    expected["escape.json"] = "outside the queue"
    (queue / os.fsdecode(b"bad-\xff-name.json")).write_text(valid)
    expected[os.fsdecode(b"bad-\xff-name.json")] = "not UTF-8"
    return expected


def shown(name: str) -> str:
    """How a file name appears in a one-line message."""
    return name.replace("\n", "\\n").replace(os.fsdecode(b"\xff"), "\\xff")


def test_each_hostile_file_is_one_line_and_the_valid_release_still_goes_out(
    env: Path, sandbox: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    queue = env / "queue"
    slugs = drainer.add_releases(queue, "beside", range(1))
    expected = hostile_files(queue, tmp_path_factory.mktemp("outside"))

    result = drainer.call("drain", env=drainer.environment(), timeout=30)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for name, words in expected.items():
        about = [line for line in lines if f"queue/{shown(name)}:" in line]
        assert len(about) == 1, (name, result.stderr)
        assert words in about[0], (name, about[0])
    assert not (env / "pwned").exists()
    counts = drainer.posts_per_delivery(sandbox, slugs)
    assert all(counts[r, n] == 1 for r in slugs for n in sandbox.networks), counts
    assert len(sandbox.posts()) == len(sandbox.networks)
    # Again from the scan cache: nothing new, so cron hears nothing (status still tells).
    again = drainer.call("drain", env=drainer.environment(), timeout=30)
    assert (again.returncode, again.stderr) == (0, "")
    assert len(sandbox.posts()) == len(sandbox.networks)
    status = drainer.call("status", env=drainer.environment(), timeout=30)
    assert status.returncode == 1
    for name in expected:
        assert f"queue/{shown(name)}:" in status.stdout, name


def test_hostile_files_cannot_be_approved(
    env: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    queue = env / "queue"
    expected = hostile_files(queue, tmp_path_factory.mktemp("outside"))
    for name, words in expected.items():
        if "\n" in name or not name.isprintable():
            continue  # not typeable as an argument; its drain line is checked above
        result = run("approve", f"queue/{name}", "--by", "Ana")
        assert result.exit_code == 1, name
        assert result.output.count("\n") == 1 and words in result.output, (name, result.output)
    assert run("log", "--approvals").output.strip() == ""


def test_a_file_over_the_size_cap_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b'{"title": "' + b"x" * (10 * 1024 * 1024) + b'"}')
    tracemalloc.start()
    try:
        with pytest.raises(InvalidRelease, match="bytes"):
            read_release(path, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MAX_FILE_BYTES * 2, peak


def test_a_file_that_grows_after_the_size_check_is_read_no_further(tmp_path: Path) -> None:
    # A FIFO reports size 0 to fstat; the read itself must still stop at the cap.
    path = tmp_path / "growing.json"
    path.write_bytes(b" " * (MAX_FILE_BYTES + 10))
    with pytest.raises(InvalidRelease, match="bytes"):
        read_release(path, tmp_path)


def test_a_release_changed_after_approval_is_not_posted(env: Path, sandbox: SandboxServer) -> None:
    path = write_release(env / "queue", "changed.json", networks=["x"])
    assert run("approve", "queue/changed.json", "--by", "Ana").exit_code == 0
    write_release(env / "queue", "changed.json", networks=["x"], summary="Added afterwards.")
    os.utime(path, ns=(1, 1))

    result = drainer.call("drain", env=drainer.environment())

    assert result.returncode == 1
    assert "revision 2 was made after revision 1 was approved" in result.stderr
    assert sandbox.posts() == []

"""Reading the queue directory: release files, their validation, and the scan that
records their revisions.

A release file is JSON (``*.json``) or YAML (``*.yaml``/``*.yml``, read with a
safe loader that also refuses aliases). Reading is defensive: only regular
files inside the queue, at most ``MAX_FILE_BYTES``, strict UTF-8; every problem
becomes one ``InvalidRelease`` naming the file and, when it applies, the field.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from socialbot.errors import InvalidRelease, first_line, printable
from socialbot.files import FileTooLarge, NotARegularFile, read_regular
from socialbot.models import RELEASE_ID, Release
from socialbot.store import QueueFile, Store

MAX_FILE_BYTES = 512 * 1024
SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class QueueEntry:
    """One file of the queue, as the scan saw it."""

    path: Path
    signature: str
    release_id: str | None = None
    content_hash: str | None = None
    not_before: datetime | None = None
    error: str | None = None
    release: Release | None = None
    """The content, when the file was read in this scan (not from the cache)."""
    clash: bool = False
    """Another file of the queue claims the same release id."""

    @property
    def claimed_id(self) -> str | None:
        """The release this file is about: its id, or for a release file that cannot be read,
        the id its name gives."""
        if self.release_id is not None:
            return self.release_id
        stem, suffix = os.path.splitext(self.path.name)
        return stem if suffix.lower() in SUFFIXES and RELEASE_ID.fullmatch(stem) else None


def file_signature(st: os.stat_result) -> str:
    """Changes whenever the file is replaced or rewritten: the change time too, which no
    one can set (``cp -p`` and ``touch -d`` set the modification time back)."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def read_release(path: Path, queue_dir: Path | None = None) -> Release:
    """Read and validate one release file. Raises InvalidRelease."""
    data = _parse(path, _read_bytes(path, queue_dir))
    if not RELEASE_ID.fullmatch(path.stem):
        # The id is the file name: say so, not "field 'id'", which the file may lack.
        raise InvalidRelease(
            str(path),
            "its name is not a usable release id (letters, digits, '.', '_' or '-'): "
            "rename the file",
        )
    data.setdefault("id", path.stem)
    if isinstance(data["id"], str) and data["id"] != path.stem:
        # The file name is the id people use; a file claiming another id could be
        # approved or posted in another's place.
        raise InvalidRelease(
            str(path),
            f"its id {data['id']!r} differs from its file name {path.stem!r}: "
            "rename the file or remove the 'id' field",
            field="id",
        )
    try:
        return Release.model_validate(data)
    except ValidationError as exc:
        raise _invalid(path, exc) from None
    except (TypeError, ValueError) as exc:
        raise InvalidRelease(str(path), f"does not validate ({type(exc).__name__})") from None


MEDIA_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".heic", ".tif", ".tiff", ".bmp", ".svg"}
)
"""Images a release names sit beside it in the queue; they are not releases."""


def release_files(queue_dir: Path) -> Iterable[os.DirEntry[str]]:
    """The candidate files of the queue: everything but hidden and backup files and images."""
    try:
        with os.scandir(queue_dir) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith(".") or entry.name.endswith("~"):
                    continue
                if os.path.splitext(entry.name)[1].lower() in MEDIA_SUFFIXES:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    continue
                yield entry
    except FileNotFoundError:
        return


def describe(path: Path, queue_dir: Path, signature: str) -> QueueEntry:
    """Read one file into a QueueEntry, turning any problem into ``error``."""
    try:
        release = read_release(path, queue_dir)
    except InvalidRelease as exc:
        return QueueEntry(path, signature, error=str(exc))
    return QueueEntry(
        path,
        signature,
        release_id=release.id,
        content_hash=release.content_hash(),
        not_before=release.not_before,
        release=release,
    )


def scan_queue(queue_dir: Path, store: Store, now: datetime | None = None) -> list[QueueEntry]:
    """Every file of the queue, read only when it changed since the last scan.

    A file whose content changed becomes a new revision of its release in the
    store. The store remembers each file's stat signature and what it held,
    so a queue of thousands of settled releases costs a ``stat`` per file.
    A file that disappears changes nothing.
    """
    cache = store.queue_files()
    entries: list[QueueEntry] = []
    fresh: list[QueueFile] = []
    for dirent in release_files(queue_dir):
        path = Path(dirent.path)
        if not _utf8(dirent.name):
            # Not cached: the store keeps paths as UTF-8 text.
            entries.append(
                QueueEntry(path, "", error=f"{printable(path)}: the file name is not UTF-8")
            )
            continue
        try:
            signature = file_signature(dirent.stat(follow_symlinks=False))
            if dirent.is_symlink():
                signature += "->" + file_signature(dirent.stat(follow_symlinks=True))
        except OSError as exc:
            entries.append(
                QueueEntry(path, "", error=f"{printable(path)}: cannot be read ({exc.strerror})")
            )
            continue
        cached = cache.get(str(path))
        if cached is not None and cached.signature == signature:
            entries.append(
                QueueEntry(
                    path,
                    signature,
                    cached.release_id,
                    cached.content_hash,
                    cached.not_before,
                    cached.error,
                )
            )
            continue
        entry = describe(path, queue_dir, signature)
        entries.append(entry)
        fresh.append(
            QueueFile(
                str(path),
                signature,
                entry.release_id,
                entry.content_hash,
                entry.not_before,
                entry.error,
            )
        )
    entries = mark_duplicate_ids(entries)
    # A file whose id another file claims too is read again by every scan until the clash
    # ends: then it is recorded as a revision like any changed file, never left in the cache.
    clashing = {str(entry.path) for entry in entries if entry.clash}
    present = {str(entry.path) for entry in entries if entry.signature} - clashing
    stamp = now or datetime.now(UTC)
    for entry in entries:
        if entry.release is not None and not entry.error:
            store.record_revision(entry.release, source=str(entry.path), author=None, now=stamp)
    # Remembered only once the revisions are recorded: a crash in between reads them again.
    # Only this queue's files: another host may reach the same queue by another path, and
    # its entries are its own cache.
    here = str(queue_dir)
    forgotten = [path for path in cache if path not in present and os.path.dirname(path) == here]
    store.remember_files([f for f in fresh if f.path not in clashing], forgotten)
    return entries


def mark_duplicate_ids(entries: list[QueueEntry]) -> list[QueueEntry]:
    """Two files with one release id: both are errors, neither is posted."""
    seen: dict[str, list[QueueEntry]] = {}
    for entry in entries:
        if entry.release_id:
            seen.setdefault(entry.release_id, []).append(entry)
    result = []
    for entry in entries:
        clashes = seen.get(entry.release_id or "", [])
        if len(clashes) > 1:
            others = ", ".join(printable(e.path) for e in clashes if e is not entry)
            entry = QueueEntry(
                entry.path,
                entry.signature,
                release_id=entry.release_id,
                error=f"{printable(entry.path)}: field 'id': release id {entry.release_id!r} "
                f"is also used by {others}",
                clash=True,
            )
        result.append(entry)
    return result


def _read_bytes(path: Path, queue_dir: Path | None) -> bytes:
    if path.suffix.lower() not in SUFFIXES:
        raise InvalidRelease(str(path), "is not a release file (use .json, .yaml or .yml)")
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = path.resolve()
            if queue_dir is not None and not target.is_relative_to(queue_dir.resolve()):
                raise InvalidRelease(str(path), "is a symbolic link pointing outside the queue")
        content = read_regular(path, MAX_FILE_BYTES)
    except NotARegularFile:
        raise InvalidRelease(str(path), "is not a regular file") from None
    except FileTooLarge as exc:
        raise InvalidRelease(
            str(path), f"is {exc.size} bytes; a release file may have {MAX_FILE_BYTES}"
        ) from None
    except FileNotFoundError:
        raise InvalidRelease(str(path), "does not exist") from None
    except OSError as exc:
        raise InvalidRelease(str(path), f"cannot be read ({exc.strerror})") from None
    if len(content) > MAX_FILE_BYTES:
        raise InvalidRelease(str(path), f"is larger than {MAX_FILE_BYTES} bytes")
    return content


def _parse(path: Path, content: bytes) -> dict[str, Any]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRelease(
            str(path), f"is not valid UTF-8 (byte {exc.start} is 0x{content[exc.start]:02x})"
        ) from None
    if "\x00" in text:
        raise InvalidRelease(str(path), "contains a NUL character")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_one_of_each)
        except _Twice as exc:
            field = exc.args[0]
            raise InvalidRelease(str(path), f"has the field {field!r} twice; keep one") from None
        except json.JSONDecodeError as exc:
            raise InvalidRelease(
                str(path), f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
            ) from None
        except RecursionError:
            raise InvalidRelease(str(path), "is not valid JSON (nested too deeply)") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise InvalidRelease(str(path), f"is not usable JSON ({first_line(exc)})") from None
    else:
        from socialbot.release_yaml import load_yaml

        data = load_yaml(path, text)
    if not isinstance(data, dict):
        raise InvalidRelease(str(path), "must hold a mapping of fields (title, url, language, …)")
    try:
        json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        # "\ud800" escapes decode to lone surrogates, which no network accepts.
        raise InvalidRelease(
            str(path), "contains an unpaired UTF-16 surrogate escape (such as \\ud800)"
        ) from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidRelease(str(path), f"holds an unusable value ({first_line(exc)})") from None
    return data


class _Twice(ValueError):
    """A JSON object gives one key twice."""


def _one_of_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (``json`` would keep the last silently)."""
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _Twice(key)
        data[key] = value
    return data


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _invalid(path: Path, exc: ValidationError) -> InvalidRelease:
    """Every problem of the file in one sentence, the first one's field named."""
    problems = []
    fields = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        elif error["type"] == "extra_forbidden":
            message = "is not a release field"
            import difflib  # only on this error path: an idle cron run never pays for it

            close = difflib.get_close_matches(field, list(Release.model_fields), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        fields.append(field)
        problems.append((field, message))
    first_field, first = problems[0]
    rest = "; ".join(f"field {printable(f)!r}: {m}" for f, m in problems[1:])
    return InvalidRelease(
        str(path), first + (f"; {rest}" if rest else ""), field=first_field or None
    )

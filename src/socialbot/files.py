"""Reading the files people leave for socialbot: release files, and the images beside them.

The queue is a folder anyone on the team writes to. Opening a FIFO there would wait for a
writer and hang cron, so nothing is opened blocking; a device or a folder is not a file;
and nothing is read past the size socialbot takes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotARegularFile(Exception):
    """A FIFO, a device, a socket or a folder where a file was expected."""


class FileTooLarge(Exception):
    """A file whose size already says it is more than socialbot reads."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def read_regular(path: Path, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of the regular file at ``path`` (one more than ``limit``
    shows that it grew past it while being read).

    Raises NotARegularFile, FileTooLarge, or the OSError of opening or reading it.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(str(path))
        if st.st_size > limit:
            raise FileTooLarge(st.st_size)
        return handle.read(limit + 1)

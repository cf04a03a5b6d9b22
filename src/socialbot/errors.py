"""The exceptions socialbot raises, and what each tells the caller to do.

    SocialbotError
    ├── ConfigurationError      a setting is missing or wrong (exit status 2)
    ├── InvalidRelease          a release file cannot be read or validated
    ├── ApprovalError           approve/resolve/retry asked for something impossible
    ├── AlreadyRunning          another drain holds the lock
    ├── StoreError              the database cannot be written (disk full, read-only)
    ├── ComposeError            a release cannot become a valid post for a network
    └── DeliveryError           a network call did not produce a post
        ├── RateLimited         the network said "not before retry_at"
        ├── TransientError      nothing was created; safe to try again
        ├── AmbiguousError      the request may have created a post
        ├── DuplicateError      the network already holds this post
        └── PermanentError      retrying the same request cannot help
            └── AuthError       the credentials were refused

Adapters translate their library's exceptions into these at their boundary, so
nothing above ``socialbot.adapters`` knows about tweepy or httpx.
"""

from __future__ import annotations

from datetime import datetime


class SocialbotError(Exception):
    """Base class for every error socialbot raises on purpose."""


class ConfigurationError(SocialbotError):
    """A setting is missing or invalid; the message names the variable."""


def printable(text: object) -> str:
    """``text`` fit for one line of a message: control characters and bytes that
    are not UTF-8 (in a file name) shown as escapes, so a hostile name cannot
    break the line or the terminal."""
    out = []
    for char in str(text):
        code = ord(char)
        if char.isprintable():
            out.append(char)
        elif 0xDC80 <= code <= 0xDCFF:  # a byte os.fsdecode could not decode
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


class InvalidRelease(SocialbotError):
    """A release file that cannot be read or does not validate (one line, naming the file)."""

    def __init__(self, path: str, problem: str, field: str | None = None) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        where = f" field {printable(field)!r}:" if field else ""
        super().__init__(f"{printable(path)}:{where} {printable(problem)}")


class InvalidImage(InvalidRelease):
    """An image a release names that cannot be posted as it is, or its alt text
    (one line, naming the image's file or URL); the release is refused like any
    other invalid release, and the rest of the queue carries on."""

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        super().__init__(source, problem)


class ApprovalError(SocialbotError):
    """An operator command that cannot be carried out as asked."""


class AlreadyRunning(SocialbotError):
    """Another drain holds the lock; ``stale`` when it has held it far too long."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        self.stale = stale
        super().__init__(message)


class StoreError(SocialbotError):
    """The database refused a write for a reason no retry in this run can fix."""


class DeliveryError(SocialbotError):
    """A network call that did not end in a post.

    Carries what a handler needs: the network, the HTTP status and the
    platform's own error code when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        network: str,
        status_code: int | None = None,
        api_code: int | str | None = None,
    ) -> None:
        self.network = network
        self.status_code = status_code
        self.api_code = api_code
        super().__init__(message)


class RateLimited(DeliveryError):
    """The network refused for now; ``retry_at`` says when to come back (UTC)."""

    def __init__(
        self,
        message: str,
        *,
        network: str,
        retry_at: datetime,
        status_code: int | None = None,
        api_code: int | str | None = None,
    ) -> None:
        self.retry_at = retry_at
        super().__init__(message, network=network, status_code=status_code, api_code=api_code)


class TransientError(DeliveryError):
    """The request was not processed (refused connection, 5xx before sending)."""


class AmbiguousError(DeliveryError):
    """The request may have reached the network and created a post."""


class DuplicateError(DeliveryError):
    """The network says it already holds this exact post."""


class PermanentError(DeliveryError):
    """The network rejected the request; repeating it cannot succeed."""


class AuthError(PermanentError):
    """The network refused the credentials: every delivery to it will fail."""


class ComposeError(SocialbotError):
    """A release cannot be turned into a valid post for one network."""

    def __init__(self, network: str, problem: str) -> None:
        self.network = network
        self.problem = problem
        super().__init__(f"{network}: {problem}")


def first_line(exc: BaseException) -> str:
    """An exception's message in one short line, for an error about a file."""
    if "integer string conversion" in str(exc):
        return "a number has more digits than can be read"
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__

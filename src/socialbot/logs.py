"""Logging set-up, with every secret redacted from every line.

The filter sits on the handler (a filter on one logger misses its children),
formats the arguments before redacting (``%s`` arguments would slip past a
filter that rewrites only ``msg``), and redacts tracebacks too. Each secret is
also matched URL-encoded and base64-encoded.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
import traceback
from urllib.parse import quote, quote_plus

MASK = "[redacted]"
_lock = threading.Lock()
_patterns: set[str] = set()
_secrets: set[str] = set()


def _variants(secret: str) -> set[str]:
    raw = secret.encode("utf-8")
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(quote(secret, safe=""), safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return {form for form in forms if len(form) >= 4}


def register_secret(*secrets: str | None) -> None:
    """Add secrets (credentials, session tokens) to be masked from now on."""
    with _lock:
        for secret in secrets:
            if secret and secret not in _secrets and len(secret) >= 4:
                _secrets.add(secret)
                _patterns.update(_variants(secret))


def redact(text: str) -> str:
    """``text`` with every known secret, in any of its encodings, masked."""
    if not _patterns:
        return text
    for pattern in sorted(_patterns, key=len, reverse=True):
        if pattern in text:
            text = text.replace(pattern, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in the formatted message and in any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure(level: str | int = "WARNING", stream: object = None) -> logging.Handler:
    """Log to stderr through the redacting filter; quiet the chattiest libraries.

    oauthlib logs signature base strings (with the access token) at DEBUG, so
    it is kept at INFO whatever the level; everything else follows ``level``.
    """
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_socialbot", False):
            root.removeHandler(existing)
    handler._socialbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # Warnings would go straight to stderr, past the filter; send them through it.
    logging.captureWarnings(True)
    for name in ("oauthlib", "requests_oauthlib"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
    return handler

"""Shared HTML helpers: decoding bytes whatever the charset claims, parsing, clean text."""

from __future__ import annotations

import codecs
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import lxml.html
from lxml import etree

# Collapse ASCII whitespace only: a non-breaking space is kept as written.
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
"""C0 and C1 controls, but those ``_SPACES`` turns into spaces (tab, line and page breaks)."""
_MARKUP = re.compile(
    r"<\s*(script|style)\b[^>]*>.*?(<\s*/\s*\1\s*>|$)|</?[A-Za-z][^<>]*>", re.IGNORECASE | re.DOTALL
)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_DROP_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "iframe",
    "form",
    "button",
    "select",
)
MAX_JSON_LD = 1_000_000


class PageError(Exception):
    """Why a page gives no draft, as one plain sentence (without the address)."""


def decode(content: bytes, declared: str | None = None) -> str:
    """The page's text: BOM, then valid UTF-8, then the declared charsets, then a guess.

    Strict UTF-8 goes first because non-ASCII text that happens to be valid UTF-8 is
    almost never anything else, whereas "charset=iso-8859-1" is often simply wrong.
    """
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if content.startswith(bom):
            name = "utf-8-sig" if bom == codecs.BOM_UTF8 else "utf-16"
            return content.decode(name, errors="replace").lstrip("\ufeff")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    candidates = [declared] if declared else []
    meta = _META_CHARSET.search(content[:4096])
    if meta:
        candidates.append(meta.group(1).decode("ascii", "replace"))
    for name in candidates:
        try:
            codec = codecs.lookup(name)
        except LookupError:
            continue
        if codec.name in ("utf-8", "utf-16", "utf-32"):
            continue
        try:
            text = content.decode(codec.name)
        except UnicodeDecodeError:
            continue
        if not _looks_misdecoded(text):
            return text
    from charset_normalizer import from_bytes

    best = from_bytes(content).best()
    if best is not None:
        return str(best)
    return content.decode("utf-8", errors="replace")


def _looks_misdecoded(text: str) -> bool:
    """Mostly accented Latin letters: Cyrillic or Greek bytes read as a Western charset.

    French or German text has a few accented letters among many plain ones; a Bulgarian
    page read as ISO-8859-1 has nothing but.
    """
    letters = [ch for ch in re.sub(r"<[^>]*>", " ", text) if ch.isalpha()]
    accented = sum(0xC0 <= ord(ch) <= 0xFF for ch in letters)
    return len(letters) >= 20 and accented / len(letters) > 0.4


def parse(text: str) -> Any:
    """An lxml document; raises PageError for what is not HTML at all."""
    text = _XML_DECLARATION.sub("", text.replace("\x00", ""))
    if not text.strip():
        raise PageError("the page is empty")
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise PageError(f"the page is not readable HTML ({exc})") from None


def json_ld(doc: Any) -> list[dict[str, Any]]:
    """Every JSON-LD object on the page, ``@graph`` and lists flattened."""
    found: list[dict[str, Any]] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(value, list):
            for item in value[:200]:
                walk(item, depth + 1)
        elif isinstance(value, dict):
            found.append(value)
            if "@graph" in value:
                walk(value["@graph"], depth + 1)

    for script in doc.xpath('//script[@type="application/ld+json"]'):
        raw = (script.text or "")[:MAX_JSON_LD]
        try:
            walk(json.loads(raw), 0)
        except (ValueError, RecursionError):
            continue
    return found


def strip_chrome(doc: Any) -> None:
    """Scripts, styles, forms and the like never carry the text."""
    for element in doc.xpath("|".join(f"//{tag}" for tag in _DROP_TAGS)):
        element.drop_tree()
    for br in doc.xpath("//br"):
        br.tail = "\n" + (br.tail or "")


def text_of(element: Any) -> str:
    """An element's text: markup-like fragments gone, spaces collapsed line by line."""
    return clean(element.text_content())


def clean(value: str) -> str:
    """Strip markup (a ``<script>`` smuggled into a title) and control characters (an
    escape sequence would reach the operator's terminal), and collapse ASCII spaces."""
    value = _CONTROLS.sub("", _MARKUP.sub("", value))
    lines = [_SPACES.sub(" ", line).strip(" \t\r\n\f\v") for line in value.split("\n")]
    return "\n".join(line for line in lines if line)


def one_line(value: str) -> str:
    return _SPACES.sub(" ", clean(value)).strip(" ")


def absolute(base: str, href: str | None) -> str | None:
    if not href or not href.strip():
        return None
    url = urljoin(base, href.strip())
    return url if url.startswith(("http://", "https://")) else None


_NUMERIC_DATE = re.compile(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b")


def parse_date(value: str | None) -> datetime | None:
    """ISO 8601 or a European dd.mm.yyyy / dd/mm/yyyy date; a date alone is midnight UTC."""
    if not value:
        return None
    value = value.strip()
    iso = value.replace("Z", "+00:00") if value.endswith("Z") else value
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        match = _NUMERIC_DATE.search(value)
        if not match:
            return None
        day, month, year = (int(part) for part in match.groups())
        try:
            parsed = datetime(year, month, day)
        except ValueError:
            return None
    if parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed

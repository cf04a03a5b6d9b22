"""RSS 2.0 and Atom feeds, read by feedparser behind a defusedxml check.

A feed that declares XML entities (the "billion laughs" bomb and its relatives) or
external references is refused before feedparser sees it. An item whose feed carries
its full text becomes a draft from the feed alone; an item with only a teaser is
followed to its page.
"""

from __future__ import annotations

import io
import re
from calendar import timegm
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from socialbot.importer import html
from socialbot.importer.html import PageError, one_line
from socialbot.importer.listings import ListingItem

# Below this many characters of text, an item's content is a teaser: fetch the page.
FULL_TEXT_CHARACTERS = 400
_ELLIPSIS = re.compile(r"(\.\.\.|…|\[…\]|\[\.\.\.\])\s*$")


@dataclass(frozen=True)
class FeedItem:
    """One item: where it points, what the listing-like fields say, and any full text."""

    item: ListingItem
    language: str | None = None
    paragraphs: tuple[str, ...] = ()

    @property
    def full_text(self) -> bool:
        text = "\n".join(self.paragraphs)
        return len(text) >= FULL_TEXT_CHARACTERS and not _ELLIPSIS.search(text)


def check_xml(content: bytes) -> None:
    """Refuse entity declarations and external references (raises PageError)."""
    import defusedxml
    from defusedxml.ElementTree import ParseError, fromstring

    if re.search(rb"<!ENTITY", content[:65536], re.IGNORECASE):
        raise PageError("the feed declares XML entities, which import refuses (an entity bomb?)")
    try:
        fromstring(content, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise PageError(
            "the feed declares XML entities or external references, which import refuses"
        ) from None
    except ParseError:
        pass  # malformed: feedparser's lenient parser reads what it can


def read_feed(content: bytes, *, url: str, max_items: int) -> list[FeedItem]:
    """The feed's items, newest first as the feed lists them, at most ``max_items``."""
    check_xml(content)
    import feedparser

    # A file object, never a string: feedparser would fetch a string that looks like a URL.
    parsed: Any = feedparser.parse(io.BytesIO(content), resolve_relative_uris=False)
    if not parsed.entries:
        if parsed.get("bozo"):
            raise PageError("the feed is not readable RSS or Atom")
        raise PageError("the feed has no items")
    feed_language = _code(str(parsed.feed.get("language") or ""))
    items = []
    for entry in parsed.entries[:max_items]:
        link = html.absolute(url, entry.get("link"))
        if link is None:
            continue
        content_html = ""
        if entry.get("content"):
            content_html = str(entry.content[0].get("value") or "")
        teaser_html = str(entry.get("summary") or "")
        paragraphs = _paragraphs(content_html or teaser_html)
        published = _date(entry.get("published_parsed") or entry.get("updated_parsed"))
        topics = tuple(
            dict.fromkeys(one_line(str(t.get("term") or "")) for t in entry.get("tags") or [])
        )
        language = None
        if entry.get("content"):
            language = _code(str(entry.content[0].get("language") or ""))
        items.append(
            FeedItem(
                ListingItem(
                    url=link,
                    title=one_line(str(entry.get("title") or "")),
                    topics=tuple(t for t in topics if t),
                    published=published,
                    teaser=one_line("\n".join(_paragraphs(teaser_html))),
                ),
                language=language or feed_language,
                paragraphs=tuple(paragraphs),
            )
        )
    return items


def _date(stamp: Any) -> datetime | None:
    """feedparser's UTC time tuple as a datetime; one out of range is no date.

    feedparser shifts ``0001-01-01T00:00:00+14:00`` into year 0, which datetime cannot
    hold: that item is imported without the feed's date rather than the feed dropped.
    """
    if not stamp:
        return None
    try:
        return datetime.fromtimestamp(timegm(stamp), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _paragraphs(fragment: str) -> list[str]:
    if not fragment.strip():
        return []
    doc = html.parse(f"<html><body>{fragment}</body></html>")
    html.strip_chrome(doc)
    blocks = doc.xpath("//p|//li|//h2|//h3|//blockquote")
    if not blocks:
        return [t for t in html.clean(doc.text_content()).split("\n") if t]
    result = []
    for block in blocks:
        if block.xpath("ancestor::p|ancestor::li|ancestor::blockquote"):
            continue
        text = html.text_of(block)
        if text:
            result.append(f"- {one_line(text)}" if block.tag == "li" else text)
    return result


def _code(value: str) -> str | None:
    from socialbot.models import LANGUAGES

    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else None

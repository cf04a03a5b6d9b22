"""Network text formats: Bluesky's facets and LinkedIn's "little text".

Bluesky shows a link or a hashtag as such only when the record carries a
facet for it, with UTF-8 byte offsets. ``bluesky_facets`` finds them the way
the official app does (``detectFacets`` in bluesky-social/atproto
``packages/api/src/rich-text/detection.ts``): http(s) URLs and bare domains
with a known TLD (one trailing ``.,;:!?`` or an unmatched ``)`` left out), and
``#tags`` after a space. Mentions need a DID looked up on the network, so the
composer leaves them as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import regex

from socialbot.networks import PROFILES

LITTLE_TEXT_RESERVED = "\\|{}@[]()<>#*_~"

# JavaScript's \s, which the app's regular expressions use.
_JS_SPACE = "\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_ZERO_WIDTH = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_LINK = regex.compile(
    rf"(^|[{_JS_SPACE}]|\()((https?://[^{_JS_SPACE}]+)|((?P<domain>[a-z][a-z0-9]*(?:\.[a-z0-9]+)+)"
    rf"[^{_JS_SPACE}]*))",
    regex.IGNORECASE | regex.MULTILINE,
)
_TAG = regex.compile(
    rf"(^|[{_JS_SPACE}])[#＃]((?!\ufe0f)[^{_JS_SPACE}{_ZERO_WIDTH}]*"
    rf"[^0-9{_JS_SPACE}\p{{P}}{_ZERO_WIDTH}]+[^{_JS_SPACE}{_ZERO_WIDTH}]*)?"
)
_TRAILING_PUNCTUATION = regex.compile(r"\p{P}+$")
MAX_TAG_LENGTH = 64

# A "#" that starts a hashtag stays unescaped in little text: that is how LinkedIn
# keeps it a clickable hashtag (the HashtagElement of the little text format,
# learn.microsoft.com/linkedin/marketing/community-management/shares/little-text-format).
_LITTLE_HASHTAG = regex.compile(
    r"(?<![\p{L}\p{M}\p{Nd}_#\\])#[\p{L}\p{M}\p{Nd}_]*\p{L}[\p{L}\p{M}\p{Nd}_]*"
)


def faceted(network: str) -> bool:
    """Whether ``network``'s links and hashtags live by the facets the composer writes."""
    profile = PROFILES.get(network)
    return profile is not None and profile.rich_text == "facets"


def escape_little_text(text: str) -> str:
    """Text as LinkedIn's ``commentary`` must carry it: reserved characters escaped.

    Unescaped, LinkedIn cuts the post at the first reserved character and still
    answers 201. Hashtags are kept as hashtags (a ``#`` inside a link is escaped).
    """
    out: list[str] = []
    last = 0
    in_link: bytearray | None = None
    for match in _LITTLE_HASHTAG.finditer(text):
        start = match.start()
        if start and text[start - 1] not in _LINK_BREAKS:
            # Glued to what precedes it, it may be part of a link ("…/page#part"). Only then
            # are the links found: the first search compiles twitter-text's URL patterns
            # (about 0.1 s of CPU), which a hashtag after a space never needs.
            if in_link is None:
                in_link = _link_mask(text)
            if in_link[start]:
                continue  # a "#" inside a link is part of it, and escaped with it
        out.append(_escape(text[last:start]))
        out.append(match.group())
        last = match.end()
    out.append(_escape(text[last:]))
    return "".join(out)


_LINK_BREAKS = frozenset(" \t\n\r")
"""Characters no link contains: a ``#`` right after one (or at the start) starts no link
and is inside none."""


def _link_mask(text: str) -> bytearray:
    """1 at each code point inside a link, as X or the Bluesky app would find them."""
    from socialbot.compose.twitter_text import x_urls

    in_link = bytearray(len(text) + 1)
    for start, end in [(u.start, u.end) for u in x_urls().extract(text)] + [
        (start, end) for start, end, _ in link_spans(text)
    ]:
        in_link[start:end] = b"\x01" * (end - start)
    return in_link


def _escape(text: str) -> str:
    return "".join("\\" + ch if ch in LITTLE_TEXT_RESERVED else ch for ch in text)


def _utf8_offsets(text: str) -> list[int]:
    """UTF-8 byte offset of each code point index of ``text`` (and of its end)."""
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + len(ch.encode("utf-8", "surrogatepass")))
    return offsets


@cache
def _known_tlds() -> frozenset[str]:
    from socialbot.compose.twitter_text import tlds

    return frozenset(tld for section in tlds().values() for tld in section)


def _valid_domain(domain: str) -> bool:
    """The app's ``isValidDomain``: the last label is a TLD (compared as written)."""
    return domain.rpartition(".")[2] in _known_tlds()


def link_spans(text: str) -> list[tuple[int, int, str]]:
    """The links the Bluesky app would make clickable: (start, end, uri), code point offsets."""
    spans = []
    for match in _LINK.finditer(text):
        uri = match.group(2)
        if not uri.lower().startswith("http"):
            domain = match.group("domain")
            if not domain or not _valid_domain(domain):
                continue
            uri = "https://" + uri
        start = match.start(2)
        end = match.end(2)
        if uri[-1] in ".,;:!?":
            uri, end = uri[:-1], end - 1
        if uri.endswith(")") and "(" not in uri:
            uri, end = uri[:-1], end - 1
        spans.append((start, end, uri))
    return spans


def tag_spans(text: str) -> list[tuple[int, int, str]]:
    """The hashtags the Bluesky app would make clickable: (start, end, tag without '#')."""
    spans = []
    for match in _TAG.finditer(text):
        tag = match.group(2)
        if not tag:
            continue
        tag = _TRAILING_PUNCTUATION.sub("", tag.strip())
        if not tag or len(tag.encode("utf-16-le")) // 2 > MAX_TAG_LENGTH:
            continue
        start = match.start() + len(match.group(1))
        spans.append((start, start + 1 + len(tag), tag))
    return spans


_SPACE = regex.compile(rf"[{_JS_SPACE}]")
_LINK_AFTER = frozenset(".,;:!?)]}\"'»”’›」』")
"""What may follow a whole link in its word: punctuation the app leaves out of a link,
closing quotes and brackets."""


def _whole_link(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is a whole link, not part of a longer link or domain.

    It starts where the app's detection (``_LINK``) may start one: at the start, after
    a space or ``(``; and only closing punctuation follows it up to the next space.
    """
    if start and not (text[start - 1] == "(" or _SPACE.match(text, start - 1)):
        return False
    space = _SPACE.search(text, end)
    rest = text[end : space.start() if space else len(text)]
    return all(ch in _LINK_AFTER for ch in rest)


def bluesky_facets(
    text: str, *, links: Sequence[str] = (), shown: Sequence[tuple[str, str]] = ()
) -> list[dict[str, Any]]:
    """Link and hashtag facets with exact UTF-8 byte offsets (end exclusive).

    ``links`` are URLs that must be clickable in full wherever they appear in
    ``text`` as a whole link: a facet covering each such occurrence exactly
    replaces whatever the detection found there. ``shown`` pairs a link's
    displayed text (see ``links.bluesky_display``) with its full URI: each whole
    occurrence of the display gets a facet to the full URI, likewise. A display
    inside a longer link or domain (``europa.eu`` in ``europa.eu/regional_policy``
    or ``memportal.cor.europa.eu``) is not one: that link keeps its own target.
    """
    spans = [(start, end, "link", uri) for start, end, uri in link_spans(text)]
    spans += [(start, end, "tag", tag) for start, end, tag in tag_spans(text)]
    for display, uri in [(link, link) for link in links] + list(shown):
        position = text.find(display) if display else -1
        while position != -1:
            end = position + len(display)
            if _whole_link(text, position, end):
                spans = [s for s in spans if s[1] <= position or s[0] >= end]
                spans.append((position, end, "link", uri))
            position = text.find(display, position + 1)
    spans.sort()
    offsets = _utf8_offsets(text)
    facets: list[dict[str, Any]] = []
    for start, end, kind, value in spans:
        feature = (
            {"$type": "app.bsky.richtext.facet#link", "uri": value}
            if kind == "link"
            else {"$type": "app.bsky.richtext.facet#tag", "tag": value}
        )
        facets.append(
            {"index": {"byteStart": offsets[start], "byteEnd": offsets[end]}, "features": [feature]}
        )
    return facets

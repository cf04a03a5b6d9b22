"""Turn a release into the post each network gets.

First cut (the composer issue completes it). The functions other modules rely
on, and whose signatures stay: ``compose``, ``measure``, ``graphemes``,
``bluesky_facets``, ``escape_little_text``, ``ComposeOptions``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import regex

from socialbot.errors import ComposeError
from socialbot.models import Post, Release, TextLimits

DEFAULT_LIMITS: dict[str, TextLimits] = {
    "x": TextLimits(280, 23),
    "facebook": TextLimits(63_206, 0),
    "mastodon": TextLimits(500, 23),
    "bluesky": TextLimits(300, 0),
    "linkedin": TextLimits(3000, 0),
}
BLUESKY_MAX_BYTES = 3000
LITTLE_TEXT_RESERVED = "\\|{}@[]()<>#*_~"

_GRAPHEME = regex.compile(r"\X")
_URL = regex.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'’”…]")
_TAG = regex.compile(r"(?<![\w#])#([\p{L}\p{M}\p{N}_]*[\p{L}\p{M}][\p{L}\p{M}\p{N}_]*)")


@dataclass(frozen=True)
class ComposeOptions:
    """What shapes posts beyond the release itself."""

    hashtag_map: Mapping[str, str] = field(default_factory=dict)
    utm: bool = False
    limits: Mapping[str, TextLimits] = field(default_factory=dict)
    """Per-network limits reported by the network (e.g. a Mastodon instance)."""


def graphemes(text: str) -> list[str]:
    """User-perceived characters (extended grapheme clusters)."""
    found: list[str] = _GRAPHEME.findall(text)
    return found


def escape_little_text(text: str) -> str:
    """Escape LinkedIn's "little text" reserved characters with a backslash."""
    return "".join("\\" + ch if ch in LITTLE_TEXT_RESERVED else ch for ch in text)


def bluesky_facets(text: str) -> list[dict[str, Any]]:
    """Link and hashtag facets with exact UTF-8 byte offsets (end exclusive)."""
    facets: list[dict[str, Any]] = []

    def offsets(start: int, end: int) -> dict[str, int]:
        return {
            "byteStart": len(text[:start].encode("utf-8")),
            "byteEnd": len(text[:end].encode("utf-8")),
        }

    for match in _URL.finditer(text):
        facets.append(
            {
                "index": offsets(match.start(), match.end()),
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": match.group()}],
            }
        )
    for match in _TAG.finditer(text):
        facets.append(
            {
                "index": offsets(match.start(), match.end()),
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": match.group(1)}],
            }
        )
    facets.sort(key=lambda f: f["index"]["byteStart"])
    return facets


def _x_weight(ch: str) -> int:
    cp = ord(ch)
    light = cp <= 4351 or 8192 <= cp <= 8205 or 8208 <= cp <= 8223 or 8242 <= cp <= 8247
    return 1 if light else 2


def measure(network: str, text: str, *, url_weight: int | None = None) -> int:
    """The length of ``text`` as ``network`` counts it."""
    weight = DEFAULT_LIMITS[network].url_weight if url_weight is None else url_weight
    if network == "x":
        text = unicodedata.normalize("NFC", text)
        total, last = 0, 0
        for match in _URL.finditer(text):
            total += sum(_x_weight(ch) for ch in text[last : match.start()]) + weight
            last = match.end()
        return total + sum(_x_weight(ch) for ch in text[last:])
    if network == "mastodon":
        total, last = 0, 0
        for match in _URL.finditer(text):
            total += len(graphemes(text[last : match.start()])) + weight
            last = match.end()
        return total + len(graphemes(text[last:]))
    if network == "bluesky":
        return len(graphemes(text))
    if network == "linkedin":
        return len(escape_little_text(text))
    return len(text)


def compose(release: Release, network: str, options: ComposeOptions | None = None) -> Post:
    """The post ``network`` gets for ``release``, never over the network's limit."""
    options = options or ComposeOptions()
    limits = options.limits.get(network, DEFAULT_LIMITS[network])
    limit, url_weight = limits.max_characters, limits.url_weight

    def length(text: str) -> int:
        return measure(network, text, url_weight=url_weight)

    link = release.url
    if network in release.overrides:
        text = release.overrides[network]
        if link not in text:
            text = f"{text} {link}"
        if length(text) > limit:
            raise ComposeError(
                network, f"the text override is {length(text)} long; the limit is {limit}"
            )
        return _post(network, text, link, length(text), limit, release)
    head = release.title
    if release.summary:
        head = f"{head}\n\n{release.summary}"
    text = f"{head}\n\n{link}"
    while length(text) > limit or (
        network == "bluesky" and len(text.encode("utf-8")) > BLUESKY_MAX_BYTES
    ):
        words = head.split(" ")
        head = " ".join(words[:-1]) if len(words) > 1 else "".join(graphemes(head)[:-1])
        text = f"{head.rstrip(' ,;:')}…\n\n{link}"
    return _post(network, text, link, length(text), limit, release)


def _post(network: str, text: str, link: str, length: int, limit: int, release: Release) -> Post:
    return Post(
        network=network,
        text=text,
        link=link,
        length=length,
        limit=limit,
        language=release.language,
        title=release.title,
        description=release.summary or release.body[:300],
        facets=tuple(bluesky_facets(text)) if network == "bluesky" else (),
    )

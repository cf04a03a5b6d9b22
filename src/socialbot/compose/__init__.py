"""Turn a release into the post each network gets (first cut: X and Facebook)."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from socialbot.errors import ComposeError
from socialbot.models import Post, Release

LIMITS = {"x": 280, "facebook": 63_206, "mastodon": 500, "bluesky": 300, "linkedin": 3000}


@dataclass(frozen=True)
class ComposeOptions:
    """What shapes posts beyond the release itself."""

    hashtag_map: Mapping[str, str] = field(default_factory=dict)
    utm: bool = False
    limits: Mapping[str, int] = field(default_factory=dict)


def x_length(text: str) -> int:
    """Rough X weighted length: URLs 23, Latin-1 and punctuation 1, the rest 2."""
    total = 0
    for word in unicodedata.normalize("NFC", text).split(" "):
        if word.startswith(("http://", "https://")):
            total += 23 + 1
            continue
        total += sum(1 if ord(ch) <= 4351 else 2 for ch in word) + 1
    return max(total - 1, 0)


def measure(network: str, text: str) -> int:
    return x_length(text) if network == "x" else len(text)


def compose(release: Release, network: str, options: ComposeOptions | None = None) -> Post:
    options = options or ComposeOptions()
    limit = options.limits.get(network, LIMITS[network])
    link = release.url
    if network in release.overrides:
        text = release.overrides[network]
        if link not in text:
            text = f"{text} {link}"
        length = measure(network, text)
        if length > limit:
            raise ComposeError(network, f"override is {length} long; the limit is {limit}")
        return Post(network, text, link, length, limit, release.language, release.title)
    head = release.title
    if release.summary:
        head = f"{head}\n\n{release.summary}"
    text = f"{head}\n\n{link}"
    while measure(network, text) > limit:
        words = head.split(" ")
        head = " ".join(words[:-1]) if len(words) > 1 else head[: max(len(head) - 10, 1)]
        text = f"{head.rstrip(' ,;:')}…\n\n{link}"
    return Post(
        network,
        text,
        link,
        measure(network, text),
        limit,
        release.language,
        release.title,
        release.summary,
    )

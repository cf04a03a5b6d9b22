"""How long a text is, counted the way each network counts it.

Each network's profile (``socialbot.networks``) names its counting rule, its
default limit and URL weight and any byte cap; the counting functions are here.

- X: twitter-text v3's weighted length (see ``twitter_text``).
- Mastodon: grapheme clusters after each URL (with a scheme) is replaced by the
  instance's ``characters_reserved_per_url`` characters (mastodon
  ``app/validators/status_length_validator.rb``); bare domains count as written.
  ``@user@domain`` is counted as written too, which can only over-count.
- Bluesky: grapheme clusters; the lexicon also caps the UTF-8 bytes
  (``app.bsky.feed.post``: maxGraphemes 300, maxLength 3000).
- LinkedIn: UTF-16 code units of the commentary once escaped as "little text".
- Facebook: UTF-16 code units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import regex

from socialbot.compose.richtext import escape_little_text
from socialbot.errors import ComposeError
from socialbot.models import TextLimits
from socialbot.networks import PROFILES
from socialbot.networks.base import Counting

DEFAULT_LIMITS: dict[str, TextLimits] = {
    name: TextLimits(profile.max_characters, profile.url_weight or 0)
    for name, profile in PROFILES.items()
}
"""Each network's limit when the network has not told us its own."""

NETWORK_NAMES = {name: profile.display_name for name, profile in PROFILES.items()}


def network_name(network: str) -> str:
    """``network`` as people see it named (its key, when no profile has it)."""
    return NETWORK_NAMES.get(network, network)


_GRAPHEME = regex.compile(r"\X")


def graphemes(text: str) -> list[str]:
    """User-perceived characters (extended grapheme clusters)."""
    found: list[str] = _GRAPHEME.findall(text)
    return found


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as JavaScript and Java count strings."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def mastodon_length(text: str, url_weight: int = 23) -> int:
    """Mastodon's ``StatusLengthValidator`` count of ``text``."""
    # twitter-text (and its emoji data) loads for the networks that count URLs with it.
    from socialbot.compose.twitter_text import mastodon_urls

    countable, last = [], 0
    for url in mastodon_urls().extract(text, without_protocol=False):
        countable.append(text[last : url.start])
        countable.append("x" * url_weight)
        last = url.end
    countable.append(text[last:])
    return len(graphemes("".join(countable)))


def measure(network: str, text: str, *, url_weight: int | None = None) -> int:
    """The length of ``text`` as ``network`` counts it.

    ``url_weight`` overrides what one URL counts for (X and Mastodon), e.g. a
    Mastodon instance's ``characters_reserved_per_url``.
    """
    found = PROFILES.get(network)
    if found is None:
        raise ComposeError(network, "is not a network socialbot knows")
    if url_weight is None:
        url_weight = found.url_weight
    return COUNTERS[found.counting](text, url_weight)


def _twitter(text: str, url_weight: int | None) -> int:
    from socialbot.compose.twitter_text import parse_tweet

    return parse_tweet(text, url_length=url_weight).weighted_length


COUNTERS: dict[Counting, Callable[[str, int | None], int]] = {
    "twitter": _twitter,
    "mastodon": lambda text, weight: mastodon_length(text, weight or 0),
    "graphemes": lambda text, weight: len(graphemes(text)),
    "utf16": lambda text, weight: utf16_length(text),
    "little-text": lambda text, weight: utf16_length(escape_little_text(text)),
}
"""Each counting rule a profile can name."""


@dataclass(frozen=True)
class Budget:
    """One network's limits for one post: what to count against, and how."""

    network: str
    limit: int
    url_weight: int | None
    max_bytes: int | None = None

    @classmethod
    def for_network(cls, network: str, limits: TextLimits | None = None) -> Budget:
        found = PROFILES.get(network)
        if found is None:
            raise ComposeError(network, "is not a network socialbot knows")
        limits = limits or DEFAULT_LIMITS[network]
        weight = limits.url_weight if found.url_weight is not None else None
        return cls(network, limits.max_characters, weight, found.max_bytes)

    def length(self, text: str) -> int:
        return measure(self.network, text, url_weight=self.url_weight)

    def fits(self, text: str) -> bool:
        if self.max_bytes is not None and len(text.encode("utf-8")) > self.max_bytes:
            return False
        return self.length(text) <= self.limit

    def problem(self, text: str) -> str | None:
        """Why ``text`` is over this budget, in one sentence; None when it fits."""
        name = network_name(self.network)
        length = self.length(text)
        if length > self.limit:
            return (
                f"{length} long as {name} counts it; the limit is {self.limit}, "
                f"so shorten it by {length - self.limit}"
            )
        size = len(text.encode("utf-8"))
        if self.max_bytes is not None and size > self.max_bytes:
            return f"{size} bytes in UTF-8; {name} takes at most {self.max_bytes}"
        return None

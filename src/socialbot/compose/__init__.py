"""Turn a release into the post each network gets: counting and shaping, no I/O.

The names other modules rely on, and whose signatures stay: ``compose``,
``ComposeOptions``, ``measure``, ``graphemes``, ``bluesky_facets``,
``escape_little_text``, ``DEFAULT_LIMITS``.

- ``twitter_text``: X's URL, hashtag and weighted-length rules (twitter-text v3).
- ``counting``: each network's own count, and its limits.
- ``richtext``: Bluesky facets, LinkedIn "little text".
- ``hashtags``: where hashtags come from, CamelCase, malformed tags.
- ``links``: UTM parameters, links every network makes clickable whole.
- ``trimming``: where a text may be cut, and how a cut text ends.
- ``function_words``: words a teaser must not end on (stopwords-iso data).
- ``mentions``: ``@handles`` that must not tag a stranger, or the mapped handle.
- ``options``: per-network shaping rules and the team's mapping file.
- ``shaping``: ``compose`` itself.

The rules for text, per network, with examples: docs/composer.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from socialbot.compose.counting import (
        DEFAULT_LIMITS,
        graphemes,
        mastodon_length,
        measure,
        utf16_length,
    )
    from socialbot.compose.options import RULES, ComposeOptions, ShapingRules, load_options
    from socialbot.compose.richtext import (
        LITTLE_TEXT_RESERVED,
        bluesky_facets,
        escape_little_text,
    )
    from socialbot.compose.shaping import compose
    from socialbot.compose.twitter_text import extract_urls, parse_tweet

_HOMES = {
    "counting": (
        "DEFAULT_LIMITS",
        "graphemes",
        "mastodon_length",
        "measure",
        "utf16_length",
    ),
    "options": ("RULES", "ComposeOptions", "ShapingRules", "load_options"),
    "richtext": ("LITTLE_TEXT_RESERVED", "bluesky_facets", "escape_little_text"),
    "shaping": ("compose",),
    "twitter_text": ("extract_urls", "parse_tweet"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Each name loads its own module on first use (PEP 562): the Bluesky adapter needs
    the counting and facets, not YAML options or the stop-word lists of the shaping."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'socialbot.compose' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"socialbot.compose.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_LIMITS",
    "LITTLE_TEXT_RESERVED",
    "RULES",
    "ComposeOptions",
    "ShapingRules",
    "bluesky_facets",
    "compose",
    "escape_little_text",
    "extract_urls",
    "graphemes",
    "load_options",
    "mastodon_length",
    "measure",
    "parse_tweet",
    "utf16_length",
]

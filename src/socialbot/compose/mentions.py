"""``@handles`` in a release's text: never a mention of a stranger.

A press release written for the web says ``@EU_CoR``; posted as it is, X and
Mastodon would make it a mention of whoever holds that name there (on Mastodon,
of whoever holds it on the bot's own instance). The networks' own parsers:

- X (twitter-text ``extractMentionsOrListsWithIndices``): ``@`` or ``＠`` not after a
  letter, digit or ``_!#$%&*@``, then 1-20 of ``[A-Za-z0-9_]``.
- Mastodon (``Account::MENTION_RE``): ``@`` not after a word character, ``=`` or
  ``/``, then ``[a-z0-9_]+([.-]+[a-z0-9_]+)*`` and an optional ``@domain``.
- Bluesky: a mention is a facet with the account's DID; text alone never mentions
  anyone, and the composer (pure, no I/O) cannot look a DID up.
- LinkedIn: a mention is ``@[Name](urn:li:…)`` in little text; a plain ``@`` is
  escaped (``richtext.escape_little_text``).
- Facebook: the Graph API does not turn ``@name`` in a message into a tag.

So on X and Mastodon a WORD JOINER (U+2060, invisible, no line break) goes
between ``@`` and the name: the text reads ``@EU_CoR`` and tags no one. When the
team's mapping file gives a network's own handle for the name
(``mentions: {EU_CoR: {mastodon: "@EU_CoR@social.example"}}``), that handle is
written instead, on any network; on Bluesky it stays plain text.
"""

from __future__ import annotations

from collections.abc import Mapping

import regex

from socialbot.networks import PROFILES

WORD_JOINER = "\u2060"

# The union of X's and Mastodon's rules: whatever either would take for a mention.
_MENTION = regex.compile(
    r"(?<![\p{L}\p{M}\p{N}_=/])[@＠](?P<name>[A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*)"
    r"(?:@[\p{L}\p{M}\p{N}_.-]*[\p{L}\p{M}\p{N}_])?"
)


def render_mentions(
    text: str,
    network: str,
    handles: Mapping[str, Mapping[str, str]],
    protected: list[tuple[int, int]] | None = None,
) -> str:
    """``text`` with each ``@name`` as ``network`` should show it.

    ``handles``: name (without ``@``) -> network -> handle, compared
    case-insensitively. ``protected``: spans (URLs) left untouched.
    """
    keyed = {name.casefold(): by_network for name, by_network in handles.items()}
    spans = protected or []
    found = PROFILES.get(network)
    parses_mentions = found is not None and found.mentions_parsed

    def render(match: regex.Match[str]) -> str:
        if any(start <= match.start() < end for start, end in spans):
            return match.group()
        handle = keyed.get(match.group("name").casefold(), {}).get(network)
        if handle is not None:
            return handle
        if parses_mentions:
            return match.group()[0] + WORD_JOINER + match.group()[1:]
        return match.group()

    return _MENTION.sub(render, text)

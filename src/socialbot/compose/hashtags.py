"""Hashtags: where they come from, how they are written, and which are broken.

A post's hashtags come from the release's ``hashtags``, from its ``topics``
through the team's mapping file (a topic without a mapping gives none), and
from ``#tags`` already in the text. They are compared case-insensitively and
written in CamelCase, so screen readers read ``#CohesionPolicy`` as two words.

Only letters, marks, digits and ``_`` make a hashtag body every network agrees
on (X's twitter-text, Mastodon's ``HASHTAG_RE``, Bluesky's tag facets), with at
least one letter, and at most 64 characters (Bluesky's limit).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import regex

from socialbot.compose.richtext import faceted, tag_spans
from socialbot.compose.twitter_text import extract_hashtags

MAX_TAG_LENGTH = 64
_APOSTROPHES = "'’ʼ"
# A word, apostrophes inside it included ("Children's", "l’Europe"): they are dropped.
_WORD = regex.compile(r"[\p{L}\p{M}\p{Nd}_]+(?:['’ʼ][\p{L}\p{M}\p{Nd}_]+)*")
_VALID_BODY = regex.compile(r"[\p{L}\p{M}\p{Nd}_]*\p{L}[\p{L}\p{M}\p{Nd}_]*")
_HASH_SIGNS = "#＃"
# "# CoRplenary": a hash sign starting a word, spaces, then a word with a capital in it.
_SPACED_TAG = regex.compile(
    r"(?<![^\s(\[{«„“‚‘\"'])[#＃][ \t\u00a0]+(?=[\p{L}\p{Nd}_]*\p{Lu})"
    r"([\p{L}\p{M}\p{Nd}_]*\p{L}[\p{L}\p{M}\p{Nd}_]*)"
)


@dataclass(frozen=True)
class Hashtag:
    """One hashtag, without its ``#``."""

    body: str

    @property
    def key(self) -> str:
        """What two spellings of one hashtag share (``Régions`` composed or not)."""
        return unicodedata.normalize("NFC", self.body.casefold())

    def __str__(self) -> str:
        return "#" + self.body


def camel_case(words: list[str]) -> str:
    """``["cohesion", "policy"]`` -> ``CohesionPolicy``; capitals inside words are kept."""
    if len(words) == 1:
        return words[0]
    return "".join(word[:1].upper() + word[1:] for word in words)


def normalize(raw: str) -> tuple[Hashtag | None, str | None]:
    """A hashtag as written by a person, made into one every network reads whole.

    Returns the hashtag (None when nothing usable is left) and, when the source
    was malformed, a note saying what was done.
    """
    raw = unicodedata.normalize("NFC", raw)
    text = raw.strip()
    spaced_hash = len(text) > 1 and text[0] in _HASH_SIGNS and text[1].isspace()
    text = text.lstrip(_HASH_SIGNS).strip()
    words = _WORD.findall(text)
    elided = any(ch in word for word in words for ch in _APOSTROPHES)
    words = [regex.sub(f"[{_APOSTROPHES}]", "", word) for word in words]
    if elided and len(words) == 1:  # "l’Europe" is two words written as one: LEurope
        words = [words[0][:1].upper() + words[0][1:]]
    shown = raw.strip() if raw.strip().startswith(tuple(_HASH_SIGNS)) else f"#{raw.strip()}"
    if not words or not any(_VALID_BODY.fullmatch(word) for word in words):
        return None, f"hashtag {shown!r} has no letters; it is left out"
    # Bluesky drops punctuation at the end of a tag, "_" included: #EU_ would link #EU.
    body = camel_case(words).strip("_")
    if not _VALID_BODY.fullmatch(body):
        return None, f"hashtag {shown!r} has no letters; it is left out"
    if len(body) > MAX_TAG_LENGTH:
        return None, f"hashtag {shown!r} is longer than {MAX_TAG_LENGTH} characters; left out"
    tag = Hashtag(body)
    if len(words) > 1 or spaced_hash or elided or body != words[0]:
        return tag, f"hashtag {shown!r} is malformed; it is posted as {tag}"
    return tag, None


def topic_key(topic: str) -> str:
    """Topics match case-insensitively, whatever their spacing and Unicode normal form."""
    return unicodedata.normalize("NFC", " ".join(topic.split()).casefold())


def from_topics(topics: Iterable[str], mapping: Mapping[str, str]) -> list[Hashtag]:
    """The hashtags the team's mapping gives the release's topics (unmapped: none)."""
    keyed = {topic_key(topic): tag for topic, tag in mapping.items()}
    found = []
    for topic in topics:
        raw = keyed.get(topic_key(topic))
        if raw:
            tag, _ = normalize(raw)
            if tag is not None:
                found.append(tag)
    return found


def inline(text: str) -> list[Hashtag]:
    """The hashtags written in ``text``, as X finds them."""
    return [Hashtag(entity.tag) for entity in extract_hashtags(text)]


def live(text: str, network: str) -> list[Hashtag]:
    """The hashtags in ``text`` that ``network`` makes live (a link to the tag's feed).

    Bluesky links only a tag the post gives a facet, and the composer facets
    what the app detects (``richtext.tag_spans``: a ``#`` at the start or after a
    space, so not ``(#EURegions)``); each is named as X names it at the same place,
    so it matches the release's hashtags. Elsewhere, as X finds them.
    """
    found = extract_hashtags(text)
    if not faceted(network):
        return [Hashtag(entity.tag) for entity in found]
    by_start = {entity.start: entity.tag for entity in found}
    return [Hashtag(by_start.get(start, tag)) for start, _, tag in tag_spans(text)]


def repair_spaced(text: str, where: str) -> tuple[str, list[str]]:
    """Join ``# CoRplenary`` into ``#CoRplenary``; one note per repair."""
    notes = []

    def join(match: regex.Match[str]) -> str:
        notes.append(
            f"malformed hashtag {match.group()!r} in the {where}; it is posted as #{match.group(1)}"
        )
        return "#" + match.group(1)

    return _SPACED_TAG.sub(join, text), notes


def unique(tags: Iterable[Hashtag]) -> list[Hashtag]:
    """First spelling of each hashtag, compared case-insensitively."""
    seen: set[str] = set()
    result = []
    for tag in tags:
        if tag.key not in seen:
            seen.add(tag.key)
            result.append(tag)
    return result

"""X's own text rules: which spans are URLs, and how long a post is.

A port of twitter-text v3 (github.com/twitter/twitter-text, Apache-2.0): the
URL extraction of ``js/src/extractUrlsWithIndices.js`` with the regular
expressions of ``js/src/regexp/``, and the weighted length of
``js/src/parseTweet.js`` (NFC first; code points in the configured ranges weigh
1, all others 2; every URL, with or without a scheme, weighs 23; an emoji
sequence weighs 2). The official conformance data runs against it in
``tests/test_conformance.py``.

The same extraction, with the path and query rules Mastodon overrides
(mastodon ``config/initializers/twitter_regex.rb``), tells which URLs Mastodon
counts at its reserved URL weight.

Emoji sequences come from the ``emoji`` package's list, limited to Emoji 14.0
(the last emoji set twitter-text's twemoji shipped with): a newer sequence is
counted by its parts, which can only over-count, never under-count.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import emoji
import regex

DIRECTIONAL_MARKS = "\u202a-\u202e\u061c\u200e\u200f\u2066\u2067\u2068\u2069"
INVALID_CHARACTERS = "\ufffe\ufeff\uffff"
SPACES = "\x09-\x0d\x20\x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_PUNCTUATION = regex.escape("!'#%&()*+,\\-./:;<=>?@[]^_{|}~$", special_only=False)
LATIN_ACCENTS = (
    "\xc0-\xd6\xd8-\xf6\xf8-\xff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263"
    "\u0268\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
CYRILLIC = "\u0400-\u04ff"
MAX_URL_LENGTH = 4096
MAX_TCO_SLUG_LENGTH = 40
MAX_DOMAIN_LABEL_LENGTH = 63
NEWEST_EMOJI_VERSION = 14.0


@dataclass(frozen=True)
class WeightRange:
    start: int
    end: int
    weight: int


@dataclass(frozen=True)
class TwitterTextConfig:
    """One of twitter-text's weighting configs (``config/v2.json``, ``v3.json``)."""

    max_weighted_length: int = 280
    scale: int = 100
    default_weight: int = 200
    transformed_url_length: int = 23
    emoji_parsing: bool = True
    ranges: tuple[WeightRange, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TwitterTextConfig:
        return cls(
            max_weighted_length=int(data["maxWeightedTweetLength"]),
            scale=int(data["scale"]),
            default_weight=int(data["defaultWeight"]),
            transformed_url_length=int(data["transformedURLLength"]),
            emoji_parsing=bool(data.get("emojiParsingEnabled", False)),
            ranges=tuple(
                WeightRange(int(r["start"]), int(r["end"]), int(r["weight"]))
                for r in data["ranges"]
            ),
        )

    def weight(self, code_point: int) -> int:
        for span in self.ranges:
            if span.start <= code_point <= span.end:
                return span.weight
        return self.default_weight


@cache
def config_v3() -> TwitterTextConfig:
    """The config X counts posts with today (twitter-text ``config/v3.json``)."""
    text = resources.files("socialbot").joinpath("data/twitter-text-config-v3.json").read_text()
    return TwitterTextConfig.from_json(json.loads(text))


@cache
def tlds() -> dict[str, tuple[str, ...]]:
    """The country and generic TLDs twitter-text recognises, by section."""
    text = resources.files("socialbot").joinpath("data/twitter-text-tlds.txt").read_text("utf-8")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is not None:
            current.append(line)
    return {name: tuple(names) for name, names in sections.items()}


def _tld_pattern(names: tuple[str, ...]) -> str:
    ordered = sorted(names, key=lambda name: (-len(name), name))
    return (
        "(?:(?:" + "|".join(regex.escape(name) for name in ordered) + r")(?=[^0-9a-zA-Z@+\-]|\Z))"
    )


@dataclass(frozen=True)
class UrlRules:
    """The character classes that differ between X's and Mastodon's URL rules."""

    protocol: str
    path_chars: str
    path_ending_chars: str
    path_at_form: str
    query_chars: str
    query_ending_chars: str


# validGeneralUrlPathChars
_X_PATH_CHARS = rf"[a-z{CYRILLIC}0-9!\*';:=\+,\.\$/%#\[\]\-\u2013_~@\|&{LATIN_ACCENTS}]"


def _balanced_parens(path_chars: str) -> str:
    """Up to two nested levels of balanced parentheses (``/wiki/Primer_(film)``)."""
    return rf"\((?:{path_chars}+|(?:{path_chars}*\({path_chars}+\){path_chars}*))\)"


X_RULES = UrlRules(
    protocol=r"https?://",
    path_chars=_X_PATH_CHARS,
    path_ending_chars=(
        rf"[\+\-a-z{CYRILLIC}0-9=_#/{LATIN_ACCENTS}]|(?:{_balanced_parens(_X_PATH_CHARS)})"
    ),
    path_at_form=rf"@{_X_PATH_CHARS}+/",
    query_chars=r"[a-z0-9!?\*'@\(\);:&=\+\$/%#\[\]\-_\.,~|]",
    query_ending_chars=r"[a-z0-9\-_&=#/]",
)

# Mastodon replaces the path and query classes and the schemes, and keeps the rest:
# github.com/mastodon/mastodon/blob/main/config/initializers/twitter_regex.rb
_MASTODON_UCHARS = (
    "\xa0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U0001fffd\U00020000-\U0002fffd"
    "\U00030000-\U0003fffd\U00040000-\U0004fffd\U00050000-\U0005fffd\U00060000-\U0006fffd"
    "\U00070000-\U0007fffd\U00080000-\U0008fffd\U00090000-\U0009fffd\U000a0000-\U000afffd"
    "\U000b0000-\U000bfffd\U000c0000-\U000cfffd\U000d0000-\U000dfffd\U000e1000-\U000efffd"
    "\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd"
)
_MASTODON_PATH_CHARS = r"[^\p{White_Space}<>()?]"
MASTODON_RULES = UrlRules(
    protocol=r"(?:https?|dat|dweb|ipfs|ipns|ssb|gopher|gemini)://",
    path_chars=_MASTODON_PATH_CHARS,
    # Interpolated before Mastodon redefines balanced parens, so it keeps X's.
    path_ending_chars=(
        r"[^\p{White_Space}()?!*\"'「」<>;:=,.$%\[\]~&|@]"
        rf"|(?:{_balanced_parens(_X_PATH_CHARS)})"
    ),
    path_at_form=rf"{_MASTODON_PATH_CHARS}+/",
    query_chars=rf"[a-z0-9!?*'();:&=+$/%#\[\]\-_.,~|@\^{_MASTODON_UCHARS}]",
    query_ending_chars=rf"[a-z0-9_&=#/\-{_MASTODON_UCHARS}]",
)


@dataclass(frozen=True)
class UrlEntity:
    """A URL as the network sees it: its text and where it sits (code point offsets)."""

    url: str
    start: int
    end: int


class UrlExtractor:
    """twitter-text's ``extractUrlsWithIndices``, for one set of URL rules."""

    def __init__(self, rules: UrlRules) -> None:
        domain_char = f"[^{_PUNCTUATION}{SPACES}{INVALID_CHARACTERS}{DIRECTIONAL_MARKS}]"
        subdomain = rf"(?:(?:{domain_char}(?:[_\-]|{domain_char})*)?{domain_char}\.)"
        domain_name = rf"(?:(?:{domain_char}(?:\-|{domain_char})*)?{domain_char}\.)"
        names = tlds()
        gtld, cctld = _tld_pattern(names["generic"]), _tld_pattern(names["country"])
        punycode = r"(?:xn--[\-0-9a-z]+)"
        domain = rf"(?:{subdomain}*{domain_name}(?:{gtld}|{cctld}|{punycode}))"
        preceding = rf"(?:[^A-Za-z0-9@＠$#＃{INVALID_CHARACTERS}]|[{DIRECTIONAL_MARKS}]|^)"
        balanced = _balanced_parens(rules.path_chars)
        path = (
            rf"(?:(?:{rules.path_chars}*(?:{balanced}{rules.path_chars}*)*"
            rf"(?:{rules.path_ending_chars}))|(?:{rules.path_at_form}))"
        )
        self.pattern = regex.compile(
            rf"(({preceding})(({rules.protocol})?({domain})(?::([0-9]+))?(/{path}*)?"
            rf"(\?{rules.query_chars}*{rules.query_ending_chars})?))",
            regex.IGNORECASE,
        )
        self.ascii_domain = regex.compile(
            rf"(?:(?:[\-a-z0-9{LATIN_ACCENTS}]+)\.)+(?:{gtld}|{cctld}|{punycode})",
            regex.IGNORECASE,
        )
        self.tco = regex.compile(
            rf"^https?://t\.co/([a-z0-9]+)(?:\?{X_RULES.query_chars}*{X_RULES.query_ending_chars})?",
            regex.IGNORECASE,
        )

    def extract(self, text: str, *, without_protocol: bool = True) -> list[UrlEntity]:
        """Every URL in ``text``, in order; bare domains too when ``without_protocol``."""
        if not text or ("." not in text if without_protocol else ":" not in text):
            return []
        return list(self._extract(text, without_protocol))

    @lru_cache(maxsize=1024)  # noqa: B019 - extractors are module-lifetime singletons
    def _extract(self, text: str, without_protocol: bool) -> tuple[UrlEntity, ...]:
        """``extract``, memoised: composing one post scans the same texts many times."""
        found: list[UrlEntity] = []
        for match in self.pattern.finditer(text):
            before, url, protocol, domain, path = match.group(2, 3, 4, 5, 7)
            start, end = match.start(3), match.end(3)
            if not self._valid_idna(domain) or len(protocol or "https://") + len(url) > (
                MAX_URL_LENGTH
            ):
                continue
            if protocol:
                tco = self.tco.match(url)
                if tco:
                    if len(tco.group(1)) > MAX_TCO_SLUG_LENGTH:
                        continue
                    url, end = tco.group(), start + len(tco.group())
                found.append(UrlEntity(url, start, end))
                continue
            if not without_protocol or (before and before in "-_./"):
                continue
            last: UrlEntity | None = None
            cursor = 0
            for ascii_match in self.ascii_domain.finditer(domain):
                piece = ascii_match.group()
                piece_start = domain.index(piece, cursor)
                cursor = piece_start + len(piece)
                last = UrlEntity(piece, start + piece_start, start + cursor)
                found.append(last)
            if last is not None and path:
                found[-1] = UrlEntity(url.replace(domain, last.url, 1), last.start, end)
        return tuple(found)

    def _valid_idna(self, domain: str) -> bool:
        """twitter-text's ``idna.toAscii``: every label encodes to 1..63 characters."""
        if domain.startswith("xn--") and not self.ascii_domain.search(domain):
            return False
        for label in domain.split("."):
            encoded = label if label.isascii() else "xn--" + _punycode(label)
            if not 1 <= len(encoded) <= MAX_DOMAIN_LABEL_LENGTH:
                return False
        return True


def _punycode(label: str) -> str:
    try:
        return label.encode("punycode").decode("ascii")
    except UnicodeError:
        return "x" * (MAX_DOMAIN_LABEL_LENGTH + 1)


@cache
def x_urls() -> UrlExtractor:
    """URLs as X finds them (with and without a scheme)."""
    return UrlExtractor(X_RULES)


@cache
def mastodon_urls() -> UrlExtractor:
    """URLs as Mastodon finds them (only with a scheme)."""
    return UrlExtractor(MASTODON_RULES)


def extract_urls(text: str) -> list[str]:
    """The URLs X finds in ``text`` (``example.com`` without a scheme included)."""
    return [entity.url for entity in x_urls().extract(text)]


@cache
def _emoji_table() -> dict[str, tuple[str, ...]]:
    """Emoji sequences (up to ``NEWEST_EMOJI_VERSION``) by first code point, longest first."""
    table: dict[str, list[str]] = {}
    for sequence, data in emoji.EMOJI_DATA.items():
        if float(data.get("E", 0)) <= NEWEST_EMOJI_VERSION:
            table.setdefault(sequence[0], []).append(sequence)
    return {
        first: tuple(sorted(sequences, key=len, reverse=True)) for first, sequences in table.items()
    }


def emoji_at(text: str, index: int) -> str | None:
    """The longest known emoji sequence starting at ``text[index]``, if any."""
    for sequence in _emoji_table().get(text[index], ()):
        if text.startswith(sequence, index):
            return sequence
    return None


@dataclass(frozen=True)
class TweetLength:
    """What twitter-text's ``parseTweet`` reports (ranges in UTF-16 code units)."""

    weighted_length: int
    valid: bool
    permillage: int
    valid_range_start: int
    valid_range_end: int
    display_range_start: int
    display_range_end: int


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def parse_tweet(
    text: str, config: TwitterTextConfig | None = None, *, url_length: int | None = None
) -> TweetLength:
    """The weighted length of ``text`` and whether X would accept it."""
    config = config or config_v3()
    url_weight = config.transformed_url_length if url_length is None else url_length
    normalized = unicodedata.normalize("NFC", text)
    urls = {entity.start: entity for entity in x_urls().extract(normalized)}
    units = 0
    valid = True
    valid_display_index = 0
    index = 0
    utf16_index = 0  # UTF-16 offset of normalized[index]
    limit_units = config.max_weighted_length * config.scale
    while index < len(normalized):
        url = urls.get(index)
        sequence = None if url or not config.emoji_parsing else emoji_at(normalized, index)
        if url is not None:
            units += url_weight * config.scale
            span = normalized[index : url.end]
        elif sequence is not None:
            units += config.default_weight
            span = sequence
        else:
            span = normalized[index]
            units += config.weight(ord(span))
        last_char = span[-1]
        index += len(span)
        utf16_index += _utf16_len(span)
        if valid:
            valid = last_char not in INVALID_CHARACTERS
        if valid and units <= limit_units:
            valid_display_index = utf16_index - 1  # the span's last UTF-16 unit
    weighted = units // config.scale
    valid = valid and 0 < weighted <= config.max_weighted_length
    valid_display_index += _utf16_len(text) - _utf16_len(normalized)
    length16 = _utf16_len(text)
    return TweetLength(
        weighted_length=weighted,
        valid=valid,
        permillage=units * 1000 // (config.max_weighted_length * config.scale),
        valid_range_start=0,
        valid_range_end=valid_display_index,
        display_range_start=0,
        display_range_end=length16 - 1 if length16 else 0,
    )


_HASHTAG_LETTERS = r"\p{L}\p{M}"
_HASHTAG_LETTERS_NUMERALS = (
    r"\p{L}\p{M}\p{Nd}_\u200c\u200d\ua67e\u05be\u05f3\u05f4\uff5e\u301c\u309b\u309c\u30a0"
    r"\u30fb\u3003\u0f0b\u0f0c\u00b7"
)
HASHTAG = regex.compile(
    rf"(^|\ufe0e|\ufe0f|[^&{_HASHTAG_LETTERS_NUMERALS}])([#＃])(?![\ufe0f\u20e3])"
    rf"([{_HASHTAG_LETTERS_NUMERALS}]*[{_HASHTAG_LETTERS}][{_HASHTAG_LETTERS_NUMERALS}]*)",
    regex.IGNORECASE,
)
_HASHTAG_END = regex.compile(r"[#＃]|://")


@dataclass(frozen=True)
class HashtagEntity:
    tag: str
    start: int
    end: int


def extract_hashtags(text: str) -> list[HashtagEntity]:
    """Hashtags as X finds them (not inside URLs; ``#tag#`` and ``#tag://`` are not tags)."""
    if "#" not in text and "＃" not in text:
        return []
    in_url = bytearray(len(text) + 1)
    for url in x_urls().extract(text):
        in_url[url.start : url.end] = b"\x01" * (url.end - url.start)
    found = []
    for match in HASHTAG.finditer(text):
        if _HASHTAG_END.match(text, match.end()):
            continue
        start = match.start(2)
        if in_url[start]:
            continue
        found.append(HashtagEntity(match.group(3), start, match.end()))
    return found

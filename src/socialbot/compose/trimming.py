"""Where a text may be cut, and how a cut text ends.

A cut falls between words (before a space, or between two CJK characters,
which are written without spaces), never inside a grapheme, a URL or a
hashtag. A cut after a sentence ends cleanly; any other cut drops trailing
commas, dashes and opening brackets and ends with ``…``, set off by a space
after a URL (glued, it would become part of the link on Mastodon). Explicit
bidirectional embeddings left open by the cut are closed, so ``…`` and the link
after it keep their direction.

Each cut point says what kind of cut it is: a sentence end, a clause boundary
(after a comma, semicolon or colon, or before or after a spaced dash), or a plain
cut between words; and whether the words kept end on a function word of the
release's language (``function_words``). Teasers only take the first two kinds,
and never a clause cut ending on a function word (see ``shaping.fit_text``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import regex

from socialbot.compose.function_words import ends_on_function_word
from socialbot.compose.richtext import link_spans, tag_spans
from socialbot.compose.twitter_text import extract_hashtags, mastodon_urls, x_urls

ELLIPSIS = "…"
SENTENCE_CLOSE = 2 / 3
"""A sentence end is "close" when it keeps at least this share of what a word cut keeps."""

_SENTENCE_END = frozenset(".!?…。！？‼⁇⁈⁉")
_CJK_SENTENCE_END = frozenset("。！？")
_CJK_PAIRS = {
    "「": "」",
    "『": "』",
    "（": "）",
    "“": "”",
    "【": "】",
    "〔": "〕",
    "《": "》",
    "〈": "〉",
}
_CJK_CLOSERS = frozenset(_CJK_PAIRS.values()) | frozenset(")]’")
_CLAUSE_END = frozenset(",;:–—、，；：")
_DASHES = frozenset("-–—")
_CLOSERS = frozenset("\"'»”’)]}›」』")
_DANGLING = ",;:-–—‐(/[{«„“‚‘‹\"'·&"
_STRIPPED_SPACE = " \t\n\u00a0\u202f"
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\u3000-\u303f\uff00-\uffef]")
_GRAPHEME = regex.compile(r"\X")
_SPACE = regex.compile(r"[^\S\u00a0\u2007\u202f]")  # no cut at a no-break space
_OPENERS = {"\u202a": "\u202c", "\u202b": "\u202c", "\u202d": "\u202c", "\u202e": "\u202c"}
_ISOLATES = {"\u2066": "\u2069", "\u2067": "\u2069", "\u2068": "\u2069"}

# Words a full stop follows without ending the sentence, by language (casefolded, without
# the last full stop); each language has its own ("mar" is March in English, the sea in
# Spanish). A single letter or dotted initials ("г.", "M.", "e.g.") never end one either.
ABBREVIATIONS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "e.g",
            "i.e",
            "etc",
            "mr",
            "mrs",
            "ms",
            "dr",
            "prof",
            "no",
            "nos",
            "vs",
            "st",
            "art",
            "para",
            "cf",
            "approx",
            "dept",
            "est",
            "fig",
            "jan",
            "feb",
            "mar",
            "apr",
            "jun",
            "jul",
            "aug",
            "sep",
            "sept",
            "oct",
            "nov",
            "dec",
        ]
    ),
    "de": frozenset(
        [
            "z.b",
            "bzw",
            "usw",
            "nr",
            "abs",
            "vgl",
            "ca",
            "d.h",
            "u.a",
            "dr",
            "prof",
            "str",
            "art",
            "ggf",
            "inkl",
            "evtl",
            "sog",
        ]
    ),
    "fr": frozenset(
        ["mme", "mlle", "env", "cf", "p.ex", "etc", "art", "av", "bd", "dr", "pr", "réf"]
    ),
    "bg": frozenset(
        [
            "гр",
            "т.е",
            "др",
            "вкл",
            "напр",
            "ул",
            "бл",
            "чл",
            "ал",
            "проф",
            "д-р",
            "млн",
            "млрд",
            "хил",
        ]
    ),
    "el": frozenset(["κα", "π.χ", "κ.λπ", "δηλ", "αρ", "σελ", "τηλ", "κ.ά", "εκατ"]),
    "es": frozenset(["sr", "sra", "srta", "dr", "dra", "prof", "art", "núm", "pág", "ud", "uds"]),
    "it": frozenset(["sig", "sigg", "dott", "dr", "prof", "art", "pag", "on"]),
    "pt": frozenset(["sr", "sra", "dr", "dra", "prof", "art", "pág", "n.º"]),
    "nl": frozenset(["dhr", "mevr", "mr", "dr", "prof", "bijv", "art", "blz", "o.a", "d.w.z"]),
}


@dataclass(frozen=True)
class CutPoint:
    """``text[:index]`` may be kept; ``sentence`` when it ends a sentence or paragraph.

    ``after_url``: a cut between words here would end inside or right after a URL
    (once trailing punctuation is dropped), where a glued ``…`` would join the link.
    """

    index: int
    sentence: bool
    after_url: bool = False
    clause: bool = False
    """Not a sentence end, but a clause boundary: after ``,;:`` or at a spaced dash."""
    function_word: bool = False
    """The words kept end on a function word ("…politiката на", "…eine Stellungnahme zur")."""

    @property
    def teaser(self) -> bool:
        """Whether a teaser may end here: a sentence end, or a clause end after a content word."""
        return self.sentence or (self.clause and not self.function_word)


def protected_spans(text: str) -> list[tuple[int, int]]:
    """URLs and hashtags, as any network finds them: no cut may fall inside one."""
    spans = [(u.start, u.end) for u in x_urls().extract(text)]
    spans += [(u.start, u.end) for u in mastodon_urls().extract(text, without_protocol=False)]
    spans += [(start, end) for start, end, _ in link_spans(text)]
    spans += [(h.start, h.end) for h in extract_hashtags(text)]
    spans += [(start, end) for start, end, _ in tag_spans(text)]
    return spans


def url_spans(text: str) -> list[tuple[int, int]]:
    """URLs as any network finds them."""
    spans = [(u.start, u.end) for u in x_urls().extract(text)]
    spans += [(u.start, u.end) for u in mastodon_urls().extract(text, without_protocol=False)]
    spans += [(start, end) for start, end, _ in link_spans(text)]
    return spans


MONTHS: dict[str, frozenset[str]] = {
    "de": frozenset(
        [
            "januar",
            "jänner",
            "februar",
            "märz",
            "april",
            "mai",
            "juni",
            "juli",
            "august",
            "september",
            "oktober",
            "november",
            "dezember",
            "jan",
            "feb",
            "mär",
            "apr",
            "jun",
            "jul",
            "aug",
            "sep",
            "sept",
            "okt",
            "nov",
            "dez",
        ]
    ),
}
"""Capitalised month names after a day number with a full stop (``am 3. März``), casefolded.
Languages that write months in lower case need none: a lower-case word never starts a sentence."""

ORDINAL_DOT = frozenset(["de"])
"""Languages whose ordinals are a number and a full stop before a capitalised noun
(``der 9. Kohäsionsbericht``): there a number of up to three digits ends no sentence."""

_LIST_BEFORE = frozenset("\n.!?:;…。！？") | _CLOSERS
"""What precedes a list number (``1.``): a line break, a sentence end, a colon."""
_INITIALS = regex.compile(r"(?:\p{L}\.)*\p{L}")
"""A single letter or dotted initials (``M``, ``e.g``, ``z.B``): never a sentence end, in any
language."""


@cache
def _abbreviations(language: str) -> frozenset[str]:
    """The release language's own abbreviations (English ones apply to English only)."""
    return ABBREVIATIONS.get(language.casefold().split("-")[0], frozenset())


def _number_ends_sentence(text: str, start: int, word: str, rest: str, language: str) -> bool:
    """Whether a number with a full stop (``2027.``), followed by a capitalised word, ends one.

    It does not when it opens its line or follows a sentence end or a colon (a list
    number: ``1. Regions…``, ``priorities: 1. More…``), when a month
    follows (``3. März``), or when it is a short ordinal in a language that writes them so.
    """
    before = text[max(0, start - 64) : start].rstrip(_STRIPPED_SPACE.replace("\n", ""))
    if (not before and start <= 64) or before[-1:] in _LIST_BEFORE:
        return False
    following = regex.match(r"[\p{L}\p{M}]+", rest)
    key = language.casefold().split("-")[0]
    if following and following.group().casefold() in MONTHS.get(key, frozenset()):
        return False
    return not (key in ORDINAL_DOT and len(word) <= 3)


def _ends_sentence(text: str, index: int, language: str) -> bool:
    """Whether ``text[:index]`` (followed by a space or the end) ends a sentence."""
    end = index
    while end > 0 and text[end - 1] in _CLOSERS:
        end -= 1
    if end == 0:
        return False
    mark = text[end - 1]
    if language == "el" and mark == ";":  # the Greek question mark (U+037E) is ";" after NFC
        return True
    if mark not in _SENTENCE_END:
        return False
    rest = text[index:].lstrip()
    if rest[:1].islower():
        return False
    if mark != ".":
        return True
    head = text[: end - 1]
    word = head.rsplit(None, 1)[-1] if head.strip() else ""
    word = word.lstrip("\"'«„“‚‘(‹[")
    if not word or _INITIALS.fullmatch(word):
        return False
    if word.isdigit():
        return _number_ends_sentence(text, len(head) - len(word), word, rest, language)
    return word.casefold() not in _abbreviations(language)


@lru_cache(maxsize=32)
def cut_points(text: str, language: str) -> tuple[CutPoint, ...]:
    """Every place ``text`` may be cut, in order; the end of ``text`` not included."""
    inside = bytearray(len(text) + 1)
    for start, end in protected_spans(text):
        inside[start + 1 : end] = b"\x01" * max(0, end - start - 1)
    # Positions a word cut may not keep up to: inside a URL, or after it before the next
    # space: "europa.eu/x!" + "…" would make "!…" part of the link on X and Mastodon.
    in_url = bytearray(len(text) + 1)
    for start, end in url_spans(text):
        stop = end
        while stop < len(text) and not text[stop].isspace():
            stop += 1
        in_url[start + 1 : stop + 1] = b"\x01" * (stop - start)
    quoted = _quoted(text)
    points: list[CutPoint] = []
    previous = ""
    ended = False  # the text so far ends with a CJK sentence mark (and closing brackets)
    for grapheme in _GRAPHEME.finditer(text):
        index = grapheme.start()
        current = grapheme.group()
        ended = previous[:1] in _CJK_SENTENCE_END or (ended and previous in _CJK_CLOSERS)
        if index and not inside[index]:
            sentence = None
            if _SPACE.match(current) and not _SPACE.match(previous):
                paragraph = text.startswith("\n\n", index) or text[index:].lstrip() == ""
                sentence = paragraph or _ends_sentence(text, index, language)
            elif ended and current in _CJK_CLOSERS:
                pass  # "。」": the closing bracket belongs to the sentence
            elif ended and not quoted[index]:
                sentence = True
            elif _CJK.match(previous) and _CJK.match(current):
                sentence = False
            if sentence is not None:
                kept, kept_text = _kept(text, index)
                clause = not sentence and _is_clause(text, index)
                points.append(
                    CutPoint(
                        index,
                        sentence,
                        bool(in_url[kept]),
                        clause,
                        not sentence and ends_on_function_word(kept_text, language),
                    )
                )
        previous = current
    return tuple(points)


def _quoted(text: str) -> bytearray:
    """1 at each cut position inside a CJK bracket or quote closed in the same paragraph.

    ``「…。」`` is one quotation: its ``。`` ends a sentence only with the ``」`` after it.
    """
    quoted = bytearray(len(text) + 1)
    if not any(opener in text for opener in _CJK_PAIRS):
        return quoted
    stack: list[tuple[str, int]] = []
    for index, ch in enumerate(text):
        if ch in _CJK_PAIRS:
            stack.append((_CJK_PAIRS[ch], index))
        elif any(closer == ch for closer, _ in stack):
            while stack[-1][0] != ch:
                stack.pop()  # an opener left unclosed inside this pair
            start = stack.pop()[1]
            quoted[start + 1 : index + 1] = b"\x01" * (index - start)
        elif ch == "\n" and text.startswith("\n\n", index):
            stack.clear()
    return quoted


def _kept(text: str, index: int) -> tuple[int, str]:
    """Where ``text[:index]`` ends without trailing spaces and dangling punctuation,
    and its last (up to 256) characters then: only the tail is looked at, not copied."""
    start = max(0, index - 256)
    while True:
        kept = text[start:index].rstrip().rstrip(_DANGLING + _STRIPPED_SPACE)
        if kept or start == 0:
            return start + len(kept), kept
        start = max(0, start - 4096)


def _is_clause(text: str, index: int) -> bool:
    """Whether a cut at ``index`` (a space, or between CJK characters) ends a clause."""
    before = text[max(0, index - 64) : index].rstrip(_STRIPPED_SPACE)
    while before and before[-1] in _CLOSERS:
        before = before[:-1]
    if not before:
        return False
    if before[-1] in _CLAUSE_END:
        return True
    if before[-1] in _DASHES and (len(before) == 1 or before[-2].isspace()):
        return True  # "… Europe – " : the spaced dash is dropped with the cut
    after = text[index:].lstrip(_STRIPPED_SPACE)
    return after[:1] in _DASHES and after[1:2].isspace()


def closers(text: str) -> str:
    """What closes the bidirectional embeddings and isolates ``text`` leaves open."""
    stack: list[str] = []
    for ch in text:
        if ch in _OPENERS or ch in _ISOLATES:
            stack.append(_OPENERS.get(ch) or _ISOLATES[ch])
        elif ch in ("\u202c", "\u2069") and stack and stack[-1] == ch:
            stack.pop()
    return "".join(reversed(stack))


def finish(text: str, point: CutPoint) -> str | None:
    """``text`` cut at ``point`` and ended properly; None when nothing would be left.

    After a URL the last word is kept whole (its punctuation may belong to the
    link) and `` …`` is set off by a space, which no network takes into a link.
    """
    piece = text[: point.index].rstrip()
    if point.sentence:
        return piece + closers(piece)
    if point.after_url:
        return f"{piece} {closers(piece)}{ELLIPSIS}"
    trimmed = piece.rstrip(_DANGLING + _STRIPPED_SPACE)
    if not trimmed:
        return None
    return trimmed + closers(trimmed) + ELLIPSIS

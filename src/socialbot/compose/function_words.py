"""Function words (articles, prepositions, conjunctions, pronouns...) a teaser must not end on.

The words come from the stopwords-iso collection (github.com/stopwords-iso), as the
``stopwordsiso`` package ships it: a JSON file inside the wheel, read offline, by ISO
639-1 code. It covers every official EU language but Maltese: bg, cs, da, de, el, en,
es, et, fi, fr, ga, hr, hu, it, lt, lv, nl, pl, pt, ro, sk, sl, sv (and 35 more). A
language it does not cover has no function words here, so only sentence ends and
clause boundaries decide its cuts.

Words are compared casefolded and without accents, so Greek ``από`` matches the
list's ``απο`` and a capitalised ``Der`` matches ``der``. Lists such as English also
hold a few content words ("world", "new"); a cut after one of those is refused too,
which costs a few words of teaser and never makes one read as broken.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import regex
import stopwordsiso

_WORD = regex.compile(r"[\p{L}\p{M}]+(?:['’][\p{L}\p{M}]+)*")
_EDGE = regex.compile(r"^[^\p{L}\p{M}\p{N}]+|[^\p{L}\p{M}\p{N}]+$")


def fold(word: str) -> str:
    """``word`` casefolded, without combining marks (accents, Greek tonos)."""
    decomposed = unicodedata.normalize("NFD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def function_words(language: str) -> frozenset[str]:
    """The folded function words of ``language`` (empty when no list covers it)."""
    if not stopwordsiso.has_lang(language):
        return frozenset()
    return frozenset(fold(word) for word in stopwordsiso.stopwords(language) if word.strip())


def covered(language: str) -> bool:
    """Whether a function-word list covers ``language``."""
    return bool(function_words(language))


def ends_on_function_word(text: str, language: str) -> bool:
    """Whether the last word of ``text`` is a function word of ``language``.

    The last whitespace-separated token counts, without surrounding punctuation;
    a token that is not all letters (a number, a URL, a hashtag, ``COVID-19``) is
    never a function word.
    """
    words = function_words(language)
    if not words:
        return False
    tokens = text[-128:].rsplit(None, 1)  # no function word is that long
    if not tokens:
        return False
    raw = tokens[-1].lstrip("\"'«„“‚‘(‹[")
    if raw[:1] in ("#", "＃", "@", "＠"):
        return False
    token = _EDGE.sub("", raw)
    return bool(token) and bool(_WORD.fullmatch(token)) and fold(token) in words

"""The language a text is written in, and whether its address says the same.

py3langid (a kept fork of langid.py whose model ships inside the package, so it works
offline) ranks the ISO 639-1 languages. A page's own declaration (``<html lang>``, the
``/xx/`` of its address) is kept when the text does not clearly say otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from socialbot.models import LANGUAGES

# Below this share of the probability, the text is not taken as evidence of a language.
MIN_CONFIDENCE = 0.80
# A declared language keeps its place unless the text makes it this unlikely.
DECLARED_FLOOR = 0.05
MIN_LETTERS = 20

NAMES = {
    "bg": "Bulgarian",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "et": "Estonian",
    "fi": "Finnish",
    "fr": "French",
    "ga": "Irish",
    "hr": "Croatian",
    "hu": "Hungarian",
    "it": "Italian",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mt": "Maltese",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sv": "Swedish",
}


def name(code: str) -> str:
    return NAMES.get(code, repr(code))


@dataclass(frozen=True)
class LanguageVerdict:
    """The draft's language, and a note when the page's declarations disagree with it."""

    language: str | None
    detected: str | None
    note: str | None = None


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(sorted(set(identifier.labels) & LANGUAGES))
    return identifier


def rank(text: str) -> dict[str, float]:
    """Each candidate language's probability for ``text`` (empty for too little text)."""
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        return {}
    return {str(code): float(p) for code, p in _identifier().rank(text[:20_000])}


def decide(text: str, *, url_code: str | None, declared: str | None) -> LanguageVerdict:
    """The text's language, checked against the address's and the page's declarations."""
    ranking = rank(text)
    best = max(ranking, key=lambda code: ranking[code]) if ranking else None
    confident = best is not None and ranking[best] >= MIN_CONFIDENCE
    claimed = [code for code in (declared, url_code) if code and code in LANGUAGES]
    if not confident:
        return LanguageVerdict(claimed[0] if claimed else best, best)
    assert best is not None
    keep = next((c for c in claimed if ranking.get(c, 0.0) >= DECLARED_FLOOR), None)
    language = keep or best
    note = None
    if url_code and url_code in LANGUAGES and url_code != language:
        note = (
            f"the address says {url_code!r} but the text is in {name(language)} "
            f"({language!r}); the draft says {language!r}"
        )
    elif declared and declared in LANGUAGES and declared != language:
        note = (
            f"the page declares {declared!r} but the text is in {name(language)} "
            f"({language!r}); the draft says {language!r}"
        )
    return LanguageVerdict(language, best, note)

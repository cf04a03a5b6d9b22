"""One release, one network, one post: the only place text is shaped and trimmed.

The post is made of blocks, top to bottom as the network's rules order them
(by default the title, the lead, the hashtags, the link). What must survive is
the link and the title; the title is cut only when it cannot fit whole next to
the link. Hashtags are dropped, last first, before they would push out the
first sentence of the lead (or, when that sentence cannot fit anyway, more
than half of what the lead would show); the lead then fills the room that is
left, cut at a sentence end if one is close, else between words with ``…``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import regex

from socialbot.compose import hashtags as tags
from socialbot.compose.counting import Budget, graphemes, network_name
from socialbot.compose.hashtags import Hashtag
from socialbot.compose.links import bluesky_display, clickable, recognised_by, with_utm
from socialbot.compose.mentions import WORD_JOINER, render_mentions
from socialbot.compose.options import ComposeOptions, ShapingRules
from socialbot.compose.richtext import bluesky_facets, faceted, link_spans
from socialbot.compose.trimming import SENTENCE_CLOSE, CutPoint, cut_points, finish, url_spans
from socialbot.compose.twitter_text import x_urls
from socialbot.errors import ComposeError
from socialbot.models import Post, Release
from socialbot.networks import PROFILES

SEPARATOR = "\n\n"
UNPUBLISHED_LINK_RULES = ("mastodon", "bluesky")
"""Whose link finders a link must pass where the network publishes none."""
DESCRIPTION_GRAPHEMES = 300
MIN_LEAD_WORDS = 4
MIN_LEAD_GRAPHEMES = 10
PREFIX_MARGIN = 8192
"""Text looked at past the longest part that can fit (a URL is at most 4096 on X)."""
LEAD_KEPT_FOR_HASHTAGS = 2
"""Hashtags may take the room of at most half the lead when its first sentence cannot fit."""
_UNWANTED = regex.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff\ufffe\uffff]")
_RUNS = regex.compile(r"[ \t\r\n\f\v]+")
_PARAGRAPH = regex.compile(r"\n[ \t\r\f\v]*\n")
_WORD = regex.compile(r"[\p{L}\p{N}]")
_SCHEME = regex.compile(r"https?://", regex.IGNORECASE)


def clean(text: str) -> str:
    """NFC, without what no network takes: control characters, lone surrogates, BOMs."""
    text = _UNWANTED.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return unicodedata.normalize("NFC", text)


def paragraphs(text: str) -> list[str]:
    """``text`` split at blank lines, each paragraph on one line."""
    found = (_RUNS.sub(" ", part).strip() for part in _PARAGRAPH.split(clean(text)))
    return [part for part in found if part]


def release_link(release: Release, network: str, options: ComposeOptions) -> str:
    """The release URL as ``network`` gets it: with UTM parameters when asked, linkable whole.

    Encoded only as far as this network needs: Bluesky counts every character
    of a link, and links a Greek path as written; X counts any link as 23.
    Facebook and LinkedIn publish no rules; their link is one Mastodon and the
    Bluesky app would both link whole (and it also travels as the link card).
    """
    url = with_utm(release.url, network, release.id) if options.utm else release.url
    profile = PROFILES.get(network)
    rule = profile.link_rule if profile is not None else None
    link = clickable(url, (rule,) if rule is not None else UNPUBLISHED_LINK_RULES)
    if rule is not None and not faceted(network) and not recognised_by(rule, link):
        raise ComposeError(
            network,
            f"the release link {link} would not be clickable on {network_name(network)}, which "
            "links only addresses on a public domain (a known top-level domain, no IP address)",
        )
    return link


@dataclass(frozen=True)
class Fit:
    """A text cut to fit: what is shown, and how much of the source it covers."""

    piece: str
    covered: int


def fit_text(
    text: str, language: str, fits: Callable[[str], bool], *, teaser: bool = False
) -> Fit | None:
    """The longest cut of ``text`` for which ``fits`` holds.

    A ``teaser`` (a lead, a card description) ends at the last sentence end that
    fits, else at the last clause boundary that fits and does not end on a function
    word, else nowhere (None); it also stops before the first other link with a
    scheme, which would otherwise become the preview card (Mastodon takes the first
    ``http(s)://`` URL of a status). Anything else (a title) prefers a close sentence
    end, then a close clause boundary, then a cut between words not after a function
    word, then any cut between words.
    """
    stop = first_foreign_link(text) if teaser else None
    bound = 256
    while bound < len(text) and fits(text[:bound] + "…"):
        bound *= 2
    if stop is None and bound >= len(text) and fits(text):
        return Fit(text, len(text))
    # Cut points of the part that can fit, plus a margin so a URL or hashtag
    # running past the bound is still seen whole.
    prefix = text if bound + PREFIX_MARGIN >= len(text) else text[: bound + PREFIX_MARGIN]
    limit = bound if stop is None else min(bound, stop)
    points = [point for point in cut_points(prefix, language) if point.index <= limit]

    def trial(point: CutPoint) -> str:
        return finish(text, point) or text[: point.index].rstrip() + "…"

    low, high = 0, len(points)
    while low < high:
        middle = (low + high) // 2
        if fits(trial(points[middle])):
            low = middle + 1
        else:
            high = middle
    if teaser:
        return _teaser_cut(text, points[:low], fits)
    return _title_cut(text, points[:low], fits)


def _first(
    text: str,
    points: list[CutPoint],
    fits: Callable[[str], bool],
    wanted: Callable[[CutPoint], bool],
) -> Fit | None:
    """The last of ``points`` that is ``wanted`` and whose cut fits."""
    for point in reversed(points):
        if wanted(point):
            piece = finish(text, point)
            if piece is not None and fits(piece):
                return Fit(piece, point.index)
    return None


def _teaser_cut(text: str, points: list[CutPoint], fits: Callable[[str], bool]) -> Fit | None:
    sentence = _first(text, points, fits, lambda point: point.sentence)
    return sentence or _first(text, points, fits, lambda point: point.teaser)


def _title_cut(text: str, points: list[CutPoint], fits: Callable[[str], bool]) -> Fit | None:
    word = _first(text, points, fits, lambda point: True)
    if word is None:
        return None
    close = [point for point in points if point.index >= SENTENCE_CLOSE * word.covered]
    for wanted in (
        lambda point: point.sentence,
        lambda point: point.teaser,
        lambda point: not point.function_word,
    ):
        found = _first(text, close, fits, wanted)
        if found is not None:
            return found
    return word


def first_foreign_link(text: str) -> int | None:
    """Where the first URL with a scheme starts in ``text`` (the release link is already out)."""
    found = _SCHEME.search(text)
    if found is None:
        return None
    window = text[: found.start() + PREFIX_MARGIN]
    for part in (window, text) if len(window) < len(text) else (text,):
        starts = [start for start, _ in url_spans(part) if _SCHEME.match(part, start)]
        if starts:
            return min(starts)
    return None


def substantial(fit: Fit, source: str) -> bool:
    """Whether a cut lead says enough to be worth its room."""
    if fit.covered >= len(source) or not fit.piece.endswith("…"):
        return True
    words = [w for w in fit.piece.split() if _WORD.search(w)]
    if len(words) >= MIN_LEAD_WORDS:
        return True
    return len(words) <= 1 and len(graphemes(fit.piece)) >= MIN_LEAD_GRAPHEMES


@dataclass
class Shaper:
    """The search for one network's post of one release."""

    budget: Budget
    rules: ShapingRules
    language: str
    title: str
    lead: str
    link: str
    candidates: list[Hashtag]
    _leads: dict[tuple[str, tuple[str, ...]], Fit] = field(default_factory=dict)
    _sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def blocks(self, title: str, lead: str, appended: list[Hashtag]) -> list[str]:
        """The post's non-empty blocks, top to bottom."""
        blocks = {
            "title": title,
            "summary": lead,
            "hashtags": " ".join(str(tag) for tag in appended),
            "link": self.link,
        }
        return [blocks[name] for name in self.rules.order if blocks[name]]

    def render(self, title: str, lead: str, appended: list[Hashtag]) -> str:
        return SEPARATOR.join(self.blocks(title, lead, appended))

    def size(self, block: str) -> tuple[int, int]:
        """A block's length as the network counts it, and its UTF-8 bytes (memoised)."""
        if block not in self._sizes:
            self._sizes[block] = (self.budget.length(block), len(block.encode("utf-8")))
        return self._sizes[block]

    def fits(self, title: str, lead: str, appended: list[Hashtag]) -> bool:
        """Whether the rendered post fits, from the sizes of its blocks.

        Every network's count is additive across the blank line between blocks:
        no URL, hashtag, emoji sequence, grapheme or NFC composition spans a line
        break. The title, hashtags and link are measured once per post instead of
        once per trial; the whole text is measured again before it is returned.
        """
        parts = [self.size(block) for block in self.blocks(title, lead, appended)]
        separators = len(parts) - 1
        length = sum(n for n, _ in parts) + separators * self.size(SEPARATOR)[0]
        size = sum(b for _, b in parts) + separators * len(SEPARATOR)
        max_bytes = self.budget.max_bytes
        return length <= self.budget.limit and (max_bytes is None or size <= max_bytes)

    def fit_lead(self, title: str, appended: list[Hashtag]) -> Fit:
        """The most of the lead that fits next to ``title``, ``appended`` and the link."""
        key = (title, tuple(tag.body for tag in appended))
        if key not in self._leads:
            fit = None
            if self.lead and "summary" in self.rules.order and self.fits(title, "", appended):
                fit = fit_text(
                    self.lead,
                    self.language,
                    lambda piece: self.fits(title, piece, appended) and self.short(piece),
                    teaser=True,
                )
            if fit is None or not substantial(fit, self.lead):
                fit = Fit("", 0)
            self._leads[key] = fit
        return self._leads[key]

    def short(self, lead: str) -> bool:
        """Whether ``lead`` is within the network's lead length (where "See more" falls)."""
        maximum = self.rules.lead_length
        return maximum is None or self.size(lead)[0] <= maximum

    def attempt(self, title: str, wanted: int) -> tuple[Fit, list[Hashtag]]:
        """The lead and appended hashtags when up to ``wanted`` hashtags are appended."""
        in_title = tags.unique(tags.live(title, self.budget.network))
        title_keys = {tag.key for tag in in_title}
        room = self.rules.max_hashtags - len(in_title) if "hashtags" in self.rules.order else 0
        pool = [tag for tag in self.candidates if tag.key not in title_keys]
        appended = pool[: max(0, min(wanted, room))]
        while appended and not self.fits(title, "", appended):
            appended.pop()
        while True:
            lead = self.fit_lead(title, appended)
            shown = tags.unique(in_title + tags.live(lead.piece, self.budget.network))
            keys = {tag.key for tag in shown}
            kept = [tag for tag in appended if tag.key not in keys]
            kept = kept[: max(0, self.rules.max_hashtags - len(shown))]
            if kept == appended:
                return lead, appended
            appended = kept

    def shape(self) -> tuple[str, Fit, list[Hashtag]]:
        """The title as shown, the lead, and the appended hashtags."""
        if not self.fits(self.title, "", []):
            return self.cut_title(), Fit("", 0), []
        head = self.lead[:PREFIX_MARGIN]
        first = next((p.index for p in cut_points(head, self.language) if p.sentence), None)
        first_sentence = len(self.lead) if first is None else first
        plain = self.attempt(self.title, 0)
        first_fits = plain[0].covered >= first_sentence
        for wanted in range(min(len(self.candidates), self.rules.max_hashtags), 0, -1):
            lead, appended = self.attempt(self.title, wanted)
            if first_fits and lead.covered >= first_sentence:
                return self.title, lead, appended
            if not first_fits and lead.covered * LEAD_KEPT_FOR_HASHTAGS >= plain[0].covered:
                return self.title, lead, appended
        return self.title, plain[0], plain[1]

    def cut_title(self) -> str:
        network = self.budget.network
        if not self.fits("", "", []):
            raise ComposeError(
                network,
                f"the link alone is {self.budget.length(self.link)} long as "
                f"{network_name(network)} counts it; the limit is {self.budget.limit}",
            )
        fit = fit_text(self.title, self.language, lambda piece: self.fits(piece, "", []))
        if fit is None:
            raise ComposeError(
                network,
                f"the title does not fit on {network_name(network)} and has no place to cut it "
                "between words; give this network a text override",
            )
        return fit.piece


def hashtag_candidates(
    release: Release, texts: list[str], options: ComposeOptions, notes: list[str]
) -> list[Hashtag]:
    """The release's hashtags, its mapped topics' hashtags, then those in its text."""
    found: list[Hashtag] = []
    for raw in release.hashtags:
        tag, note = tags.normalize(clean(raw))
        if note:
            notes.append(note)
        if tag is not None:
            found.append(tag)
    found += tags.from_topics(release.topics, options.hashtag_map)
    for text in texts:
        found += tags.inline(text)
    return tags.unique(found)


@dataclass(frozen=True)
class Source:
    """A release's text, cleaned, as one network's rules read it."""

    title: str
    lead: str
    lead_name: str
    summary: str
    body: list[str]
    notes: list[str]


def read_source(release: Release, rules: ShapingRules, urls: tuple[str, ...]) -> Source:
    """Title and lead, with ``# Tag`` repaired and the release link taken out of them."""
    notes: list[str] = []
    summary = " ".join(paragraphs(release.summary))
    body = paragraphs(release.body)
    parts = [summary] if summary else []
    if body and rules.lead == "first" and not summary:
        parts.append(body[0])
    elif body and (rules.lead == "full" or not summary):
        parts += body
    lead_name = " and ".join(
        name
        for name, used in (("summary", bool(summary)), ("body", len(parts) > bool(summary)))
        if used
    )
    title, found = tags.repair_spaced(" ".join(paragraphs(release.title)), "title")
    notes += found
    lead, found = tags.repair_spaced(SEPARATOR.join(parts), lead_name or "summary")
    notes += found
    if _links_in(title, urls) or _links_in(lead, urls):
        notes.append("the release link is taken out of the text; it ends the post")
        title, lead = _without(title, urls), _without(lead, urls)
    return Source(title, lead, lead_name, summary, body, notes)


def _links_in(text: str, urls: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where ``text`` holds one of ``urls`` as a whole link (not inside a longer one)."""
    spans = {(u.start, u.end) for u in x_urls().extract(text)}
    spans |= {(start, end) for start, end, _ in link_spans(text)}
    return sorted((start, end) for start, end in spans if text[start:end] in urls)


_PAIRS = {"(": ")", "[": "]", "{": "}", "«": "»", "“": "”", "„": "“", "‹": "›", "‘": "’"}
_TERMINAL = frozenset(".,;:!?…")
_ORPHAN = ",;:–—-"
"""Punctuation that introduced the link: orphaned when the link's own punctuation follows."""
_INNER_SPACE = " \t\u00a0\u202f"
_NEVER_SPACED = frozenset(".,…)]}")
"""What follows a word without a space in any language the releases use."""


def _without(text: str, urls: tuple[str, ...]) -> str:
    """``text`` without ``urls``, and without the punctuation that only framed them."""
    for start, end in reversed(_links_in(text, urls)):
        text = _join(text[:start], text[end:])
    return SEPARATOR.join(_RUNS.sub(" ", part).strip() for part in text.split(SEPARATOR)).strip()


def _join(before: str, after: str) -> str:
    """The text around a link taken out: no empty brackets, no space or orphan before
    punctuation (``at .``, ``(see )``, ``here: .``), no punctuation opening a sentence."""
    while (opener := before.rstrip(_INNER_SPACE)[-1:]) in _PAIRS:
        rest = after.lstrip(_INNER_SPACE)
        if rest[:1] != _PAIRS[opener]:
            break
        before, after = before.rstrip(_INNER_SPACE)[:-1], rest[1:]  # "(<link>)"
    head = before.rstrip(" \t")
    if after.lstrip(" \t")[:1] in _NEVER_SPACED:
        after = after.lstrip(" \t")  # "see <link> )": French spaces ";:!?»" only
    if not after.strip(" \t") or after.lstrip(" \t")[:1] == "\n":
        return head.rstrip(_ORPHAN + " \t") + after.lstrip(" \t")  # "Read it: <link>"
    if after[0] not in _TERMINAL and after[0] not in _PAIRS.values():
        if not head or head.endswith("\n") or head[-1] in _PAIRS:
            return head + after.lstrip(" \t")
        return head + " " + after.lstrip(" \t")
    if head and head[-1] in _ORPHAN and after[0] in _TERMINAL:
        head = head[:-1].rstrip(" \t")  # "Read it here: <link>." -> "Read it here."
    if not head.strip() or head.endswith("\n"):
        return head + after.lstrip(".,;:!?… \t")  # "<link>. It says" -> "It says"
    return head + after


def compose(release: Release, network: str, options: ComposeOptions | None = None) -> Post:
    """The post ``network`` gets for ``release``, never over the network's limit.

    Raises ComposeError when no such post exists: a text override over the
    limit, a link the network would not make clickable, a title that cannot
    be cut between words.
    """
    options = options or ComposeOptions()
    budget = Budget.for_network(network, options.limits.get(network))
    link = release_link(release, network, options)
    if network in release.overrides:
        return _from_override(release, network, link, budget)
    rules = options.rules_for(network)
    source = read_source(release, rules, (release.url, link))
    notes = list(source.notes)
    title, lead, what = source.title, source.lead, source.lead_name
    candidates = hashtag_candidates(release, [title, lead, *source.body], options, notes)
    title, lead = (mentions(text, network, options) for text in (title, lead))
    if WORD_JOINER in title + lead and WORD_JOINER not in source.title + source.lead:
        notes.append(
            f"@handles in the text are plain text on {network_name(network)}, so they tag no "
            "one; give the network's handle under 'mentions' in the mapping file to tag it"
        )
    shown = bluesky_display(link) if faceted(network) else link
    shaper = Shaper(budget, rules, release.language, title, lead, shown, candidates)
    shown_title, lead_fit, appended = shaper.shape()
    text = shaper.render(shown_title, lead_fit.piece, appended)
    problem = budget.problem(text)
    if problem is not None:
        raise ComposeError(network, f"the post would be {problem}")
    name = network_name(network)
    if shown_title != title:
        notes.append(f"the title is too long for {name} and is cut")
    if lead and "summary" in rules.order:
        if not lead_fit.piece:
            notes.append(f"no room for the {what} on {name}")
        elif lead_fit.covered < len(lead):
            notes.append(f"the {what} {'are' if ' and ' in what else 'is'} cut to fit {name}")
            stop = first_foreign_link(lead[: lead_fit.covered + PREFIX_MARGIN])
            if stop is not None and _stopped_by_link(lead, lead_fit.covered, stop, release):
                notes.append(
                    f"the {what} {'are' if ' and ' in what else 'is'} cut before another "
                    "link, so the link card shows the release"
                )
    posted = tags.unique(tags.live(text, network))
    keys = {tag.key for tag in posted}
    left_out = [str(tag) for tag in candidates if tag.key not in keys]
    if left_out:
        notes.append(
            f"hashtags left out on {name} (at most {rules.max_hashtags}, or no room): "
            + ", ".join(left_out)
        )
    return Post(
        network=network,
        text=text,
        link=link,
        length=budget.length(text),
        limit=budget.limit,
        language=release.language,
        title=source.title,
        description=describe(source.summary or SEPARATOR.join(source.body), release.language),
        hashtags=tuple(str(tag) for tag in posted),
        facets=(tuple(bluesky_facets(text, shown=((shown, link),))) if faceted(network) else ()),
        notes=tuple(dict.fromkeys(notes)),
        link_text="" if shown == link else shown,
    )


def _stopped_by_link(lead: str, covered: int, stop: int, release: Release) -> bool:
    """Whether the lead ends where it does because a link follows: no teaser cut between."""
    if stop < covered:
        return False
    between = cut_points(lead[: stop + 1], release.language)
    return not any(point.sentence for point in between if covered < point.index <= stop)


def mentions(text: str, network: str, options: ComposeOptions) -> str:
    """``text`` with its ``@handles`` as ``network`` must get them (see ``mentions``)."""
    if "@" not in text and "＠" not in text:
        return text
    return render_mentions(text, network, options.mentions, url_spans(text))


def describe(text: str, language: str) -> str:
    """A link card's description: the lead, cut to ``DESCRIPTION_GRAPHEMES`` between words."""
    fit = fit_text(
        text, language, lambda piece: len(graphemes(piece)) <= DESCRIPTION_GRAPHEMES, teaser=True
    )
    return fit.piece if fit is not None else ""


def _from_override(release: Release, network: str, link: str, budget: Budget) -> Post:
    """A release's own text for ``network``: checked, never trimmed."""
    notes: list[str] = []
    text, notes = tags.repair_spaced(clean(release.overrides[network]).strip(), "text override")
    if link not in text:
        text = (
            text.replace(release.url, link) if release.url in text else f"{text}{SEPARATOR}{link}"
        )
    problem = budget.problem(text)
    if problem is not None:
        raise ComposeError(network, f"the text override is {problem}")
    return Post(
        network=network,
        text=text,
        link=link,
        length=budget.length(text),
        limit=budget.limit,
        language=release.language,
        title=clean(release.title),
        description=describe(
            " ".join(paragraphs(release.summary or release.body)), release.language
        ),
        hashtags=tuple(str(tag) for tag in tags.unique(tags.live(text, network))),
        facets=tuple(bluesky_facets(text, links=(link,))) if faceted(network) else (),
        notes=tuple(notes),
    )

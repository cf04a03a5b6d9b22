"""Property tests: for any text, title, link and hashtags, every network's post is right.

For arbitrary Unicode (any script, emoji sequences, combining marks, right-to-left
marks and isolates, zero-width joiners, CJK without spaces), with URLs, bare
domains and hashtags mixed in, each network's post:

- is within the network's limit as that network counts it, and never empty;
- contains the release link exactly once, clickable whole on that network (on
  Bluesky shown short, as the app shows it, its facet carrying the whole link),
  and no other link with a scheme after the title, so the link card is the release's;
- has no broken grapheme, word, URL or hashtag: every word shown is a word of
  the release (or its start at a CJK boundary, or the word without a trailing
  comma or dash before ``…``), and every URL and hashtag is one of the release's.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from socialbot.compose import ComposeOptions, compose, graphemes, measure
from socialbot.compose.counting import Budget
from socialbot.compose.hashtags import normalize
from socialbot.compose.mentions import WORD_JOINER
from socialbot.compose.richtext import link_spans, tag_spans
from socialbot.compose.shaping import SEPARATOR, read_source, release_link
from socialbot.compose.trimming import ELLIPSIS, cut_points, finish
from socialbot.compose.twitter_text import UrlEntity, extract_hashtags, mastodon_urls, x_urls
from socialbot.errors import ComposeError
from socialbot.models import NETWORKS, Post, Release, TextLimits

TOPICS = {"Cohesion policy reform": "CohesionPolicy", "Urban policy": "Urban agenda"}
OPTIONS = ComposeOptions(hashtag_map=TOPICS)
CLOSERS = "\u202c\u2069"
DANGLING = ",;:-–—‐(/[{«„“‚‘‹\"'·&"
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

letters = st.characters(
    blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
    blacklist_characters="#＃\ufeff\ufffe\uffff",
)
plain_word = st.text(letters, min_size=1, max_size=15)
emoji_word = st.sampled_from(
    [
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",
        "🇪🇺",
        "👏🏽",
        "1\ufe0f\u20e3",
        "\u2067مرحبا\u2069",
        "\u200fשלום",
        "東京都庁",
        "Zu\u0308rich",
    ]
)
hashtag_word = st.from_regex(r"#[A-Za-zÀ-ÿА-яΑ-ω][A-Za-z0-9À-ÿА-яΑ-ω_]{0,11}", fullmatch=True)
tld = st.sampled_from(["eu", "com", "org", "de", "fr", "bg", "gr", "ελ", "бг"])
label = st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)
host = st.builds(lambda a, b, t: f"{a}.{b}.{t}", label, label, tld)
path_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Z"), blacklist_characters="#?"),
    max_size=25,
)
url = st.builds(
    lambda scheme, h, path, query: f"{scheme}://{h}/{path}{query}",
    st.sampled_from(["http", "https"]),
    host,
    path_text,
    st.sampled_from(["", "?lang=en", "?a=1&b=%20x", "#part"]),
)
bare_domain = st.builds(
    lambda h, p: f"{h}/{p}" if p else h, host, st.from_regex(r"[a-z]{0,6}", fullmatch=True)
)
word = st.one_of(
    plain_word, plain_word, plain_word, plain_word, emoji_word, hashtag_word, url, bare_domain
)
separator = st.sampled_from([" ", " ", " ", " ", "\n", "\n\n", "\u00a0"])


def prose(max_words: int, min_words: int = 0) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(word, separator), min_size=min_words, max_size=max_words).map(
        lambda pairs: "".join(w + s for w, s in pairs).strip()
    )


# The release's own page: a host the generated text never uses, so the text holds no
# copy of the link (taking a copy out is tested in test_compose.py).
release_url = st.builds(
    lambda path, query: f"https://cor.europa.eu/{path}{query}",
    path_text,
    st.sampled_from(["", "?lang=en", "?a=1&b=%20x", "#part"]),
)
releases = st.builds(
    lambda title, summary, body, link, tags, topics: Release.model_validate(
        {
            "id": "r1",
            "title": title,
            "url": link,
            "language": "en",
            "summary": summary,
            "body": body,
            "hashtags": tags,
            "topics": topics,
        }
    ),
    prose(30, min_words=1).filter(str.strip),
    prose(60),
    prose(120),
    release_url,
    st.lists(st.text(max_size=20), max_size=6),
    st.lists(st.sampled_from([*TOPICS, "Unmapped topic"]), max_size=3),
)


def clean(text: str) -> str:
    """As the composer documents: NFC, without what no network accepts (BOMs, controls)."""
    return unicodedata.normalize(
        "NFC", re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\ufffe\uffff]", "", text)
    )


def source_texts(release: Release) -> list[str]:
    return [clean(release.title), clean(release.summary), clean(release.body)]


def word_is_whole(token: str, words: set[str]) -> bool:
    """``token`` is a source word, or one cut as the composer may cut it."""
    if token in words:
        return True
    core = token.removesuffix(ELLIPSIS).rstrip(CLOSERS)
    if not core:
        return False
    for source in words:
        if not source.startswith(core):
            continue
        rest = source[len(core) :]
        if token.endswith(ELLIPSIS) and all(ch in DANGLING for ch in rest):
            return True
        if "".join(graphemes(source)[: len(graphemes(core))]) == core and len(graphemes(core)) < (
            len(graphemes(source))
        ):
            return True  # a cut between CJK characters, at a grapheme boundary
    return False


def mastodon_found(text: str) -> list[UrlEntity]:
    return mastodon_urls().extract(text, without_protocol=False)


def links_to(network: str, text: str, link: str) -> int:
    """How many times ``text`` holds ``link`` as a whole link, as ``network`` finds links."""
    if network == "x":
        return [u.url for u in x_urls().extract(text)].count(link)
    mastodon = [u.url for u in mastodon_found(text)]
    bluesky = [uri for _, _, uri in link_spans(text)]
    if network == "mastodon":
        return mastodon.count(link)
    if network == "bluesky":
        return bluesky.count(link)
    return min(mastodon.count(link), bluesky.count(link))  # Facebook, LinkedIn


def check(release: Release, network: str, post: Post) -> None:
    """Every property a post must have, as ``network`` reads it."""
    text = post.text
    assert text.strip()
    assert post.length == measure(network, text) <= post.limit
    if network == "bluesky":
        assert len(text.encode("utf-8")) <= 3000
    check_link(network, post)
    check_card(release, post)
    body = text[: len(text) - len(post.link_text or post.link)]  # everything before the link
    sources = source_texts(release)
    check_words(body, sources, set(post.hashtags))
    check_urls(body, sources)
    check_hashtags(network, release, post, sources)
    if not any("title is too long" in note or "link is taken out" in note for note in post.notes):
        assert text.startswith(re.sub(r"[ \t\r\n\f\v]+", " ", clean(release.title)).strip())


def check_link(network: str, post: Post) -> None:
    """The release link once, last, and a whole link where the network looks."""
    text, link = post.text, post.link
    if network == "bluesky":
        shown = post.link_text or link
        assert text.endswith(shown)
        assert len(graphemes(shown)) <= len(graphemes(link))
        data = text.encode("utf-8")
        links = [f for f in post.facets if "uri" in f["features"][0]]
        assert links[-1]["features"][0]["uri"] == link
        last = links[-1]["index"]
        assert data[last["byteStart"] : last["byteEnd"]].decode() == shown
        assert [f["features"][0]["uri"] for f in links].count(link) == 1
        return
    assert post.link_text == ""
    assert links_to(network, text, link) == 1
    assert text.endswith(link)
    whole = (len(text) - len(link), len(text))
    if network == "x":
        assert whole in [(u.start, u.end) for u in x_urls().extract(text)]
    if network == "mastodon":
        assert whole in [(u.start, u.end) for u in mastodon_found(text)]


def check_card(release: Release, post: Post) -> None:
    """After the title, no URL with a scheme but the release link: the card is the release's.

    Mastodon builds its card from the first http(s) URL of a status; the title is
    kept whole, so only a title holding a link of its own may come first.
    """
    shown = post.link_text or post.link
    title = re.sub(r"[ \t\r\n\f\v]+", " ", clean(release.title)).strip()
    rest = post.text[: len(post.text) - len(shown)]
    if rest.startswith(title):
        rest = rest[len(title) :]
    elif "title is too long" in " ".join(post.notes):
        rest = rest.partition(SEPARATOR)[2]
    schemed = [u for u in mastodon_found(rest) if re.match(r"(?i)https?://", u.url)]
    schemed += [u for u in x_urls().extract(rest) if re.match(r"(?i)https?://", u.url)]
    assert schemed == [], schemed


def check_words(body: str, sources: list[str], appended: set[str]) -> None:
    """No broken grapheme or word: each word shown is a whole word of the release."""
    words = {w.replace(WORD_JOINER, "") for source in sources for w in source.split()}
    for token in body.replace(WORD_JOINER, "").split():
        if token.lstrip(CLOSERS) == ELLIPSIS:
            continue  # the ellipsis set off after a URL
        assert token in appended or word_is_whole(token, words), token


def check_urls(body: str, sources: list[str]) -> None:
    """No broken URL: each URL any network finds is one of the release's text."""
    assert {u.url for u in x_urls().extract(body)} <= {
        u.url for s in sources for u in x_urls().extract(s)
    }
    assert {u.url for u in mastodon_found(body)} <= {
        u.url for s in sources for u in mastodon_found(s)
    }
    assert {uri for _, _, uri in link_spans(body)} <= {
        uri for s in sources for _, _, uri in link_spans(s)
    }


def check_hashtags(network: str, release: Release, post: Post, sources: list[str]) -> None:
    """No broken hashtag: each one the network finds is the release's, or one appended."""
    if network == "bluesky":
        known = {tag for s in sources for _, _, tag in tag_spans(s)}
        known |= {tag.removeprefix("#") for tag in post.hashtags}
        assert {tag for _, _, tag in tag_spans(post.text)} <= known
        return
    known = {h.tag.casefold() for s in sources for h in extract_hashtags(s)}
    known |= {tag.key for raw in release.hashtags if (tag := normalize(clean(raw))[0])}
    known |= {tag.key for raw in TOPICS.values() if (tag := normalize(raw)[0])}
    if network == "mastodon":
        links = [(u.start, u.end) for u in mastodon_found(post.text)]
    else:
        links = [(first, last) for first, last, _ in link_spans(post.text)]
    shown = {
        h.tag.casefold()
        for h in extract_hashtags(post.text)
        if network == "x" or not any(first <= h.start < last for first, last in links)
    }
    assert shown <= known


def composed(release: Release, network: str, options: ComposeOptions) -> Post | None:
    """The post, or None when the composer rightly refuses a title it cannot cut.

    A title with no place to cut it between words that still fits next to the link
    (one long URL or token, say) is a documented ComposeError, asking for an
    override; anything else it raises is a bug.
    """
    try:
        return compose(release, network, options)
    except ComposeError as exc:
        assert "no place to cut it" in str(exc), exc
        source = read_source(release, options.rules_for(network), (release.url,))
        link = release_link(release, network, options)
        budget = Budget.for_network(network, options.limits.get(network))
        for point in cut_points(source.title, release.language):
            piece = finish(source.title, point)
            assert piece is None or not budget.fits(piece + SEPARATOR + link), piece
        return None


@pytest.mark.parametrize("network", NETWORKS)
@SETTINGS
@given(release=releases)
def test_every_post_is_within_limits_with_the_link_once_and_nothing_broken(
    network: str, release: Release
):
    post = composed(release, network, OPTIONS)
    if post is not None:
        check(release, network, post)


@pytest.mark.parametrize("network", ["x", "mastodon", "bluesky"])
@settings(SETTINGS, max_examples=100)
@given(release=releases, limit=st.integers(min_value=120, max_value=600))
def test_a_network_s_own_smaller_or_larger_limit_is_kept_too(
    network: str, release: Release, limit: int
):
    options = ComposeOptions(hashtag_map=TOPICS, limits={network: TextLimits(limit, 23)})
    post = composed(release, network, options)
    if post is not None:
        assert post.limit == limit
        check(release, network, post)


def escape_with_every_link_found(text: str) -> str:
    """LinkedIn's escaping as it was before links were found only when needed (the oracle)."""
    from socialbot.compose.richtext import _LITTLE_HASHTAG, _escape, _link_mask

    out, last, in_link = [], 0, _link_mask(text)
    for match in _LITTLE_HASHTAG.finditer(text):
        if in_link[match.start()]:
            continue
        out += [_escape(text[last : match.start()]), match.group()]
        last = match.end()
    return "".join([*out, _escape(text[last:])])


linkish = st.lists(
    st.sampled_from(
        [
            "#",
            "#Cohesion",
            " ",
            "\n",
            "\t",
            "/",
            ".",
            "eu",
            "cor.europa.eu",
            "https://",
            "www.",
            "?a=1",
            "(",
            ")",
            "_",
            "x",
            "Ä",
            "2027",
            "\u00a0",
            "\u3000",
            "＃",
            "\\",
            "*",
            "~",
        ]
    ),
    max_size=14,
).map("".join)


@SETTINGS
@given(text=linkish)
def test_linkedin_escaping_finds_links_only_when_a_hashtag_could_be_in_one(text: str):
    from socialbot.compose import escape_little_text

    assert escape_little_text(text) == escape_with_every_link_found(text)

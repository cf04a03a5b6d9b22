"""The release link: campaign parameters, and a form every network links in full.

A link is only worth posting if the network makes all of it clickable. X and
Mastodon decide that with their own URL rules (``twitter_text``), Bluesky with
the app's detection (``richtext``). Characters those rules stop at (non-ASCII
letters in a path, an unbalanced parenthesis, a full stop at the very end) are
percent-encoded there, which names the same page.
"""

from __future__ import annotations

import string
from urllib.parse import quote, unquote, urlsplit

import regex

from socialbot.compose.richtext import link_spans
from socialbot.compose.twitter_text import mastodon_urls, x_urls

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
SHORT_PATH = 15
"""The Bluesky app shows a link's path whole up to this many characters..."""
SHORT_KEPT = 13
"""...and beyond, this many of them and ``...``."""
SHORT_MORE = "..."
_GRAPHEME = regex.compile(r"\X")
_HEX = frozenset(string.hexdigits)
_NEVER_RAW = frozenset(' "<>\\^`{|}')
# Characters that may be percent-encoded without changing which page a link names.
_ENCODABLE = frozenset("()!*',;:.~$|[]@-_&=+")


def with_utm(url: str, network: str, campaign: str) -> str:
    """``url`` with ``utm_source=<network>&utm_medium=social&utm_campaign=<campaign>``.

    Merged into the query string as written: other parameters keep their exact
    encoding, and earlier ``utm_*`` values of those three names are replaced.
    """
    rest, hash_sign, fragment = url.partition("#")
    base, _, query = rest.partition("?")
    kept = [
        pair
        for pair in query.split("&")
        if pair and unquote(pair.partition("=")[0]) not in UTM_KEYS
    ]
    ours = [
        f"utm_source={quote(network, safe='')}",
        "utm_medium=social",
        f"utm_campaign={quote(campaign, safe='')}",
    ]
    return f"{base}?{'&'.join(kept + ours)}{hash_sign}{fragment}"


def as_uri(url: str) -> str:
    """Percent-encode what no URL may hold raw: spaces, controls, ``"<>\\^`{|}``, a stray ``%``.

    The host and non-ASCII letters are left as written (``clickable`` encodes
    those only where a network would stop the link); an existing ``%XX`` is
    never encoded twice.
    """
    start = _tail_start(url)
    head, tail = url[:start], url[start:]
    out = []
    for index, ch in enumerate(tail):
        escape = tail[index + 1 : index + 3]
        stray_percent = ch == "%" and not (len(escape) == 2 and set(escape) <= _HEX)
        if stray_percent or ch in _NEVER_RAW or not ch.isprintable():
            out.append(_percent(ch))
        else:
            out.append(ch)
    return head + "".join(out)


def _tail_start(url: str) -> int:
    """Where the path (or query, or fragment) begins: after ``scheme://host:port``."""
    scheme_end = url.find("://")
    if scheme_end == -1:
        return 0
    ends = [url.find(c, scheme_end + 3) for c in "/?#"]
    return min((end for end in ends if end != -1), default=len(url))


def _percent(ch: str) -> str:
    """``ch`` percent-encoded as UTF-8, even an unreserved one such as ``.``."""
    return "".join(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))


def recognised_by(network: str, link: str) -> bool:
    """Whether ``network`` makes all of ``link`` one clickable link, as written alone."""
    if network == "x":
        found = x_urls().extract(link)
        return len(found) == 1 and (found[0].start, found[0].end) == (0, len(link))
    if network == "mastodon":
        found = mastodon_urls().extract(link, without_protocol=False)
        return len(found) == 1 and (found[0].start, found[0].end) == (0, len(link))
    if network == "bluesky":
        return [(start, end) for start, end, _ in link_spans(link)] == [(0, len(link))]
    return True


def clickable(url: str, networks: tuple[str, ...] = ("x", "mastodon", "bluesky")) -> str:
    """``url`` in a form each of ``networks`` links whole, as far as encoding can get it."""
    link = as_uri(url)
    for _ in range(len(link)):
        if all(recognised_by(network, link) for network in networks):
            return link
        stop = _first_unlinked(link, networks)
        tail = _tail_start(link)
        if stop is None or stop < tail:
            return link
        if not link[stop].isascii():
            # One letter a network stops at: encode them all, not a readable-looking mix.
            link = link[:tail] + "".join(ch if ch.isascii() else _percent(ch) for ch in link[tail:])
        elif link[stop] in _ENCODABLE:
            link = link[:stop] + _percent(link[stop]) + link[stop + 1 :]
        else:
            return link
    return link


def _first_unlinked(link: str, networks: tuple[str, ...]) -> int | None:
    """Where the shortest network's link ends, when it is a proper prefix of ``link``."""
    ends = []
    for network in networks:
        if network == "x":
            spans = [(u.start, u.end) for u in x_urls().extract(link)]
        elif network == "mastodon":
            spans = [
                (u.start, u.end) for u in mastodon_urls().extract(link, without_protocol=False)
            ]
        else:
            spans = [(start, end) for start, end, _ in link_spans(link)]
        if not spans or spans[0][0] != 0:
            return None
        ends.append(spans[0][1])
    end = min(ends)
    return end if end < len(link) else None


def bluesky_display(link: str) -> str:
    """``link`` as the Bluesky app writes it in a post: host and path, the path shortened.

    The app's composer (bluesky-social/social-app ``src/lib/strings/url-helpers.ts``
    ``toShortUrl``, applied by ``shortenLinks`` before posting) writes an http(s) link
    as ``host + path + query + fragment`` (a bare ``/`` path left out) and, when that
    tail is longer than 15 characters, as its first 13 and ``...``; the link facet
    keeps the full URI. Here the tail is counted in graphemes, so no letter is split.
    """
    try:
        parts = urlsplit(link)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return link
    if parts.scheme.lower() not in ("http", "https") or not host:
        return link
    netloc = host if port is None else f"{host}:{port}"
    tail = "" if parts.path == "/" else parts.path
    tail += f"?{parts.query}" if parts.query else ""
    tail += f"#{parts.fragment}" if parts.fragment else ""
    letters = _GRAPHEME.findall(tail)
    if len(letters) > SHORT_PATH:
        return netloc + "".join(letters[:SHORT_KEPT]) + SHORT_MORE
    return netloc + tail

"""Canonical addresses: one key per press release, whatever link led to it.

``canonical_url`` is the address a draft carries: scheme and host in lower case, the
default port, the fragment and tracking parameters (``utm_*``, ``fbclid``, ...) removed,
the remaining parameters sorted. ``identity_key`` is what the ledger compares: the
canonical URL with a content-management system's duplicate-alias suffix taken off the
last path segment (``cohesion-alliance-week-0`` is ``cohesion-alliance-week``).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

TRACKING_PARAMETERS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "_hsenc",
        "_hsmi",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "wt.mc_id",
        "xtor",
        "at_medium",
        "at_campaign",
        "ref_src",
        "s_cid",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_")
# "-0" after a slug of three or more words: the alias a CMS makes when the slug is taken
# (Drupal's first). Only "-0": "forum-day-1" and "forum-day-2" are two releases, and taking
# them for one would overwrite one with the other; a "-1" alias costs a second draft at most.
_ALIAS_SUFFIX = re.compile(r"^(?P<slug>[^/-]+(?:-[^/-]+){2,})-0(?P<ext>\.[A-Za-z0-9]+)?$")
_SAFE_PATH = "/:@!$&'()*+,;=-._~"


def is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMETERS or lowered.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str) -> str:
    """The address without tracking, fragments, default ports or needless escapes."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = (
        host
        if port is None or (scheme, port) in (("http", 80), ("https", 443))
        else (f"{host}:{port}")
    )
    path = quote(unquote(parts.path), safe=_SAFE_PATH) or "/"
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking(k)
    ]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def identity_key(url: str) -> str:
    """The ledger's key: the canonical URL with a duplicate-alias suffix removed."""
    canonical = canonical_url(url)
    parts = urlsplit(canonical)
    head, _, last = parts.path.rpartition("/")
    match = _ALIAS_SUFFIX.match(last)
    if match:
        last = match.group("slug") + (match.group("ext") or "")
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/{last}", parts.query, ""))


def url_language(url: str) -> str | None:
    """The language code an address carries as its first path segment (``/ga/news/...``)."""
    match = re.match(r"/([a-z]{2})(?:[-_][A-Za-z]{2})?(?:/|$)", urlsplit(url).path)
    return match.group(1) if match else None

"""What shapes posts beyond the release: per-network rules and the team's mapping file.

The mapping file (``SOCIALBOT_HASHTAGS_FILE``, default ``hashtags.yaml``) is
YAML with a ``topics`` section (topic -> hashtag) and an optional ``networks``
section that overrides the shaping rules below for a network::

    topics:
      Cohesion policy reform: CohesionPolicy
    networks:
      x: {max_hashtags: 1}
    lead:                  # the lead's length at most, as the network counts it
      facebook: 500        # Facebook shows about 480 characters before "See more"
      linkedin: 210        # LinkedIn about 210
    mentions:              # an @handle of the release text -> that network's handle
      EU_CoR: {x: "@EU_CoR", mastodon: "@EU_CoR@social.example", bluesky: "@cor.europa.eu"}

See docs/composer.md for what each setting does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args

import regex
import yaml

from socialbot.compose.hashtags import normalize
from socialbot.errors import ConfigurationError
from socialbot.models import NETWORKS, TextLimits
from socialbot.networks import PROFILES
from socialbot.networks.base import Lead

BLOCKS = ("title", "summary", "hashtags", "link")
LEADS: tuple[str, ...] = get_args(Lead)
SECTIONS = ("topics", "networks", "lead", "mentions")
_HANDLE_NAME = regex.compile(r"[A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*")
_HANDLE = regex.compile(r"[@＠][^\s@＠]+(?:[@＠][^\s@＠]+)?")
MAX_FILE_BYTES = 256 * 1024


@dataclass(frozen=True)
class ShapingRules:
    """How one network's post is built. Data, so the team can tune it per network.

    ``order``: the blocks of the post, top to bottom; ``title`` and ``link``
    are required, ``summary`` and ``hashtags`` may be left out.
    ``max_hashtags``: hashtags in the post at most, those in the text included.
    ``lead``: ``full`` (the summary, then the body, as far as there is room),
    ``summary`` (only the summary; the body when there is no summary) or
    ``first`` (the summary, or the first paragraph of the body when there is none).
    ``lead_length``: the lead's length at most, as the network counts it (None:
    as far as the post has room); the lead is cut as any teaser is, below it.
    """

    order: tuple[str, ...] = BLOCKS
    max_hashtags: int = 3
    lead: str = "full"
    lead_length: int | None = None

    def __post_init__(self) -> None:
        if set(self.order) - set(BLOCKS) or len(set(self.order)) != len(self.order):
            raise ValueError(f"order must name each of {', '.join(BLOCKS)} at most once")
        if "title" not in self.order or "link" not in self.order:
            raise ValueError("order must include title and link")
        if self.max_hashtags < 0:
            raise ValueError("max_hashtags must be 0 or more")
        if self.lead not in LEADS:
            raise ValueError(f"lead must be one of {', '.join(LEADS)}")
        if self.lead_length is not None and (
            not isinstance(self.lead_length, int)
            or isinstance(self.lead_length, bool)
            or self.lead_length < 1
        ):
            raise ValueError("lead_length must be a whole number of characters, 1 or more")


RULES: dict[str, ShapingRules] = {
    name: ShapingRules(
        max_hashtags=profile.max_hashtags, lead=profile.lead, lead_length=profile.lead_length
    )
    for name, profile in PROFILES.items()
}
"""The default shaping of each network's post, from its profile."""


@dataclass(frozen=True)
class ComposeOptions:
    """What shapes posts beyond the release itself."""

    hashtag_map: Mapping[str, str] = field(default_factory=dict)
    """Topic -> hashtag, from the team's mapping file."""
    utm: bool = False
    """Add utm_source/utm_medium/utm_campaign to the release link."""
    limits: Mapping[str, TextLimits] = field(default_factory=dict)
    """Per-network limits reported by the network (e.g. a Mastodon instance)."""
    rules: Mapping[str, ShapingRules] = field(default_factory=dict)
    """Per-network shaping rules replacing the defaults in ``RULES``."""
    mentions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Handle in the release text (without ``@``) -> network -> that network's handle."""

    def rules_for(self, network: str) -> ShapingRules:
        return self.rules.get(network) or RULES.get(network) or ShapingRules()


class _SafeLoader(yaml.SafeLoader):
    """Safe YAML without aliases (no alias bombs)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("uses a YAML alias, which is not allowed")
        return super().compose_node(parent, index)


def load_options(path: Path, *, utm: bool = False, required: bool = True) -> ComposeOptions:
    """Read the mapping file at ``path`` into ComposeOptions.

    A missing file is an error only when ``required`` (it was named
    explicitly); every problem is one ConfigurationError naming the file.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        if required:
            raise ConfigurationError(f"the hashtag mapping file {path} does not exist") from None
        return ComposeOptions(utm=utm)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the hashtag mapping file {path}: {exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigurationError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_SafeLoader)  # noqa: S506 - a safe loader
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: not valid UTF-8 YAML: {exc}") from None
    try:
        hashtag_map, rules = parse_mapping(data)
        mentions = parse_mentions(data)
    except ValueError as exc:
        raise ConfigurationError(f"{path}: {exc}") from None
    return ComposeOptions(hashtag_map=hashtag_map, utm=utm, rules=rules, mentions=mentions)


def parse_mapping(data: Any) -> tuple[dict[str, str], dict[str, ShapingRules]]:
    """The ``topics`` and ``networks`` sections of a mapping file. Raises ValueError."""
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise ValueError(
            "needs a 'topics' mapping (topic: hashtag) and optionally 'networks', 'lead' "
            "and 'mentions'"
        )
    topics = data.get("topics") or {}
    if not isinstance(topics, dict):
        raise ValueError("'topics' must map each topic to one hashtag")
    hashtag_map: dict[str, str] = {}
    for topic, tag in topics.items():
        if tag is None:
            raise ValueError(
                f"topic {topic!r} has no hashtag (in YAML a # starts a comment: "
                "write CohesionPolicy, or quote it: '#CohesionPolicy')"
            )
        if not isinstance(topic, str) or not isinstance(tag, str):
            raise ValueError(f"topic {topic!r}: the topic and its hashtag must be text")
        if normalize(tag)[0] is None:
            raise ValueError(f"topic {topic!r}: {tag!r} is not a usable hashtag")
        hashtag_map[topic] = tag
    networks = data.get("networks") or {}
    if not isinstance(networks, dict):
        raise ValueError("'networks' must map a network to its shaping rules")
    rules = {}
    for network, overrides in networks.items():
        _known_network(network)
        rules[network] = _rules(network, overrides)
    lead = data.get("lead") or {}
    if not isinstance(lead, dict):
        raise ValueError("'lead' must map a network to a number of characters, e.g. facebook: 500")
    for network, length in lead.items():
        _known_network(network)
        if length is not None and (
            not isinstance(length, int) or isinstance(length, bool) or length < 1
        ):
            raise ValueError(f"lead.{network} must be a whole number of characters, 1 or more")
        base = rules.get(network) or RULES.get(network, ShapingRules())
        rules[network] = replace(base, lead_length=length)
    return hashtag_map, rules


def parse_mentions(data: Any) -> dict[str, dict[str, str]]:
    """The ``mentions`` section: handle (without ``@``) -> network -> that network's handle."""
    if not isinstance(data, dict):
        return {}
    section = data.get("mentions") or {}
    if not isinstance(section, dict):
        raise ValueError("'mentions' must map a handle to each network's handle")
    mentions: dict[str, dict[str, str]] = {}
    for name, handles in section.items():
        key = str(name).lstrip("@＠")
        if not isinstance(name, str) or not _HANDLE_NAME.fullmatch(key):
            raise ValueError(f"mentions: {name!r} is not a handle (letters, digits, '_')")
        if not isinstance(handles, dict):
            raise ValueError(f"mentions.{key} must map a network to its handle, e.g. x: '@{key}'")
        mentions[key] = {}
        for network, handle in handles.items():
            _known_network(network)
            if not isinstance(handle, str) or not _HANDLE.fullmatch(handle.strip()):
                raise ValueError(
                    f"mentions.{key}.{network}: {handle!r} is not a handle such as '@{key}' "
                    "(quote it: in YAML an unquoted @ cannot start a value)"
                )
            mentions[key][network] = handle.strip()
    return mentions


def _known_network(network: Any) -> None:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r} (supported: {', '.join(NETWORKS)})")


def _rules(network: str, overrides: Any) -> ShapingRules:
    known = {f.name for f in fields(ShapingRules)}
    if not isinstance(overrides, dict) or set(overrides) - known:
        raise ValueError(f"networks.{network}: may set {', '.join(sorted(known))}")
    values = dict(overrides)
    if "order" in values:
        if not isinstance(values["order"], list):
            raise ValueError(f"networks.{network}.order must be a list, e.g. [title, link]")
        values["order"] = tuple(values["order"])
    maximum = values.get("max_hashtags")
    if maximum is not None and (not isinstance(maximum, int) or isinstance(maximum, bool)):
        raise ValueError(f"networks.{network}.max_hashtags must be a whole number")
    try:
        return replace(RULES.get(network, ShapingRules()), **values)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"networks.{network}: {exc}") from None

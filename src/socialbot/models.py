"""The data that flows through socialbot: Release -> Post -> Receipt -> Delivery."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from socialbot.networks import NETWORKS as NETWORKS  # every supported network, in order
from socialbot.networks import PROFILES

# ISO 639-1, the two-letter codes (all 183 of them).
LANGUAGES = frozenset(
    [
        "aa",
        "ab",
        "ae",
        "af",
        "ak",
        "am",
        "an",
        "ar",
        "as",
        "av",
        "ay",
        "az",
        "ba",
        "be",
        "bg",
        "bi",
        "bm",
        "bn",
        "bo",
        "br",
        "bs",
        "ca",
        "ce",
        "ch",
        "co",
        "cr",
        "cs",
        "cu",
        "cv",
        "cy",
        "da",
        "de",
        "dv",
        "dz",
        "ee",
        "el",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fa",
        "ff",
        "fi",
        "fj",
        "fo",
        "fr",
        "fy",
        "ga",
        "gd",
        "gl",
        "gn",
        "gu",
        "gv",
        "ha",
        "he",
        "hi",
        "ho",
        "hr",
        "ht",
        "hu",
        "hy",
        "hz",
        "ia",
        "id",
        "ie",
        "ig",
        "ii",
        "ik",
        "io",
        "is",
        "it",
        "iu",
        "ja",
        "jv",
        "ka",
        "kg",
        "ki",
        "kj",
        "kk",
        "kl",
        "km",
        "kn",
        "ko",
        "kr",
        "ks",
        "ku",
        "kv",
        "kw",
        "ky",
        "la",
        "lb",
        "lg",
        "li",
        "ln",
        "lo",
        "lt",
        "lu",
        "lv",
        "mg",
        "mh",
        "mi",
        "mk",
        "ml",
        "mn",
        "mr",
        "ms",
        "mt",
        "my",
        "na",
        "nb",
        "nd",
        "ne",
        "ng",
        "nl",
        "nn",
        "no",
        "nr",
        "nv",
        "ny",
        "oc",
        "oj",
        "om",
        "or",
        "os",
        "pa",
        "pi",
        "pl",
        "ps",
        "pt",
        "qu",
        "rm",
        "rn",
        "ro",
        "ru",
        "rw",
        "sa",
        "sc",
        "sd",
        "se",
        "sg",
        "si",
        "sk",
        "sl",
        "sm",
        "sn",
        "so",
        "sq",
        "sr",
        "ss",
        "st",
        "su",
        "sv",
        "sw",
        "ta",
        "te",
        "tg",
        "th",
        "ti",
        "tk",
        "tl",
        "tn",
        "to",
        "tr",
        "ts",
        "tt",
        "tw",
        "ty",
        "ug",
        "uk",
        "ur",
        "uz",
        "ve",
        "vi",
        "vo",
        "wa",
        "wo",
        "xh",
        "yi",
        "yo",
        "za",
        "zh",
        "zu",
    ]
)

RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class DeliveryStatus(StrEnum):
    """Where one delivery (release x network) stands. Stored as its value."""

    PENDING = "pending"
    SENDING = "sending"
    POSTED = "posted"
    FAILED = "failed"
    UNKNOWN = "unknown"
    WITHDRAWN = "withdrawn"
    """Never to be posted: withdrawn by a person, or dropped by a newer approval."""
    RETRACTED = "retracted"
    """Was posted, then deleted from the network on a person's request."""

    @property
    def settled(self) -> bool:
        """True when nothing more will happen to the delivery by itself."""
        return self in (DeliveryStatus.POSTED, DeliveryStatus.WITHDRAWN, DeliveryStatus.RETRACTED)


def check_url(value: str) -> str:
    """Accept only absolute http(s) URLs with a host and no whitespace."""
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"must be an http or https URL, not {parts.scheme or 'relative'!r}")
    if not parts.hostname:
        raise ValueError("must name a host")
    return value


MAX_IMAGES = 4
"""The most images a release names (X and Bluesky take at most four per post)."""


class ImageRef(BaseModel):
    """One image a release names: ``file`` (relative to the release file) or ``url``."""

    # Validators are built on first use (defer_build): a cron run with nothing due reads no
    # release file, and building them costs about 2 % of such a run (docs/benchmark.md).
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )

    file: str | None = Field(default=None, min_length=1, max_length=500)
    url: str | None = Field(default=None, max_length=2000)
    alt: str | None = Field(default=None, max_length=5000)
    """Required at approval (a preview warns without it)."""

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(check_url(value)).scheme.lower() != "https":
            raise ValueError("an image's url must be https")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> ImageRef:
        if (self.file is None) == (self.url is None):
            raise ValueError("an image needs either 'file' or 'url' (not both)")
        return self

    @property
    def source(self) -> str:
        """How the image is named in messages: its file or URL."""
        return self.file or self.url or "image"


class Release(BaseModel):
    """One press release, as validated from a file in the queue."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, defer_build=True
    )

    id: str = Field(max_length=128)
    title: str = Field(min_length=1, max_length=1000)
    url: str = Field(max_length=2000)
    language: str
    summary: str = Field(default="", max_length=10_000)
    body: str = Field(default="", max_length=100_000)
    topics: list[str] = Field(default_factory=list, max_length=50)
    hashtags: list[str] = Field(default_factory=list, max_length=50)
    networks: list[str] | None = None
    not_before: datetime | None = None
    overrides: dict[str, str] = Field(default_factory=dict)
    # Set by `socialbot import` (optional in hand-written files): the date the page states,
    # the release this one is a language version of (the first imported version of the
    # group: every version points at it, it points at none), and the page it came from.
    published: datetime | None = None
    version_of: str | None = Field(default=None, max_length=128)
    source_url: str | None = Field(default=None, max_length=2000)
    # Images (docs/media.md): up to four, each a file beside the release or an https URL,
    # with alt text; ``attach`` says whether they go out as the link card's thumbnail
    # (where a network takes one from us) or attached to the post.
    images: list[ImageRef] = Field(default_factory=list, max_length=MAX_IMAGES)
    attach: Literal["card", "images"] = "card"

    @field_validator("version_of")
    @classmethod
    def _version_of(cls, value: str | None) -> str | None:
        if value is not None and not RELEASE_ID.fullmatch(value):
            raise ValueError("must be the id of another release")
        return value

    @field_validator("source_url")
    @classmethod
    def _source_url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("published")
    @classmethod
    def _published_aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-26T09:00:00+01:00")
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RELEASE_ID.fullmatch(value):
            raise ValueError(
                "must be letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        code = value.lower()
        if code not in LANGUAGES:
            raise ValueError(f"{value!r} is not an ISO 639-1 language code (e.g. 'en', 'bg')")
        return code

    @field_validator("networks")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        names = []
        for name in value:
            name = name.strip().lower()
            if name not in NETWORKS:
                raise ValueError(f"unknown network {name!r} (supported: {', '.join(NETWORKS)})")
            if name not in names:
                names.append(name)
        if not names:
            raise ValueError("must name at least one network, or be left out")
        return names

    @field_validator("overrides")
    @classmethod
    def _overrides(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in NETWORKS:
                raise ValueError(f"unknown network {name!r} (supported: {', '.join(NETWORKS)})")
            if not text.strip():
                raise ValueError(f"the text for {name} is empty")
        return value

    @field_validator("topics", "hashtags", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Accept the media centre's ``"Cohesion policy reform;Urban policy;"`` form."""
        if isinstance(value, str):
            return [part.strip() for part in re.split(r"[;\n]", value) if part.strip()]
        return value

    @field_validator("not_before")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError("needs a UTC offset, e.g. 2026-11-26T09:00:00+01:00")
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValueError(
                f"{value.isoformat()} cannot be expressed in UTC (it falls outside years 1-9999)"
            ) from None

    def content_hash(self) -> str:
        """SHA-256 of everything that decides what gets published."""
        # Unset import metadata stays out, so releases written before it existed keep their hash.
        unset = {
            name
            for name in ("published", "version_of", "source_url", "images")
            if not getattr(self, name)
        }
        if self.attach == "card":  # the default: releases without images keep their hash
            unset.add("attach")
        canonical = json.dumps(
            self.model_dump(mode="json", exclude=unset),
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def target_networks(self, active: list[str]) -> list[str]:
        """The networks this release goes to: the ones it names, or every active one."""
        return list(self.networks) if self.networks is not None else list(active)


@dataclass(frozen=True)
class TextLimits:
    """A network's text limit for one account, as the network reports it."""

    max_characters: int
    url_weight: int = 23


@dataclass(frozen=True)
class PostImage:
    """One approved image as one network gets it: the SHA-256 of its exact bytes, and
    what people saw at approval (alt text, and what was done to the image)."""

    digest: str
    mime: str
    width: int
    height: int
    alt: str
    report: str = ""


@dataclass(frozen=True)
class Post:
    """The text one network gets for one release, measured as that network counts."""

    network: str
    text: str
    link: str
    length: int
    limit: int
    language: str
    title: str = ""
    description: str = ""
    hashtags: tuple[str, ...] = ()
    facets: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    link_text: str = ""
    """How the link is written in ``text`` when not as ``link`` (Bluesky: shortened, its
    facet carrying ``link``); empty when ``text`` holds ``link`` itself."""
    images: tuple[PostImage, ...] = ()
    """The approved images this network gets (their bytes are in the store by digest)."""
    attach: str = ""
    """``images``: attached to the post; ``card``: the first is the link card's thumbnail."""

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "network": self.network,
            "text": self.text,
            "length": self.length,
            "limit": self.limit,
            "hashtags": list(self.hashtags),
            "link": self.link,
        }
        profile = PROFILES.get(self.network)
        if self.facets or (profile is not None and profile.rich_text == "facets"):
            data["facets"] = list(self.facets)
        if self.notes:
            data["notes"] = list(self.notes)
        return data

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready: what an approval's snapshot stores."""
        return json.loads(json.dumps(dataclasses.asdict(self), ensure_ascii=False))  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Post:
        """The post an approval's snapshot holds (unknown keys from newer versions ignored)."""
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in _POST_FIELDS:
                continue
            if name == "images" and isinstance(value, list):
                value = tuple(PostImage(**item) for item in value)
            elif isinstance(value, list):
                value = tuple(value)
            values[name] = value
        return cls(**values)


_POST_FIELDS = frozenset(f.name for f in dataclasses.fields(Post))
"""Looked up for every delivery a drain reads, so listed once."""


@dataclass(frozen=True)
class Receipt:
    """What a network gave back for a post: its id and public address."""

    remote_id: str
    url: str


@dataclass(frozen=True)
class Revision:
    """One version of a release's content, as the team saw it (each edit makes a new one)."""

    release_id: str
    number: int
    content_hash: str
    release: Release
    source: str
    created_at: datetime
    author: str | None = None


@dataclass(frozen=True)
class Approval:
    """Who approved which revision of a release, for which networks, and the exact posts.

    ``posts`` is the snapshot: every target network's post as composed at the
    moment of approval. The drain sends these and nothing else. Approvals
    recorded by version 0.1.0 have no revision and no snapshot.
    """

    release_id: str
    content_hash: str
    approved_by: str
    approved_at: datetime
    source: str
    networks: tuple[str, ...]
    id: int | None = None
    revision: int | None = None
    posts: tuple[Post, ...] = ()
    comment: str = ""

    def post_for(self, network: str) -> Post | None:
        return next((post for post in self.posts if post.network == network), None)


@dataclass(frozen=True)
class Delivery:
    """One release on one network: a row of the posting log."""

    id: int
    release_id: str
    network: str
    status: DeliveryStatus
    content_hash: str
    approved_by: str
    approved_at: datetime
    attempts: int
    created_at: datetime
    updated_at: datetime
    text: str | None = None
    remote_id: str | None = None
    url: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    posted_at: datetime | None = None
    idempotency_key: str = ""
    revision: int | None = None
    approval_id: int | None = None
    not_before: datetime | None = None
    post: Post | None = None
    """The approved post this delivery sends (None only for a 0.1.0 delivery not yet adopted)."""

    def as_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "release": self.release_id,
            "network": self.network,
            "status": self.status.value,
            "remote_id": self.remote_id,
            "url": self.url,
            "attempts": self.attempts,
            "error": self.error,
            "approved_by": self.approved_by,
            "approved_at": iso(self.approved_at),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "posted_at": iso(self.posted_at),
            "next_attempt_at": iso(self.next_attempt_at),
            "not_before": iso(self.not_before),
            "revision": self.revision,
            "text": self.text if self.text is not None else (self.post.text if self.post else None),
        }

"""``socialbot import``: press-release pages, listings and feeds become draft releases.

One entry point, ``run_import``; it prints nothing and returns an ``ImportReport``.
An import writes a draft release file to the queue and records it in the ledger; it
never approves anything. See docs/import.md.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from lxml import etree
from pydantic import ValidationError

from socialbot.errors import InvalidRelease
from socialbot.importer.canonical import canonical_url, identity_key, url_language
from socialbot.importer.fetch import Fetched, Fetcher, FetchError, FetchPolicy, Network, read_file
from socialbot.importer.html import PageError
from socialbot.importer.ledger import (
    ImportLedger,
    KeyValue,
    KeyValueLedger,
    LedgerEntry,
    MemoryKeyValue,
)
from socialbot.importer.listings import ListingItem
from socialbot.importer.pages import PageDraft
from socialbot.models import Release
from socialbot.releases import SUFFIXES, read_release

if TYPE_CHECKING:
    import httpx

    from socialbot.config import ImportSettings
    from socialbot.importer.feeds import FeedItem

__all__ = [
    "FetchPolicy",
    "ImportLedger",
    "ImportReport",
    "ImportResult",
    "ImportStatus",
    "KeyValue",
    "KeyValueLedger",
    "LedgerEntry",
    "MemoryKeyValue",
    "run_import",
]

_T = TypeVar("_T")
MAX_TITLE = 1000
MAX_SUMMARY = 10_000
MAX_BODY = 100_000
_LOOSE_TAG = re.compile(r"(?<![\w#])#([A-Z][\w]*) ([A-Z][a-z]\w*)\b")


class ImportStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    ALREADY = "already imported"
    ERROR = "error"


@dataclass(frozen=True)
class ImportResult:
    """What became of one source (a page, a listing item, a feed item, a language version)."""

    source: str
    status: ImportStatus
    message: str
    release_id: str | None = None
    path: Path | None = None
    preview: str = ""
    notes: tuple[str, ...] = ()
    language: str | None = None
    version_of: str | None = None
    image_url: str | None = None
    image_alt: str | None = None


@dataclass
class ImportReport:
    """Every result of one run, in the order the sources were met."""

    results: list[ImportResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(result.status is ImportStatus.ERROR for result in self.results)

    def with_status(self, status: ImportStatus) -> list[ImportResult]:
        return [result for result in self.results if result.status is status]


def policy_from(
    settings: ImportSettings | None, allowed_networks: Sequence[Network] = ()
) -> FetchPolicy:
    """The fetch policy the settings describe."""
    if settings is None:
        return FetchPolicy(allowed_networks=tuple(allowed_networks))
    return FetchPolicy(
        allow_private_addresses=settings.allow_private_addresses,
        max_body_bytes=settings.max_body_bytes,
        page_timeout_seconds=settings.page_timeout_seconds,
        max_redirects=settings.max_redirects,
        allowed_networks=tuple(allowed_networks),
    )


def run_import(
    sources: Sequence[str],
    *,
    queue_dir: Path,
    ledger: ImportLedger,
    is_approved: Callable[[str], bool],
    listing: bool = False,
    feed: bool = False,
    settings: ImportSettings | None = None,
    max_items: int | None = None,
    follow_versions: bool = True,
    allowed_networks: Sequence[str | Network] = (),
    transport: httpx.BaseTransport | None = None,
) -> ImportReport:
    """Import pages (addresses or saved ``.html`` files), or listings, or feeds.

    ``listing``/``feed``: the sources are listing pages or RSS/Atom feeds; every item not
    in the ledger is imported, at most ``max_items`` (default: the settings') per source.
    ``is_approved(release_id)``: an approved release is never rewritten. Each source's
    problem is one result with one sentence; the other sources carry on.
    """
    if listing and feed:
        raise ValueError("a source is either a listing or a feed")
    networks = tuple(
        net if not isinstance(net, str) else ipaddress.ip_network(net, strict=False)
        for net in allowed_networks
    )
    policy = policy_from(settings, networks)
    limit = max_items or (settings.max_items if settings is not None else 50)
    run = _Run(queue_dir, ledger, is_approved, policy, limit, follow_versions, transport)
    try:
        for source in sources:
            if listing:
                run.guard(source, run.listing)
            elif feed:
                run.guard(source, run.feed)
            else:
                run.guard(source, run.page_source)
    finally:
        run.fetcher.close()
    return run.report


class _Skip(Exception):
    """Raised to record a non-error result from deep inside a step."""

    def __init__(self, result: ImportResult) -> None:
        self.result = result


class _Run:
    def __init__(
        self,
        queue_dir: Path,
        ledger: ImportLedger,
        is_approved: Callable[[str], bool],
        policy: FetchPolicy,
        max_items: int,
        follow_versions: bool,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.queue_dir = queue_dir
        self.ledger = ledger
        self.is_approved = is_approved
        self.policy = policy
        self.max_items = max_items
        self.follow_versions = follow_versions
        self.fetcher = Fetcher(policy, transport=transport)
        self.report = ImportReport()
        self.seen: set[str] = set()

    # -- one source, its failure contained ------------------------------------------------

    def guard(self, source: str, step: Callable[[str], None]) -> None:
        shown = _shown(source)
        try:
            step(source)
        except _Skip as skip:
            self.report.results.append(skip.result)
        except (FetchError, PageError) as exc:
            self._error(shown, str(exc))
        except InvalidRelease as exc:
            self._error(shown, f"the draft could not be written ({exc})")
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            self._error(shown, f"the draft's field {where!r} is not valid ({problem['msg']})")
        except (etree.LxmlError, ValueError, UnicodeError, RecursionError, OSError) as exc:
            self._error(shown, f"the page could not be read ({type(exc).__name__}: {exc})")
        except Exception as exc:  # noqa: BLE001 - one broken page must not stop a cron run
            self._error(shown, f"the import failed unexpectedly ({type(exc).__name__})")

    def _error(self, source: str, sentence: str) -> None:
        message = f"{source}: {sentence.rstrip('.')}."
        self.report.results.append(ImportResult(source, ImportStatus.ERROR, message))

    # -- pages --------------------------------------------------------------------------

    def page_source(self, source: str) -> None:
        if "://" not in source and not source.startswith("//"):
            path = Path(source)
            if not path.is_file():
                raise PageError("is neither an http(s) address nor a saved page")
            self.page(source, read_file(path, self.policy), versions=False)
            return
        self.page(source, self.fetch(source))

    def fetch(self, url: str) -> Fetched:
        return self.fetcher.get(url.strip())

    def page(
        self,
        source: str,
        fetched: Fetched,
        *,
        hint: ListingItem | None = None,
        versions: bool = True,
    ) -> None:
        from socialbot.importer.pages import read_page, with_hints

        draft = read_page(fetched.content, url=fetched.url, charset=fetched.charset)
        if not draft.url.startswith(("http://", "https://")):
            raise PageError(
                "the saved page does not say its address (no rel=canonical or og:url); "
                "import it by its address instead"
            )
        if hint is not None:
            draft = with_hints(draft, topics=list(hint.topics), published=hint.published)
        extra = [fetched.url] if fetched.url.startswith("http") else []
        self.save(_shown(source), draft, extra)
        if versions and self.follow_versions:
            self.versions(draft)

    def versions(self, draft: PageDraft) -> None:
        for url in list(draft.alternates.values())[: self.max_items]:
            key = identity_key(url)
            if key in self.seen or self.ledger.find(key) is not None:
                continue
            self.seen.add(key)
            self.guard(url, lambda source: self.page(source, self.fetch(source), versions=False))

    # -- listings and feeds -------------------------------------------------------------

    def listing(self, source: str) -> None:
        from socialbot.importer.listings import read_listing

        fetched = self.fetch(source)
        items = read_listing(fetched.content, url=fetched.url, charset=fetched.charset)
        for item in self._bounded(source, items):
            self.guard(item.url, partial(self.item, item=item))

    def feed(self, source: str) -> None:
        from socialbot.importer.feeds import read_feed

        fetched = self.fetch(source)
        items = read_feed(fetched.content, url=fetched.url, max_items=self.max_items + 1)
        for entry in self._bounded(source, items):
            if entry.full_text and not self._known(entry.item.url):
                self.guard(entry.item.url, partial(self.feed_entry, entry=entry))
            else:
                self.guard(entry.item.url, partial(self.item, item=entry.item))

    def _bounded(self, source: str, items: list[_T]) -> list[_T]:
        if len(items) > self.max_items:
            self.report.notes.append(
                f"{_shown(source)}: only the first {self.max_items} items were considered "
                "(SOCIALBOT_IMPORT__MAX_ITEMS)"
            )
        return items[: self.max_items]

    def _known(self, url: str) -> bool:
        return self.ledger.find(identity_key(url)) is not None

    def item(self, url: str, item: ListingItem) -> None:
        entry = self.ledger.find(identity_key(url))
        if entry is not None:
            raise _Skip(
                ImportResult(
                    _shown(url),
                    ImportStatus.ALREADY,
                    f"{_shown(url)}: already imported as {entry.release_id}.",
                    release_id=entry.release_id,
                    path=self._path(entry.release_id),
                    language=entry.language,
                )
            )
        self.seen.add(identity_key(url))
        self.page(url, self.fetch(url), hint=item)

    def feed_entry(self, url: str, entry: FeedItem) -> None:
        paragraphs = list(entry.paragraphs)
        summary = paragraphs.pop(0) if paragraphs else entry.item.teaser
        draft = PageDraft(
            title=entry.item.title,
            summary=summary,
            body="\n\n".join(paragraphs),
            url=canonical_url(url),
            topics=entry.item.topics,
            published=entry.item.published,
            declared_language=entry.language,
            url_language=url_language(url),
            layout="feed",
        )
        if not draft.title:
            raise PageError("the feed item has no title")
        self.seen.add(identity_key(url))
        self.save(_shown(url), draft, [])

    # -- the draft ----------------------------------------------------------------------

    def save(self, source: str, draft: PageDraft, extra_urls: list[str]) -> None:
        from socialbot.importer.language import decide, name

        verdict = decide(
            draft.text(), url_code=draft.url_language, declared=draft.declared_language
        )
        if verdict.language is None:
            raise PageError("the language of its text cannot be told, and the page declares none")
        language = verdict.language
        keys = list(dict.fromkeys([identity_key(draft.url), *map(identity_key, extra_urls)]))
        self.seen.update(keys)
        existing = next((e for e in map(self.ledger.find, keys) if e is not None), None)
        group = existing.group if existing else self._group_of(draft)
        if existing is None and group is not None:
            twin = next((m for m in self.ledger.members(group) if m.language == language), None)
            if twin is not None:
                self.ledger.record(keys, twin)
                raise _Skip(
                    ImportResult(
                        source,
                        ImportStatus.ALREADY,
                        f"{source}: its text is in {name(language)}, the version already "
                        f"imported as {twin.release_id}; not imported again.",
                        release_id=twin.release_id,
                        path=self._path(twin.release_id),
                        notes=(verdict.note,) if verdict.note else (),
                        language=language,
                    )
                )
        release_id = existing.release_id if existing else self._new_id(draft, language)
        group = group or release_id
        notes = [verdict.note] if verdict.note else []
        summary, cut = _clip(draft.summary, MAX_SUMMARY)
        body, cut_body = _clip(draft.body, MAX_BODY)
        if cut or cut_body:
            notes.append("the text was longer than a release holds and was cut at a paragraph")
        source_url = next(
            (u for u in extra_urls if canonical_url(u) != draft.url and "://" in u), None
        )
        release = Release(
            id=release_id,
            title=_clip(draft.title, MAX_TITLE)[0],
            url=draft.url,
            language=language,
            summary=summary,
            body=body,
            topics=list(draft.topics)[:50],
            published=draft.published,
            version_of=group if group != release_id else None,
            source_url=canonical_url(source_url) if source_url else None,
        )
        notes.extend(_hashtag_notes(release))
        path = self._path(release_id)
        status = ImportStatus.CREATED
        message = f"{source}: imported as draft {release_id}."
        if existing is not None:
            if self.is_approved(existing.release_id):
                raise _Skip(
                    self._result(
                        source,
                        ImportStatus.ALREADY,
                        f"{source}: already imported as {release_id}, which is approved; "
                        "the release is left as it is.",
                        release,
                        path,
                        notes,
                        draft,
                    )
                )
            previous = _read_or_none(path)
            if previous == release:
                raise _Skip(
                    self._result(
                        source,
                        ImportStatus.ALREADY,
                        f"{source}: already imported as {release_id}; the page has not changed.",
                        release,
                        path,
                        notes,
                        draft,
                    )
                )
            status = ImportStatus.UPDATED
            message = f"{source}: draft {release_id} updated from the page."
        from socialbot.importer.drafts import write_draft

        write_draft(release, path, _comments(draft, release))
        self.ledger.record(keys, LedgerEntry(release_id, language, group, draft.url))
        self.report.results.append(
            self._result(source, status, message, release, path, notes, draft)
        )

    def _result(
        self,
        source: str,
        status: ImportStatus,
        message: str,
        release: Release,
        path: Path,
        notes: list[str],
        draft: PageDraft,
    ) -> ImportResult:
        return ImportResult(
            source,
            status,
            message,
            release_id=release.id,
            path=path,
            preview=_preview(release, draft, notes),
            notes=tuple(notes),
            language=release.language,
            version_of=release.version_of,
            image_url=draft.image_url,
            image_alt=draft.image_alt,
        )

    def _group_of(self, draft: PageDraft) -> str | None:
        for url in draft.alternates.values():
            entry = self.ledger.find(identity_key(url))
            if entry is not None:
                return entry.group
        return None

    def _path(self, release_id: str) -> Path:
        return self.queue_dir / f"{release_id}.yaml"

    def _new_id(self, draft: PageDraft, language: str) -> str:
        base = f"{_slug(draft.url)}-{language}"
        candidate, n = base, 1
        while self.ledger.release(candidate) is not None or any(
            (self.queue_dir / f"{candidate}{suffix}").exists() for suffix in SUFFIXES
        ):
            n += 1
            candidate = f"{base}-{n}"
        return candidate


def _slug(url: str) -> str:
    last = identity_key(url).rstrip("/").rsplit("/", 1)[-1]
    last = re.sub(r"\.(aspx?|html?|php|jsp)$", "", last.split("?")[0], flags=re.IGNORECASE)
    from urllib.parse import unquote

    ascii_text = unicodedata.normalize("NFKD", unquote(last)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:100].strip("-")
    if len(slug) < 3:
        slug = "release-" + hashlib.sha256(identity_key(url).encode()).hexdigest()[:10]
    return slug


def _clip(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    for mark in ("\n\n", "\n", ". ", " "):
        at = cut.rfind(mark)
        if at > limit // 2:
            return cut[:at].rstrip(), True
    return cut, True


def _hashtag_notes(release: Release) -> list[str]:
    from socialbot.compose.hashtags import repair_spaced

    notes: list[str] = []
    for where, text in (
        ("title", release.title),
        ("summary", release.summary),
        ("body", release.body),
    ):
        notes.extend(repair_spaced(text, where)[1])
        for match in _LOOSE_TAG.finditer(text):
            notes.append(
                f"hashtag {match.group()!r} in the {where} may be cut short "
                f"(meant #{match.group(1)}{match.group(2)}?)"
            )
    return notes


def _read_or_none(path: Path) -> Release | None:
    try:
        return read_release(path)
    except InvalidRelease:
        return None


def _comments(draft: PageDraft, release: Release) -> list[str]:
    lines = [
        f"Draft imported from {release.url} - check it, then approve it.",
    ]
    if draft.image_url:
        alt = draft.image_alt or "(the page gives no alt text)"
        lines.append(f"Lead image: {draft.image_url}")
        lines.append(f"Its alt text (confirm before use): {alt}")
    return [line.replace("\r", " ").replace("\n", " ") for line in lines]


def _preview(release: Release, draft: PageDraft, notes: list[str]) -> str:
    def short(text: str, limit: int = 160) -> str:
        flat = " ".join(text.split())
        return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"

    lines = [f"{release.id} [{release.language}] {short(release.title, 120)}"]
    if release.summary:
        lines.append(f"  summary: {short(release.summary)}")
    words = len(release.body.split())
    lines.append(f"  body: {words} words; topics: {', '.join(release.topics) or 'none'}")
    if release.published:
        lines.append(f"  published: {release.published.date().isoformat()}")
    if release.version_of:
        lines.append(f"  language version of: {release.version_of}")
    if draft.image_url:
        lines.append(f"  lead image: {draft.image_url} (alt: {draft.image_alt or 'none'})")
    lines.extend(f"  note: {note}" for note in notes)
    return "\n".join(lines)


def _shown(source: str) -> str:
    """A source as shown in a sentence: no control characters, not endless."""
    text = "".join(ch if ch.isprintable() else "?" for ch in source.strip())
    if "://" in text:
        parts = urlsplit(text)
        if parts.username or parts.password:
            text = text.replace(parts.netloc, parts.hostname or "", 1)
    return text if len(text) <= 200 else text[:199] + "…"

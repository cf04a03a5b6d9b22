"""A release's images, read once and prepared for each network at preview and approval.

    release.images ─▶ read (file beside the release, or https URL under the importer's
    rules) ─▶ media.load_image ─▶ per network: check_alt, prepare(limits) ─▶ PostImage
    on the network's Post (digest, size, alt, report); the bytes go into the store.

The approval's snapshot holds each image's SHA-256, so the approval's posts digest
covers the image bytes; the drain loads exactly those bytes from the store.

Which images a network gets (``attach``):

- ``card`` (default): the link card carries the first image as its thumbnail where
  the API takes one from us (Bluesky ``external.thumb``, LinkedIn's article
  ``thumbnail``); X, Facebook, Mastodon and Telegram build their card from the page.
- ``images``: every image attached to the post, the link still clickable in the text.
  Telegram then sends a photo (or an album) whose caption is at most 1,024 characters,
  so its text is composed to that limit.

Pillow and httpx are imported inside the functions that need them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from socialbot.errors import ComposeError, InvalidImage, SocialbotError
from socialbot.models import Post, PostImage, Release, TextLimits
from socialbot.networks import MEDIA_LIMITS_KEY, PROFILES

if TYPE_CHECKING:
    from socialbot.compose import ComposeOptions
    from socialbot.media import SourceImage
    from socialbot.networks.base import ImageLimits
    from socialbot.store import Store

CAPTIONS = {
    name: profile.caption_characters
    for name, profile in PROFILES.items()
    if profile.caption_characters is not None
}
"""Text limits where the post's text travels as the caption of its photos."""

Fetch = Callable[[str], bytes]


class ImageProblem(ComposeError):
    """An image a release names that cannot go out: one sentence naming the image."""

    def __init__(self, network: str, error: InvalidImage) -> None:
        self.network = network
        self.problem = str(error)
        self.error = error
        SocialbotError.__init__(self, f"{network}: {error}" if network else str(error))


@dataclass(frozen=True)
class Attached:
    """What ``attach`` made of a release's images."""

    posts: list[Post]
    problems: list[ComposeError]
    files: dict[str, tuple[str, bytes]]
    """Prepared bytes by digest: (MIME type, bytes)."""


def image_count(release: Release, network: str) -> int:
    """How many of the release's images ``network`` gets (0, 1 or all)."""
    found = PROFILES.get(network)
    if not release.images or found is None or found.images is None:
        return 0
    if release.attach == "images":
        return len(release.images)
    return 1 if found.card_thumbnail else 0


def text_options(release: Release, options: ComposeOptions) -> ComposeOptions:
    """``options`` with a photo caption's limit where the text becomes a caption."""
    if not release.images or release.attach != "images":
        return options
    limits = dict(options.limits)
    for network, caption in CAPTIONS.items():
        current = limits.get(network)
        if current is None or current.max_characters > caption:
            weight = current.url_weight if current is not None else 0
            limits[network] = TextLimits(caption, weight)
    return replace(options, limits=limits)


def image_limits(network: str, store: Store | None) -> ImageLimits:
    """``network``'s image limits: those it reports about itself, as its adapter last
    read them, over its profile's."""
    from socialbot.media import limits_for

    limits = limits_for(network)
    read = PROFILES[network].reported_images
    if read is not None and store is not None:
        raw = store.get_value(MEDIA_LIMITS_KEY + network)
        if raw:
            try:
                return read(limits, json.loads(raw))
            except ValueError:
                pass
    return limits


def attach(
    release: Release,
    posts: Iterable[Post],
    *,
    source: str | None,
    store: Store | None = None,
    fetch: Fetch | None = None,
) -> Attached:
    """Each post with the images its network gets, prepared to its limits.

    ``source`` is the release file (image files are read beside it). Problems
    (an unreadable or hostile image, missing or too long alt text) are one
    sentence each; a release with any cannot be approved.
    """
    from socialbot.media import check_alt, prepare

    posts = list(posts)
    problems: list[ComposeError] = []
    files: dict[str, tuple[str, bytes]] = {}
    if not release.images:
        return Attached(posts, problems, files)
    # Every image the release names is read and checked, whether or not a network of
    # this approval attaches it: a hostile file or a missing alt text is refused now.
    loaded: list[SourceImage | None] = []
    for ref in release.images:
        try:
            if not ref.alt or not ref.alt.strip():
                problems.append(
                    ImageProblem(
                        "",
                        InvalidImage(
                            ref.source,
                            "has no alt text; describe the image for people who cannot see it.",
                        ),
                    )
                )
            loaded.append(load(ref.file, ref.url, source, fetch))
        except InvalidImage as exc:
            problems.append(ImageProblem("", exc))
            loaded.append(None)
    result: list[Post] = []
    for post in posts:
        count = image_count(release, post.network)
        if not count:
            result.append(post)
            continue
        limits = image_limits(post.network, store)
        entries: list[PostImage] = []
        for ref, image in zip(release.images[:count], loaded[:count], strict=True):
            if image is None:
                continue
            alt = (ref.alt or "").strip()
            try:
                if alt:
                    check_alt(alt, post.network, source=ref.source, limits=limits)
                prepared = prepare(image, limits)
            except InvalidImage as exc:
                problems.append(ImageProblem(post.network, exc))
                continue
            files[prepared.sha256] = (prepared.mime_type, prepared.data)
            entries.append(
                PostImage(
                    digest=prepared.sha256,
                    mime=prepared.mime_type,
                    width=prepared.width,
                    height=prepared.height,
                    alt=alt,
                    report=prepared.report,
                )
            )
        result.append(replace(post, images=tuple(entries), attach=release.attach))
    return Attached(result, problems, files)


def load(file: str | None, url: str | None, source: str | None, fetch: Fetch | None) -> SourceImage:
    """The image named by ``file`` (beside ``source``) or ``url``, checked by ``load_image``."""
    from socialbot.media import load_image

    name = file or url or "image"
    data = read_file(file, source) if file else fetch_url(str(url), fetch)
    return load_image(data, source=name)


def read_file(file: str, source: str | None) -> bytes:
    """A regular file named relative to the release file; never outside the release's folder."""
    from socialbot.files import FileTooLarge, NotARegularFile, read_regular
    from socialbot.media import MAX_SOURCE_BYTES, _size

    if "\x00" in file:
        raise InvalidImage(file, "has a NUL character in its name; name the file as it is on disk.")
    relative = PurePosixPath(file.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise InvalidImage(file, "must be a file beside the release (no absolute path or '..').")
    if source is None:
        raise InvalidImage(file, "cannot be found: the release has no file to read it beside.")
    folder = Path(source).absolute().parent
    path = folder / Path(*relative.parts)
    try:
        if not path.resolve().is_relative_to(folder.resolve()):
            raise InvalidImage(file, "must be a file beside the release, not a link out of it.")
        return read_regular(path, MAX_SOURCE_BYTES)
    except NotARegularFile:
        raise InvalidImage(
            file, "is not a regular file; save the image itself beside the release."
        ) from None
    except FileTooLarge as exc:
        raise InvalidImage(
            file,
            f"is {_size(exc.size)}, more than the {_size(MAX_SOURCE_BYTES)} socialbot "
            "reads for an image; it was not decoded.",
        ) from None
    except FileNotFoundError:
        raise InvalidImage(file, f"does not exist beside {Path(source).name}.") from None
    except OSError as exc:
        raise InvalidImage(
            file, f"cannot be read ({exc.strerror or type(exc).__name__})."
        ) from None


def fetch_url(url: str, fetch: Fetch | None) -> bytes:
    """The bytes at ``url``, fetched once under the importer's safety rules."""
    from socialbot.importer.fetch import FetchError

    try:
        return (fetch or default_fetch)(url)
    except (FetchError, OSError) as exc:
        raise InvalidImage(url, f"could not be fetched: {str(exc).rstrip('.')}.") from None


def default_fetch(url: str) -> bytes:
    """Fetch ``url`` with the import settings' address rules, capped at the image size limit."""
    from socialbot.config import load_import_settings
    from socialbot.importer.fetch import Fetcher, FetchPolicy
    from socialbot.media import MAX_SOURCE_BYTES

    settings = load_import_settings()
    policy = FetchPolicy(
        allow_private_addresses=settings.allow_private_addresses,
        max_body_bytes=MAX_SOURCE_BYTES,
        page_timeout_seconds=settings.page_timeout_seconds,
        max_redirects=settings.max_redirects,
    )
    with Fetcher(policy) as fetcher:
        return fetcher.get(url).content


def describe(image: PostImage) -> str:
    """One line for people: the alt text and what was done to the image."""
    what = f"{image.width}×{image.height} {image.mime.removeprefix('image/').upper()}"
    report = f"; {image.report}" if image.report else ""
    alt = image.alt or "(no alt text)"
    return f"{alt} [{what}{report}]"


__all__ = [
    "Attached",
    "ImageProblem",
    "attach",
    "describe",
    "image_limits",
    "text_options",
]

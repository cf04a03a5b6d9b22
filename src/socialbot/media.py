"""Images for posts: each network's limits, and the one place an image is checked
and prepared for a network.

    bytes ─▶ load_image ─▶ SourceImage ─▶ prepare(limits) ─▶ PreparedImage (per network)

- ``load_image`` refuses, with one sentence naming the image, what must never be
  decoded or posted: more bytes or pixels than a photo needs, a decompression
  bomb, a file that is not a raster image (SVG, HTML, text), a truncated or
  damaged file, an animation, CMYK, a PNG carrying a huge text chunk.
- ``prepare`` applies the EXIF orientation, converts an embedded colour profile to
  sRGB, drops every piece of metadata (EXIF with GPS, XMP, ICC, text, comments),
  re-encodes (JPEG, or PNG when the image has transparency) and scales down to
  the network's pixel and byte limits. The same input gives the same bytes.
- ``check_alt`` refuses missing alt text, and alt text over the network's maximum
  counted the way that network counts (see ``ALT_UNITS``).

Every limit is data in each network's profile (``LIMITS`` gathers them); docs/media.md
gives the source of each.
Pillow is imported inside the functions that decode, so importing this module,
or ``socialbot.cli``, does not load it.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from socialbot.compose.counting import graphemes, network_name, utf16_length
from socialbot.errors import InvalidImage
from socialbot.networks import PROFILES
from socialbot.networks.base import JPEG, PNG, AltCounting, ImageLimits

if TYPE_CHECKING:
    from PIL import Image

ALT_UNITS: dict[AltCounting, str] = {
    "graphemes": "graphemes",
    "characters": "characters",
    "utf16": "UTF-16 code units",
}

MAX_SOURCE_BYTES = 32 * 1024 * 1024
"""The largest file socialbot reads as an image; larger ones are refused unread."""

MAX_SOURCE_PIXELS = 70_000_000
"""The most pixels socialbot decodes (a 61-megapixel camera fits). Below Pillow's
own decompression-bomb warning (about 89 million), so an image under this cap
never trips it."""

MAX_TEXT_BYTES = 1024 * 1024
"""Embedded text (PNG text chunks, JPEG comments) allowed before an image is
refused: Pillow's ``PngImagePlugin.MAX_TEXT_CHUNK``."""

JPEG_QUALITIES = (90, 85, 80, 75, 70)
"""Tried in turn before an image is made smaller."""

MIN_SIDE = 320
"""An image is not shrunk below this longest side to fit a byte limit."""

_READ_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF")  # JPEG also opens MPO
_READ_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "La", "RGBa"})


LIMITS: dict[str, ImageLimits] = {
    name: profile.images for name, profile in PROFILES.items() if profile.images is not None
}
"""Each network's image limits, from its profile: the defaults where a network reports its
own (``Profile.reported_images``). Sources in docs/media.md."""


def limits_for(network: str) -> ImageLimits:
    try:
        return LIMITS[network]
    except KeyError:
        raise ValueError(f"no image limits for network {network!r}") from None


# --- alt text ---------------------------------------------------------------------


def alt_length(alt: str, counting: AltCounting) -> int:
    """The length of ``alt`` counted as ``counting`` says."""
    if counting == "graphemes":
        return len(graphemes(alt))
    if counting == "utf16":
        return utf16_length(alt)
    return len(alt)


def check_alt(
    alt: str | None,
    network: str,
    *,
    source: str = "image",
    limits: ImageLimits | None = None,
) -> None:
    """Refuse missing or empty alt text, and alt text longer than ``network``
    allows; ``limits`` overrides the defaults (those the network reports)."""
    limits = limits or limits_for(network)
    if alt is None or not alt.strip():
        raise InvalidImage(
            source, "has no alt text; describe the image for people who cannot see it."
        )
    if limits.max_alt is None:
        return
    length = alt_length(alt, limits.alt_counting)
    if length > limits.max_alt:
        unit = ALT_UNITS[limits.alt_counting]
        raise InvalidImage(
            source,
            f"has alt text of {length:,} {unit}; {network_name(limits.network)} allows "
            f"{limits.max_alt:,}.",
        )


# --- loading ------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceImage:
    """An image that decoded fully and passed every check, with what it carries."""

    source: str
    format: str
    """Pillow's name for the file format: JPEG, PNG, GIF, WEBP, TIFF, MPO."""
    width: int
    height: int
    byte_size: int
    orientation: int
    """The EXIF orientation (1 when none, or not understood)."""
    has_exif: bool
    has_gps: bool
    has_xmp: bool
    has_text: bool
    icc_profile: bytes | None = field(repr=False)
    image: Image.Image = field(repr=False, compare=False)


def load_image(
    data: bytes,
    *,
    source: str,
    max_bytes: int = MAX_SOURCE_BYTES,
    max_pixels: int = MAX_SOURCE_PIXELS,
) -> SourceImage:
    """Decode ``data`` fully, or raise ``InvalidImage`` with one sentence naming
    ``source`` (the release's file name or URL)."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    if ImageFile.LOAD_TRUNCATED_IMAGES:  # set elsewhere: truncated files would pass
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    if not data:
        raise InvalidImage(source, "is empty.")
    if len(data) > max_bytes:
        raise InvalidImage(
            source,
            f"is {_size(len(data))}, more than the {_size(max_bytes)} socialbot reads "
            "for an image; it was not decoded.",
        )
    Image.init()  # registers every plugin, so ``formats`` below can name them all
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=_READ_FORMATS)
            _check_header(image, source, max_pixels)
            image.load()
            frames = getattr(image, "n_frames", 1)
        except InvalidImage:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImage(
                source,
                "claims far more pixels than any photo (a decompression bomb); it was not decoded.",
            ) from None
        except UnidentifiedImageError:
            raise InvalidImage(source, _not_an_image(data)) from None
        except (OSError, SyntaxError, ValueError, EOFError, TypeError, IndexError,
                KeyError, struct.error) as exc:  # fmt: skip
            raise InvalidImage(source, _undecodable(exc)) from None
    if frames > 1 and image.format != "MPO":  # MPO: a camera's extra views, not frames
        raise InvalidImage(
            source, f"is animated or has {frames} frames; post a single still image."
        )
    text = _embedded_text(image)
    if text > MAX_TEXT_BYTES:
        raise InvalidImage(
            source,
            f"carries {_size(text)} of embedded text, more than the "
            f"{_size(MAX_TEXT_BYTES)} allowed; export it again without metadata.",
        )
    orientation, has_exif, has_gps = _exif_facts(image)
    icc = image.info.get("icc_profile")
    return SourceImage(
        source=source,
        format=image.format or "",
        width=image.width,
        height=image.height,
        byte_size=len(data),
        orientation=orientation,
        has_exif=has_exif,
        has_gps=has_gps,
        has_xmp=any(key in image.info for key in ("xmp", "XML:com.adobe.xmp")),
        has_text=text > 0,
        icc_profile=icc if isinstance(icc, bytes) and icc else None,
        image=image,
    )


def _check_header(image: Image.Image, source: str, max_pixels: int) -> None:
    """What the header alone tells, checked before any pixel is decoded."""
    width, height = image.size
    if width * height > max_pixels:
        raise InvalidImage(
            source,
            f"is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels), more than "
            f"the {max_pixels / 1e6:.0f} megapixels socialbot prepares; it was not decoded.",
        )
    if image.mode == "CMYK":
        raise InvalidImage(
            source, "uses CMYK colours, which are for print; export it in RGB (sRGB)."
        )
    if image.mode not in _READ_MODES:
        raise InvalidImage(
            source,
            f"uses the {image.mode} pixel format, which socialbot does not convert; "
            "export it as an 8-bit RGB image.",
        )


def _not_an_image(data: bytes) -> str:
    head = data[:1024].lstrip().lower()
    if b"<svg" in head or (head.startswith(b"<?xml") and b"svg" in head):
        return "is an SVG drawing, not a photo; export it as PNG or JPEG."
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "is an HTML page, not an image (a link to a web page instead of the picture?)."
    if b"\0" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return "is text, not an image."
    return "is not a JPEG, PNG, GIF, WebP or TIFF image."


def _undecodable(exc: Exception) -> str:
    message = str(exc)
    if "truncated" in message or isinstance(exc, EOFError):
        return "is truncated (the file ends before the picture does); fetch it again."
    if "MAX_TEXT" in message:
        return "carries a text chunk over Pillow's safety limit; export it again without metadata."
    return "is damaged and cannot be decoded."


def _embedded_text(image: Image.Image) -> int:
    """Bytes of PNG text chunks and JPEG comments in ``image`` (after ``load``)."""
    total = 0
    text = getattr(image, "text", None)
    if isinstance(text, Mapping):
        total += sum(len(str(key)) + len(str(value)) for key, value in text.items())
    comment = image.info.get("comment")
    if isinstance(comment, bytes | str):
        total += len(comment)
    return total


def _exif_facts(image: Image.Image) -> tuple[int, bool, bool]:
    """(orientation, has EXIF, has GPS) of ``image``; unreadable EXIF still counts
    as EXIF, since it is stripped all the same."""
    from PIL import ExifTags

    raw = bool(image.info.get("exif"))
    try:
        exif = image.getexif()
        gps = bool(exif.get_ifd(ExifTags.IFD.GPSInfo)) or ExifTags.Base.GPSInfo in exif
        value = exif.get(ExifTags.Base.Orientation, 1)
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, struct.error):
        return 1, raw, raw
    orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
    return orientation, raw or len(exif) > 0, gps


# --- preparing ----------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedImage:
    """The exact bytes one network receives, and what was done to get them."""

    network: str
    data: bytes = field(repr=False)
    mime_type: str
    width: int
    height: int
    sha256: str
    steps: tuple[str, ...]

    @property
    def report(self) -> str:
        """One line for people: "scaled from 6000×4000 to 2000×1333, 4.1 MB to …"."""
        return ", ".join(self.steps)


def prepare(image: SourceImage, limits: ImageLimits) -> PreparedImage:
    """``image`` as ``limits.network`` takes it: oriented, sRGB, without metadata,
    re-encoded and scaled down to the network's pixel and byte limits."""
    from PIL import ImageOps

    steps: list[str] = []
    picture = image.image
    if image.orientation != 1:
        picture = ImageOps.exif_transpose(picture)
    width, height = picture.size
    if limits.max_aspect is not None:
        aspect = max(width, height) / min(width, height)
        if aspect > limits.max_aspect:
            raise InvalidImage(
                image.source,
                f"is {aspect:.0f} times longer than it is wide; "
                f"{network_name(limits.network)} allows {limits.max_aspect:.0f}.",
            )
    picture, colour_step = _to_srgb(picture, image.icc_profile)
    mime = PNG if picture.mode == "RGBA" else JPEG
    if mime not in limits.formats:
        if JPEG not in limits.formats:
            raise InvalidImage(
                image.source,
                f"cannot be sent: {network_name(limits.network)} takes no JPEG or PNG.",
            )
        picture, mime = _flatten(picture), JPEG
        colour_step = _join(colour_step, "transparency flattened onto white")
    picture.info = {}

    target = _fit(width, height, limits)
    data, size, quality = _encode_within(picture, target, mime, limits, image.source)

    if size != (width, height):
        steps.append(f"scaled from {width}×{height} to {size[0]}×{size[1]}")
    steps.append(f"{_size(image.byte_size)} to {_size(len(data))}")
    if image.has_gps:
        steps.append("GPS removed")
    removed = [
        name
        for name, present in (
            ("EXIF", image.has_exif),
            ("XMP", image.has_xmp),
            ("embedded text", image.has_text),
        )
        if present
    ]
    if removed:
        steps.append(" and ".join(removed) + " removed")
    if image.orientation != 1:
        steps.append("rotated per EXIF")
    if colour_step:
        steps.append(colour_step)
    steps.append(f"JPEG quality {quality}" if mime == JPEG else "PNG (transparency kept)")
    _ensure_clean(data)
    return PreparedImage(
        network=limits.network,
        data=data,
        mime_type=mime,
        width=size[0],
        height=size[1],
        sha256=hashlib.sha256(data).hexdigest(),
        steps=tuple(steps),
    )


def _to_srgb(picture: Image.Image, icc: bytes | None) -> tuple[Image.Image, str]:
    """``picture`` as 8-bit RGB, or RGBA when it has real transparency, in sRGB.
    Always a new image, so the caller may change it freely."""
    from PIL import ImageCms

    alpha = picture.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in picture.info
    mode = "RGBA" if alpha else "RGB"
    if alpha:
        rgba = picture.convert("RGBA")
        low, _ = rgba.getchannel("A").getextrema()
        if low == 255:  # an alpha channel nothing uses: a photo after all
            mode = "RGB"
    if icc is None:
        return picture.convert(mode), ""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = ImageCms.getProfileDescription(source).strip() or "an embedded profile"
        if name.lower().startswith("srgb"):
            return picture.convert(mode), f"{name} colour profile removed"
        if picture.mode not in ("RGB", "RGBA", "L"):
            picture = picture.convert(mode)
        in_mode = picture.mode
        out_mode = "RGBA" if in_mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(
            picture, source, ImageCms.createProfile("sRGB"), outputMode=out_mode
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return picture.convert(mode), "unreadable colour profile ignored"
    if converted is None:  # only with inPlace=True, which is not used
        raise RuntimeError("ImageCms.profileToProfile returned no image")
    return converted.convert(mode), f"colours converted from {name} to sRGB"


def _flatten(picture: Image.Image) -> Image.Image:
    from PIL import Image

    background = Image.new("RGB", picture.size, (255, 255, 255))
    background.paste(picture, mask=picture.getchannel("A"))
    return background


def _join(first: str, second: str) -> str:
    return f"{first}, {second}" if first else second


def _fit(width: int, height: int, limits: ImageLimits) -> tuple[int, int]:
    """The largest size no bigger than (width, height) within the pixel limits,
    keeping the aspect ratio."""
    scale = 1.0
    if limits.max_side is not None:
        scale = min(scale, limits.max_side / max(width, height))
    if limits.max_pixels is not None:
        scale = min(scale, math.sqrt(limits.max_pixels / (width * height)))
    if limits.max_side_sum is not None:
        scale = min(scale, limits.max_side_sum / (width + height))
    if scale >= 1.0:
        return width, height
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    while not _within(size, limits):  # float rounding at the boundary
        size = (max(1, size[0] - 1), max(1, size[1] - 1))
    return size


def _within(size: tuple[int, int], limits: ImageLimits) -> bool:
    width, height = size
    return (
        (limits.max_side is None or max(width, height) <= limits.max_side)
        and (limits.max_pixels is None or width * height <= limits.max_pixels)
        and (limits.max_side_sum is None or width + height <= limits.max_side_sum)
    )


def _encode_within(
    picture: Image.Image,
    size: tuple[int, int],
    mime: str,
    limits: ImageLimits,
    source: str,
) -> tuple[bytes, tuple[int, int], int]:
    """Encode at ``size``, lowering the JPEG quality and then the size until the
    bytes fit ``limits.max_bytes``. Returns the bytes, the size and the quality."""
    from PIL import Image

    qualities = JPEG_QUALITIES if mime == JPEG else (0,)
    while True:
        frame = picture
        if size != picture.size:
            frame = picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            frame.info = {}
        for quality in qualities:
            data = _encode(frame, mime, quality)
            if len(data) <= limits.max_bytes:
                return data, size, quality
        ratio = min(0.9, math.sqrt(limits.max_bytes / len(data)) * 0.95)
        smaller = (max(1, math.floor(size[0] * ratio)), max(1, math.floor(size[1] * ratio)))
        if max(smaller) < MIN_SIDE:
            raise InvalidImage(
                source,
                f"cannot be made smaller than {_size(limits.max_bytes)} for "
                f"{network_name(limits.network)} without shrinking it below {MIN_SIDE} pixels.",
            )
        size = smaller


def _encode(frame: Image.Image, mime: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if mime == JPEG:
        frame.save(buffer, "JPEG", quality=quality, optimize=True, subsampling="4:2:0")
    else:
        frame.save(buffer, "PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _ensure_clean(data: bytes) -> None:
    """Read the encoded bytes back: no EXIF, XMP, colour profile or text may be in them."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as check:
        leaked = {"exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment"} & set(check.info)
        if leaked or len(check.getexif()) or getattr(check, "text", None):
            raise RuntimeError(f"metadata survived re-encoding: {sorted(leaked)}")


def _size(count: int) -> str:
    """A byte count for people, in decimal units as the networks state theirs."""
    if count < 1000:
        return f"{count} bytes"
    if count < 1_000_000:
        return f"{count / 1000:.0f} kB"
    return f"{count / 1_000_000:.1f} MB"

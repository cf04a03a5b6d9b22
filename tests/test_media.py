"""Images: hostile files refused with one sentence, photos prepared within every
network's limits with no metadata left, alt text counted as each network counts.

Every image is made here with Pillow; nothing binary is checked in."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zlib

import pytest
from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageFile, PngImagePlugin

from socialbot.errors import InvalidImage, InvalidRelease
from socialbot.media import (
    LIMITS,
    MAX_TEXT_BYTES,
    PreparedImage,
    SourceImage,
    alt_length,
    check_alt,
    load_image,
    prepare,
)
from socialbot.networks import PROFILES
from socialbot.networks.base import ImageLimits
from tests.helpers import fresh_python

NETWORKS = sorted(LIMITS)


# --- making images ------------------------------------------------------------------


def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo(width: int, height: int) -> Image.Image:
    """A photo-like picture: smooth gradients with sensor noise on top."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    noise = Image.frombytes("L", (width, height), random.Random(7).randbytes(width * height))
    noise = Image.blend(Image.new("L", (width, height), 128), noise, 0.2)  # the same every run
    blue = Image.blend(red, noise, 0.5)
    return Image.merge("RGB", (red, Image.blend(green, noise, 0.3), blue))


def camera_exif(*, orientation: int = 1, gps: bool = True) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS R5"
    exif[ExifTags.Base.Artist] = "Press photographer"
    exif[ExifTags.Base.Orientation] = orientation
    if gps:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N",
            ExifTags.GPS.GPSLatitude: (50.0, 50.0, 18.0),
            ExifTags.GPS.GPSLongitudeRef: "E",
            ExifTags.GPS.GPSLongitude: (4.0, 22.0, 30.0),
        }
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'exif:GPSLatitude="50,50.3N"/></rdf:RDF></x:xmpmeta>'
)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width``×``height`` pixels and holds almost none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def big_photo() -> SourceImage:
    """A 6000×4000 camera JPEG with EXIF (GPS too) and XMP."""
    data = encode(photo(6000, 4000), quality=95, exif=camera_exif(), xmp=XMP)
    assert len(data) > 5_000_000, "the test photo should need shrinking for X"
    return load_image(data, source="plenary.jpg")


@pytest.fixture(scope="module")
def prepared(big_photo: SourceImage) -> dict[str, PreparedImage]:
    return {network: prepare(big_photo, LIMITS[network]) for network in NETWORKS}


# --- a big photo reaches every network within its limits ------------------------------


@pytest.mark.parametrize("network", NETWORKS)
def test_a_6000x4000_photo_fits_every_network(network: str, prepared: dict[str, PreparedImage]):
    limits = LIMITS[network]
    result = prepared[network]
    assert len(result.data) <= limits.max_bytes
    assert result.mime_type in limits.formats
    if limits.max_pixels is not None:
        assert result.width * result.height <= limits.max_pixels
    if limits.max_side is not None:
        assert max(result.width, result.height) <= limits.max_side
    if limits.max_side_sum is not None:
        assert result.width + result.height <= limits.max_side_sum
    with Image.open(io.BytesIO(result.data)) as back:
        assert back.format == "JPEG"
        assert back.size == (result.width, result.height)
        back.load()
    assert abs(result.width / result.height - 1.5) < 0.01, "the aspect ratio is kept"
    assert result.sha256 == hashlib.sha256(result.data).hexdigest()
    assert result.network == network


def test_bluesky_gets_the_size_its_app_makes_and_a_report_people_can_read(
    prepared: dict[str, PreparedImage],
):
    bluesky = prepared["bluesky"]
    assert (bluesky.width, bluesky.height) == (2000, 1333)
    assert bluesky.report.startswith("scaled from 6000×4000 to 2000×1333, ")
    assert " MB to " in bluesky.report and " kB" in bluesky.report
    assert "GPS removed" in bluesky.report
    assert "EXIF and XMP removed" in bluesky.report


def test_a_network_with_a_byte_limit_only_gets_a_lower_quality_first(
    big_photo: SourceImage,
):
    roomy = ImageLimits("test", max_bytes=big_photo.byte_size, formats=frozenset({"image/jpeg"}))
    result = prepare(big_photo, roomy)
    assert (result.width, result.height) == (6000, 4000)
    assert "scaled" not in result.report


def test_a_tight_byte_limit_shrinks_the_picture(big_photo: SourceImage):
    tight = ImageLimits("test", max_bytes=300_000, formats=frozenset({"image/jpeg"}))
    result = prepare(big_photo, tight)
    assert len(result.data) <= 300_000
    assert result.width < 6000 and abs(result.width / result.height - 1.5) < 0.01
    assert result.report.startswith(f"scaled from 6000×4000 to {result.width}×{result.height}")


# --- no metadata reaches a network ----------------------------------------------------


@pytest.mark.parametrize("network", NETWORKS)
def test_no_exif_gps_or_xmp_survives(network: str, prepared: dict[str, PreparedImage]):
    data = prepared[network].data
    with Image.open(io.BytesIO(data)) as back:
        assert len(back.getexif()) == 0
        assert not back.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(back.info)
    segments = jpeg_segments(data)
    assert {marker for marker, _ in segments} <= {0xE0, 0xDB, 0xC0, 0xC4}, "JFIF and pixels only"
    header = b"".join(payload for _, payload in segments)
    for text in (b"GPS", b"Exif", b"EOS R5", b"Canon", b"Press photographer", b"xmpmeta"):
        assert text not in header, text


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """The (marker, payload) of every JPEG segment before the compressed pixels,
    where metadata lives (the pixels themselves may hold any 3 bytes by chance)."""
    assert data[:2] == b"\xff\xd8"
    segments, at = [], 2
    while data[at + 1] != 0xDA:  # start of scan: pixels follow
        assert data[at] == 0xFF
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        segments.append((marker, data[at + 4 : at + 2 + length]))
        at += 2 + length
    return segments


def test_the_source_knows_what_it_carried(big_photo: SourceImage):
    assert big_photo.has_exif and big_photo.has_gps and big_photo.has_xmp
    assert (big_photo.width, big_photo.height, big_photo.format) == (6000, 4000, "JPEG")


def test_comments_text_chunks_and_colour_profiles_are_dropped():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Press photographer, +32 2 000 00 00")
    data = encode(photo(400, 300), "PNG", pnginfo=info, icc_profile=srgb)
    result = prepare(load_image(data, source="chart.png"), LIMITS["mastodon"])
    with Image.open(io.BytesIO(result.data)) as back:
        assert "icc_profile" not in back.info
    assert b"Press photographer" not in result.data
    assert "embedded text removed" in result.report
    assert "colour profile removed" in result.report

    commented = encode(photo(400, 300), comment=b"Press photographer")
    result = prepare(load_image(commented, source="c.jpg"), LIMITS["x"])
    assert b"Press photographer" not in result.data


def test_a_colour_profile_is_converted_to_srgb_then_dropped():
    # LittleCMS's own sRGB profile, renamed, so that the conversion really runs.
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    renamed = srgb.replace("sRGB".encode("utf-16-be"), "Wide".encode("utf-16-be"))
    gradient = Image.linear_gradient("L").resize((300, 200))
    original = Image.merge(
        "RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), gradient)
    )
    data = encode(original, "PNG", icc_profile=renamed)
    result = prepare(load_image(data, source="wide.png"), LIMITS["mastodon"])
    assert "colours converted from Wide built-in to sRGB" in result.report
    with Image.open(io.BytesIO(result.data)) as back:
        assert "icc_profile" not in back.info
        pixel = back.convert("RGB").getpixel((150, 100))
    expected = original.getpixel((150, 100))
    assert isinstance(pixel, tuple) and isinstance(expected, tuple)
    assert all(abs(a - b) <= 4 for a, b in zip(pixel, expected, strict=True)), "sRGB to sRGB"


def test_an_unreadable_colour_profile_is_dropped_and_said_so():
    data = encode(photo(300, 200), icc_profile=b"not a colour profile at all" * 10)
    result = prepare(load_image(data, source="odd.jpg"), LIMITS["x"])
    assert "unreadable colour profile ignored" in result.report
    with Image.open(io.BytesIO(result.data)) as back:
        assert "icc_profile" not in back.info


# --- orientation, transparency, determinism -------------------------------------------


def test_exif_orientation_is_applied_then_dropped():
    stored = Image.new("RGB", (300, 200), (220, 0, 0))
    ImageDraw.Draw(stored).rectangle((150, 0, 299, 199), fill=(0, 0, 220))
    # Orientation 6: the viewer turns the stored picture 90° clockwise, so its
    # left half (red) ends up on top.
    data = encode(stored, quality=95, exif=camera_exif(orientation=6, gps=False))
    source = load_image(data, source="portrait.jpg")
    assert source.orientation == 6
    result = prepare(source, LIMITS["bluesky"])
    assert (result.width, result.height) == (200, 300)
    assert "rotated per EXIF" in result.report
    with Image.open(io.BytesIO(result.data)) as back:
        assert len(back.getexif()) == 0
        top = back.convert("RGB").getpixel((100, 20))
        bottom = back.convert("RGB").getpixel((100, 280))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 150 and top[2] < 80
    assert bottom[2] > 150 and bottom[0] < 80


def test_transparency_is_kept_as_png_and_an_unused_alpha_channel_is_not():
    logo = Image.new("RGBA", (400, 200), (0, 0, 0, 0))
    ImageDraw.Draw(logo).ellipse((50, 20, 350, 180), fill=(0, 51, 153, 255))
    result = prepare(load_image(encode(logo, "PNG"), source="logo.png"), LIMITS["linkedin"])
    assert result.mime_type == "image/png"
    assert "PNG (transparency kept)" in result.report
    with Image.open(io.BytesIO(result.data)) as back:
        assert back.mode == "RGBA"
        assert back.getpixel((0, 0)) == (0, 0, 0, 0)

    opaque = photo(400, 200).convert("RGBA")
    result = prepare(load_image(encode(opaque, "PNG"), source="flat.png"), LIMITS["linkedin"])
    assert result.mime_type == "image/jpeg"


def test_transparency_is_flattened_where_png_is_not_taken():
    logo = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    jpeg_only = ImageLimits("test", max_bytes=1_000_000, formats=frozenset({"image/jpeg"}))
    result = prepare(load_image(encode(logo, "PNG"), source="logo.png"), jpeg_only)
    assert result.mime_type == "image/jpeg"
    assert "transparency flattened onto white" in result.report


def test_the_same_image_gives_the_same_bytes():
    data = encode(photo(3000, 2000), quality=95, exif=camera_exif())
    first = prepare(load_image(data, source="a.jpg"), LIMITS["bluesky"])
    second = prepare(load_image(data, source="a.jpg"), LIMITS["bluesky"])
    assert first.data == second.data
    assert first.sha256 == second.sha256
    assert first.report == second.report


# --- hostile and unusable files: one sentence each --------------------------------------


def animated_gif() -> bytes:
    colours = [(220, 0, 0), (0, 160, 0), (0, 0, 220)]
    frames = [Image.new("RGB", (32, 32), colour) for colour in colours]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def huge_text_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * (MAX_TEXT_BYTES + 10))
    return encode(Image.new("RGB", (16, 16)), "PNG", pnginfo=info)


def compressed_text_bomb_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * (4 * MAX_TEXT_BYTES), zip=True)
    return encode(Image.new("RGB", (16, 16)), "PNG", pnginfo=info)


def real_bomb_png() -> bytes:
    """400 million pixels that compress to next to nothing."""
    return encode(Image.new("1", (20_000, 20_000)), "PNG")


def truncated_jpeg() -> bytes:
    data = encode(photo(800, 600), quality=90)
    return data[: len(data) // 2]


def damaged_png() -> bytes:
    header = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"this is not zlib data")
        + png_chunk(b"IEND", b"")
    )


HOSTILE = {
    "decompression bomb (header)": (
        lambda: png_header_only(100_000, 100_000),
        "decompression bomb",
    ),
    "decompression bomb (warning range)": (
        lambda: png_header_only(10_000, 10_000),
        "decompression bomb",
    ),
    "decompression bomb (real)": (real_bomb_png, "decompression bomb"),
    "truncated JPEG": (truncated_jpeg, "is truncated"),
    "PNG with a huge text chunk": (huge_text_png, "of embedded text"),
    "PNG with a compressed text bomb": (compressed_text_bomb_png, "text chunk"),
    "SVG": (lambda: b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
    "HTML": (lambda: b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML page"),
    "text": (lambda: b"Plenary session, photo to follow.", "is text"),
    "40 MB file": (lambda: b"\xff\xd8\xff\xe0" + bytes(40_000_000), "40.0 MB"),
    "animated GIF": (animated_gif, "is animated"),
    "CMYK JPEG": (lambda: encode(Image.new("CMYK", (64, 64))), "CMYK"),
    "16-bit PNG": (lambda: encode(Image.new("I;16", (64, 64)), "PNG"), "pixel format"),
    "damaged PNG": (damaged_png, "is damaged"),
    "empty file": (lambda: b"", "is empty"),
    "unknown binary": (lambda: bytes(range(256)) * 4, "not a JPEG, PNG, GIF, WebP or TIFF"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_images_are_refused_with_one_sentence(case: str):
    make, expected = HOSTILE[case]
    source = "https://example.org/media/plenary.jpg"
    with pytest.raises(InvalidImage) as caught:
        load_image(make(), source=source)
    message = str(caught.value)
    assert message.startswith(source + ": ")
    assert expected in message
    assert message.endswith(".") and "\n" not in message
    assert ". " not in message[len(source) :], "one sentence"
    assert isinstance(caught.value, InvalidRelease), "handled like any invalid release"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_the_pixel_cap_is_checked_before_decoding():
    data = encode(photo(2000, 1500))
    with pytest.raises(InvalidImage, match=r"2000×1500 pixels \(3 megapixels\)"):
        load_image(data, source="wide.jpg", max_pixels=1_000_000)


def test_the_byte_cap_is_checked_before_decoding():
    data = encode(photo(200, 100))
    with pytest.raises(InvalidImage, match="more than the 100 bytes"):
        load_image(data, source="a.jpg", max_bytes=100)


def test_telegram_refuses_a_panorama_it_cannot_show():
    strip = load_image(encode(photo(4200, 200)), source="strip.jpg")
    with pytest.raises(InvalidImage, match="Telegram allows 20"):
        prepare(strip, LIMITS["telegram"])
    assert prepare(strip, LIMITS["x"]).width == 4200


def test_an_image_that_cannot_reach_the_byte_limit_is_refused():
    tiny_budget = ImageLimits("test", max_bytes=300, formats=frozenset({"image/jpeg"}))
    with pytest.raises(InvalidImage, match="cannot be made smaller than 300 bytes for test"):
        prepare(load_image(encode(photo(1200, 800)), source="p.jpg"), tiny_budget)


# --- Mastodon: the instance's own limits ----------------------------------------------


def mastodon_limits(media_attachments: object) -> ImageLimits:
    """What the Mastodon profile reads from an instance's ``media_attachments``."""
    read = PROFILES["mastodon"].reported_images
    assert read is not None
    return read(LIMITS["mastodon"], media_attachments)


def test_mastodon_limits_come_from_the_instance():
    limits = mastodon_limits(
        {
            "supported_mime_types": ["image/jpeg", "image/png", "image/webp", "video/mp4"],
            "image_size_limit": 2_000_000,
            "image_matrix_limit": 1_000_000,
            "description_limit": 1000,
            "video_size_limit": 99_000_000,
        }
    )
    assert limits.max_bytes == 2_000_000
    assert limits.max_pixels == 1_000_000
    assert limits.max_alt == 1000
    assert limits.formats == frozenset({"image/jpeg", "image/png", "image/webp"})
    result = prepare(load_image(encode(photo(3000, 2000)), source="p.jpg"), limits)
    assert result.width * result.height <= 1_000_000
    assert len(result.data) <= 2_000_000


@pytest.mark.parametrize(
    "configuration",
    [None, {}, "nonsense", {"image_size_limit": "16MB", "image_matrix_limit": True,
                            "supported_mime_types": "image/jpeg", "description_limit": -1}],
)  # fmt: skip
def test_mastodon_defaults_when_the_instance_says_nothing_usable(configuration: object):
    assert mastodon_limits(configuration) == LIMITS["mastodon"]


# --- alt text ---------------------------------------------------------------------------


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("alt", [None, "", "   \n\t "])
def test_alt_text_is_required_everywhere(network: str, alt: str | None):
    with pytest.raises(InvalidImage, match=r"^plenary\.jpg: has no alt text; describe"):
        check_alt(alt, network, source="plenary.jpg")


GREEK = "Η ολομέλεια της Επιτροπής των Περιφερειών στις Βρυξέλλες. "
BULGARIAN = "Пленарната сесия на Европейския комитет на регионите в Брюксел. "
CJK = "欧洲区域委员会全体会议。"
FAMILY = "👨‍👩‍👧"  # one grapheme, five code points, eight UTF-16 units


def exactly(text: str, length: int, network: str) -> str:
    """``text`` repeated and cut to ``length`` as ``network`` counts, on a code point."""
    counting = LIMITS[network].alt_counting
    out = ""
    for char in (text * length)[: length * 2]:
        if alt_length(out + char, counting) > length:
            break
        out += char
    assert alt_length(out, counting) == length
    return out


@pytest.mark.parametrize("text", [GREEK, BULGARIAN, CJK, "😀"])
@pytest.mark.parametrize("network", ["x", "mastodon", "bluesky", "linkedin"])
def test_alt_text_at_the_limit_passes_and_one_more_fails(network: str, text: str):
    limit = LIMITS[network].max_alt
    assert limit is not None
    if text == "😀" and LIMITS[network].alt_counting == "utf16":
        limit -= limit % 2  # an emoji is two UTF-16 units: the nearest whole count
    at_limit = exactly(text, limit, network)
    check_alt(at_limit, network)
    over = at_limit + ("😀" if text == "😀" else text[0])
    with pytest.raises(InvalidImage, match=f"allows {LIMITS[network].max_alt:,}"):
        check_alt(over, network, source="plenary.jpg")


def test_alt_text_is_counted_as_each_network_counts():
    assert alt_length(FAMILY, "graphemes") == 1
    assert alt_length(FAMILY, "characters") == 5
    assert alt_length(FAMILY, "utf16") == 8
    # 300 family emoji: 1500 characters for Mastodon (its limit), 2400 UTF-16 units for X.
    check_alt(FAMILY * 300, "mastodon")
    with pytest.raises(
        InvalidImage, match="has alt text of 2,400 UTF-16 code units; X allows 1,000"
    ):
        check_alt(FAMILY * 300, "x", source="plenary.jpg")
    with pytest.raises(InvalidImage, match="1,505 characters; Mastodon allows 1,500"):
        check_alt(FAMILY * 301, "mastodon", source="plenary.jpg")


def test_networks_without_a_documented_maximum_take_long_alt_text():
    long_alt = BULGARIAN * 100
    check_alt(long_alt, "facebook")
    check_alt(long_alt, "telegram")


def test_an_instance_description_limit_is_used_for_mastodon():
    limits = mastodon_limits({"description_limit": 10})
    check_alt("Ολομέλεια", "mastodon", limits=limits)
    with pytest.raises(InvalidImage, match="Mastodon allows 10"):
        check_alt("Η ολομέλεια", "mastodon", limits=limits)


# --- cost ---------------------------------------------------------------------------------


def test_the_cli_and_the_limits_do_not_load_pillow():
    code = "import sys, socialbot.cli, socialbot.media; print('PIL' in sys.modules)"
    assert fresh_python(code) == "False"

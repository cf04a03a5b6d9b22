"""Images with alt text through the whole pipeline: file ─▶ approval ─▶ store ─▶ every network.

The sandbox is the oracle: it records the digest of the bytes it received, their size and any
metadata left in them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from socialbot.media import LIMITS
from socialbot.sandbox import SandboxServer
from socialbot.store import SQLiteStore
from tests import drainer
from tests.helpers import run, write_release
from tests.import_server import ImportServer
from tests.test_import_safety import slow_headers
from tests.test_media import XMP, camera_exif, encode, photo

ALT = "Members of the European Committee of the Regions vote in the plenary hall in Brussels"


@pytest.fixture(scope="module")
def camera_jpeg() -> bytes:
    """A 6000×4000 camera JPEG with EXIF, GPS and XMP."""
    return encode(photo(6000, 4000), quality=95, exif=camera_exif(), xmp=XMP)


def release_with(env: Path, name: str, images: list[dict[str, str]], **fields: object) -> Path:
    return write_release(env / "queue", name, images=images, **fields)


def test_a_camera_photo_reaches_every_network_within_its_limits_without_metadata(
    env: Path, sandbox: SandboxServer, camera_jpeg: bytes
):
    (env / "queue" / "plenary.jpg").write_bytes(camera_jpeg)
    release_with(env, "r1.json", [{"file": "plenary.jpg", "alt": ALT}], attach="images")

    preview = run("preview", "r1")
    assert preview.exit_code == 0, preview.stderr
    assert ALT in preview.output
    assert "scaled from 6000×4000" in preview.output and "GPS removed" in preview.output

    approved = run("approve", "r1", "--by", "Ana")
    assert approved.exit_code == 0, approved.stderr
    assert run("drain").exit_code == 0

    store = SQLiteStore(str(env / "socialbot.db"))
    try:
        [approval] = store.approvals("r1")
        approved_digests = {post.network: post.images[0].digest for post in approval.posts}
    finally:
        store.close()
    posts = {post["network"]: post for post in sandbox.posts()}
    assert set(posts) == set(sandbox.networks)
    for network, post in posts.items():
        [image] = post["images"]
        assert image["metadata"] == [], (network, image)
        assert image["alt"] == ALT or network == "telegram", network
        assert image["digest"] == approved_digests[network], network  # exactly what was approved
        assert image["bytes"] <= LIMITS[network].max_bytes, network


def test_four_images_and_a_card_thumbnail(env: Path, sandbox: SandboxServer):
    queue = env / "queue"
    for n in range(4):
        buffer = io.BytesIO()
        photo(1200, 800).rotate(n * 90, expand=True).save(buffer, "JPEG", quality=85)
        (queue / f"p{n}.jpg").write_bytes(buffer.getvalue())
    images = [{"file": f"p{n}.jpg", "alt": f"Photo {n} of the plenary"} for n in range(4)]
    release_with(env, "album.json", images, networks=["mastodon", "bluesky"], attach="images")
    release_with(
        env,
        "card.json",
        images[:1],
        networks=["bluesky", "linkedin"],
        attach="card",
        title="A card with a thumbnail",
    )
    for release in ("album", "card"):
        assert run("approve", release, "--by", "Ana").exit_code == 0
    assert run("drain").exit_code == 0

    by = {
        (p["network"], "card" if "thumbnail" in p["text"] else "album"): p for p in sandbox.posts()
    }
    assert len(by[("mastodon", "album")]["images"]) == 4
    assert [i["alt"] for i in by[("bluesky", "album")]["images"]] == [i["alt"] for i in images]
    assert by[("bluesky", "card")]["thumb"]["digest"]
    assert by[("linkedin", "card")]["thumb"]["digest"]


def png_with_huge_text_chunk() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), "white").save(buffer, "PNG")
    data = buffer.getvalue()
    payload = b"Comment\0" + b"x" * (2 * 1024 * 1024)
    chunk = (
        struct.pack(">I", len(payload))
        + b"tEXt"
        + payload
        + struct.pack(">I", zlib.crc32(b"tEXt" + payload) & 0xFFFFFFFF)
    )
    return data[:-12] + chunk + data[-12:]


def bomb() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


HOSTILE = {
    "bomb.png": bomb,
    "truncated.jpg": lambda: encode(photo(800, 600), quality=90)[:5000],
    "text-chunk.png": png_with_huge_text_chunk,
    "drawing.svg": lambda: (
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    ),
    "huge.jpg": lambda: b"\xff\xd8\xff" + b"\0" * (40 * 1024 * 1024),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_image_is_refused_at_approval_and_the_rest_goes_out(
    env: Path, sandbox: SandboxServer, name: str
):
    (env / "queue" / name).write_bytes(HOSTILE[name]())
    release_with(env, "bad.json", [{"file": name, "alt": "An image"}], networks=["x"])
    slugs = drainer.add_releases(env / "queue", "beside", range(1), networks=["x"])

    result = run("approve", "bad", "--by", "Ana")

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and name in result.stderr
    assert run("drain").exit_code == 0
    assert all(n == 1 for n in drainer.posts_per_delivery(sandbox, slugs).values())
    assert len(sandbox.posts()) == 1


def test_an_image_without_alt_text_cannot_be_approved(env: Path, camera_jpeg: bytes):
    (env / "queue" / "p.jpg").write_bytes(camera_jpeg)
    release_with(env, "r1.json", [{"file": "p.jpg", "alt": " "}], networks=["x"])
    result = run("approve", "r1", "--by", "Ana")
    assert result.exit_code == 1 and "alt" in result.stderr


def test_an_instances_own_alt_text_limit_is_checked_once_socialbot_has_read_it(
    env: Path, sandbox: SandboxServer, camera_jpeg: bytes
):
    (env / "queue" / "p.jpg").write_bytes(camera_jpeg)
    release_with(
        env, "r1.json", [{"file": "p.jpg", "alt": ALT}], networks=["mastodon"], attach="images"
    )
    sandbox.networks["mastodon"].description_limit = 40  # type: ignore[attr-defined]
    assert run("preview", "r1").exit_code == 0  # the stock 1,500 until the instance is asked

    assert run("networks").exit_code == 0  # asks the instance: GET /api/v2/instance
    refused = run("approve", "r1", "--by", "Ana")
    assert refused.exit_code == 1
    assert "Mastodon allows 40" in refused.stderr and "p.jpg" in refused.stderr


def test_an_image_path_outside_the_release_folder_is_refused(env: Path, tmp_path: Path):
    release_with(env, "r1.json", [{"file": "../secret.jpg", "alt": "x"}], networks=["x"])
    result = run("approve", "r1", "--by", "Ana")
    assert result.exit_code == 1 and "beside the release" in result.stderr


def test_a_crash_between_upload_and_create_posts_once_with_its_images(
    env: Path, sandbox: SandboxServer
):
    buffer = io.BytesIO()
    photo(1200, 800).save(buffer, "JPEG", quality=85)
    (env / "queue" / "p.jpg").write_bytes(buffer.getvalue())
    digest_of_file = hashlib.sha256(buffer.getvalue()).hexdigest()
    networks = ["x", "facebook", "mastodon", "bluesky", "linkedin"]
    release_with(
        env,
        "r1.json",
        [{"file": "p.jpg", "alt": "The plenary"}],
        networks=networks,
        attach="images",
    )
    assert run("approve", "r1", "--by", "Ana").exit_code == 0

    killed = drainer.call("drain", env=drainer.environment(SOCIALBOT_CRASH_AT="after-upload"))
    assert killed.returncode == -9
    assert sandbox.posts() == []  # uploaded, never created

    for _ in range(6):
        drainer.call("drain", env=drainer.environment(SOCIALBOT_RECONCILE_AFTER_SECONDS="0"))
    posts = sandbox.posts()
    assert sorted(p["network"] for p in posts) == sorted(networks)
    for post in posts:
        [image] = post["images"]
        assert image["alt"] == "The plenary" and image["digest"] != digest_of_file
    rows = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert {row["status"] for row in rows} == {"posted"}


def test_an_image_url_is_fetched_under_the_importers_safety_rules(env: Path):
    """A private address is refused unless the import settings allow it, like an import."""
    release_with(
        env,
        "r1.json",
        [{"url": "https://127.0.0.1:9/plenary.jpg", "alt": "The plenary"}],
        networks=["x"],
    )
    result = run("approve", "r1", "--by", "Ana")
    assert result.exit_code == 1
    assert "could not be fetched" in result.stderr and result.stderr.count("\n") == 1


def test_an_image_url_is_fetched_once_at_approval(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, camera_jpeg: bytes
):
    from socialbot import attachments

    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return camera_jpeg

    monkeypatch.setattr(attachments, "default_fetch", fetch)
    release_with(
        env,
        "r1.json",
        [{"url": "https://cor.europa.eu/sites/plenary.jpg", "alt": "The plenary"}],
        networks=["mastodon", "bluesky"],
        attach="images",
    )
    assert run("approve", "r1", "--by", "Ana").exit_code == 0
    assert fetched == ["https://cor.europa.eu/sites/plenary.jpg"]
    assert run("drain").exit_code == 0
    assert fetched == ["https://cor.europa.eu/sites/plenary.jpg"]  # the drain never fetches
    assert all(post["images"][0]["metadata"] == [] for post in sandbox.posts())


def https_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ImportServer:
    """An import fixture server on loopback over HTTPS, its self-signed certificate trusted
    through ``SSL_CERT_FILE`` (which the fetcher's TLS context reads, as httpx's does)."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = ImportServer()
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    server.base = server.base.replace("http://", "https://")
    return server


@pytest.mark.parametrize("command", ["preview", "approve"])
def test_an_image_url_that_trickles_its_headers_is_cut_at_the_page_limit(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
):
    """The import's wall-clock limit covers an image URL too: one sentence, no hang."""
    server = https_server(tmp_path, monkeypatch)
    server.routes["/plenary.jpg"] = slow_headers
    server.start()
    monkeypatch.setenv("SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES", "true")
    monkeypatch.setenv("SOCIALBOT_IMPORT__PAGE_TIMEOUT_SECONDS", "1")
    url = server.url("/plenary.jpg")
    path = release_with(env, "r1.json", [{"url": url, "alt": "The plenary"}], networks=["x"])
    args = [str(path)] if command == "preview" else ["r1", "--by", "Ana"]
    try:
        started = time.monotonic()
        result = run(command, *args)
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    assert result.exit_code == 1
    assert f"{url}: could not be fetched: it took longer than 1 seconds." in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert elapsed < 2.5


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["preview", "approve"])
@pytest.mark.parametrize(
    ("file", "sentence"),
    [
        ("fifo.jpg", "fifo.jpg: is not a regular file; save the image itself beside the release."),
        ("a\x00b.jpg", "a\\x00b.jpg: has a NUL character in its name; name the file as it is"),
    ],
)
def test_an_image_file_that_is_a_pipe_or_names_a_nul_is_one_sentence(
    env: Path, command: str, file: str, sentence: str
):
    """A named pipe is never opened for reading (it would wait for a writer for ever)."""
    os.mkfifo(env / "queue" / "fifo.jpg")
    path = release_with(env, "r1.yaml", [{"file": file, "alt": "An image"}], networks=["x"])
    args = [str(path)] if command == "preview" else ["r1", "--by", "Ana"]
    result = run(command, *args)
    assert result.exit_code == 1
    assert sentence in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["preview", "approve"])
def test_an_image_url_with_an_invalid_international_host_is_one_sentence(env: Path, command: str):
    url = "https://xn--zz.com/a.jpg"
    path = release_with(env, "r1.json", [{"url": url, "alt": "The plenary"}], networks=["x"])
    args = [str(path)] if command == "preview" else ["r1", "--by", "Ana"]
    result = run(command, *args)
    assert result.exit_code == 1
    assert (
        f"{url}: could not be fetched: its host name is not a valid internationalised domain "
        "name (Invalid A-label)."
    ) in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1

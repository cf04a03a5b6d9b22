"""One contract, every network: what each adapter must do with each kind of answer.

Each adapter talks to its sandbox over real HTTP through an ``httpx.MockTransport``
that forwards every request to the sandbox and lets a test replace one answer
(an unreadable 2xx, a cut-off body, a transport failure), plus the sandbox's own
faults for the end-to-end cases (reset after accepting, a trickled answer, a 429
echoing the token). The exactly-once rules under test:

- a failure that may have reached the network on a create is ambiguous, never
  "nothing was created"; on a read it is transient;
- only a well-formed answer proves a post absent;
- every request ends by the adapter's deadline;
- a delete of a post that is gone already is done.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from socialbot.adapters import Adapter, Media, create_adapter
from socialbot.adapters.linkedin import next_midnight
from socialbot.compose import bluesky_facets
from socialbot.config import load_settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    DuplicateError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.models import NETWORKS, Post, PostImage, Receipt
from socialbot.networks import PROFILES
from socialbot.sandbox import Fault, SandboxServer

LINK = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
DUPLICATE_REFUSED = {"x", "facebook", "linkedin"}
"""Networks that refuse a second post with the same content."""
EMPTY_CREATE_ANSWER = {"linkedin"}
"""Networks whose create answer has no body (the id comes in a header)."""

Override = Callable[[httpx.Request, str, Callable[[], httpx.Response]], httpx.Response | None]


@pytest.fixture(params=NETWORKS)
def network(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def make(
    workdir: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, network: str
) -> Iterator[Callable[..., Adapter]]:
    """Build the network's adapter against the sandbox, optionally replacing answers."""
    for name, value in sandbox.settings().items():
        monkeypatch.setenv(name, value)
    settings = load_settings(database_url="sqlite:///:memory:", request_timeout_seconds=5)
    real = httpx.HTTPTransport()
    made: list[Adapter] = []

    def build(override: Override | None = None, *, direct: bool = False) -> Adapter:
        """``direct``: no MockTransport, the adapter's own client all the way."""
        prefix = f"/{network}"
        if direct:
            adapter = create_adapter(network, settings)
            made.append(adapter)
            return adapter

        def handler(request: httpx.Request) -> httpx.Response:
            def forward() -> httpx.Response:
                fresh = httpx.Request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    content=request.content,
                    extensions=request.extensions,
                )
                answer = real.handle_request(fresh)
                try:
                    answer.read()
                finally:
                    answer.close()
                return httpx.Response(
                    answer.status_code, headers=answer.headers, content=answer.content
                )

            path = request.url.path.removeprefix(prefix)
            if override is not None:
                replaced = override(request, path, forward)
                if replaced is not None:
                    return replaced
            return forward()

        adapter = create_adapter(network, settings, transport=httpx.MockTransport(handler))
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        adapter.close()
    real.close()


def post_for(network: str, text: str | None = None) -> Post:
    text = text or f"Regions call for a stronger #CohesionPolicy {uuid.uuid4().hex[:8]} {LINK}"
    return Post(
        network=network,
        text=text,
        link=LINK,
        length=len(text),
        limit=300,
        language="en",
        title="Regions call for a stronger cohesion policy after 2027",
        description="The plenary adopted an opinion on the future of cohesion policy.",
        facets=tuple(bluesky_facets(text)) if network == "bluesky" else (),
    )


def is_create(sandbox: SandboxServer, network: str, request: httpx.Request, path: str) -> bool:
    import re

    return request.method == "POST" and bool(
        re.fullmatch(sandbox.networks[network].create_path, path)
    )


def is_list(sandbox: SandboxServer, network: str, request: httpx.Request, path: str) -> bool:
    import re

    return request.method == "GET" and bool(re.fullmatch(sandbox.networks[network].list_path, path))


def key() -> str:
    return uuid.uuid4().hex


def posted_or_ambiguous(adapter: Adapter, post: Post, sandbox: SandboxServer, network: str) -> None:
    """The post exists; the adapter must say it may, or prove it by reading it back."""
    try:
        receipt = adapter.publish(post, key=key())
    except AmbiguousError:
        return
    stored = sandbox.posts(network)
    assert adapter.idempotent, f"{network} claimed success from an unreadable answer"
    assert [p["id"] for p in stored] == [receipt.remote_id]


# -- success ---------------------------------------------------------------------------------


def test_publish_returns_the_receipt_of_the_one_post(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    receipt = adapter.publish(post_for(network), key=key())
    stored = sandbox.posts(network)
    assert len(stored) == 1
    assert receipt.remote_id == stored[0]["id"]
    assert receipt.url.startswith("http")


def test_the_same_post_again_is_refused_or_lands_on_the_first(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    post, first_key = post_for(network), key()
    first = adapter.publish(post, key=first_key)
    if network in DUPLICATE_REFUSED:
        with pytest.raises(DuplicateError):
            adapter.publish(post, key=key())
    elif adapter.idempotent:
        assert adapter.publish(post, key=first_key) == first
    assert len(sandbox.posts(network)) == 1


# -- error classes ---------------------------------------------------------------------------


def test_a_server_error_on_a_create_is_ambiguous(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    adapter.check()
    sandbox.inject(network, Fault(status=503))
    with pytest.raises(AmbiguousError):
        adapter.publish(post_for(network), key=key())


def test_a_server_error_on_a_read_is_transient(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    sandbox.inject(network, Fault(status=503, path=".*", method="GET", times=5))
    with pytest.raises(TransientError):
        adapter.check()


@pytest.mark.parametrize("hint", ["native", "retry-after-seconds"])
def test_a_429_says_when_to_come_back(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str, hint: str
):
    adapter = make()
    adapter.check()
    sandbox.inject(network, Fault(status=429, retry_after=120, hint=hint))  # type: ignore[arg-type]
    now = datetime.now(UTC)
    with pytest.raises(RateLimited) as caught:
        adapter.publish(post_for(network), key=key())
    if network == "linkedin" and hint == "native":
        # LinkedIn's daily quota names no time: it resets at midnight UTC.
        assert caught.value.retry_at == next_midnight(now)
    else:
        wait = (caught.value.retry_at - now).total_seconds()
        assert 100 <= wait <= 140, wait
    assert sandbox.posts(network) == []


def test_a_429_that_echoes_the_token_does_not_repeat_it(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    adapter.check()
    sandbox.inject(network, Fault(status=429, echo_secret=True))
    with pytest.raises(RateLimited) as caught:
        adapter.publish(post_for(network), key=key())
    secret = sandbox.networks[network].secret()
    assert secret and secret not in str(caught.value)


def test_refused_credentials_are_an_auth_error(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    adapter.check()
    sandbox.inject(network, Fault(status=401, times=2))
    with pytest.raises(AuthError):
        adapter.publish(post_for(network), key=key())
    assert sandbox.posts(network) == []


def test_a_refused_post_is_permanent(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    adapter.check()
    sandbox.inject(network, Fault(status=400))
    with pytest.raises(PermanentError) as caught:
        adapter.publish(post_for(network), key=key())
    assert not isinstance(caught.value, AuthError)


# -- ambiguity -------------------------------------------------------------------------------


def test_a_connection_never_made_is_transient(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    def refuse(request: httpx.Request, path: str, forward: Callable[[], httpx.Response]) -> None:
        if is_create(sandbox, network, request, path):
            raise httpx.ConnectError("connection refused", request=request)

    adapter = make(refuse)
    with pytest.raises(TransientError):
        adapter.publish(post_for(network), key=key())


def test_a_connection_lost_after_sending_a_create_is_ambiguous(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    def lose(request: httpx.Request, path: str, forward: Callable[[], httpx.Response]) -> None:
        if is_create(sandbox, network, request, path):
            forward()
            raise httpx.ReadError("connection reset by peer", request=request)

    adapter = make(lose)
    posted_or_ambiguous(adapter, post_for(network), sandbox, network)
    assert len(sandbox.posts(network)) == 1


class CutOff(httpx.SyncByteStream):
    """A body that breaks off after ``data``."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        if self.data:
            yield self.data
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


@pytest.mark.parametrize("kind", ["html", "not-json", "no-id", "cut-off"])
def test_a_success_answer_that_cannot_be_read_is_ambiguous(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str, kind: str
):
    def mangle(
        request: httpx.Request, path: str, forward: Callable[[], httpx.Response]
    ) -> httpx.Response | None:
        if not is_create(sandbox, network, request, path):
            return None
        answer = forward()
        assert answer.is_success
        if kind == "html":
            return httpx.Response(
                answer.status_code,
                headers={"Content-Type": "text/html"},
                content=b"<!doctype html><title>Just a moment...</title>",
            )
        if kind == "not-json":
            return httpx.Response(
                answer.status_code, content=answer.content[: len(answer.content) // 2] + b"\xff"
            )
        if kind == "no-id":
            return httpx.Response(answer.status_code, json={})
        return httpx.Response(
            answer.status_code,
            headers={"Content-Type": "application/json"},
            stream=CutOff(answer.content[: len(answer.content) // 2]),
        )

    adapter = make(mangle)
    posted_or_ambiguous(adapter, post_for(network), sandbox, network)
    assert len(sandbox.posts(network)) == 1


@pytest.mark.parametrize("kind", ["truncated", "html", "accept-then-reset"])
def test_the_sandbox_faults_after_accepting_are_ambiguous(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str, kind: str
):
    adapter = make()
    adapter.check()
    sandbox.inject(network, Fault(kind=kind))  # type: ignore[arg-type]
    if network in EMPTY_CREATE_ANSWER and kind == "truncated":
        # Half of an empty body is the whole of it: the id is in a header.
        adapter.publish(post_for(network), key=key())
    else:
        posted_or_ambiguous(adapter, post_for(network), sandbox, network)
    assert len(sandbox.posts(network)) == 1


# -- the deadline ----------------------------------------------------------------------------


def test_a_trickled_create_answer_ends_at_the_deadline_as_ambiguous(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    if network in EMPTY_CREATE_ANSWER:
        pytest.skip("the create answer has no body to trickle")
    adapter = make(direct=True)
    adapter.check()
    sandbox.inject(network, Fault(kind="trickle", delay=0.1))
    adapter.deadline = time.monotonic() + 1.0
    started = time.monotonic()
    posted_or_ambiguous(adapter, post_for(network), sandbox, network)
    assert time.monotonic() - started < 2.5


def test_a_trickled_read_ends_at_the_deadline_as_transient(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make(direct=True)
    if not adapter.can_find:
        pytest.skip(f"{network} cannot list its posts")
    adapter.check()
    net = sandbox.networks[network]
    adapter.publish(post_for(network), key=key())
    sandbox.inject(network, Fault(kind="trickle", delay=0.1, path=net.list_path, method="GET"))
    adapter.deadline = time.monotonic() + 1.0
    started = time.monotonic()
    with pytest.raises(TransientError):
        adapter.find("anything", datetime.now(UTC) - timedelta(hours=1))
    assert time.monotonic() - started < 2.5


def test_nothing_is_sent_once_the_deadline_has_passed(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    adapter.deadline = time.monotonic() - 1
    with pytest.raises(TransientError):
        adapter.publish(post_for(network), key=key())
    assert not [r for r in sandbox.requests if r["network"] == network]


# -- finding a post --------------------------------------------------------------------------


def test_find_finds_the_post_and_proves_another_absent(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    if not adapter.can_find:
        pytest.skip(f"{network} cannot list its posts")
    since = datetime.now(UTC) - timedelta(minutes=1)
    post = post_for(network)
    receipt = adapter.publish(post, key=key())
    found = adapter.find(post.text, since)
    assert isinstance(found, Receipt) and found.remote_id == receipt.remote_id
    assert adapter.find(post_for(network).text, since) is None


@pytest.mark.parametrize("kind", ["html", "truncated", "missing-fields"])
def test_find_does_not_take_an_unreadable_answer_for_absence(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str, kind: str
):
    def mangle(
        request: httpx.Request, path: str, forward: Callable[[], httpx.Response]
    ) -> httpx.Response | None:
        if not is_list(sandbox, network, request, path):
            return None
        answer = forward()
        if kind == "html":
            return httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<html>")
        if kind == "truncated":
            return httpx.Response(200, content=answer.content[: len(answer.content) // 2])
        return httpx.Response(200, json={})

    adapter = make(mangle)
    if not adapter.can_find:
        pytest.skip(f"{network} cannot list its posts")
    adapter.publish(post_for(network), key=key())
    with pytest.raises(TransientError):
        adapter.find("a text that was never posted", datetime.now(UTC) - timedelta(hours=1))


def test_the_sandbox_html_page_on_a_list_is_no_proof_of_absence(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    if not adapter.can_find:
        pytest.skip(f"{network} cannot list its posts")
    adapter.check()
    net = sandbox.networks[network]
    sandbox.inject(network, Fault(kind="html", path=net.list_path, method="GET"))
    with pytest.raises(TransientError):
        adapter.find("a text that was never posted", datetime.now(UTC) - timedelta(hours=1))


# -- deleting a post -------------------------------------------------------------------------


def test_delete_takes_the_post_down_and_again_is_done(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    assert adapter.can_delete
    receipt = adapter.publish(post_for(network), key=key())
    adapter.delete(receipt.remote_id)
    assert sandbox.posts(network) == []
    assert [p["id"] for p in sandbox.networks[network].deleted] == [receipt.remote_id]
    adapter.delete(receipt.remote_id)
    assert len(sandbox.networks[network].deleted) == 1


def test_a_failed_delete_is_an_error_not_done(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    receipt = adapter.publish(post_for(network), key=key())
    sandbox.inject(network, Fault(status=503, path=".*", method=None, times=5))
    with pytest.raises(TransientError):
        adapter.delete(receipt.remote_id)
    assert len(sandbox.posts(network)) == 1


# -- images ------------------------------------------------------------------------------------

UPLOAD_PATHS = {
    "x": r"/2/media/upload",
    "facebook": r"/v[0-9.]+/[^/]+/photos",
    "mastodon": r"/api/v2/media",
    "bluesky": r"/xrpc/com\.atproto\.repo\.uploadBlob",
    "linkedin": r"/rest/images",
}
"""Each network's upload endpoint, besides those in ``PHOTOS_IN_THE_CREATE``."""
PHOTOS_IN_THE_CREATE = {"telegram"}
"""Networks that take the photos in the request that creates the post (``sendMediaGroup``)."""


def camera_photo(seed: int, size: tuple[int, int] = (1200, 800)) -> bytes:
    """A JPEG as a camera writes it: EXIF with the photographer's GPS position."""
    import io
    import random

    from PIL import ExifTags, Image

    noise = Image.frombytes("L", size, random.Random(seed).randbytes(size[0] * size[1]))
    picture = Image.merge("RGB", (noise, Image.linear_gradient("L").resize(size), noise))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (50.0, 50.0, 18.0),
    }
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=exif, quality=92)
    return buffer.getvalue()


def approved_images(network: str, count: int) -> list[Media]:
    """``count`` photos prepared for ``network`` as approval prepares them."""
    from socialbot.media import limits_for, load_image, prepare

    media = []
    for n in range(count):
        prepared = prepare(load_image(camera_photo(n), source=f"p{n}.jpg"), limits_for(network))
        image = PostImage(
            prepared.sha256,
            prepared.mime_type,
            prepared.width,
            prepared.height,
            f"Photo {n + 1}: members of the Committee of the Regions in the plenary hall",
            prepared.report,
        )
        media.append(Media(image, prepared.data))
    return media


def with_images(network: str, media: list[Media], attach: str = "images") -> Post:
    return replace(post_for(network), images=tuple(m.image for m in media), attach=attach)


@pytest.mark.parametrize("count", [1, 4])
def test_publish_uploads_the_approved_images_with_their_alt_text(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str, count: int
):
    adapter = make()
    media = approved_images(network, count)
    receipt = adapter.publish(with_images(network, media), key=key(), media=media)
    [stored] = sandbox.posts(network)
    assert receipt.remote_id == stored["id"]
    received = stored["images"]
    # Byte for byte what was approved, in order, with its alt text and no metadata.
    assert [i["digest"] for i in received] == [m.image.digest for m in media]
    assert [i["alt"] for i in received] == [
        m.image.alt if network != "telegram" else "" for m in media
    ]
    assert all(i["metadata"] == [] for i in received)


def test_a_card_carries_the_first_image_as_its_thumbnail(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    if not PROFILES[network].card_thumbnail:
        pytest.skip(f"{network} builds its card from the page's own tags")
    adapter = make()
    media = approved_images(network, 1)
    adapter.publish(with_images(network, media, attach="card"), key=key(), media=media)
    [stored] = sandbox.posts(network)
    assert stored["thumb"]["digest"] == media[0].image.digest
    assert stored.get("images", []) == []
    assert LINK in json.dumps(stored)  # the card still links the release


@pytest.mark.parametrize("fault", ["error", "rate-limited", "reset"])
def test_a_failed_upload_is_never_ambiguous_and_posts_nothing(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str, fault: str
):
    if network in PHOTOS_IN_THE_CREATE:
        pytest.skip(f"{network} uploads the photo in the create itself")
    assert network in UPLOAD_PATHS, f"say where {network} uploads an image, in UPLOAD_PATHS"
    adapter = make()
    media = approved_images(network, 2)
    status = 429 if fault == "rate-limited" else 503
    sandbox.inject(
        network,
        Fault(
            kind="reset" if fault == "reset" else "error", status=status, path=UPLOAD_PATHS[network]
        ),
    )
    with pytest.raises((TransientError, RateLimited)) as raised:
        adapter.publish(with_images(network, media), key=key(), media=media)
    assert not isinstance(raised.value, AmbiguousError)
    assert sandbox.posts(network) == []


def test_images_that_are_not_the_approved_ones_are_refused_before_sending(
    make: Callable[..., Adapter], sandbox: SandboxServer, network: str
):
    adapter = make()
    media = approved_images(network, 1)
    swapped = [Media(media[0].image, camera_photo(99))]
    with pytest.raises(PermanentError, match="not the approved ones"):
        adapter.publish(with_images(network, media), key=key(), media=swapped)
    assert sandbox.posts(network) == []
    assert not [r for r in sandbox.requests if r["network"] == network]


# -- the shared TLS context --------------------------------------------------------------------


def test_the_shared_tls_context_trusts_what_httpx_would_and_is_built_once():
    from socialbot.adapters.base import new_client, tls_context

    context = tls_context()
    assert context.cert_store_stats() == httpx.create_ssl_context().cert_store_stats()
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    for url in ("https://example.org", "https://example.net"):
        with new_client(url, 5.0) as client:
            transport = client._transport
            assert isinstance(transport, httpx.HTTPTransport)
            assert transport._pool._ssl_context is context


def test_the_tls_context_takes_the_bundle_named_by_ssl_cert_file_as_httpx_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import certifi

    from socialbot.adapters.base import _load_tls_context

    bundle = Path(certifi.where()).read_text(encoding="ascii")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    one = tmp_path / "one.pem"
    one.write_text(bundle[bundle.index(begin) : bundle.index(end) + len(end)])
    monkeypatch.setenv("SSL_CERT_FILE", str(one))
    assert _load_tls_context().cert_store_stats()["x509_ca"] == 1
    assert httpx.create_ssl_context().cert_store_stats()["x509_ca"] == 1


# -- the sandbox's latency ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", [None, Fault(kind="error", status=500), Fault(kind="html")])
def test_the_sandbox_answers_its_latency_after_the_request_line_arrived(fault: Fault | None):
    """The benchmark's lower bound is requests x latency: the sandbox's own work (reading
    headers, routing, answering) is inside the latency, as a real network's is."""
    with SandboxServer(latency={"telegram": 0.2}) as server:
        settings = server.settings()
        url = (
            f"{settings['SOCIALBOT_TELEGRAM__BASE_URL']}/bot"
            f"{settings['SOCIALBOT_TELEGRAM__BOT_TOKEN']}/sendMessage"
        )
        if fault is not None:
            server.inject("telegram", fault)
        message = {"chat_id": settings["SOCIALBOT_TELEGRAM__CHAT_ID"], "text": "hi"}
        with httpx.Client() as client:
            sent = time.monotonic()
            client.post(url, json=message)
            answered = time.monotonic()
        [request] = server.requests
    assert sent <= request["at"] < sent + 0.1
    assert answered - request["at"] >= 0.2

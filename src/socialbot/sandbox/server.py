"""The sandbox's HTTP server: routing, fault injection, and the overview pages.

Each network lives under its own prefix (``/x``, ``/facebook``, …), so a
network's ``*__BASE_URL`` setting points at ``http://127.0.0.1:PORT/<network>``.
Control endpoints live under ``/_sandbox``:

- ``GET /`` — a page listing the accepted posts per network;
- ``GET /_sandbox/posts[?network=N]`` — the same as JSON;
- ``POST /_sandbox/faults`` — queue faults: ``{"network": "x", "kind": "error",
  "status": 500, "times": 1}`` (kinds below);
- ``DELETE /_sandbox/posts`` — forget every post and fault.

Fault kinds: ``error`` (answer ``status`` with the network's own error body and
headers; 429 carries its rate-limit reset hint), ``slow`` (wait ``delay``
seconds, then answer normally), ``hang`` (wait ``delay`` seconds, then close
without processing), ``reset`` (reset the connection without processing),
``accept-then-hang`` and ``accept-then-reset`` (process the request, so the
post exists, then hang or reset instead of answering), ``truncated`` (process
the request, then send its answer's headers and half its body and close),
``html`` (process the request, then answer its status with a proxy's HTML
page instead of the body: a 2xx on a create, a 200 on a list), ``trickle``
(process the request, then send the answer one byte every ``delay`` seconds).
An ``error`` with ``echo_secret`` puts the account's token in the error's
message, as some proxies and APIs do.

Each network's ``list_path`` is the request ``find`` reads (a regex), for
faults on it: ``Fault(kind="html", path=net.list_path, method="GET")``.
Deleted posts leave ``posts`` and are kept in ``deleted``.
"""

from __future__ import annotations

import contextlib
import html
import importlib
import importlib.resources
import json
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

from socialbot.networks import PROFILES

MAX_BODY = 24 * 1024 * 1024
"""Larger request bodies are refused (413) unread: above every network's image limit."""
FaultKind = Literal[
    "error",
    "slow",
    "hang",
    "reset",
    "accept-then-hang",
    "accept-then-reset",
    "truncated",
    "html",
    "trickle",
]
RetryHint = Literal["native", "retry-after-seconds", "retry-after-date", "past-date", "none"]


@dataclass
class Fault:
    """One injected misbehaviour, applied to the next ``times`` matching requests."""

    kind: FaultKind = "error"
    status: int = 500
    times: int = 1
    delay: float = 5.0
    retry_after: float = 30.0
    """For 429s: seconds until the network's reset hint."""
    hint: RetryHint = "native"
    """Which reset hint a 429 carries: the network's own header, Retry-After, or none."""
    path: str | None = None
    """A regex on the request path; default: the network's create endpoint."""
    method: str | None = None
    echo_secret: bool = False
    """For errors: the message repeats the account's token."""


@dataclass
class Request:
    """What a network handler sees of one HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def multipart(self) -> dict[str, list[Part]]:
        """A ``multipart/form-data`` body's parts by field name (empty for other bodies)."""
        from email.parser import BytesParser
        from email.policy import HTTP

        content_type = self.headers.get("Content-Type") or ""
        if not content_type.startswith("multipart/form-data"):
            return {}
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + self.body
        )
        parts: dict[str, list[Part]] = {}
        if not message.is_multipart():
            return parts
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            filename = part.get_filename()
            parts.setdefault(name, []).append(
                Part(name, filename, part.get_content_type() if filename else "", data)
            )
        return parts

    def param(self, name: str) -> str | None:
        """A value from the query string or a form body."""
        values = self.query.get(name)
        if values is None and "form-urlencoded" in (self.headers.get("Content-Type") or ""):
            values = self.form().get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Part:
    """One field of a multipart body: a value, or a file with its declared type."""

    name: str
    filename: str | None
    content_type: str
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class ImageRefused(Exception):
    """An upload the network would refuse, with the network's reason."""


METADATA_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "icc_profile", "comment", "photoshop")


def inspect_image(
    data: bytes, declared: str | None, *, max_bytes: int, formats: frozenset[str]
) -> dict[str, Any]:
    """Check an uploaded image as a network does (size, type, that it decodes) and
    describe it: the SHA-256 of the bytes received, its size, and any metadata left."""
    import hashlib
    import io

    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageRefused("the file is empty")
    if len(data) > max_bytes:
        raise ImageRefused(f"the file is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            mime = Image.MIME.get(image.format or "", "")
            found = [key for key in METADATA_KEYS if image.info.get(key)]
            if len(image.getexif()):
                found.append("exif-tags")
            if getattr(image, "text", None):
                found.append("text")
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(f"the file is not an image it can read ({exc})") from None
    if mime not in formats:
        raise ImageRefused(f"{mime or 'this file type'} is not supported")
    if declared and declared.split(";")[0].strip() not in (mime, "application/octet-stream"):
        raise ImageRefused(f"the file is {mime}, not {declared}")
    return {
        "digest": hashlib.sha256(data).hexdigest(),
        "mime": mime,
        "width": width,
        "height": height,
        "bytes": len(data),
        "metadata": sorted(set(found)),
    }


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delivery: Literal["whole", "truncated", "trickle"] = "whole"
    interval: float = 1.0
    """Seconds between bytes when trickled."""
    at: float = 0.0
    """When it leaves (``time.monotonic``): its status line and headers are made ready before."""

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(data, ensure_ascii=False).encode("utf-8"),
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        return cls(status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})


Handler = Callable[[Request, "re.Match[str]"], Response]


class NetworkSandbox:
    """One fake network: its routes, credentials, stored posts and error bodies."""

    name: ClassVar[str]
    create_path: ClassVar[str]
    """Regex of the endpoint that creates posts (the default target of faults)."""
    list_path: ClassVar[str] = r"$^"
    """Regex of the endpoint ``find`` reads (the account's recent posts)."""
    secret_name: ClassVar[str] = "access_token"  # noqa: S105 - a field name
    """The credential an ``echo_secret`` error repeats."""

    def __init__(self, server: SandboxServer, credentials: dict[str, str] | None = None) -> None:
        self.server = server
        self.credentials = {**self.default_credentials(), **(credentials or {})}
        self.posts: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []
        """Posts taken down through the network's delete call, in order."""
        self.lock = threading.RLock()
        self.counter = 0
        self.media: dict[str, dict[str, Any]] = {}
        """Uploaded images by the network's id for them: ``inspect_image``'s description,
        the alt text, and ``attached`` once a post uses them."""

    # What subclasses provide.
    def default_credentials(self) -> dict[str, str]:
        return {}

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path regex, handler) triples, paths relative to the prefix."""
        return []

    def error_response(self, fault: Fault) -> Response:
        """The network's own answer for an injected error ``fault.status``."""
        return Response.json(fault.status, {"error": f"injected {fault.status}"})

    def settings(self, base: str) -> dict[str, str]:
        """``SOCIALBOT_*`` variables that point the network's adapter here."""
        return {}

    # Shared helpers.
    @property
    def base_url(self) -> str:
        return f"{self.server.url}/{self.name}"

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def store(self, post: dict[str, Any]) -> dict[str, Any]:
        """Keep an accepted post; the oracle tests count duplicates against."""
        post = {"network": self.name, "created_at": now_iso(), **post}
        with self.lock:
            self.posts.append(post)
        return post

    def keep_media(self, media_id: str, data: bytes, info: dict[str, Any], alt: str = "") -> None:
        """Remember an accepted upload (its bytes are served on the overview page)."""
        with self.lock:
            self.media[media_id] = {**info, "id": media_id, "alt": alt, "attached": False}
        self.server.blobs[info["digest"]] = (info["mime"], data)

    def use_media(self, media_ids: list[str]) -> list[dict[str, Any]] | str:
        """The images a post attaches, marked attached; or why the network refuses them."""
        with self.lock:
            found = []
            for media_id in media_ids:
                entry = self.media.get(media_id)
                if entry is None or entry["attached"]:
                    return f"media {media_id} not found or already attached to another post"
                found.append(entry)
            for entry in found:
                entry["attached"] = True
        return [post_image(entry) for entry in found]

    def delete_post(self, post_id: str, field: str = "id") -> bool:
        """Take down the post whose ``field`` is ``post_id``; False when there is none."""
        with self.lock:
            for post in self.posts:
                if post.get(field) == post_id:
                    self.posts.remove(post)
                    self.deleted.append({**post, "deleted_at": now_iso()})
                    return True
        return False

    def secret(self) -> str:
        """The credential an ``echo_secret`` fault repeats."""
        return self.credentials.get(self.secret_name, "")

    def find_post(self, web_path: str) -> dict[str, Any] | None:
        with self.lock:
            for post in self.posts:
                if urlsplit(post.get("url", "")).path == web_path:
                    return post
        return None

    def reset(self) -> None:
        with self.lock:
            self.posts.clear()
            self.deleted.clear()
            self.media.clear()


def post_image(entry: dict[str, Any]) -> dict[str, Any]:
    """How a post's image shows in ``posts()``: what the network received, and its alt."""
    keys = ("digest", "mime", "width", "height", "bytes", "metadata", "alt")
    return {key: entry[key] for key in keys if key in entry}


def echo(body: bytes, secret: str) -> bytes:
    """An error body whose message repeats ``secret`` (JSON bodies: the first message field)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body + f" token={secret}".encode()

    def add(node: Any) -> bool:
        if isinstance(node, dict):
            for key in ("message", "error", "detail", "description", "title"):
                if isinstance(node.get(key), str):
                    node[key] += f" (access token {secret})"
                    return True
            return any(add(value) for value in node.values())
        return False

    add(data)
    return json.dumps(data).encode()


PROXY_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><h1>Checking your browser before accessing the site.</h1></body></html>"
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


NETWORK_SANDBOXES: dict[str, str] = {name: profile.sandbox for name, profile in PROFILES.items()}
"""``module:Class`` of each network's fake, from its profile."""


class SandboxServer:
    """Local fakes of every supported network, on one loopback port.

    Use as a context manager in tests, or ``serve_forever`` from the CLI.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        credentials: dict[str, dict[str, str]] | None = None,
        latency: dict[str, float] | None = None,
    ) -> None:
        self.httpd = ThreadingHTTPServer((host, port), _RequestHandler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.httpd.sandbox = self  # type: ignore[attr-defined]
        self.latency = dict(latency or {})
        self.faults: dict[str, list[Fault]] = {}
        self.requests: list[dict[str, Any]] = []
        self.blobs: dict[str, tuple[str, bytes]] = {}
        """Every accepted image's bytes by SHA-256, for the overview page."""
        self.errors: list[str] = []
        """Exceptions raised inside handlers (tests assert there are none)."""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.networks: dict[str, NetworkSandbox] = {}
        for name, target in NETWORK_SANDBOXES.items():
            module_name, _, class_name = target.partition(":")
            cls = getattr(importlib.import_module(module_name), class_name)
            self.networks[name] = cls(self, (credentials or {}).get(name))
        self._routes = {
            name: [(m, re.compile(p), h) for m, p, h in net.routes()]
            for name, net in self.networks.items()
        }

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def settings(self) -> dict[str, str]:
        """Every ``SOCIALBOT_*`` variable needed to drain into this sandbox."""
        env: dict[str, str] = {}
        for network in self.networks.values():
            env.update(network.settings(network.base_url))
        return env

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(
            # A short poll interval makes stop() return at once rather than after 0.5 s.
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="socialbot-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, network: str, fault: Fault) -> None:
        """Queue a fault for a network's next matching requests."""
        if network not in self.networks:
            raise KeyError(f"no sandbox for {network!r}")
        with self._lock:
            self.faults.setdefault(network, []).append(fault)

    def take_fault(self, network: str, request: Request) -> Fault | None:
        default_path = self.networks[network].create_path
        with self._lock:
            for fault in self.faults.get(network, []):
                if fault.method and fault.method != request.method:
                    continue
                if not re.fullmatch(fault.path or default_path, request.path):
                    continue
                if fault.path is None and request.method != "POST":
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults[network].remove(fault)
                return fault
        return None

    def posts(self, network: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for name, net in self.networks.items():
            if network is None or name == network:
                with net.lock:
                    result.extend(dict(p) for p in net.posts)
        return result

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.requests.clear()
        for net in self.networks.values():
            net.reset()

    def record(self, network: str, request: Request, arrived: float) -> None:
        """Remember each request (method, path, headers, arrival as ``time.monotonic``)
        for tests and the benchmark to inspect."""
        with self._lock:
            self.requests.append(
                {
                    "network": network,
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers.items()),
                    "body": request.body.decode("utf-8", "replace"),
                    "at": arrived,
                }
            )

    def overview(self) -> Response:
        parts = [
            "<!doctype html><meta charset=utf-8><title>socialbot sandbox</title>",
            "<style>body{font:15px system-ui;max-width:50em;margin:2em auto}"
            "article{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:.5em 0;"
            "white-space:pre-wrap}small{color:#666}</style>",
            "<h1>socialbot sandbox</h1>",
            "<p>Posts accepted by the local fake networks. JSON: "
            "<a href=/_sandbox/posts>/_sandbox/posts</a></p>",
        ]
        for name, net in self.networks.items():
            with net.lock:
                posts = list(net.posts)
            parts.append(f"<h2>{html.escape(name)} ({len(posts)})</h2>")
            for post in posts:
                parts.append(_post_html(post))
        return Response.html(200, "".join(parts))


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGINT and SIGTERM end the block quietly (main thread only).

    Also when the process started with SIGINT ignored, as a background job of a
    script does: Python then installs no Ctrl-C handler of its own.
    """

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sleep_until(moment: float) -> None:
    """Wait until ``moment`` (``time.monotonic``), if it is still ahead."""
    left = moment - time.monotonic()
    if left > 0:
        time.sleep(left)


MEDIA_CENTRE = "/media-centre"
"""A few press-release pages, for trying ``socialbot import`` (and the demo) offline."""


def media_centre_page(path: str, base: str = "https://cor.europa.eu") -> Response:
    """``/media-centre/{lang}/news/{slug}``: a packaged page, as the media centre serves it.

    Its canonical address and language versions name the real site, as a saved page's
    would; only the copy is served from here.
    """
    match = re.fullmatch(re.escape(MEDIA_CENTRE) + r"/([a-z]{2})/news/([a-z0-9-]+)", path)
    if match is None:
        return Response.html(404, "<h1>Not found</h1>")
    language, slug = match.groups()
    page = importlib.resources.files("socialbot.sandbox") / "pages" / f"{slug}-{language}.html"
    if not page.is_file():
        return Response.html(404, "<h1>Not found</h1>")
    return Response.html(200, page.read_text(encoding="utf-8").replace("BASE_URL", base))


def _post_html(post: dict[str, Any]) -> str:
    url = html.escape(str(post.get("url", "")))
    figures = "".join(
        f"<figure><img src='/_sandbox/media/{html.escape(str(image.get('digest', '')))}' "
        f"alt='{html.escape(str(image.get('alt', '')))}' style='max-width:100%'>"
        f"<figcaption>alt: {html.escape(str(image.get('alt', '')) or '(none)')} · "
        f"{image.get('width')}×{image.get('height')}, {image.get('bytes')} bytes"
        f"{', metadata: ' + ', '.join(image['metadata']) if image.get('metadata') else ''}"
        "</figcaption></figure>"
        for image in [*post.get("images", []), *([post["thumb"]] if post.get("thumb") else [])]
    )
    return (
        f"<article>{html.escape(str(post.get('text', '')))}{figures}"
        f"<br><small>{html.escape(str(post.get('created_at', '')))} · "
        f"<a href='{url}'>{url}</a></small></article>"
    )


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "socialbot-sandbox/1"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body
    # waits for the client's delayed ACK, adding ~40 ms to every answer.
    disable_nagle_algorithm = True

    @property
    def sandbox(self) -> SandboxServer:
        return self.server.sandbox  # type: ignore[attr-defined, no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the sandbox is used inside tests and the demo."""

    def parse_request(self) -> bool:
        # The request line is in: reading the headers and the body, and routing, are the
        # sandbox's own work, inside the network's latency like the rest of it.
        self.arrived = time.monotonic()
        return super().parse_request()

    def handle(self) -> None:
        """Serve the connection; a client that died mid-request is no sandbox failure."""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(Response.json(413, {"error": "request body too large"}))
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or "127.0.0.1"
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            url=f"http://{host}{self.path}",
        )
        try:
            response = self._route(request)
        except _Dropped:
            return
        except Exception as exc:  # noqa: BLE001 - a sandbox bug answers 500, like a server
            self.sandbox.errors.append(f"{request.method} {request.path}: {exc!r}")
            response = Response.json(500, {"error": "sandbox failure"})
        self._send(response)

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/":
            return self.sandbox.overview()
        if path == "/_sandbox/posts":
            if request.method == "DELETE":
                self.sandbox.reset()
                return Response(204)
            only = request.query.get("network", [None])[0]
            return Response.json(200, self.sandbox.posts(only))
        if path == "/_sandbox/faults" and request.method == "POST":
            return self._add_faults(request)
        if path.startswith("/_sandbox/media/"):
            blob = self.sandbox.blobs.get(path.rsplit("/", 1)[1])
            if blob is None:
                return Response.json(404, {"error": "no such image"})
            return Response(200, blob[1], {"Content-Type": blob[0]})
        if path == "/_sandbox/settings":
            return Response.json(200, self.sandbox.settings())
        if path.startswith(MEDIA_CENTRE + "/"):
            return media_centre_page(path)
        name, _, rest = path.lstrip("/").partition("/")
        network = self.sandbox.networks.get(name)
        if network is None:
            return Response.json(404, {"error": f"no such network: {name}"})
        request.path = "/" + rest
        self.sandbox.record(name, request, self.arrived)
        # The answer leaves ``latency`` after its request arrived: the sandbox's own work
        # is inside the network's latency, as a real network's is, not added to it.
        answer_at = self.arrived + self.sandbox.latency.get(name, 0.0)
        fault = self.sandbox.take_fault(name, request)
        if fault is not None and fault.kind == "slow":
            answer_at += fault.delay
        if fault is not None and fault.kind == "error":
            response = network.error_response(fault)
            if fault.echo_secret:
                response.body = echo(response.body, network.secret())
            response.at = answer_at
            return response
        if fault is not None and fault.kind in ("hang", "reset"):
            _sleep_until(answer_at)
            self._drop(fault)
        response = self._handle(network, request)
        if fault is not None and fault.kind.startswith("accept-then-"):
            _sleep_until(answer_at)
            self._drop(fault)
        if fault is not None and fault.kind == "html":
            response = Response.html(response.status, PROXY_PAGE)
        elif fault is not None and fault.kind in ("truncated", "trickle"):
            response.delivery = "truncated" if fault.kind == "truncated" else "trickle"
            response.interval = fault.delay
        response.at = answer_at
        return response

    def _handle(self, network: NetworkSandbox, request: Request) -> Response:
        for method, pattern, handler in self.sandbox._routes[network.name]:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler(request, match)
        if request.method == "GET":
            post = network.find_post(f"/{network.name}{request.path}")
            if post is not None:
                return Response.html(200, "<!doctype html><meta charset=utf-8>" + _post_html(post))
        return Response.json(404, {"error": f"{request.method} {request.path} is not served"})

    def _add_faults(self, request: Request) -> Response:
        try:
            data = request.json()
            items = data if isinstance(data, list) else [data]
            for item in items:
                network = item.pop("network")
                self.sandbox.inject(network, Fault(**item))
        except (ValueError, KeyError, TypeError) as exc:
            return Response.json(400, {"error": f"bad fault: {exc}"})
        return Response.json(201, {"queued": len(items)})

    def _drop(self, fault: Fault) -> None:
        """Hang or reset instead of answering."""
        if fault.kind.endswith("hang"):
            time.sleep(fault.delay)
            self.close_connection = True
            raise _Dropped
        # SO_LINGER with a zero timeout makes close() send a TCP RST.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        raise _Dropped

    def _send(self, response: Response) -> None:
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            _sleep_until(response.at)
            self.end_headers()
            if self.command == "HEAD":
                return
            if response.delivery == "truncated":
                # Half the promised body, then the connection closes.
                self.wfile.write(response.body[: len(response.body) // 2])
                self.wfile.flush()
                self.close_connection = True
            elif response.delivery == "trickle":
                for byte in response.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(response.interval)
            else:
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


class _Dropped(Exception):
    """Raised to leave a request without an answer."""

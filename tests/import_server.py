"""A threaded HTTP server on a free loopback port, serving the import fixtures."""

from __future__ import annotations

import gzip
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import socialbot.sandbox

FIXTURES = Path(__file__).parent / "fixtures" / "import"
PACKAGED = Path(socialbot.sandbox.__file__).parent / "pages"
"""The newer CoR pages ship with the sandbox (its media centre): the tests read those."""


def fixture_path(name: str) -> Path:
    match = re.fullmatch(r"cor-new-([a-z]{2})\.html", name)
    if match:
        return PACKAGED / f"affordable-housing-plan-{match[1]}.html"
    return FIXTURES / name


Route = tuple[int, dict[str, str], bytes] | Callable[[BaseHTTPRequestHandler], None]


class ImportServer:
    """Serves ``routes``; ``BASE_URL`` in a fixture becomes this server's address."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                server.hits.append(self.path)
                route = server.routes.get(path)
                if route is None:
                    self._send(404, {"Content-Type": "text/plain"}, b"not found")
                elif callable(route):
                    route(self)
                else:
                    self._send(*route)

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def fixture(self, name: str) -> bytes:
        return fixture_path(name).read_bytes().replace(b"BASE_URL", self.base.encode())

    def page(
        self, path: str, name: str, content_type: str = "text/html; charset=utf-8", **kw: str
    ) -> None:
        self.routes[path] = (200, {"Content-Type": content_type, **kw}, self.fixture(name))

    def raw(self, path: str, body: bytes, headers: dict[str, str], status: int = 200) -> None:
        self.routes[path] = (status, headers, body)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = (status, {"Location": location}, b"")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


def standard_routes(server: ImportServer) -> None:
    """Every page, listing and feed fixture at the address its links expect."""
    old = "/{}/news/Pages/cohesion-alliance-recovery.aspx"
    for lang in ("en", "fr", "bg", "ga"):
        server.page(old.format(lang), f"cor-old-{lang}.html")
    server.page("/en/news/Pages/cohesion-alliance-recovery-0.aspx", "cor-old-en.html")
    server.page("/bg/news/Pages/green-deal-going-local.aspx", "cor-old-bg-green.html")
    for lang in ("en", "de", "el"):
        server.page(f"/{lang}/news/affordable-housing-plan", f"cor-new-{lang}.html")
    server.page("/en/news/affordable-housing-plan-0", "cor-new-en.html")
    server.page("/press/2025/03/17/water-resilience", "generic-water.html")
    server.page("/bg/news/Pages/press-releases.aspx", "listing-old-bg.html")
    server.page("/en/news", "listing-new-en.html")
    server.page("/feeds/rss.xml", "feed-rss.xml", "application/rss+xml")
    server.page("/feeds/atom.xml", "feed-atom.xml", "application/atom+xml")
    server.page("/feeds/bomb.xml", "feed-bomb.xml", "application/rss+xml")
    # Hostile pages.
    text = (FIXTURES / "hostile-bg-1251.html").read_text("utf-8")
    server.raw("/hostile/win1251", text.encode("cp1251"), {"Content-Type": "text/html"})
    server.raw(
        "/hostile/wrong-charset",
        text.encode("cp1251"),
        {"Content-Type": "text/html; charset=utf-8"},
    )
    greek = (FIXTURES / "hostile-el-8859-7.html").read_text("utf-8")
    server.raw(
        "/hostile/greek-no-charset", greek.encode("iso-8859-7"), {"Content-Type": "text/html"}
    )
    server.page("/hostile/malformed", "hostile-malformed.html", "text/html")
    server.page("/hostile/script-title", "hostile-script-title.html")
    server.page("/hostile/no-title", "hostile-no-title.html")


def big_body(size: int) -> bytes:
    head = b"<html><head><title>Big</title></head><body><h1>Big page</h1><p>"
    return head + b"x" * size + b"</p></body></html>"


def gzip_bomb(size: int) -> bytes:
    head = b"<html><head><title>Bomb</title></head><body><h1>Bomb</h1><p>"
    return gzip.compress(head + b" " * size + b"</p></body></html>", compresslevel=9)


def slow(handler: BaseHTTPRequestHandler) -> None:
    """A page that drips one byte every 0.2 seconds, for ever (until the client leaves)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    try:
        handler.wfile.write(b"<html><head><title>Slow</title></head><body><h1>Slow</h1><p>")
        for _ in range(200):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass


@contextmanager
def serving() -> Iterator[ImportServer]:
    server = ImportServer()
    standard_routes(server)
    server.start()
    try:
        yield server
    finally:
        server.stop()

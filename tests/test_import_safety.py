"""Import fetches what people paste: every protection, proven by a refusal.

The fixture server listens on 127.0.0.1. Tests that must reach it allow exactly
127.0.0.1/32; nothing else private is allowed, so a redirect to 127.0.0.2 or 10.x is
refused by the same address rule a real deployment uses.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from socialbot.config import ImportSettings
from socialbot.importer import ImportStatus, KeyValueLedger, MemoryKeyValue, run_import
from socialbot.importer.fetch import AddressRefused, Fetcher, FetchError, FetchPolicy
from socialbot.releases import read_release
from tests.import_server import big_body, gzip_bomb, serving, slow


@pytest.fixture
def server():
    with serving() as running:
        yield running


def one(server, tmp_path, source, *, allowed=("127.0.0.1/32",), settings=None, **kw):
    report = run_import(
        [server.url(source) if source.startswith("/") else source],
        queue_dir=tmp_path,
        ledger=KeyValueLedger(MemoryKeyValue()),
        is_approved=lambda release_id: False,
        allowed_networks=list(allowed),
        settings=settings,
        follow_versions=False,
        **kw,
    )
    return report.results[0]


def test_loopback_is_refused_by_default(server, tmp_path):
    result = one(server, tmp_path, "/en/news/affordable-housing-plan", allowed=())
    assert result.status is ImportStatus.ERROR
    assert "127.0.0.1, a loopback address, which import does not reach" in result.message
    assert server.hits == []  # refused before connecting


def test_host_name_is_checked_after_dns_resolution(server, tmp_path):
    url = f"http://localhost:{server.port}/en/news/affordable-housing-plan"
    result = one(server, tmp_path, url, allowed=())
    assert result.status is ImportStatus.ERROR
    assert "a loopback address" in result.message
    assert server.hits == []


def test_allow_private_addresses_lifts_the_rule(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES", "true")
    result = one(
        server, tmp_path, "/en/news/affordable-housing-plan", allowed=(), settings=ImportSettings()
    )
    assert result.status is ImportStatus.CREATED, result.message


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        ("http://127.0.0.2:{port}/en/news/affordable-housing-plan", "loopback"),
        ("http://10.1.2.3/admin", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:{port}/", "loopback"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
def test_each_redirect_hop_is_checked_again(server, tmp_path, target, kind):
    server.redirect("/hostile/redirect", target.format(port=server.port))
    result = one(
        server, tmp_path, "/hostile/redirect", settings=ImportSettings(page_timeout_seconds=3)
    )
    assert result.status is ImportStatus.ERROR
    assert f"a {kind} address" in result.message


def test_only_http_and_https(server, tmp_path):
    for source in ("file:///etc/passwd", "ftp://example.org/x.html", "gopher://x/"):
        result = one(server, tmp_path, source)
        assert result.status is ImportStatus.ERROR
        assert "only http and https addresses can be imported" in result.message
    server.redirect("/hostile/to-file", "file:///etc/passwd")
    result = one(server, tmp_path, "/hostile/to-file")
    assert "only http and https addresses can be imported, not file ones" in result.message


def test_an_address_httpx_cannot_encode_is_one_sentence(server, tmp_path):
    """A bad IDNA host, typed or redirected to, is the fetcher's own sentence for every caller."""
    with Fetcher(FetchPolicy()) as fetcher, pytest.raises(FetchError) as raised:
        fetcher.get("https://xn--zz.com/a.jpg")
    assert str(raised.value) == (
        "its host name is not a valid internationalised domain name (Invalid A-label)"
    )
    result = one(server, tmp_path, "https://xn--zz.com/a")
    assert result.message == (
        "https://xn--zz.com/a: its host name is not a valid internationalised domain name "
        "(Invalid A-label)."
    )
    server.redirect("/hostile/to-bad-idna", "http://xn--zz.com/")
    result = one(server, tmp_path, "/hostile/to-bad-idna")
    assert result.message.endswith(
        ": it redirects to an address whose host name is not a valid internationalised domain "
        "name (Invalid A-label)."
    )


def test_redirects_are_followed_a_few_times_only(server, tmp_path):
    server.redirect("/r/3", "/r/2")
    server.redirect("/r/2", "/r/1")
    server.redirect("/r/1", "/en/news/affordable-housing-plan")
    assert one(server, tmp_path, "/r/3").status is ImportStatus.CREATED
    server.redirect("/loop", "/loop")
    result = one(server, tmp_path, "/loop", settings=ImportSettings(max_redirects=2))
    assert result.message.endswith("it redirects more than 2 times.")
    assert server.hits.count("/loop") == 3


def test_body_size_is_capped_while_streaming(server, tmp_path):
    server.raw("/hostile/big", big_body(2_000_000), {"Content-Type": "text/html"})
    settings = ImportSettings(max_body_bytes=1_000_000)
    result = one(server, tmp_path, "/hostile/big", settings=settings)
    assert "larger than the 1000000 bytes allowed" in result.message or (
        "more than the 1000000 allowed" in result.message
    )
    # Without a Content-Length to go by, the stream itself is cut.
    policy = FetchPolicy(
        allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),),
        max_body_bytes=1_000_000,
    )

    def chunked(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        try:
            for _ in range(64):
                chunk = b"x" * 65536
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass

    server.routes["/hostile/chunked"] = chunked
    with Fetcher(policy) as fetcher, pytest.raises(FetchError, match="larger than the 1000000"):
        fetcher.get(server.url("/hostile/chunked"))


def test_gzip_bomb_is_capped_after_decompression(server, tmp_path):
    bomb = gzip_bomb(50_000_000)
    assert len(bomb) < 100_000
    server.raw(
        "/hostile/gzip-bomb", bomb, {"Content-Type": "text/html", "Content-Encoding": "gzip"}
    )
    result = one(server, tmp_path, "/hostile/gzip-bomb")
    assert "the decompressed body is larger than the 5000000 bytes allowed" in result.message
    # A small compressed page reads normally.
    page = server.fixture("cor-new-en.html")
    server.raw(
        "/gz",
        __import__("gzip").compress(page),
        {"Content-Type": "text/html; charset=utf-8", "Content-Encoding": "gzip"},
    )
    assert one(server, tmp_path, "/gz").status is ImportStatus.CREATED


def test_a_page_has_a_wall_clock_time_limit(server, tmp_path):
    server.routes["/hostile/slow"] = slow
    result = one(server, tmp_path, "/hostile/slow", settings=ImportSettings(page_timeout_seconds=1))
    assert result.message.endswith("it took longer than 1 seconds.")


def trickle(handler: BaseHTTPRequestHandler, pieces: list[bytes], pause: float) -> None:
    """Send ``pieces`` ``pause`` seconds apart, then close (a client that left ends it)."""
    try:
        for piece in pieces:
            handler.wfile.write(piece)
            handler.wfile.flush()
            time.sleep(pause)
    except OSError:
        pass
    handler.close_connection = True


def slow_headers(handler: BaseHTTPRequestHandler) -> None:
    """A status line at once, then one header line every 0.1 seconds for 4 seconds."""
    trickle(handler, [b"HTTP/1.1 200 OK\r\n"] + [b"X-A: b\r\n"] * 40 + [b"\r\n"], 0.1)


def slow_status(handler: BaseHTTPRequestHandler) -> None:
    """The status line one byte every 0.2 seconds (about 3.4 seconds)."""
    trickle(handler, [bytes([c]) for c in b"HTTP/1.1 200 OK\r\n"], 0.2)


def slow_body(handler: BaseHTTPRequestHandler) -> None:
    """Headers at once, then a byte of body just before each second passes."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 3\r\n\r\n"
    trickle(handler, [head, b"<", b"p", b">"], 0.95)


@pytest.mark.parametrize("route", [slow_headers, slow_status, slow_body])
def test_the_page_limit_covers_status_line_headers_and_body(server, tmp_path, route):
    """The limit is wall-clock from connecting to the last byte, whatever the server drips."""
    server.routes["/hostile/trickle"] = route
    policy = FetchPolicy(
        allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),),
        page_timeout_seconds=1,
    )
    started = time.monotonic()
    with Fetcher(policy) as fetcher, pytest.raises(FetchError, match="longer than 1 seconds"):
        fetcher.get(server.url("/hostile/trickle"))
    assert time.monotonic() - started < 1.5
    report = run_import(
        [server.url("/hostile/trickle"), server.url("/en/news/affordable-housing-plan")],
        queue_dir=tmp_path,
        ledger=KeyValueLedger(MemoryKeyValue()),
        is_approved=lambda release_id: False,
        allowed_networks=["127.0.0.1/32"],
        settings=ImportSettings(page_timeout_seconds=1),
        follow_versions=False,
    )
    slow, good = report.results
    assert slow.message == f"{server.url('/hostile/trickle')}: it took longer than 1 seconds."
    assert good.status is ImportStatus.CREATED, good.message


def test_the_page_limit_covers_looking_up_the_host(server):
    """A resolver that does not answer (its own limits run to tens of seconds) is not waited for."""
    release = threading.Event()

    def silent_resolver(host: str, port: int) -> list[tuple[Any, ...]]:
        release.wait(30)
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)

    policy = FetchPolicy(
        allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),), page_timeout_seconds=1
    )
    started = time.monotonic()
    try:
        with (
            Fetcher(policy, resolve=silent_resolver) as fetcher,
            pytest.raises(FetchError, match="longer than 1 seconds"),
        ):
            fetcher.get(f"http://localhost:{server.port}/en/news/affordable-housing-plan")
    finally:
        release.set()
    assert time.monotonic() - started < 1.5
    assert server.hits == []


def test_a_lookup_within_the_limit_connects_and_a_failed_one_says_so(server):
    asked: list[str] = []

    def resolver(host: str, port: int) -> list[tuple[Any, ...]]:
        asked.append(host)
        if host == "nowhere.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return socket.getaddrinfo("127.0.0.1", port, type=socket.SOCK_STREAM)

    policy = FetchPolicy(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    with Fetcher(policy, resolve=resolver) as fetcher:
        page = fetcher.get(f"http://press.example:{server.port}/en/news/affordable-housing-plan")
        assert b"<html" in page.content.lower()
        with pytest.raises(FetchError, match=r"the host name nowhere\.invalid does not resolve"):
            fetcher.get("http://nowhere.invalid/")
    assert asked == ["press.example", "nowhere.invalid"]


def test_entity_bomb_feed_is_refused(server, tmp_path):
    result = one(server, tmp_path, "/feeds/bomb.xml", feed=True)
    assert result.status is ImportStatus.ERROR
    assert "declares XML entities" in result.message


def test_hostile_pages_give_one_sentence_and_the_others_import(server, tmp_path):
    sources = [
        "/hostile/no-title",
        "/hostile/win1251",
        "/hostile/wrong-charset",
        "/hostile/greek-no-charset",
        "/hostile/malformed",
        "/hostile/script-title",
        "/nowhere",
        "/en/news/affordable-housing-plan",
    ]
    report = run_import(
        [server.url(s) for s in sources],
        queue_dir=tmp_path,
        ledger=KeyValueLedger(MemoryKeyValue()),
        is_approved=lambda release_id: False,
        allowed_networks=["127.0.0.1/32"],
        follow_versions=False,
    )
    results = {r.source.removeprefix(server.base): r for r in report.results}
    assert results["/hostile/no-title"].message == (
        f"{server.base}/hostile/no-title: the page has no title."
    )
    assert results["/nowhere"].message == f"{server.base}/nowhere: the server answered 404."
    for path in ("/hostile/win1251", "/hostile/wrong-charset"):
        release = released(results[path])
        assert release.title == "Общините искат повече средства за обществения транспорт"
        assert release.language == "bg"
        assert (
            release.body
            == "„Хората избират автобуса, когато той идва навреме“, заяви кметът на Пловдив."
        )
    greek = released(results["/hostile/greek-no-charset"])
    assert greek.title == "Οι νησιωτικές περιφέρειες ζητούν ειδική στήριξη για το νερό"
    assert greek.language == "el"
    broken = released(results["/hostile/malformed"])
    assert broken.title == "Mayors sign the urban mobility pledge"
    assert broken.summary.startswith("Two hundred mayors signed a pledge")
    assert "unclosed" not in broken.title
    scripted = released(results["/hostile/script-title"])
    assert scripted.title == "Regions demand a say on the next budget"
    assert "alert" not in scripted.model_dump_json() and "pwned" not in scripted.model_dump_json()
    assert results["/en/news/affordable-housing-plan"].status is ImportStatus.CREATED


def released(result):
    assert result.path is not None, result.message
    return read_release(result.path)


def test_policy_refuses_unspecified_and_mapped_addresses():
    policy = FetchPolicy()
    for address in ("0.0.0.0", "::ffff:127.0.0.1", "192.168.1.1", "100.64.0.1", "fe80::1"):
        with pytest.raises(AddressRefused):
            policy.check_address(address)
    policy.check_address("93.184.216.34")


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::a9fe:a9fe",  # NAT64 to 169.254.169.254, the cloud metadata address
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64
        "2002:a9fe:a9fe::1",  # 6to4 through 169.254.169.254
        "2002:7f00:1::1",  # 6to4 through 127.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "fec0::1",  # site-local
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_policy_refuses_ipv6_forms_that_reach_a_private_ipv4_address(address: str):
    with pytest.raises(AddressRefused, match="import does not reach"):
        FetchPolicy().check_address(address)


def test_policy_allows_ipv6_forms_of_public_addresses():
    policy = FetchPolicy()
    for address in ("64:ff9b::5db8:d822", "2002:5db8:d822::1", "2a01:4f8::1"):  # 93.184.216.34
        policy.check_address(address)

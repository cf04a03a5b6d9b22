"""Fetching the addresses people paste, without letting them reach inside the network.

* Only ``http`` and ``https``; redirects are followed by hand, at most ``max_redirects``
  times, and every hop is checked again like the first address.
* Every connection goes through ``_GuardedBackend``: the host name is resolved once, every
  address it resolves to is checked (loopback, private, link-local, multicast, reserved
  and unspecified ranges are refused unless ``allow_private_addresses``), and the socket
  connects to exactly the address that was checked, so a second DNS answer cannot swap in
  an internal address. No proxy from the environment is used.
* One wall-clock deadline per page covers looking up the host, connecting, redirects, the
  status line, the headers and the body: every socket operation is given only the time left
  (``_DeadlineStream``), and so is the lookup (``_resolve_by_deadline``).
* The body is capped while it streams, and compressed bodies are decompressed here, with
  the cap applied to the decompressed size, a bounded amount at a time.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
import socket
import threading
import time
import typing
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from socialbot import __version__

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[tuple[typing.Any, ...]]]
"""Host and port to ``socket.getaddrinfo``'s answer (the test suite hands in a slow one)."""
USER_AGENT = f"socialbot/{__version__} (press release import)"
_CHUNK = 64 * 1024
_REDIRECTS = (301, 302, 303, 307, 308)


class FetchError(Exception):
    """Why an address could not be fetched, as one plain sentence (without the address)."""


class AddressRefused(FetchError):
    """The address is one the import may not reach."""


@dataclass(frozen=True)
class FetchPolicy:
    """How far one fetch may go."""

    allow_private_addresses: bool = False
    max_body_bytes: int = 5_000_000
    page_timeout_seconds: float = 20.0
    max_redirects: int = 5
    # Exceptions to the address rule, e.g. one intranet range (and the tests' loopback server).
    allowed_networks: tuple[Network, ...] = field(default_factory=tuple)

    def check_address(self, address: str) -> None:
        """Raise AddressRefused unless the import may connect to this IP address."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self.allow_private_addresses or any(ip in net for net in self.allowed_networks):
            return
        if isinstance(ip, ipaddress.IPv6Address):
            if any(ip in net for net in _LOCAL_IPV6):
                raise AddressRefused(
                    f"it leads to {ip}, a site-local or local-use translation address, which "
                    "import does not reach (SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES=true "
                    "allows it)"
                )
            ip = embedded_ipv4(ip) or ip
            if any(ip in net for net in self.allowed_networks):
                return
        if not ip.is_global or ip.is_multicast:
            kind = (
                "loopback"
                if ip.is_loopback
                else "link-local"
                if ip.is_link_local
                else "multicast"
                if ip.is_multicast
                else "private"
                if ip.is_private
                else "reserved"
            )
            raise AddressRefused(
                f"it leads to {ip}, a {kind} address, which import does not reach "
                "(SOCIALBOT_IMPORT__ALLOW_PRIVATE_ADDRESSES=true allows it)"
            )


_LOCAL_IPV6 = (
    ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated, still routed by some)
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use IPv4/IPv6 translation (RFC 8215)
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known translation prefix (RFC 6052)
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # IPv4-compatible (deprecated, RFC 4291)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address reaches through: mapped, 6to4, NAT64, IPv4-compatible
    or Teredo's client. It is the one to judge: ``64:ff9b::a9fe:a9fe`` is 169.254.169.254."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@dataclass(frozen=True)
class Fetched:
    """One page or feed as fetched: its final address, bytes and declared type."""

    url: str
    content: bytes
    content_type: str = ""
    charset: str | None = None


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "socialbot_fetch_deadline", default=None
)
"""The ``time.monotonic()`` by which the page being fetched must be complete."""


def _bounded(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    """``timeout`` cut to the time left before the page's deadline; ``error`` once it passed."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the page's time limit passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the page's deadline.

    httpx's timeouts are per operation: a server that sends the status line a byte a second,
    or one header line a second, never lets a read time out, and the wall-clock check in the
    body loop is never reached. Rather than a watchdog thread closing the socket from outside
    (a second thread per fetch, and a race with a connection going back to the pool), each
    socket operation is given only the time left, so a blocked ``recv`` itself ends at the
    deadline and httpcore drops the connection as after any timeout. The deadline is read
    per call from a context variable, so a kept-alive connection serves the next page under
    that page's own deadline.
    """

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


def system_resolver(host: str, port: int) -> list[tuple[typing.Any, ...]]:
    """The system's answer for ``host``, stream sockets only."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _resolve_by_deadline(resolve: Resolver, host: str, port: int) -> list[tuple[typing.Any, ...]]:
    """``resolve(host, port)``, given only the time left before the page's deadline.

    The system resolver keeps its own time limits (seconds per server, several tries), and
    ``getaddrinfo`` cannot be interrupted: it runs on a daemon thread that is abandoned
    if the deadline passes first, and ends when the resolver gives up.
    """
    left = _bounded(None, httpcore.ConnectTimeout)
    if left is None:
        return resolve(host, port)
    answer: list[list[tuple[typing.Any, ...]] | BaseException] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            answer.append(resolve(host, port))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            answer.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    if not done.wait(left):
        raise httpcore.ConnectTimeout(f"looking up {host} took longer than the time limit")
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return answer[0]


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check every address, then connect to a checked address only."""

    def __init__(self, policy: FetchPolicy, resolve: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolve = resolve
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = _resolve_by_deadline(self._resolve, host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"the host name {host} does not resolve") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:  # one bad answer is enough to refuse the host
            self._policy.check_address(address)
        last: Exception | None = None
        for address in addresses:
            try:
                bounded = _bounded(timeout, httpcore.ConnectTimeout)
                stream = self._inner.connect_tcp(
                    address, port, bounded, local_address, socket_options
                )
                return _DeadlineStream(stream)
            except httpcore.ConnectError as exc:
                last = exc
        raise httpcore.ConnectError(f"cannot connect to {host}") from last

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def check_scheme(url: str) -> None:
    """Only absolute http and https addresses with a host."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise _invalid_address(exc) from None
    if parts.scheme.lower() not in ("http", "https"):
        shown = parts.scheme or "no"
        raise FetchError(f"only http and https addresses can be imported, not {shown} ones")
    if not parts.hostname:
        raise FetchError("the address names no host")


class Fetcher:
    """Fetches pages under one policy; use as a context manager."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        transport: httpx.BaseTransport | None = None,
        resolve: Resolver = system_resolver,
    ) -> None:
        self.policy = policy
        if transport is None:
            pool = httpcore.ConnectionPool(
                ssl_context=httpx.create_ssl_context(),
                network_backend=_GuardedBackend(policy, resolve),
                max_connections=4,
            )
            transport = _PoolTransport(pool)
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            trust_env=False,
            headers={
                "User-Agent": USER_AGENT,
                "Accept-Encoding": "gzip, deflate",
                "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            },
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(self, url: str) -> Fetched:
        """The body at ``url``, after at most ``max_redirects`` checked redirects.

        Raises FetchError, with one sentence, for any address that cannot be fetched.
        """
        deadline = time.monotonic() + self.policy.page_timeout_seconds
        token = _DEADLINE.set(deadline)
        try:
            return self._get(url, deadline)
        finally:
            _DEADLINE.reset(token)

    def _get(self, url: str, deadline: float) -> Fetched:
        current = url
        for _hop in range(self.policy.max_redirects + 1):
            check_scheme(current)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _too_slow(self.policy)
            request = self._request(current, remaining)
            try:
                response = self._client.send(request, stream=True)
            except AddressRefused:
                raise
            except UnicodeError as exc:
                # httpx parses a redirect's Location inside send (for ``next_request``), even
                # though redirects are not followed there, and lets an IDNA error through.
                raise _invalid_address(exc, redirect=True) from None
            except (httpx.TimeoutException, httpcore.TimeoutException):
                raise _too_slow(self.policy) from None
            except httpcore.ConnectError as exc:
                raise FetchError(f"{exc}") from None
            except (httpx.HTTPError, httpcore.ProtocolError, httpcore.NetworkError) as exc:
                raise FetchError(f"the server could not be reached ({_reason(exc)})") from None
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    try:
                        current = urljoin(current, response.headers["location"].strip())
                    except ValueError as exc:
                        raise _invalid_address(exc, redirect=True) from None
                    continue
                if response.status_code >= 400:
                    raise FetchError(f"the server answered {response.status_code}")
                content = _read_body(response, self.policy, deadline)
                content_type = response.headers.get("content-type", "")
                return Fetched(current, content, content_type, _charset(content_type))
            finally:
                response.close()
        raise FetchError(f"it redirects more than {self.policy.max_redirects} times")

    def _request(self, url: str, remaining: float) -> httpx.Request:
        """The request for ``url``; an address httpx cannot encode is a FetchError."""
        try:
            return self._client.build_request("GET", url, timeout=httpx.Timeout(remaining))
        except (UnicodeError, httpx.InvalidURL, ValueError) as exc:
            raise _invalid_address(exc) from None


def read_file(path: Path, policy: FetchPolicy) -> Fetched:
    """A page saved to disk, under the same size cap as a fetched one."""
    try:
        with path.open("rb") as handle:
            content = handle.read(policy.max_body_bytes + 1)
    except OSError as exc:
        raise FetchError(f"the file cannot be read ({exc.strerror})") from None
    if len(content) > policy.max_body_bytes:
        raise FetchError(f"the file is larger than {policy.max_body_bytes} bytes")
    return Fetched(path.resolve().as_uri(), content)


def _read_body(response: httpx.Response, policy: FetchPolicy, deadline: float) -> bytes:
    cap = policy.max_body_bytes
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise FetchError(f"the body is {int(length)} bytes, more than the {cap} allowed")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise FetchError(f"the body uses the compression {encoding!r}, which import does not read")
    decoder = None if encoding in ("", "identity") else _Decompressor(encoding)
    parts: list[bytes] = []
    size = 0
    try:
        for raw in response.iter_raw():  # as received: the deadline is checked per read
            if time.monotonic() > deadline:
                raise _too_slow(policy)
            for chunk in decoder.feed(raw, cap - size + 1) if decoder else (raw,):
                size += len(chunk)
                if size > cap:
                    what = "decompressed body" if decoder else "body"
                    raise FetchError(f"the {what} is larger than the {cap} bytes allowed")
                parts.append(chunk)
    except (httpx.TimeoutException, httpcore.TimeoutException):
        raise _too_slow(policy) from None
    except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise FetchError(f"the body could not be read ({_reason(exc)})") from None
    except zlib.error:
        raise FetchError("the compressed body is corrupt") from None
    return b"".join(parts)


class _Decompressor:
    """gzip or deflate, yielding output a bounded amount at a time."""

    def __init__(self, encoding: str) -> None:
        # 47: gzip or zlib header; deflate without a header is tried on the first error.
        self._obj = zlib.decompressobj(47 if "gzip" in encoding else zlib.MAX_WBITS)
        self._raw_deflate = encoding == "deflate"
        self._started = False

    def feed(self, data: bytes, budget: int) -> Iterator[bytes]:
        if not self._started and self._raw_deflate:
            try:
                zlib.decompressobj(zlib.MAX_WBITS).decompress(data[:64], 1)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        self._started = True
        pending = data
        while True:
            limit = min(_CHUNK, max(budget, 1))
            out = self._obj.decompress(pending, limit)
            pending = self._obj.unconsumed_tail
            budget -= len(out)
            yield out
            # A full output buffer may hide more output even with no input left.
            if budget <= 0 or (not pending and len(out) < limit):
                return


def _invalid_address(exc: Exception, *, redirect: bool = False) -> FetchError:
    """An address httpx cannot encode (an IDNA host such as ``xn--zz.com``) as a sentence."""
    reason = _reason(exc)
    if isinstance(exc, UnicodeError):  # idna.IDNAError is a UnicodeError
        whose = "it redirects to an address whose" if redirect else "its"
        return FetchError(
            f"{whose} host name is not a valid internationalised domain name ({reason})"
        )
    what = (
        "it redirects to an address that is not valid" if redirect else "the address is not valid"
    )
    return FetchError(f"{what} ({reason})")


def _too_slow(policy: FetchPolicy) -> FetchError:
    return FetchError(f"it took longer than {policy.page_timeout_seconds:g} seconds")


def _charset(content_type: str) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type, re.IGNORECASE)
    return match.group(1).lower() if match else None


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


class _PoolTransport(httpx.BaseTransport):
    """httpx over an httpcore pool whose connections go through the guarded backend."""

    def __init__(self, pool: httpcore.ConnectionPool) -> None:
        self._pool = pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = self._pool.handle_request(core)
        stream = response.stream
        assert isinstance(stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreStream(stream, response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _CoreStream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes], response: httpcore.Response) -> None:
        self._chunks = chunks
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks

    def close(self) -> None:
        self._response.close()

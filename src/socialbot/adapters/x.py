"""X (Twitter) through tweepy: ``POST /2/tweets`` with OAuth 1.0a user context.

tweepy hard-codes its host, so the client is handed a ``requests.Session``
that sends every request to ``SOCIALBOT_X__BASE_URL`` instead and sets the
timeout tweepy never sets. tweepy's own ``wait_on_rate_limit`` stays off: a
cron run must not sleep through a 15-minute window.
"""

from __future__ import annotations

import io
import os
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

import requests
import tweepy
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectTimeout, ReadTimeout, RequestException
from requests.exceptions import ConnectionError as RequestsConnectionError
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import HTTPResponse

from socialbot.adapters.base import (
    CONNECT_TIMEOUT,
    USER_AGENT,
    Adapter,
    Answer,
    Media,
    State,
    json_body,
    new_client,
    parse_epoch,
    redacted,
    server_failure,
    utc_now,
)
from socialbot.config import Settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    DeliveryError,
    DuplicateError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.logs import register_secret
from socialbot.models import Post, Receipt
from socialbot.networks.x import PROFILE, XSettings

if TYPE_CHECKING:  # httpx loads with the first media upload (or a test's transport)
    import httpx

TWEEPY_HOST = "https://api.twitter.com"
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=15)
FIND_PAGES = 10
"""Pages of 100 posts read while looking for one; more cannot prove absence."""
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_TCO = re.compile(r"https?://t\.co/\w+")
_MEDIA_PAGE = re.compile(r"/(?:photo|video)/\d+$")


class DeadlineTimeout(ReadTimeout):
    """The request's wall-clock deadline passed while its answer was being read."""


class NotConnected(RequestsConnectionError):
    """The connection was never made (raised by the transport bridge)."""


class RedirectingSession(requests.Session):
    """Sends tweepy's requests to ``base_url``, each bounded by the adapter's deadline.

    Each request's timeout is what ``time_left`` allows, and its answer is read
    in whatever pieces arrive, with the clock checked between them, so a
    trickled answer cannot outlast the deadline.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float,
        time_left: Callable[[], float] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.time_left = time_left or (lambda: timeout)
        self.headers["User-Agent"] = USER_AGENT
        # With trust_env, requests reads the proxy and CA-bundle variables again for every
        # request (a scan of the whole environment, about 0.5 ms). Every request goes to
        # base_url: they are read once, here, by requests' own rules.
        self.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        env = os.environ
        self.verify = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or True
        self.trust_env = False
        if transport is not None:
            self.mount(self.base_url, TransportBridge(transport))

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if not url.startswith(TWEEPY_HOST + "/"):
            raise ValueError(f"refusing to send an X request outside the API: {url}")
        limit = self.time_left()
        end = time.monotonic() + limit
        kwargs["timeout"] = (min(limit, CONNECT_TIMEOUT), limit)
        kwargs["stream"] = True
        response = super().request(method, self.base_url + url[len(TWEEPY_HOST) :], *args, **kwargs)
        try:
            chunks = []
            while chunk := response.raw.read1(65536, decode_content=True):
                chunks.append(chunk)
                if time.monotonic() > end:
                    raise DeadlineTimeout("no complete answer before the request's deadline")
        except (ProtocolError, ReadTimeoutError, OSError) as exc:
            raise ChunkedEncodingError(f"the answer was cut off ({type(exc).__name__})") from None
        finally:
            response.close()
        response._content = b"".join(chunks)
        setattr(response, "_content_consumed", True)  # noqa: B010 - not in requests' stubs
        return response


class TransportBridge(HTTPAdapter):
    """Sends requests' requests through an httpx transport (``httpx.MockTransport`` in tests),
    so X's decisions are tested the same way as every other network's."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        super().__init__()
        self.transport = transport

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        import httpx

        body = request.body or b""
        outgoing = httpx.Request(
            str(request.method),
            str(request.url),
            headers=dict(request.headers),
            content=body.encode() if isinstance(body, str) else body,
        )
        try:
            answer = self.transport.handle_request(outgoing)
            answer.read()
            content = answer.content
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise NotConnected(str(exc), request=request) from None
        except httpx.TimeoutException as exc:
            raise ReadTimeout(str(exc), request=request) from None
        except httpx.TransportError as exc:
            raise RequestsConnectionError(str(exc), request=request) from None
        raw = HTTPResponse(
            body=io.BytesIO(content),
            headers=dict(answer.headers.items()),
            status=answer.status_code,
            reason=answer.reason_phrase,
            preload_content=False,
            decode_content=False,
        )
        return self.build_response(request, raw)


class XAdapter(Adapter):
    """Posts to X with tweepy's ``Client.create_tweet``."""

    name = PROFILE.name
    can_find = PROFILE.can_find
    can_delete = PROFILE.can_delete
    rate_limit_wait = DEFAULT_RATE_LIMIT_WAIT

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        access_token: str,
        access_token_secret: str,
        base_url: str,
        web_url: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        register_secret(api_key, api_secret, access_token, access_token_secret)
        self.web_url = web_url.rstrip("/")
        self.request_timeout = timeout
        self.client = tweepy.Client(
            consumer_key=api_key,
            consumer_secret=api_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            wait_on_rate_limit=False,
        )
        self.client.session = RedirectingSession(base_url, timeout, self.time_left, transport)
        self._user_id: str | None = None
        self._base_url = base_url.rstrip("/")
        self._transport = transport
        self._http: httpx.Client | None = None
        # Media uploads: tweepy has none for v2, so httpx signed with OAuth 1.0a as tweepy
        # signs (oauthlib, HMAC-SHA1, the header only: multipart and JSON bodies are unsigned).
        from oauthlib.oauth1 import Client as OAuth1Client

        self._signer = OAuth1Client(
            api_key,
            client_secret=api_secret,
            resource_owner_key=access_token,
            resource_owner_secret=access_token_secret,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        state: State | None = None,
    ) -> Self:
        x = settings.section("x")
        assert isinstance(x, XSettings)
        assert x.api_key and x.api_secret and x.access_token and x.access_token_secret
        return cls(
            api_key=x.api_key.get_secret_value(),
            api_secret=x.api_secret.get_secret_value(),
            access_token=x.access_token.get_secret_value(),
            access_token_secret=x.access_token_secret.get_secret_value(),
            base_url=x.base_url,
            web_url=x.web_url,
            timeout=settings.request_timeout_seconds,
            transport=transport,
        )

    @property
    def http(self) -> httpx.Client:
        """The client of media uploads, made for the first one: a text post needs no httpx."""
        if self._http is None:
            self._http = new_client(self._base_url, self.request_timeout, transport=self._transport)
        return self._http

    @http.setter
    def http(self, client: httpx.Client) -> None:
        self._http = client

    def publish(self, post: Post, *, key: str, media: Sequence[Media] = ()) -> Receipt:
        # Uploaded on every attempt: media ids expire (``expires_after_secs``).
        media_ids = [self.upload(item) for item in self.attachments(post, media)]
        if media_ids:
            self.uploaded()
        try:
            response = self.client.create_tweet(
                text=post.text, media_ids=media_ids or None, user_auth=True
            )
            tweet_id = response.data["id"]
        except tweepy.HTTPException as exc:
            raise self.translate(exc, creating=True) from None
        except (tweepy.TweepyException, RequestException) as exc:
            raise self.translate(exc, creating=True) from None
        except (ValueError, TypeError, KeyError):
            # A success status whose body is not the created post: it may exist.
            raise AmbiguousError(
                "X answered the create without the new post's id; the post may exist",
                network=self.name,
            ) from None
        if not isinstance(tweet_id, str) or not tweet_id.isdigit():
            raise AmbiguousError(
                "X answered the create without the new post's id; the post may exist",
                network=self.name,
            )
        return Receipt(tweet_id, self.post_url(tweet_id))

    def upload(self, item: Media) -> str:
        """``POST /2/media/upload`` (multipart ``media``, ``media_category=tweet_image``),
        then the alt text through ``POST /2/media/metadata``; returns the media id."""
        response = self.signed(
            "POST",
            "/2/media/upload",
            files={"media": (item.filename, item.data, item.image.mime)},
            data={"media_category": "tweet_image"},
        )
        data = self.answer_object(response, creating=False).get("data")
        media_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(media_id, str) or not media_id.isdigit():
            raise self.unreadable("names no media id", response, creating=False)
        if item.image.alt:
            self.signed(
                "POST",
                "/2/media/metadata",
                json={"id": media_id, "metadata": {"alt_text": {"text": item.image.alt}}},
            )
        return media_id

    def signed(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One upload request with an OAuth 1.0a header (never a create: not ambiguous)."""
        url = f"{self.http.base_url}".rstrip("/") + path
        _, headers, _ = self._signer.sign(url, http_method=method)
        return self.call(method, path, creating=False, headers=headers, **kwargs)

    def classify(self, response: httpx.Response, *, creating: bool) -> DeliveryError:
        """An upload's 4xx answer (a problem-details body, as the create's)."""
        body = json_body(response)
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        if response.status_code in (401, 403):
            return AuthError(
                f"X refused the media upload ({detail})",
                network="x",
                status_code=response.status_code,
            )
        return PermanentError(
            f"X refused the image: {detail}", network="x", status_code=response.status_code
        )

    def retry_at(self, response: Answer) -> datetime:
        """When X may be called again: the end of a spent 24-hour posting cap (X's
        ``x-user-limit-24hour-*`` and ``x-app-limit-24hour-*`` headers) before the
        15-minute window's reset, which would only meet the same cap again."""
        now = utc_now()
        headers = response.headers
        daily = [
            reset
            for who in ("user", "app")
            if headers.get(f"x-{who}-limit-24hour-remaining") == "0"
            and (reset := parse_epoch(headers.get(f"x-{who}-limit-24hour-reset"), now))
        ]
        return max(daily) if daily else super().retry_at(response)

    def post_url(self, tweet_id: str) -> str:
        return f"{self.web_url}/i/web/status/{tweet_id}"

    def post_id_from_url(self, url: str) -> str | None:
        match = re.search(r"/status(?:es)?/(\d+)", url)
        return match[1] if match else None

    def find(self, text: str, since: datetime) -> Receipt | None:
        """Look through the account's own posts since ``since`` for this text.

        X returns links rewritten as t.co addresses; each is put back as the address it
        stands for (the post's ``entities``), so posts that differ only in a link differ.
        Absence is proven only by reading every post since then, up to ``FIND_PAGES`` pages.
        """
        wanted = comparable(text)
        token: str | None = None
        for _ in range(FIND_PAGES):
            tweets, token = self._timeline_page(since, token)
            for tweet in tweets:
                if comparable(expanded(tweet)) == wanted:
                    return Receipt(str(tweet.id), self.post_url(str(tweet.id)))
            if token is None:
                return None
        raise self.searched_too_few(FIND_PAGES * 100)

    def _timeline_page(
        self, since: datetime, token: str | None
    ) -> tuple[list[tweepy.Tweet], str | None]:
        """One page of the account's posts since ``since``, and the next page's token."""
        try:
            user_id = self._me()
            response = self.client.get_users_tweets(
                user_id,
                start_time=(since - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                max_results=100,
                pagination_token=token,
                tweet_fields=["created_at", "entities"],
                user_auth=True,
            )
        except (tweepy.TweepyException, RequestException) as exc:
            raise self.translate(exc, creating=False) from None
        except (ValueError, TypeError, KeyError, AttributeError):
            raise TransientError("X answered the timeline unreadably", network=self.name) from None
        tweets = response.data
        meta = response.meta if isinstance(response.meta, dict) else {}
        count = meta.get("result_count")
        if not isinstance(count, int) or (tweets is None) != (count == 0):
            raise TransientError(
                "X answered the timeline without its posts or their count", network=self.name
            )
        following = meta.get("next_token")
        return list(tweets or []), following if isinstance(following, str) else None

    def delete(self, remote_id: str) -> None:
        """``DELETE /2/tweets/:id``; a post that is gone already counts as deleted."""
        try:
            self.client.delete_tweet(remote_id, user_auth=True)
        except tweepy.NotFound:
            return
        except (tweepy.TweepyException, RequestException) as exc:
            raise self.translate(exc, creating=False) from None
        except (ValueError, TypeError, KeyError):
            raise TransientError("X answered the delete unreadably", network=self.name) from None

    def check(self) -> str:
        try:
            response = self.client.get_me(user_auth=True)
            self._user_id = str(response.data.id)
            return f"@{response.data.username}"
        except (tweepy.TweepyException, RequestException) as exc:
            raise self.translate(exc, creating=False) from None
        except (ValueError, TypeError, KeyError, AttributeError):
            raise TransientError("X answered users/me unreadably", network=self.name) from None

    def _me(self) -> str:
        if self._user_id is None:
            response = self.client.get_me(user_auth=True)
            self._user_id = str(response.data.id)
        return self._user_id

    def close(self) -> None:
        self.client.session.close()
        if self._http is not None:  # made only if an image was uploaded
            self._http.close()

    def translate(self, exc: Exception, *, creating: bool) -> DeliveryError:
        """Turn a tweepy or requests exception into socialbot's error classes."""
        if isinstance(exc, tweepy.HTTPException):
            return redacted(self.http_error(exc, creating=creating))
        if isinstance(exc, ConnectTimeout | NotConnected) or _never_connected(exc):
            return TransientError(f"could not connect ({type(exc).__name__})", network="x")
        if isinstance(exc, DeadlineTimeout):
            return self.deadline_error(creating=creating)
        if creating:
            # Sent, and then something failed: whatever it was, the post may exist.
            return AmbiguousError(
                f"the request failed after it was sent ({type(exc).__name__}); the post may exist",
                network="x",
            )
        return TransientError(f"the request failed ({type(exc).__name__})", network="x")

    def http_error(self, exc: tweepy.HTTPException, *, creating: bool) -> DeliveryError:
        """An error answer: the shared rules for 429, 5xx and 408, then X's own bodies."""
        response = exc.response
        status = response.status_code
        detail = "; ".join(str(m) for m in exc.api_messages) or response.reason or str(status)
        codes = exc.api_codes
        code = codes[0] if codes else None
        if status == 429:
            retry_at = self.retry_at(response)
            return RateLimited(
                f"rate limited ({detail})", network="x", retry_at=retry_at, status_code=status
            )
        if status >= 500:
            return server_failure("x", f"{status} {detail}", creating=creating, status=status)
        if status == 408:
            return TransientError(f"{status} {detail}", network="x", status_code=status)
        if status == 401:
            return AuthError(
                f"X refused the credentials ({detail})",
                network="x",
                status_code=status,
                api_code=code,
            )
        if status == 403 and "duplicate content" in detail.lower():
            return DuplicateError(detail, network="x", status_code=status, api_code=code)
        if status == 403 and ("not permitted" in detail.lower() or "client" in detail.lower()):
            # A read-only app or an app outside a project: every post will fail alike.
            return AuthError(
                f"X refused to let these credentials post ({detail})",
                network="x",
                status_code=status,
                api_code=code,
            )
        return PermanentError(
            f"X rejected the post: {detail}", network="x", status_code=status, api_code=code
        )


def comparable(text: str) -> str:
    """A post's text for matching: NFC, whitespace folded, each link as X finds it without
    its scheme and its trailing slash (X adds ``http://`` to a bare ``example.com``)."""
    from socialbot.compose.twitter_text import x_urls

    text = unicodedata.normalize("NFC", text)
    parts, end = [], 0
    for link in x_urls().extract(text):
        parts += [text[end : link.start], _SCHEME.sub("", link.url).rstrip("/").casefold()]
        end = link.end
    parts.append(text[end:])
    return " ".join("".join(parts).split())


def expanded(tweet: tweepy.Tweet) -> str:
    """A post's text as it was sent: each t.co address replaced by the link it stands for,
    and the address X appends for attached media removed.

    Raises TransientError when a t.co address has no entity saying what it stands for:
    such a text can prove neither presence nor absence.
    """
    text = str(tweet.text)
    entities = tweet.entities if isinstance(tweet.entities, dict) else {}
    targets: dict[str, str] = {}
    for link in entities.get("urls") or []:
        if isinstance(link, dict) and isinstance(link.get("url"), str):
            target = str(link.get("expanded_url") or "")
            media = "media_key" in link or _MEDIA_PAGE.search(target)
            if target or media:
                targets[link["url"]] = "" if media else target
    if any(found not in targets for found in _TCO.findall(text)):
        raise TransientError("X answered the timeline with links it did not expand", network="x")
    return _TCO.sub(lambda m: targets[m.group()], text)


def _never_connected(exc: Exception) -> bool:
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)

"""X (Twitter) through tweepy: ``POST /2/tweets`` with OAuth 1.0a user context.

tweepy hard-codes its host, so the client is handed a ``requests.Session``
that sends every request to ``SOCIALBOT_X__BASE_URL`` instead and sets the
timeout tweepy never sets. tweepy's own ``wait_on_rate_limit`` stays off: a
cron run must not sleep through a 15-minute window.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any, Self

import requests
import tweepy
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout, RequestException, Timeout
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError

from socialbot.adapters.base import USER_AGENT, Adapter, parse_epoch, parse_retry_after, utc_now
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
from socialbot.models import Post, Receipt

TWEEPY_HOST = "https://api.twitter.com"
DEFAULT_RATE_LIMIT_WAIT = timedelta(minutes=15)
_URL = re.compile(r"\S+\.\S+")


class RedirectingSession(requests.Session):
    """Sends tweepy's requests to ``base_url`` and gives each one a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = (min(timeout, 10.0), timeout)
        self.headers["User-Agent"] = USER_AGENT

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = url.decode() if isinstance(url, bytes) else url
        if not url.startswith(TWEEPY_HOST + "/"):
            raise ValueError(f"refusing to send an X request outside the API: {url}")
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, self.base_url + url[len(TWEEPY_HOST) :], *args, **kwargs)


class XAdapter(Adapter):
    """Posts to X with tweepy's ``Client.create_tweet``."""

    name = "x"
    can_find = True

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
    ) -> None:
        self.web_url = web_url.rstrip("/")
        self.client = tweepy.Client(
            consumer_key=api_key,
            consumer_secret=api_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            wait_on_rate_limit=False,
        )
        self.client.session = RedirectingSession(base_url, timeout)
        self._user_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        x = settings.x
        assert x.api_key and x.api_secret and x.access_token and x.access_token_secret
        return cls(
            api_key=x.api_key.get_secret_value(),
            api_secret=x.api_secret.get_secret_value(),
            access_token=x.access_token.get_secret_value(),
            access_token_secret=x.access_token_secret.get_secret_value(),
            base_url=x.base_url,
            web_url=x.web_url,
            timeout=settings.request_timeout_seconds,
        )

    def publish(self, post: Post, *, key: str) -> Receipt:
        try:
            response = self.client.create_tweet(text=post.text, user_auth=True)
        except (tweepy.TweepyException, RequestException) as exc:
            raise translate(exc, creating=True) from None
        tweet_id = str(response.data["id"])
        return Receipt(tweet_id, self.post_url(tweet_id))

    def post_url(self, tweet_id: str) -> str:
        return f"{self.web_url}/i/web/status/{tweet_id}"

    def find(self, text: str, since: datetime) -> Receipt | None:
        """Look through the account's own posts since ``since`` for this text.

        X returns links rewritten as t.co addresses, so texts are compared
        with every link-like word left out.
        """
        try:
            user_id = self._me()
            response = self.client.get_users_tweets(
                user_id,
                start_time=(since - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                max_results=100,
                tweet_fields=["created_at"],
                user_auth=True,
            )
        except (tweepy.TweepyException, RequestException) as exc:
            raise translate(exc, creating=False) from None
        wanted = comparable(text)
        for tweet in response.data or []:
            if comparable(tweet.text) == wanted:
                return Receipt(str(tweet.id), self.post_url(str(tweet.id)))
        return None

    def check(self) -> str:
        try:
            response = self.client.get_me(user_auth=True)
        except (tweepy.TweepyException, RequestException) as exc:
            raise translate(exc, creating=False) from None
        self._user_id = str(response.data.id)
        return f"@{response.data.username}"

    def _me(self) -> str:
        if self._user_id is None:
            response = self.client.get_me(user_auth=True)
            self._user_id = str(response.data.id)
        return self._user_id

    def close(self) -> None:
        self.client.session.close()


def comparable(text: str) -> str:
    """A post's text without links and with whitespace folded, for matching."""
    words = unicodedata.normalize("NFC", text).split()
    return " ".join(word for word in words if not _URL.fullmatch(word.rstrip(".,)…")))


def translate(exc: Exception, *, creating: bool) -> DeliveryError:
    """Turn a tweepy or requests exception into socialbot's error classes."""
    if isinstance(exc, tweepy.HTTPException):
        return _http_error(exc, creating=creating)
    if isinstance(exc, ConnectTimeout) or _never_connected(exc):
        return TransientError(f"could not connect ({type(exc).__name__})", network="x")
    if isinstance(exc, Timeout | RequestsConnectionError) and creating:
        return AmbiguousError(
            f"no answer after the request was sent ({type(exc).__name__}); the post may exist",
            network="x",
        )
    if isinstance(exc, RequestException):
        return TransientError(f"the request failed ({type(exc).__name__})", network="x")
    return PermanentError(f"tweepy failed: {type(exc).__name__}", network="x")


def _never_connected(exc: Exception) -> bool:
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def _http_error(exc: tweepy.HTTPException, *, creating: bool) -> DeliveryError:
    response = exc.response
    status = response.status_code
    detail = "; ".join(str(m) for m in exc.api_messages) or response.reason or str(status)
    codes = exc.api_codes
    code = codes[0] if codes else None
    now = utc_now()
    if status == 429:
        retry_at = (
            parse_retry_after(response.headers.get("retry-after"), now)
            or parse_epoch(response.headers.get("x-rate-limit-reset"), now)
            or now + DEFAULT_RATE_LIMIT_WAIT
        )
        return RateLimited(
            f"rate limited ({detail})", network="x", retry_at=retry_at, status_code=status
        )
    if status == 401:
        return AuthError(
            f"X refused the credentials ({detail})", network="x", status_code=status, api_code=code
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
    if status >= 500:
        message = f"X answered {status} ({detail})"
        if creating:
            return AmbiguousError(message + "; the post may exist", network="x", status_code=status)
        return TransientError(message, network="x", status_code=status)
    return PermanentError(
        f"X rejected the post: {detail}", network="x", status_code=status, api_code=code
    )

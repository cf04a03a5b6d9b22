"""The Mastodon adapter over real HTTP, against the sandbox instance."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from socialbot.adapters.mastodon import (
    MastodonAdapter,
    comparable,
    html_text,
    limits_from_instance,
)
from socialbot.config import Settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.models import Post, TextLimits
from socialbot.sandbox import Fault, SandboxServer
from socialbot.sandbox.mastodon import ACCOUNT, MastodonSandbox, render_content
from tests.helpers import run, write_release

LINK = "https://cor.europa.eu/en/news/Pages/cohesion-policy-after-2027.aspx"


def instance(sandbox: SandboxServer) -> MastodonSandbox:
    fake = sandbox.networks["mastodon"]
    assert isinstance(fake, MastodonSandbox)
    return fake


def make_adapter(
    sandbox: SandboxServer, *, timeout: float = 5.0, token: str | None = None
) -> MastodonAdapter:
    fake = instance(sandbox)
    return MastodonAdapter(
        access_token=token or fake.credentials["access_token"],
        base_url=fake.base_url,
        timeout=timeout,
    )


@pytest.fixture
def adapter(sandbox: SandboxServer) -> Iterator[MastodonAdapter]:
    made = make_adapter(sandbox)
    yield made
    made.close()


def post(text: str, language: str = "en") -> Post:
    return Post(
        network="mastodon", text=text, link=LINK, length=len(text), limit=500, language=language
    )


def creates(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [
        r
        for r in sandbox.requests
        if r["network"] == "mastodon" and r["method"] == "POST" and r["path"] == "/api/v1/statuses"
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- success --------------------------------------------------------------------------------


def test_publish_sends_the_status_with_language_visibility_and_key(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    text = f"Les régions se réunissent à Bruxelles #CoR\n\n{LINK}"
    receipt = adapter.publish(post(text, language="fr"), key="0f1e2d3c4b5a69788796a5b4c3d2e1f0")

    [request] = creates(sandbox)
    assert request["headers"]["Authorization"] == "Bearer sandbox-mastodon-access-token"
    assert request["headers"]["Idempotency-Key"] == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request["body"])
    assert form == {"status": [text], "visibility": ["public"], "language": ["fr"]}
    [stored] = sandbox.posts("mastodon")
    assert (stored["text"], stored["language"], stored["visibility"]) == (text, "fr", "public")
    assert receipt.remote_id == stored["id"]
    assert receipt.url == f"{sandbox.url}/mastodon/@{ACCOUNT['username']}/{stored['id']}"
    page = httpx.get(receipt.url)
    assert page.status_code == 200
    assert "Les régions se réunissent" in page.text


def test_from_settings_reads_the_instance_token_visibility_and_timeout(
    workdir: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    for name, value in sandbox.settings().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOCIALBOT_MASTODON__VISIBILITY", "unlisted")
    monkeypatch.setenv("SOCIALBOT_REQUEST_TIMEOUT_SECONDS", "4")
    made = MastodonAdapter.from_settings(Settings())
    try:
        assert made.http.timeout.read == 4
        made.publish(post("An unlisted status"), key="k-unlisted")
    finally:
        made.close()
    [stored] = sandbox.posts("mastodon")
    assert stored["visibility"] == "unlisted"
    assert creates(sandbox)[0]["headers"]["Host"] == sandbox.url.removeprefix("http://")


def test_the_token_travels_only_in_the_authorization_header(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    adapter.publish(post("Status one"), key="k1")
    adapter.check()
    adapter.find("Status one", datetime.now(UTC) - timedelta(minutes=1))
    token = instance(sandbox).credentials["access_token"]
    assert len(sandbox.requests) >= 4
    for request in sandbox.requests:
        assert token not in request["path"] + request["body"]
        assert request["headers"]["Authorization"] == f"Bearer {token}"


# -- idempotency ------------------------------------------------------------------------------


def test_a_resend_with_the_same_key_returns_the_first_status(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    first = adapter.publish(post("Plenary opens today"), key="delivery-1")
    again = adapter.publish(post("Plenary opens today"), key="delivery-1")
    other = adapter.publish(post("Plenary opens today"), key="delivery-2")

    assert again == first
    assert other.remote_id != first.remote_id
    assert len(creates(sandbox)) == 3
    assert [p["idempotency_key"] for p in sandbox.posts("mastodon")] == [
        "delivery-1",
        "delivery-2",
    ]


@pytest.mark.parametrize("kind", ["accept-then-reset", "accept-then-hang"])
def test_a_dropped_answer_is_ambiguous_and_the_retry_with_the_key_posts_nothing_new(
    sandbox: SandboxServer, kind: str
):
    sandbox.inject("mastodon", Fault(kind=kind, delay=1.5))  # type: ignore[arg-type]
    made = make_adapter(sandbox, timeout=0.5)
    try:
        with pytest.raises(AmbiguousError) as caught:
            made.publish(post("Cohesion after 2027"), key="delivery-7")
        assert "may exist" in str(caught.value)
        [stored] = sandbox.posts("mastodon")
        receipt = made.publish(post("Cohesion after 2027"), key="delivery-7")
    finally:
        made.close()
    assert receipt.remote_id == stored["id"]
    assert len(sandbox.posts("mastodon")) == 1


def test_the_instance_forgets_a_key_after_its_window(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    instance(sandbox).idempotency_ttl = 0.0
    adapter.publish(post("A status"), key="k")
    adapter.publish(post("A status"), key="k")
    assert len(sandbox.posts("mastodon")) == 2
    assert MastodonAdapter.idempotent
    assert MastodonAdapter.idempotency_window is not None
    assert MastodonAdapter.idempotency_window < timedelta(hours=1)


def test_a_request_racing_one_with_the_same_key_is_ambiguous(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    instance(sandbox).in_flight.add("busy-key")
    with pytest.raises(AmbiguousError) as caught:
        adapter.publish(post("A status"), key="busy-key")
    assert caught.value.status_code == 503
    assert sandbox.posts("mastodon") == []


def test_a_rejected_status_does_not_use_up_its_key(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    instance(sandbox).max_characters = 10
    with pytest.raises(PermanentError):
        adapter.publish(post("Far too long for this instance"), key="k")
    instance(sandbox).max_characters = 500
    adapter.publish(post("Far too long for this instance"), key="k")
    assert len(sandbox.posts("mastodon")) == 1


# -- validation and credentials ---------------------------------------------------------------


def test_an_over_limit_status_is_refused_with_the_instance_message(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    instance(sandbox).max_characters = 40
    with pytest.raises(PermanentError) as caught:
        adapter.publish(post("x" * 41), key="k")
    assert not isinstance(caught.value, AuthError)
    assert caught.value.status_code == 422
    assert "Validation failed: Text character limit of 40 exceeded" in str(caught.value)
    assert sandbox.posts("mastodon") == []


def test_links_count_as_the_reserved_characters(adapter: MastodonAdapter, sandbox: SandboxServer):
    instance(sandbox).max_characters = 40
    long_link = "https://cor.europa.eu/" + "a" * 200
    # A URL only starts after a space: "xhttps://..." is plain text to Mastodon.
    adapter.publish(post("x" * 16 + " " + long_link), key="k1")  # 16 + 1 + 23 = 40
    with pytest.raises(PermanentError):
        adapter.publish(post("x" * 17 + " " + long_link), key="k2")
    assert len(sandbox.posts("mastodon")) == 1


def test_a_blank_status_is_refused(adapter: MastodonAdapter):
    with pytest.raises(PermanentError, match="Text can't be blank"):
        adapter.publish(post("   "), key="k")


def test_a_wrong_token_is_an_auth_error_that_does_not_repeat_it(sandbox: SandboxServer):
    made = make_adapter(sandbox, token="revoked-token-0123456789")
    try:
        with pytest.raises(AuthError) as caught:
            made.publish(post("A status"), key="k")
        with pytest.raises(AuthError):
            made.check()
    finally:
        made.close()
    assert "The access token is invalid" in str(caught.value)
    assert caught.value.status_code == 401
    assert "revoked-token-0123456789" not in str(caught.value)
    assert sandbox.posts("mastodon") == []


def test_a_token_without_the_write_scope_is_an_auth_error(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    instance(sandbox).scopes = {"read:accounts", "read:statuses"}
    with pytest.raises(AuthError) as caught:
        adapter.publish(post("A status"), key="k")
    assert caught.value.status_code == 403
    assert "write:statuses" in str(caught.value)
    assert "@EU_CoR@" in adapter.check()


# -- rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "expected_wait"),
    [
        ("native", 30),
        ("retry-after-seconds", 30),
        ("retry-after-date", 30),
        ("past-date", 0),
        ("none", 300),
    ],
)
def test_429_reset_hints(
    adapter: MastodonAdapter, sandbox: SandboxServer, hint: str, expected_wait: float
):
    sandbox.inject("mastodon", Fault(status=429, retry_after=30, hint=hint))  # type: ignore[arg-type]
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as caught:
        adapter.publish(post("A status"), key="k")
    wait = (caught.value.retry_at - before).total_seconds()
    assert expected_wait - 2 <= wait <= expected_wait + 2
    assert "Too many requests" in str(caught.value)
    assert sandbox.posts("mastodon") == []


def test_a_spent_statuses_window_answers_429_until_its_reset(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    instance(sandbox).statuses_limit = 1
    adapter.publish(post("First"), key="k1")
    with pytest.raises(RateLimited) as caught:
        adapter.publish(post("Second"), key="k2")
    period = 3 * 3600
    window_end = (int(datetime.now(UTC).timestamp()) // period + 1) * period
    assert abs(caught.value.retry_at.timestamp() - window_end) < 2
    # A resend of the first status is answered from the key, not counted again.
    adapter.publish(post("First"), key="k1")
    assert len(sandbox.posts("mastodon")) == 1


def test_every_api_answer_carries_the_rate_limit_headers(sandbox: SandboxServer):
    fake = instance(sandbox)
    fake.api_limit = 2
    url = f"{fake.base_url}/api/v1/accounts/verify_credentials"
    auth = {"Authorization": f"Bearer {fake.credentials['access_token']}"}
    first = httpx.get(url, headers=auth)
    assert first.status_code == 200
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    reset = datetime.fromisoformat(first.headers["X-RateLimit-Reset"].replace("Z", "+00:00"))
    assert timedelta(0) < reset - datetime.now(UTC) <= timedelta(minutes=5)
    assert first.headers["X-RateLimit-Reset"].endswith("Z")
    assert httpx.get(url, headers=auth).status_code == 200
    third = httpx.get(url, headers=auth)
    assert third.status_code == 429
    assert third.json() == {"error": "Too many requests"}
    assert third.headers["X-RateLimit-Remaining"] == "0"


# -- server and connection failures -----------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_on_create_is_ambiguous(
    adapter: MastodonAdapter, sandbox: SandboxServer, status: int
):
    sandbox.inject("mastodon", Fault(status=status))
    with pytest.raises(AmbiguousError) as caught:
        adapter.publish(post("A status"), key="k")
    assert caught.value.status_code == status


def test_a_server_error_on_a_read_is_transient(adapter: MastodonAdapter, sandbox: SandboxServer):
    sandbox.inject(
        "mastodon", Fault(status=502, path=r"/api/v1/accounts/verify_credentials", method="GET")
    )
    with pytest.raises(TransientError) as caught:
        adapter.check()
    assert not isinstance(caught.value, AmbiguousError)


def test_connection_refused_is_transient():
    made = MastodonAdapter(
        access_token="t0ken", base_url=f"http://127.0.0.1:{closed_port()}", timeout=2
    )
    try:
        with pytest.raises(TransientError) as caught:
            made.publish(post("A status"), key="k")
    finally:
        made.close()
    assert not isinstance(caught.value, AmbiguousError)


@pytest.mark.parametrize("kind", ["hang", "reset"])
def test_a_create_dropped_before_processing_is_still_ambiguous(sandbox: SandboxServer, kind: str):
    # The client cannot tell a drop before processing from one after it.
    sandbox.inject("mastodon", Fault(kind=kind, delay=1.5))  # type: ignore[arg-type]
    made = make_adapter(sandbox, timeout=0.5)
    try:
        with pytest.raises(AmbiguousError):
            made.publish(post("A status"), key="k")
    finally:
        made.close()
    assert sandbox.posts("mastodon") == []


def test_a_read_that_hangs_is_transient(sandbox: SandboxServer):
    sandbox.inject(
        "mastodon",
        Fault(kind="hang", delay=1.5, path=r"/api/v1/accounts/verify_credentials", method="GET"),
    )
    made = make_adapter(sandbox, timeout=0.5)
    try:
        with pytest.raises(TransientError) as caught:
            made.check()
    finally:
        made.close()
    assert not isinstance(caught.value, AmbiguousError)


# -- instance limits, check, find -------------------------------------------------------------


def test_text_limits_come_from_the_instance_once(adapter: MastodonAdapter, sandbox: SandboxServer):
    fake = instance(sandbox)
    fake.max_characters, fake.characters_reserved_per_url = 1000, 31
    assert adapter.text_limits() == TextLimits(1000, 31)
    assert adapter.text_limits() == TextLimits(1000, 31)
    asked = [r["path"] for r in sandbox.requests if r["path"].endswith("/instance")]
    assert asked == ["/api/v2/instance"]


def test_an_instance_before_4_0_reports_its_limits_through_v1(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    fake = instance(sandbox)
    fake.serves_instance_v2, fake.max_characters = False, 5000
    assert adapter.text_limits() == TextLimits(5000, 23)
    asked = [r["path"] for r in sandbox.requests if r["path"].endswith("/instance")]
    assert asked == ["/api/v2/instance", "/api/v1/instance"]


def test_text_limits_fall_back_to_500_and_23_and_say_why(
    adapter: MastodonAdapter, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
):
    sandbox.inject("mastodon", Fault(status=503, path=r"/api/v2/instance", method="GET"))
    with caplog.at_level(logging.WARNING, logger="socialbot.adapters.mastodon"):
        assert adapter.text_limits() == TextLimits(500, 23)
    assert "/api/v2/instance" in caplog.text
    assert "503" in caplog.text


def test_limits_are_read_from_forks_and_nonsense_is_ignored():
    assert limits_from_instance({"max_toot_chars": 5000}) == TextLimits(5000, 23)
    statuses = {"max_characters": 1000, "characters_reserved_per_url": 0}
    assert limits_from_instance({"configuration": {"statuses": statuses}}) == TextLimits(1000, 0)
    assert limits_from_instance({"configuration": {"statuses": {"max_characters": "500"}}}) is None
    assert limits_from_instance({"configuration": {"statuses": {"max_characters": 0}}}) is None
    assert limits_from_instance({"max_toot_chars": True}) is None


def test_check_names_the_account_and_the_instance_limit(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    host = sandbox.url.removeprefix("http://")
    assert adapter.check() == (
        f"European Committee of the Regions @EU_CoR@{host}; statuses up to 500 characters"
    )
    assert sandbox.posts("mastodon") == []


def test_find_matches_the_rendered_html_of_the_status(
    adapter: MastodonAdapter, sandbox: SandboxServer
):
    since = datetime.now(UTC)
    text = f"Regions & cities <together> #EURegions\nfor cohesion\n\n{LINK}"
    wanted = adapter.publish(post(text), key="k1")
    adapter.publish(post("Another status"), key="k2")

    assert adapter.find(text, since) == wanted
    assert adapter.find("Never posted", since) is None
    assert adapter.find(text, since + timedelta(minutes=10)) is None


def test_find_pages_back_through_the_account(adapter: MastodonAdapter, sandbox: SandboxServer):
    since = datetime.now(UTC)
    first = adapter.publish(post("The oldest status"), key="k-0")
    for number in range(1, 45):
        adapter.publish(post(f"Status number {number}"), key=f"k-{number}")

    assert adapter.find("The oldest status", since) == first
    pages = [
        r for r in sandbox.requests if r["path"].endswith("/statuses") and r["method"] == "GET"
    ]
    assert len(pages) == 2


def test_status_html_reads_back_as_the_text_that_was_posted():
    text = "Line one\nline two with a link https://cor.europa.eu/en/a?b=1&c=2\n\n«Quote» & more"
    shown = html_text(render_content(text, "https://social.example"))
    assert comparable(shown) == comparable(text)
    assert comparable("Thanks @Gargron@mastodon.social!") == "Thanks @Gargron!"


# -- through the CLI --------------------------------------------------------------------------


def test_drain_posts_a_release_once_in_its_language_within_the_instance_limit(
    env: Path, sandbox: SandboxServer
):
    instance(sandbox).max_characters = 140
    write_release(
        env / "queue",
        "r1.json",
        networks=["mastodon"],
        language="de",
        title="Regionen fordern eine starke Kohäsionspolitik nach 2027",
        summary="Der Europäische Ausschuss der Regionen verabschiedet seine Stellungnahme "
        "zur Zukunft der Kohäsionspolitik und fordert mehr Mittel für Regionen.",
    )
    # `networks` reads the instance's limit; approval composes against it from then on.
    assert run("networks").exit_code == 0
    approved = run("approve", "queue/r1.json", "--by", "Ana")
    assert approved.exit_code == 0
    assert "── mastodon ── " in approved.output and "/140" in approved.output

    result = run("drain")
    assert result.exit_code == 0, result.output
    [stored] = sandbox.posts("mastodon")
    assert stored["language"] == "de"
    assert instance(sandbox).countable_length(stored["text"], "") <= 140
    assert run("drain").exit_code == 0
    assert len(sandbox.posts("mastodon")) == 1
    rows = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert [(r["network"], r["status"], r["url"]) for r in rows] == [
        ("mastodon", "posted", stored["url"])
    ]


def test_drain_resends_with_the_same_key_after_a_dropped_answer(env: Path, sandbox: SandboxServer):
    sandbox.inject("mastodon", Fault(kind="accept-then-reset"))
    write_release(env / "queue", "r1.json", networks=["mastodon"])
    assert run("approve", "queue/r1.json", "--by", "Ana").exit_code == 0

    result = run("drain")
    assert result.exit_code == 0, result.output
    assert len(sandbox.posts("mastodon")) == 1
    keys = {r["headers"]["Idempotency-Key"] for r in creates(sandbox)}
    assert len(creates(sandbox)) == 2
    assert len(keys) == 1


def test_networks_checks_the_mastodon_token(
    env: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    result = run("networks")
    [line] = [line for line in result.output.splitlines() if line.startswith("mastodon")]
    assert "credentials accepted (European Committee of the Regions @EU_CoR@" in line

    monkeypatch.setenv("SOCIALBOT_MASTODON__ACCESS_TOKEN", "a-revoked-token-4567")
    result = run("networks")
    [line] = [line for line in result.output.splitlines() if line.startswith("mastodon")]
    assert "NOT accepted" in line
    assert "The access token is invalid" in line
    assert "a-revoked-token-4567" not in result.output
    assert result.exit_code != 0
    assert sandbox.posts("mastodon") == []

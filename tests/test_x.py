"""The X adapter over real HTTP: tweepy, through the redirecting session, to the sandbox."""

from __future__ import annotations

import ast
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import requests
from requests_oauthlib import OAuth1

import socialbot
from socialbot.adapters.x import RedirectingSession, XAdapter
from socialbot.config import Settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    DuplicateError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.models import Post
from socialbot.sandbox import Fault, SandboxServer
from socialbot.sandbox.x import USER, linked

LINK = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"


def make_adapter(sandbox: SandboxServer, timeout: float = 5.0, **changes: str) -> XAdapter:
    credentials = {**sandbox.networks["x"].credentials, **changes}
    base = sandbox.networks["x"].base_url
    return XAdapter(
        api_key=credentials["api_key"],
        api_secret=credentials["api_secret"],
        access_token=credentials["access_token"],
        access_token_secret=credentials["access_token_secret"],
        base_url=base,
        web_url=base,
        timeout=timeout,
    )


def post(text: str) -> Post:
    return Post(network="x", text=text, link=LINK, length=len(text), limit=280, language="en")


@pytest.fixture
def adapter(sandbox: SandboxServer) -> Iterator[XAdapter]:
    made = make_adapter(sandbox)
    yield made
    made.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_publish_goes_to_the_base_url_and_returns_the_post_address(
    adapter: XAdapter, sandbox: SandboxServer
):
    receipt = adapter.publish(post(f"Regions meet in Brussels {LINK}"), key="k1")

    [stored] = sandbox.posts("x")
    assert receipt.remote_id == stored["id"]
    assert receipt.url == f"{sandbox.url}/x/i/web/status/{stored['id']}"
    assert stored["text"] == f"Regions meet in Brussels {LINK}"
    [request] = [r for r in sandbox.requests if r["method"] == "POST"]
    assert (request["network"], request["path"]) == ("x", "/2/tweets")
    assert request["headers"]["Authorization"].startswith("OAuth ")


def test_from_settings_uses_every_x_setting(
    workdir: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    for name, value in sandbox.settings().items():
        if name.startswith("SOCIALBOT_X__"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOCIALBOT_REQUEST_TIMEOUT_SECONDS", "3")
    made = XAdapter.from_settings(Settings())
    try:
        assert made.check() == "@EU_CoR"
        assert made.request_timeout == 3
    finally:
        made.close()
    assert [(r["network"], r["path"]) for r in sandbox.requests] == [("x", "/2/users/me")]


def test_the_session_refuses_hosts_other_than_the_api():
    session = RedirectingSession("http://127.0.0.1:9", timeout=1)
    with pytest.raises(ValueError, match="outside the API"):
        session.request("GET", "https://evil.example/2/tweets")
    session.close()


def test_the_session_reads_proxy_settings_once_by_requests_rules(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/office-ca.pem")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = RedirectingSession("https://api.x.example", timeout=1)
    assert session.proxies["https"] == "http://proxy.example:3128"
    assert session.verify == "/etc/ssl/office-ca.pem"
    # What requests would have read per request, read once: the environment is not
    # consulted again, and a host in NO_PROXY goes direct.
    assert session.trust_env is False
    monkeypatch.setenv("NO_PROXY", "api.x.example")
    direct = RedirectingSession("https://api.x.example", timeout=1)
    assert "https" not in direct.proxies


def test_a_hanging_create_times_out_as_ambiguous(sandbox: SandboxServer):
    sandbox.inject("x", Fault(kind="hang", delay=3))
    slow = make_adapter(sandbox, timeout=0.5)
    try:
        with pytest.raises(AmbiguousError, match="may exist"):
            slow.publish(post("Waiting for an answer"), key="k")
    finally:
        slow.close()


def test_a_post_accepted_then_dropped_is_ambiguous_and_found_later(
    adapter: XAdapter, sandbox: SandboxServer
):
    sandbox.inject("x", Fault(kind="accept-then-reset"))
    text = f"Accepted, then the line dropped {LINK}"
    since = datetime.now(UTC)
    with pytest.raises(AmbiguousError):
        adapter.publish(post(text), key="k")
    [stored] = sandbox.posts("x")

    found = adapter.find(text, since)

    assert found is not None
    assert found.remote_id == stored["id"]


def test_a_wrong_secret_fails_the_signature_check(sandbox: SandboxServer):
    wrong = make_adapter(sandbox, api_secret="not-the-secret")
    try:
        with pytest.raises(AuthError) as raised:
            wrong.publish(post("Signed with the wrong secret"), key="k")
    finally:
        wrong.close()
    assert raised.value.status_code == 401
    assert "not-the-secret" not in str(raised.value)
    assert sandbox.posts() == []


def test_a_wrong_access_token_is_refused(sandbox: SandboxServer):
    wrong = make_adapter(sandbox, access_token="someone-else")
    try:
        with pytest.raises(AuthError):
            wrong.check()
    finally:
        wrong.close()


def test_text_over_280_weighted_characters_is_rejected_with_x_message(adapter: XAdapter):
    # Cyrillic weighs 1, CJK weighs 2: 141 CJK characters are 282.
    with pytest.raises(PermanentError, match="Tweet text is too long") as raised:
        adapter.publish(post("地" * 141), key="k")
    assert raised.value.status_code == 400
    assert not isinstance(raised.value, AuthError)


def test_exactly_280_weighted_characters_pass(adapter: XAdapter, sandbox: SandboxServer):
    adapter.publish(post("地" * 140), key="k")
    adapter.publish(post("Ж" * 280), key="k2")
    assert len(sandbox.posts("x")) == 2


def test_duplicate_text_is_a_duplicate_error(adapter: XAdapter):
    adapter.publish(post("Said once"), key="k1")
    with pytest.raises(DuplicateError, match="duplicate content") as raised:
        adapter.publish(post("Said once"), key="k2")
    assert raised.value.status_code == 403


def test_429_carries_the_reset_time_from_x_rate_limit_reset(
    adapter: XAdapter, sandbox: SandboxServer
):
    sandbox.inject("x", Fault(kind="error", status=429, retry_after=120))
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as raised:
        adapter.publish(post("Too soon"), key="k")
    wait = raised.value.retry_at - before
    assert timedelta(seconds=110) <= wait <= timedelta(seconds=125)
    assert sandbox.posts() == []


@pytest.mark.parametrize(
    ("hint", "low", "high"),
    [
        ("retry-after-seconds", 85, 95),
        ("retry-after-date", 80, 95),
        ("past-date", 0, 2),
        ("none", 14 * 60, 15 * 60 + 5),
    ],
)
def test_429_reset_hints(
    adapter: XAdapter, sandbox: SandboxServer, hint: str, low: float, high: float
):
    sandbox.inject("x", Fault(kind="error", status=429, retry_after=90, hint=hint))  # type: ignore[arg-type]
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as raised:
        adapter.publish(post("Too soon"), key="k")
    wait = (raised.value.retry_at - before).total_seconds()
    assert low <= wait <= high


def test_the_spent_window_answers_429_until_its_reset(adapter: XAdapter, sandbox: SandboxServer):
    network = sandbox.networks["x"]
    network.window_limit = 1  # type: ignore[attr-defined]
    adapter.publish(post("The only one this window"), key="k1")
    with pytest.raises(RateLimited) as raised:
        adapter.publish(post("One too many"), key="k2")
    reset = datetime.fromtimestamp(network.window_start + 15 * 60, UTC)  # type: ignore[attr-defined]
    assert abs((raised.value.retry_at - reset).total_seconds()) <= 1


def test_the_spent_daily_cap_waits_for_its_own_reset(adapter: XAdapter, sandbox: SandboxServer):
    """X caps posts per 24 hours too; its 429 then carries x-user-limit-24hour-*: coming back
    when the 15-minute window resets would only meet the cap again, 96 times a day."""
    network = sandbox.networks["x"]
    network.daily_limit = 1  # type: ignore[attr-defined]
    adapter.publish(post("The only one today"), key="k1")
    with pytest.raises(RateLimited) as raised:
        adapter.publish(post("One too many"), key="k2")
    reset = datetime.fromtimestamp(network.day_start + 24 * 60 * 60, UTC)  # type: ignore[attr-defined]
    assert abs((raised.value.retry_at - reset).total_seconds()) <= 1


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_on_create_is_ambiguous(
    adapter: XAdapter, sandbox: SandboxServer, status: int
):
    sandbox.inject("x", Fault(kind="error", status=status))
    with pytest.raises(AmbiguousError) as raised:
        adapter.publish(post("Server trouble"), key="k")
    assert raised.value.status_code == status


def test_server_error_on_a_read_is_transient(adapter: XAdapter, sandbox: SandboxServer):
    sandbox.inject("x", Fault(kind="error", status=503, path=r"/2/users/me", method="GET"))
    with pytest.raises(TransientError) as raised:
        adapter.check()
    assert not isinstance(raised.value, AmbiguousError)


def test_connection_refused_is_transient():
    base = f"http://127.0.0.1:{closed_port()}/x"
    nowhere = XAdapter(
        api_key="k",
        api_secret="s",
        access_token="t",
        access_token_secret="ts",
        base_url=base,
        web_url=base,
        timeout=2,
    )
    try:
        with pytest.raises(TransientError, match="could not connect") as raised:
            nowhere.publish(post("Nobody listens"), key="k")
    finally:
        nowhere.close()
    assert not isinstance(raised.value, AmbiguousError)


def test_find_matches_the_t_co_rewritten_text(adapter: XAdapter, sandbox: SandboxServer):
    since = datetime.now(UTC)
    text = f"Cohesion after 2027: the regions' view. {LINK} #CohesionAlliance"
    receipt = adapter.publish(post(text), key="k")
    adapter.publish(post(f"Another release {LINK}"), key="k2")
    assert LINK not in linked(text, "1", [])[0], "the sandbox returns links as t.co, as X does"

    found = adapter.find(text, since)

    assert found == receipt
    assert adapter.find("A text never posted", since) is None
    listed = [r["path"] for r in sandbox.requests if r["method"] == "GET"]
    assert f"/2/users/{USER['id']}/tweets" in listed


def test_find_tells_apart_posts_that_differ_in_a_number_or_only_in_the_link(adapter: XAdapter):
    since = datetime.now(UTC)
    housing = "EU regions receive {} billion for housing {}"
    first = adapter.publish(post(housing.format("2.5", LINK)), key="k1")
    second = adapter.publish(post(housing.format("2.5", LINK + "?b")), key="k2")

    assert adapter.find(housing.format("2.5", LINK), since) == first
    assert adapter.find(housing.format("2.5", LINK + "?b"), since) == second
    assert adapter.find(housing.format("3.5", LINK), since) is None
    assert adapter.find(housing.format("2.5", LINK + "?c"), since) is None


def test_find_knows_a_bare_domain_and_a_post_with_an_image(
    adapter: XAdapter, sandbox: SandboxServer
):
    from dataclasses import replace

    from tests.test_adapter_contract import approved_images

    since = datetime.now(UTC)
    text = f"Read the opinion on cor.europa.eu and at {LINK}"
    media = approved_images("x", 1)
    with_image = replace(post(text), images=tuple(m.image for m in media))
    receipt = adapter.publish(with_image, key="k", media=media)
    [stored] = sandbox.posts("x")
    assert stored["images"], "the post carries its image"

    assert adapter.find(text, since) == receipt


def test_find_reads_every_page_since_the_attempt(
    adapter: XAdapter, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    since = datetime.now(UTC)
    oldest = adapter.publish(post("The first of many"), key="k")
    x = sandbox.networks["x"]
    for number in range(105):  # more than X's quota of posts lets the adapter make
        x.store({"id": str(x.next_id()), "text": f"Release number {number}"})

    assert adapter.find("The first of many", since) == oldest
    pages = [r for r in sandbox.requests if r["method"] == "GET" and r["path"].endswith("/tweets")]
    assert len(pages) == 2

    monkeypatch.setattr("socialbot.adapters.x.FIND_PAGES", 1)
    with pytest.raises(TransientError, match="were not all read"):
        adapter.find("A text never posted", since)


def test_a_t_co_link_without_its_address_proves_nothing():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/users/me"):
            return httpx.Response(200, json={"data": USER})
        text = "Regions meet https://t.co/abc123"
        tweet = {"id": "1", "text": text, "edit_history_tweet_ids": ["1"]}
        return httpx.Response(200, json={"data": [tweet], "meta": {"result_count": 1}})

    adapter = XAdapter(
        api_key="k",
        api_secret="s",
        access_token="t",
        access_token_secret="ts",
        base_url="https://x.invalid",
        web_url="https://x.invalid",
        transport=httpx.MockTransport(handler),
    )
    try:
        with pytest.raises(TransientError, match="did not expand"):
            adapter.find(f"Regions meet {LINK}", datetime.now(UTC))
    finally:
        adapter.close()


def test_find_ignores_posts_from_before_since(adapter: XAdapter):
    adapter.publish(post("Old news"), key="k")
    assert adapter.find("Old news", datetime.now(UTC) + timedelta(hours=1)) is None


def test_check_names_the_account(adapter: XAdapter):
    assert adapter.check() == "@EU_CoR"


def test_nothing_outside_the_adapters_imports_tweepy():
    package = Path(socialbot.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.is_relative_to(package / "adapters"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "tweepy" or name.startswith("tweepy.") for name in names):
                offenders.append(str(path.relative_to(package)))
    assert offenders == []


def test_start_time_is_inclusive_to_the_second(adapter: XAdapter, sandbox: SandboxServer):
    adapter.publish(post("Posted within this second"), key="k")
    [stored] = sandbox.posts("x")
    second = stored["created_at"][:19] + "Z"
    user_id = USER["id"]
    listed = adapter.client.get_users_tweets(user_id, start_time=second, user_auth=True)
    assert [tweet.id for tweet in listed.data] == [int(stored["id"])]
    created = datetime.fromisoformat(stored["created_at"]).replace(microsecond=0)
    after = (created + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    empty = adapter.client.get_users_tweets(user_id, start_time=after, user_auth=True)
    assert empty.data is None


def test_the_sandbox_refuses_a_request_without_oauth(sandbox: SandboxServer):
    response = httpx.post(f"{sandbox.url}/x/2/tweets", json={"text": "Anonymous"}, timeout=5)
    assert response.status_code == 401
    assert response.json()["title"] == "Unauthorized"
    assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= set(
        response.headers
    )
    assert sandbox.posts() == []


def test_a_replayed_request_is_refused(sandbox: SandboxServer):
    """The same signed request twice: the nonce is accepted once, as X does."""
    creds = sandbox.networks["x"].credentials
    auth = OAuth1(
        creds["api_key"],
        creds["api_secret"],
        creds["access_token"],
        creds["access_token_secret"],
    )
    signed = requests.Request(
        "GET", f"{sandbox.networks['x'].base_url}/2/users/me", auth=auth
    ).prepare()
    with requests.Session() as session:
        assert session.send(signed, timeout=5).status_code == 200
        assert session.send(signed, timeout=5).status_code == 401


def test_faults_can_be_queued_over_http(adapter: XAdapter, sandbox: SandboxServer):
    queued = httpx.post(
        f"{sandbox.url}/_sandbox/faults",
        json=[{"network": "x", "kind": "error", "status": 503, "times": 2}],
        timeout=5,
    )
    assert (queued.status_code, queued.json()) == (201, {"queued": 1})
    for _ in range(2):
        with pytest.raises(AmbiguousError):
            adapter.publish(post("Through a fault"), key="k")
    adapter.publish(post("Through a fault"), key="k")
    assert len(sandbox.posts("x")) == 1
    bad = httpx.post(f"{sandbox.url}/_sandbox/faults", json={"kind": "error"}, timeout=5)
    assert bad.status_code == 400

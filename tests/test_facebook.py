"""The Facebook Page adapter over real HTTP: httpx to the sandbox's Graph API."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from socialbot.adapters.facebook import FacebookAdapter
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

LINK = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
TOKEN = "sandbox-facebook-page-token"


def make_adapter(
    sandbox: SandboxServer,
    *,
    token: str = TOKEN,
    page_id: str | None = None,
    version: str = "v24.0",
    timeout: float = 5.0,
) -> FacebookAdapter:
    base = sandbox.networks["facebook"].base_url
    return FacebookAdapter(
        page_id=page_id or sandbox.networks["facebook"].credentials["page_id"],
        page_access_token=token,
        base_url=base,
        web_url=base,
        api_version=version,
        timeout=timeout,
    )


def post(text: str, link: str = LINK) -> Post:
    return Post(
        network="facebook", text=text, link=link, length=len(text), limit=63_206, language="en"
    )


@pytest.fixture
def adapter(sandbox: SandboxServer) -> Iterator[FacebookAdapter]:
    made = make_adapter(sandbox)
    yield made
    made.close()


def facebook_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests if r["network"] == "facebook"]


def test_publish_sends_message_and_link_to_the_versioned_feed(
    adapter: FacebookAdapter, sandbox: SandboxServer
):
    receipt = adapter.publish(post("Regions call for a stronger cohesion policy"), key="k")

    [stored] = sandbox.posts("facebook")
    page = sandbox.networks["facebook"].credentials["page_id"]
    assert receipt.remote_id == stored["id"]
    assert receipt.remote_id.startswith(f"{page}_")
    assert receipt.url == stored["url"]
    assert receipt.url == f"{sandbox.url}/facebook/{page}/posts/{stored['id'].split('_')[1]}"
    [request] = facebook_requests(sandbox)
    assert (request["method"], request["path"]) == ("POST", f"/v24.0/{page}/feed")
    assert parse_qs(request["body"]) == {
        "message": ["Regions call for a stronger cohesion policy"],
        "link": [LINK],
    }


def test_the_token_travels_in_the_authorization_header_only(
    adapter: FacebookAdapter, sandbox: SandboxServer
):
    since = datetime.now(UTC)
    adapter.publish(post("Token hygiene"), key="k")
    adapter.find("Token hygiene", since)
    adapter.check()

    requests = facebook_requests(sandbox)
    assert len(requests) == 3
    for request in requests:
        assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in request["path"]
        assert TOKEN not in request["body"]
        assert "access_token" not in request["body"]


def test_from_settings_uses_every_facebook_setting(
    workdir: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    for name, value in sandbox.settings().items():
        if name.startswith("SOCIALBOT_FACEBOOK__"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOCIALBOT_FACEBOOK__API_VERSION", "v23.0")
    made = FacebookAdapter.from_settings(Settings())
    try:
        assert made.check() == "Page CoR sandbox Page (104811998472315)"
    finally:
        made.close()
    [request] = facebook_requests(sandbox)
    assert request["path"] == "/v23.0/104811998472315"


def test_a_wrong_token_is_an_auth_error_code_190(sandbox: SandboxServer):
    wrong = make_adapter(sandbox, token="expired-token")
    try:
        with pytest.raises(AuthError) as raised:
            wrong.publish(post("Who am I?"), key="k")
    finally:
        wrong.close()
    assert raised.value.api_code == 190
    assert "expired-token" not in str(raised.value)
    assert sandbox.posts() == []


def test_the_same_post_twice_is_a_duplicate_code_506(adapter: FacebookAdapter):
    adapter.publish(post("Said once"), key="k1")
    with pytest.raises(DuplicateError, match="Duplicate status message") as raised:
        adapter.publish(post("Said once"), key="k2")
    assert raised.value.api_code == 506


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001])
def test_throttling_codes_wait_for_the_business_use_case_estimate(
    adapter: FacebookAdapter, sandbox: SandboxServer, code: int
):
    sandbox.networks["facebook"].throttle_code = code  # type: ignore[attr-defined]
    sandbox.inject("facebook", Fault(kind="error", status=429, retry_after=7 * 60))
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as raised:
        adapter.publish(post("Too many calls"), key="k")
    assert raised.value.api_code == code
    wait = raised.value.retry_at - before
    assert timedelta(minutes=7) <= wait <= timedelta(minutes=7, seconds=5)


def test_throttling_without_an_estimate_waits_ten_minutes(
    adapter: FacebookAdapter, sandbox: SandboxServer
):
    sandbox.inject("facebook", Fault(kind="error", status=429, hint="none"))
    before = datetime.now(UTC)
    with pytest.raises(RateLimited) as raised:
        adapter.publish(post("Too many calls"), key="k")
    wait = raised.value.retry_at - before
    assert timedelta(minutes=10) <= wait <= timedelta(minutes=10, seconds=5)


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_on_create_is_ambiguous(
    adapter: FacebookAdapter, sandbox: SandboxServer, status: int
):
    sandbox.inject("facebook", Fault(kind="error", status=status))
    with pytest.raises(AmbiguousError, match="may exist") as raised:
        adapter.publish(post("Server trouble"), key="k")
    assert raised.value.api_code == 2
    assert raised.value.status_code == status


def test_a_server_error_on_a_read_is_transient(adapter: FacebookAdapter, sandbox: SandboxServer):
    sandbox.inject("facebook", Fault(kind="error", status=500, path=r"/v[\d.]+/\d+", method="GET"))
    with pytest.raises(TransientError) as raised:
        adapter.check()
    assert not isinstance(raised.value, AmbiguousError)


def test_an_invalid_parameter_is_permanent_code_100(adapter: FacebookAdapter):
    with pytest.raises(PermanentError, match="link parameter") as raised:
        adapter.publish(post("A broken link", link="not a link"), key="k")
    assert raised.value.api_code == 100
    assert not isinstance(raised.value, AuthError)


def test_an_unknown_page_is_permanent(sandbox: SandboxServer):
    other = make_adapter(sandbox, page_id="999")
    try:
        with pytest.raises(PermanentError, match="does not exist") as raised:
            other.publish(post("Wrong page"), key="k")
    finally:
        other.close()
    assert raised.value.api_code == 100


def test_a_retired_graph_version_is_refused(sandbox: SandboxServer):
    old = make_adapter(sandbox, version="v2.8")
    try:
        with pytest.raises(PermanentError, match="deprecated version"):
            old.publish(post("From 2016"), key="k")
    finally:
        old.close()


def test_a_hanging_create_times_out_as_ambiguous(sandbox: SandboxServer):
    sandbox.inject("facebook", Fault(kind="hang", delay=3))
    slow = make_adapter(sandbox, timeout=0.5)
    try:
        with pytest.raises(AmbiguousError):
            slow.publish(post("Waiting"), key="k")
    finally:
        slow.close()


def test_a_post_accepted_then_dropped_is_ambiguous_and_found_later(
    adapter: FacebookAdapter, sandbox: SandboxServer
):
    since = datetime.now(UTC)
    sandbox.inject("facebook", Fault(kind="accept-then-reset"))
    with pytest.raises(AmbiguousError):
        adapter.publish(post("Accepted, then dropped"), key="k")
    [stored] = sandbox.posts("facebook")
    found = adapter.find("Accepted, then dropped", since)
    assert found is not None
    assert found.remote_id == stored["id"]


def test_connection_refused_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/facebook"
    nowhere = FacebookAdapter(
        page_id="1", page_access_token=TOKEN, base_url=base, web_url=base, api_version="v24.0"
    )
    try:
        with pytest.raises(TransientError, match="could not connect") as raised:
            nowhere.publish(post("Nobody listens"), key="k")
    finally:
        nowhere.close()
    assert not isinstance(raised.value, AmbiguousError)


def test_find_returns_only_this_text_since_the_given_time(
    adapter: FacebookAdapter, sandbox: SandboxServer
):
    since = datetime.now(UTC)
    first = adapter.publish(post("First release"), key="k1")
    adapter.publish(post("Second release"), key="k2")

    assert adapter.find("First release", since) == first
    assert adapter.find("Never posted", since) is None
    assert adapter.find("First release", since + timedelta(hours=1)) is None
    listing = [r for r in facebook_requests(sandbox) if r["method"] == "GET"]
    assert all(r["path"].endswith("/feed") for r in listing)


def test_find_reads_every_page_since_the_attempt(
    adapter: FacebookAdapter, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    since = datetime.now(UTC)
    oldest = adapter.publish(post("The first of many"), key="k")
    page = sandbox.networks["facebook"]
    for number in range(120):  # more than one page of 100
        page.store({"id": f"104811998472315_{number}", "text": f"Release number {number}"})

    assert adapter.find("The first of many", since) == oldest
    listing = [r for r in facebook_requests(sandbox) if r["method"] == "GET"]
    assert len(listing) == 2

    monkeypatch.setattr("socialbot.adapters.facebook.FIND_PAGES", 1)
    with pytest.raises(TransientError, match="were not all read"):
        adapter.find("A text never posted", since)


def test_check_names_the_page(adapter: FacebookAdapter):
    assert adapter.check() == "Page CoR sandbox Page (104811998472315)"


def test_every_answer_carries_the_usage_header(adapter: FacebookAdapter, sandbox: SandboxServer):
    adapter.publish(post("Counted"), key="k")
    with adapter.http.stream("GET", f"/v24.0/{adapter.page_id}", params={"fields": "id"}) as r:
        usage = json.loads(r.headers["X-Business-Use-Case-Usage"])
    assert usage[adapter.page_id][0]["estimated_time_to_regain_access"] == 0


def test_a_message_over_the_graph_limit_is_refused(
    adapter: FacebookAdapter, sandbox: SandboxServer
):
    with pytest.raises(PermanentError, match="at most 63206 characters") as raised:
        adapter.publish(post("a" * 63_207), key="k")
    assert raised.value.api_code == 100
    assert sandbox.posts() == []


def test_the_sandbox_refuses_a_request_without_a_token(sandbox: SandboxServer):
    page = sandbox.networks["facebook"].credentials["page_id"]
    response = httpx.post(
        f"{sandbox.url}/facebook/v24.0/{page}/feed", data={"message": "Anonymous"}, timeout=5
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (2500, "OAuthException")
    assert error["fbtrace_id"]
    assert sandbox.posts() == []

"""The LinkedIn adapter over real HTTP against the sandbox's Posts API."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from socialbot.adapters.linkedin import LinkedInAdapter, next_midnight
from socialbot.compose import escape_little_text
from socialbot.config import Settings, load_settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    ConfigurationError,
    DuplicateError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.models import DeliveryStatus, Post
from socialbot.publish import Publisher, RetryPolicy
from socialbot.sandbox import Fault, SandboxServer
from socialbot.store import SQLiteStore
from tests.helpers import run, write_release

LINK = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
RESERVED_TEXT = (
    "Regions (CoR) call for #Cohesion after 2027 @ Brussels: "
    "a_b *c* ~d~ [x] {y} <z> back\\slash |pipe|"
)


def linkedin(sandbox: SandboxServer) -> Any:
    return sandbox.networks["linkedin"]


def version(sandbox: SandboxServer) -> str:
    return sandbox.settings()["SOCIALBOT_LINKEDIN__API_VERSION"]


def make_adapter(sandbox: SandboxServer, timeout: float = 5.0, **changes: str) -> LinkedInAdapter:
    net = linkedin(sandbox)
    settings = {
        "access_token": net.credentials["access_token"],
        "author": net.credentials["author"],
        "base_url": net.base_url,
        "web_url": net.base_url,
        "api_version": version(sandbox),
        **changes,
    }
    return LinkedInAdapter(timeout=timeout, **settings)


def post(text: str, **changes: str) -> Post:
    fields: dict[str, Any] = {
        "network": "linkedin",
        "text": text,
        "link": LINK,
        "length": len(escape_little_text(text)),
        "limit": 3000,
        "language": "fr",
        "title": "Regions call for a stronger cohesion policy after 2027",
        "description": "The European Committee of the Regions adopted its opinion.",
        **changes,
    }
    return Post(**fields)


def posted_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests if r["network"] == "linkedin" and r["method"] == "POST"]


def lower_headers(request: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in request["headers"].items()}


def raw_create(sandbox: SandboxServer, body: dict[str, Any], **headers: str) -> httpx.Response:
    """A create sent by hand, to see how the sandbox treats what the adapter never sends."""
    net = linkedin(sandbox)
    sent = {
        "Authorization": f"Bearer {net.credentials['access_token']}",
        "LinkedIn-Version": version(sandbox),
        "X-Restli-Protocol-Version": "2.0.0",
        **headers,
    }
    sent = {name: value for name, value in sent.items() if value}
    return httpx.post(f"{net.base_url}/rest/posts", json=body, headers=sent, timeout=5)


def valid_body(sandbox: SandboxServer, commentary: str) -> dict[str, Any]:
    return {
        "author": linkedin(sandbox).credentials["author"],
        "commentary": commentary,
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
    }


@pytest.fixture
def adapter(sandbox: SandboxServer) -> Iterator[LinkedInAdapter]:
    made = make_adapter(sandbox)
    yield made
    made.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- success -----------------------------------------------------------------------------


def test_publish_sends_the_documented_post_and_returns_its_page(
    adapter: LinkedInAdapter, sandbox: SandboxServer
):
    receipt = adapter.publish(post(f"Regions meet in Brussels\n\n{LINK}"), key="k1")

    [stored] = sandbox.posts("linkedin")
    assert receipt.remote_id == stored["id"]
    assert receipt.remote_id.startswith("urn:li:share:")
    assert receipt.url == f"{sandbox.url}/linkedin/feed/update/{stored['id']}"
    [request] = posted_requests(sandbox)
    assert request["path"] == "/rest/posts"
    headers = lower_headers(request)
    assert headers["authorization"] == "Bearer sandbox-linkedin-access-token"
    assert headers["linkedin-version"] == version(sandbox)
    assert headers["x-restli-protocol-version"] == "2.0.0"
    body = json.loads(request["body"])
    assert body == {
        "author": "urn:li:organization:10457221",
        "commentary": f"Regions meet in Brussels\n\n{LINK}",
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
        "content": {
            "article": {
                "source": LINK,
                "title": "Regions call for a stronger cohesion policy after 2027",
                "description": "The European Committee of the Regions adopted its opinion.",
            }
        },
    }
    # The Posts API has no language field (the sandbox, like Rest.li, refuses
    # unknown fields): the release language "fr" is not sent anywhere.
    assert "fr" not in json.dumps({k: v for k, v in body.items() if k != "commentary"})
    page = httpx.get(receipt.url, timeout=5)
    assert page.status_code == 200
    assert "Regions meet in Brussels" in page.text


def test_reserved_characters_are_escaped_so_linkedin_keeps_the_whole_text(
    adapter: LinkedInAdapter, sandbox: SandboxServer
):
    text = f"{RESERVED_TEXT}\n\n{LINK}"
    adapter.publish(post(text), key="k")

    [stored] = sandbox.posts("linkedin")
    assert stored["sent_commentary"] == escape_little_text(text)
    assert not stored["truncated"]
    assert stored["text"] == text


def test_the_sandbox_cuts_unescaped_commentary_and_still_answers_201(sandbox: SandboxServer):
    cut = raw_create(sandbox, valid_body(sandbox, "Regions (CoR) meet in Brussels"))
    assert cut.status_code == 201
    assert cut.headers["x-restli-id"].startswith("urn:li:share:")
    kept = raw_create(
        sandbox,
        valid_body(sandbox, "Join #EURegionsWeek with @[CoR](urn:li:organization:1) today"),
    )
    assert kept.status_code == 201

    first, second = sandbox.posts("linkedin")
    assert (first["text"], first["truncated"]) == ("Regions ", True)
    assert (second["text"], second["truncated"]) == ("Join #EURegionsWeek with CoR today", False)


def test_a_post_without_a_link_has_no_article(adapter: LinkedInAdapter, sandbox: SandboxServer):
    adapter.publish(post("Plenary session opens today", link=""), key="k")

    [request] = posted_requests(sandbox)
    assert "content" not in json.loads(request["body"])


def test_from_settings_uses_every_linkedin_setting(
    workdir: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    for name, value in sandbox.settings().items():
        if name.startswith("SOCIALBOT_LINKEDIN__"):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SOCIALBOT_REQUEST_TIMEOUT_SECONDS", "3")
    made = LinkedInAdapter.from_settings(Settings())
    try:
        assert made.http.timeout.read == 3
        receipt = made.publish(post("Settings reach the adapter"), key="k")
    finally:
        made.close()
    assert receipt.url.startswith(f"{sandbox.url}/linkedin/feed/update/urn:li:share:")
    assert {r["network"] for r in sandbox.requests} == {"linkedin"}


def test_the_author_must_be_an_organization_urn(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SOCIALBOT_LINKEDIN__AUTHOR", "urn:li:person:abc")
    with pytest.raises(ConfigurationError, match="SOCIALBOT_LINKEDIN__AUTHOR"):
        load_settings()


# -- check ---------------------------------------------------------------------------------


def test_check_names_the_page_and_the_members_role(
    adapter: LinkedInAdapter, sandbox: SandboxServer
):
    assert adapter.check() == (
        "European Committee of the Regions (urn:li:organization:10457221) as ADMINISTRATOR"
    )
    assert [r["path"] for r in sandbox.requests] == [
        "/rest/organizationAcls",
        "/rest/organizations/10457221",
    ]
    assert sandbox.posts() == []


def test_check_refuses_a_member_who_may_not_post():
    with SandboxServer(credentials={"linkedin": {"role": "ANALYST"}}) as server:
        made = make_adapter(server)
        try:
            with pytest.raises(AuthError, match=r"cannot post as .* only ANALYST"):
                made.check()
        finally:
            made.close()


def test_check_names_the_missing_permission():
    with SandboxServer(credentials={"linkedin": {"scopes": "w_organization_social"}}) as server:
        made = make_adapter(server)
        try:
            with pytest.raises(AuthError, match="r_organization_admin"):
                made.check()
        finally:
            made.close()


# -- errors --------------------------------------------------------------------------------


def test_a_refused_token_says_it_must_be_renewed(sandbox: SandboxServer):
    made = make_adapter(sandbox, access_token="AQV-not-the-right-token")
    try:
        with pytest.raises(AuthError, match="must be renewed") as caught:
            made.publish(post("Refused"), key="k")
    finally:
        made.close()
    assert caught.value.status_code == 401
    assert caught.value.api_code == "INVALID_ACCESS_TOKEN"
    assert "60 days" in str(caught.value)
    assert "AQV-not-the-right-token" not in str(caught.value)
    assert sandbox.posts() == []


def test_an_expired_token_says_it_must_be_renewed(adapter: LinkedInAdapter, sandbox: SandboxServer):
    linkedin(sandbox).expired_tokens.add("sandbox-linkedin-access-token")
    with pytest.raises(AuthError, match=r"EXPIRED_ACCESS_TOKEN.*must be renewed"):
        adapter.check()


def test_a_retired_api_version_names_the_setting(sandbox: SandboxServer):
    made = make_adapter(sandbox, api_version="202301")
    try:
        with pytest.raises(AuthError, match="SOCIALBOT_LINKEDIN__API_VERSION") as caught:
            made.publish(post("Old version"), key="k")
    finally:
        made.close()
    assert caught.value.status_code == 426
    assert caught.value.api_code == "NONEXISTENT_VERSION"


def test_the_sandbox_requires_the_version_and_protocol_headers(sandbox: SandboxServer):
    body = valid_body(sandbox, "Headers")
    missing = raw_create(sandbox, body, **{"LinkedIn-Version": ""})
    assert missing.status_code == 400
    assert missing.json()["code"] == "VERSION_MISSING"
    protocol = raw_create(sandbox, body, **{"X-Restli-Protocol-Version": ""})
    assert protocol.status_code == 400
    unauthenticated = raw_create(sandbox, body, Authorization="")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["serviceErrorCode"] == 65604
    assert sandbox.posts() == []


def test_the_sandbox_validates_the_post_like_restli(sandbox: SandboxServer):
    body = valid_body(sandbox, "Bonjour")
    body["language"] = "fr"
    del body["distribution"]
    body["visibility"] = "EVERYONE"
    answer = raw_create(sandbox, body)

    assert answer.status_code == 422
    message = answer.json()["message"]
    assert "ERROR :: /language :: unrecognized field found but not allowed" in message
    assert "ERROR :: /distribution :: field is required but not found" in message
    assert 'ERROR :: /visibility :: "EVERYONE" is not an enum symbol' in message
    assert sandbox.posts() == []


def test_posting_as_another_page_is_refused(sandbox: SandboxServer):
    made = make_adapter(sandbox, author="urn:li:organization:1")
    try:
        with pytest.raises(AuthError, match="denied permission") as caught:
            made.publish(post("Not our page"), key="k")
    finally:
        made.close()
    assert caught.value.status_code == 403


@pytest.mark.parametrize(
    ("text", "length"),
    [("a" * 3001, 3001), ("\N{GRINNING FACE}" * 1501, 3002)],  # UTF-16 units, as the JVM counts
)
def test_a_too_long_commentary_is_a_permanent_error(
    adapter: LinkedInAdapter, sandbox: SandboxServer, text: str, length: int
):
    with pytest.raises(
        PermanentError, match=rf"length of {length} is out of range 0\.\.\.3000"
    ) as caught:
        adapter.publish(post(text), key="k")
    assert caught.value.status_code == 422
    assert not isinstance(caught.value, AuthError)
    assert sandbox.posts() == []


def test_the_same_content_twice_is_a_duplicate(adapter: LinkedInAdapter, sandbox: SandboxServer):
    first = adapter.publish(post("Once only"), key="k")
    with pytest.raises(DuplicateError, match=first.remote_id):
        adapter.publish(post("Once only"), key="k")
    assert len(sandbox.posts("linkedin")) == 1


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("native", lambda now: next_midnight(now)),
        ("retry-after-seconds", lambda now: now + timedelta(seconds=120)),
        ("retry-after-date", lambda now: now + timedelta(seconds=120)),
        ("past-date", lambda now: now),
        ("none", lambda now: now + timedelta(minutes=5)),
    ],
)
def test_a_429_says_when_to_come_back(
    adapter: LinkedInAdapter, sandbox: SandboxServer, hint: str, expected: Any
):
    sandbox.inject("linkedin", Fault(status=429, hint=hint, retry_after=120))  # type: ignore[arg-type]
    now = datetime.now(UTC)
    with pytest.raises(RateLimited) as caught:
        adapter.publish(post("Throttled"), key="k")
    assert caught.value.status_code == 429
    assert abs((caught.value.retry_at - expected(now)).total_seconds()) < 3
    assert sandbox.posts() == []


def test_a_spent_daily_quota_waits_for_midnight_utc(
    adapter: LinkedInAdapter, sandbox: SandboxServer
):
    linkedin(sandbox).daily_limit = 1
    adapter.publish(post("First of the day"), key="k1")
    with pytest.raises(RateLimited, match="MEMBER DAY limit") as caught:
        adapter.publish(post("Second of the day"), key="k2")
    assert caught.value.retry_at == next_midnight(datetime.now(UTC))
    assert len(sandbox.posts("linkedin")) == 1


def test_a_server_error_on_create_is_ambiguous(adapter: LinkedInAdapter, sandbox: SandboxServer):
    sandbox.inject("linkedin", Fault(status=500))
    with pytest.raises(AmbiguousError, match="may exist") as caught:
        adapter.publish(post("Five hundred"), key="k")
    assert caught.value.status_code == 500


def test_a_server_error_while_finding_is_transient(
    adapter: LinkedInAdapter, sandbox: SandboxServer
):
    sandbox.inject("linkedin", Fault(status=503, path=r"/rest/posts", method="GET"))
    with pytest.raises(TransientError):
        adapter.find("Anything", datetime.now(UTC))


def test_a_refused_connection_is_transient():
    made = LinkedInAdapter(
        access_token="t",
        author="urn:li:organization:1",
        base_url=f"http://127.0.0.1:{closed_port()}/linkedin",
        web_url="https://www.linkedin.com",
        api_version="202609",
        timeout=2,
    )
    try:
        with pytest.raises(TransientError, match="could not connect"):
            made.publish(post("Nobody listens"), key="k")
        with pytest.raises(TransientError):
            made.check()
    finally:
        made.close()


def test_a_hanging_create_times_out_as_ambiguous(sandbox: SandboxServer):
    sandbox.inject("linkedin", Fault(kind="hang", delay=2))
    slow = make_adapter(sandbox, timeout=0.5)
    try:
        with pytest.raises(AmbiguousError, match="may exist"):
            slow.publish(post("Waiting for an answer"), key="k")
    finally:
        slow.close()


def test_accepted_then_dropped_is_ambiguous_then_found_and_never_posted_twice(
    adapter: LinkedInAdapter, sandbox: SandboxServer
):
    sandbox.inject("linkedin", Fault(kind="accept-then-reset"))
    text = f"{RESERVED_TEXT}\n\n{LINK}"
    since = datetime.now(UTC)
    with pytest.raises(AmbiguousError):
        adapter.publish(post(text), key="k")
    [stored] = sandbox.posts("linkedin")

    found = adapter.find(text, since)
    assert found is not None
    assert found.remote_id == stored["id"]
    assert found.url == stored["url"]
    with pytest.raises(DuplicateError):
        adapter.publish(post(text), key="k")
    assert len(sandbox.posts("linkedin")) == 1


def test_find_pages_through_the_finder_and_misses_what_is_absent(
    adapter: LinkedInAdapter, sandbox: SandboxServer
):
    since = datetime.now(UTC)
    for number in range(60):
        adapter.publish(post(f"Release number {number}", link=""), key=str(number))

    oldest = adapter.find("Release number 0", since)
    assert oldest is not None
    assert oldest.remote_id == sandbox.posts("linkedin")[0]["id"]
    assert adapter.find("Never posted", since) is None
    finder = [r for r in sandbox.requests if r["method"] == "GET"]
    assert finder[0]["path"] == "/rest/posts"
    assert lower_headers(finder[0])["x-restli-method"] == "FINDER"


def test_the_finder_wants_the_author_urn_encoded(sandbox: SandboxServer):
    net = linkedin(sandbox)
    answer = httpx.get(
        f"{net.base_url}/rest/posts?author={net.credentials['author']}&q=author",
        headers={
            "Authorization": f"Bearer {net.credentials['access_token']}",
            "LinkedIn-Version": version(sandbox),
            "X-Restli-Protocol-Version": "2.0.0",
        },
        timeout=5,
    )
    assert answer.status_code == 400
    assert "must be URL-encoded" in answer.json()["message"]


# -- through the CLI and the publisher ------------------------------------------------------


@pytest.fixture
def linkedin_only(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SOCIALBOT_NETWORKS", "linkedin")
    return env


def test_drain_posts_a_release_to_linkedin_once(linkedin_only: Path, sandbox: SandboxServer):
    write_release(
        linkedin_only / "queue",
        "r1.json",
        title="Regions (CoR) call for #Cohesion after 2027",
        summary="Local leaders want a stronger policy [opinion adopted].",
    )
    assert run("approve", "queue/r1.json", "--by", "Ana").exit_code == 0

    first = run("drain")
    assert first.exit_code == 0, first.output
    [stored] = sandbox.posts("linkedin")
    assert not stored["truncated"]
    assert stored["text"].startswith("Regions (CoR) call for #Cohesion after 2027")
    assert "[opinion adopted]" in stored["text"]
    assert stored["article"]["source"] == "https://cor.europa.eu/en/news/Pages/cohesion.aspx"

    assert run("drain").exit_code == 0
    assert len(sandbox.posts("linkedin")) == 1
    [row] = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert (row["network"], row["status"]) == ("linkedin", "posted")
    assert row["url"] == stored["url"]


def test_an_uncertain_post_is_reconciled_not_resent(linkedin_only: Path, sandbox: SandboxServer):
    write_release(linkedin_only / "queue", "r1.json")
    assert run("approve", "queue/r1.json", "--by", "Ana").exit_code == 0
    sandbox.inject("linkedin", Fault(kind="accept-then-reset"))

    first = run("drain")
    assert first.exit_code == 1
    [row] = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert row["status"] == "unknown"
    assert len(sandbox.posts("linkedin")) == 1

    settings = load_settings()
    store = SQLiteStore(settings.database_path)
    made = LinkedInAdapter.from_settings(settings)
    try:
        report = Publisher(
            store=store,
            queue_dir=settings.queue_dir,
            adapters={"linkedin": made},
            active=["linkedin"],
            policy=RetryPolicy(reconcile_after=timedelta(0)),
        ).drain()
    finally:
        made.close()
        store.close()
    [stored] = sandbox.posts("linkedin")
    assert [(o.status, o.receipt.url if o.receipt else None) for o in report.outcomes] == [
        (DeliveryStatus.POSTED, stored["url"])
    ]
    [row] = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert (row["status"], row["url"]) == ("posted", stored["url"])


def test_networks_checks_linkedin_without_posting(linkedin_only: Path, sandbox: SandboxServer):
    result = run("networks")

    assert result.exit_code == 0, result.output
    assert (
        "linkedin  active, credentials accepted (European Committee of the Regions "
        "(urn:li:organization:10457221) as ADMINISTRATOR)"
    ) in result.output
    assert sandbox.posts() == []


def test_networks_says_a_refused_token_must_be_renewed(
    linkedin_only: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SOCIALBOT_LINKEDIN__ACCESS_TOKEN", "AQV-revoked-token")
    result = run("networks")

    assert result.exit_code == 1
    assert "linkedin  active, credentials NOT accepted" in result.output
    assert "must be renewed" in result.output
    assert "AQV-revoked-token" not in result.output


@pytest.mark.parametrize(
    ("days", "warning"),
    [
        (-1, "the LinkedIn access token expired on {date}: renew it"),
        (0, "the LinkedIn access token expires on {date} (0 days): renew it"),
        (13, "the LinkedIn access token expires on {date} (13 days): renew it"),
        (14, None),
    ],
)
def test_status_and_networks_warn_before_the_token_expires(
    linkedin_only: Path, monkeypatch: pytest.MonkeyPatch, days: int, warning: str | None
):
    expires = datetime.now(UTC).date() + timedelta(days=days)
    monkeypatch.setenv("SOCIALBOT_LINKEDIN__TOKEN_EXPIRES", expires.isoformat())

    status = run("status")
    networks = run("networks")

    if warning is None:
        assert status.exit_code == 0, status.output
        assert "LinkedIn access token" not in status.output + networks.output
    else:
        # An expiring token needs a person: status says so and exits 1.
        assert status.exit_code == 1, status.output
        expected = warning.format(date=expires.isoformat())
        assert f"need a person:\n  linkedin credentials: {expected}" in status.output
        assert f"warning: {expected}" in networks.output

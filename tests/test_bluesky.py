"""The Bluesky adapter over real HTTP against the sandbox PDS."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from socialbot import logs
from socialbot.adapters.base import MemoryState, State
from socialbot.adapters.bluesky import SESSION_KEY, BlueskyAdapter, Sessions, _fernet, record_key
from socialbot.compose import bluesky_facets
from socialbot.config import Settings
from socialbot.errors import (
    AmbiguousError,
    AuthError,
    PermanentError,
    RateLimited,
    TransientError,
)
from socialbot.models import Post
from socialbot.sandbox import Fault, SandboxServer
from socialbot.sandbox.bluesky import BlueskySandbox
from socialbot.store import SQLiteStore
from tests.helpers import run, write_release

LINK = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
TEXT = f"Regions call for a stronger #CohesionPolicy after 2027 – café ☕ {LINK}"
TID = re.compile(r"[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}")
GET_RECORD = r"/xrpc/com\.atproto\.repo\.getRecord"


def pds(sandbox: SandboxServer) -> BlueskySandbox:
    net = sandbox.networks["bluesky"]
    assert isinstance(net, BlueskySandbox)
    return net


def make_adapter(
    sandbox: SandboxServer,
    state: State | None,
    *,
    timeout: float = 5.0,
    base_url: str | None = None,
    **changes: str,
) -> BlueskyAdapter:
    credentials = {**pds(sandbox).credentials, **changes}
    base = pds(sandbox).base_url
    return BlueskyAdapter(
        handle=credentials["handle"],
        app_password=credentials["app_password"],
        base_url=base_url or base,
        web_url=base,
        state=state,
        timeout=timeout,
    )


def post(text: str = TEXT, language: str = "en", **changes: Any) -> Post:
    fields: dict[str, Any] = {
        "network": "bluesky",
        "text": text,
        "link": LINK,
        "length": len(text),
        "limit": 300,
        "language": language,
        "title": "Regions call for a stronger cohesion policy after 2027",
        "description": "The plenary adopted an opinion on the future of cohesion policy.",
        "facets": tuple(bluesky_facets(text)),
        **changes,
    }
    return Post(**fields)


@pytest.fixture
def adapter(sandbox: SandboxServer) -> Iterator[BlueskyAdapter]:
    made = make_adapter(sandbox, MemoryState())
    yield made
    made.close()


def calls(sandbox: SandboxServer) -> list[str]:
    """The XRPC methods the sandbox was asked for, in order."""
    return [r["path"].removeprefix("/xrpc/") for r in sandbox.requests if r["network"] == "bluesky"]


def sent_bodies(sandbox: SandboxServer, method: str) -> list[dict[str, Any]]:
    return [
        json.loads(r["body"])
        for r in sandbox.requests
        if r["network"] == "bluesky" and r["path"] == f"/xrpc/{method}"
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- record keys and posting -----------------------------------------------------------------


def test_record_key_is_a_stable_tid_per_delivery():
    keys = [record_key(f"{n:032x}") for n in range(2000)]
    assert all(TID.fullmatch(k) for k in keys)
    assert len(set(keys)) == len(keys)
    assert record_key("5f1c0a") == record_key("5f1c0a")


def test_publish_creates_the_post_record_with_language_facets_and_link_card(
    adapter: BlueskyAdapter, sandbox: SandboxServer
):
    receipt = adapter.publish(post(), key="d1")

    [stored] = sandbox.posts("bluesky")
    rkey = record_key("d1")
    did = pds(sandbox).did
    assert receipt.remote_id == f"at://{did}/app.bsky.feed.post/{rkey}" == stored["uri"]
    assert receipt.url == f"{sandbox.url}/bluesky/profile/cor-sandbox.bsky.social/post/{rkey}"
    page = httpx.get(receipt.url)
    assert page.status_code == 200 and "CohesionPolicy" in page.text

    [create] = [r for r in sandbox.requests if r["path"].endswith("createRecord")]
    assert create["method"] == "POST"
    assert create["headers"]["Authorization"].startswith("Bearer ey")
    assert pds(sandbox).credentials["app_password"] not in json.dumps(create)
    body = json.loads(create["body"])
    assert (body["repo"], body["collection"], body["rkey"]) == (did, "app.bsky.feed.post", rkey)
    record = body["record"]
    assert record["$type"] == "app.bsky.feed.post"
    assert record["text"] == TEXT
    assert record["langs"] == ["en"]
    assert datetime.fromisoformat(record["createdAt"].replace("Z", "+00:00")) <= datetime.now(UTC)
    data = TEXT.encode()
    covered = {
        data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in record["facets"]
    }
    assert covered == {"#CohesionPolicy", LINK}
    assert record["embed"] == {
        "$type": "app.bsky.embed.external",
        "external": {
            "uri": LINK,
            "title": "Regions call for a stronger cohesion policy after 2027",
            "description": "The plenary adopted an opinion on the future of cohesion policy.",
        },
    }
    assert stored["langs"] == ["en"] and stored["embed"] == record["embed"]


def test_check_names_the_account_without_posting(adapter: BlueskyAdapter, sandbox: SandboxServer):
    assert adapter.check() == f"@cor-sandbox.bsky.social ({pds(sandbox).did})"
    assert calls(sandbox) == ["com.atproto.server.createSession", "com.atproto.server.getSession"]
    assert sandbox.posts() == []


def test_find_looks_through_the_accounts_own_posts(adapter: BlueskyAdapter):
    before = datetime.now(UTC)
    receipts = [adapter.publish(post(f"Post {n} {LINK}"), key=f"k{n}") for n in range(3)]

    assert adapter.find(f"Post 1 {LINK}", before) == receipts[1]
    assert adapter.find(f"Post 9 {LINK}", before) is None
    assert adapter.find(f"Post 1 {LINK}", before + timedelta(hours=1)) is None


# -- the session ------------------------------------------------------------------------------


def test_the_session_is_kept_sealed_in_the_store_and_reused(sandbox: SandboxServer):
    state = MemoryState()  # what the store's key-value area is to the adapter
    first = make_adapter(sandbox, state)
    first.publish(post(f"One {LINK}"), key="a")
    first.close()
    second = make_adapter(sandbox, state)
    second.publish(post(f"Two {LINK}"), key="b")
    second.check()
    second.close()

    assert pds(sandbox).logins == 1
    assert calls(sandbox).count("com.atproto.server.createSession") == 1
    sealed = state.get_value(SESSION_KEY)
    assert sealed is not None and '"' not in sealed  # a Fernet token, never plain JSON
    saved = second.sessions.load()
    assert saved is not None and saved.did == pds(sandbox).did
    for secret in (pds(sandbox).credentials["app_password"], saved.access_jwt, saved.refresh_jwt):
        assert secret not in sealed
    for token in (saved.access_jwt, saved.refresh_jwt):
        assert logs.redact(f"token {token}") == f"token {logs.MASK}"
    assert set(second.secret_values()) == {saved.access_jwt, saved.refresh_jwt}


def test_the_sealing_key_is_derived_while_the_login_is_in_flight(sandbox: SandboxServer):
    """Loading cryptography for the session's seal overlaps the login's round trip."""
    real = httpx.HTTPTransport()
    seen: list[bool] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("createSession"):
            deriving = vars(bsky.sessions).get("_deriving")
            seen.append(deriving is not None)
            if deriving is not None:
                deriving.result(timeout=30)  # done before the login's answer is read
        answer = real.handle_request(
            httpx.Request(
                request.method, request.url, headers=request.headers, content=request.read()
            )
        )
        answer.read()
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    credentials = pds(sandbox).credentials
    bsky = BlueskyAdapter(
        handle=credentials["handle"],
        app_password=credentials["app_password"],
        base_url=pds(sandbox).base_url,
        web_url=pds(sandbox).base_url,
        state=MemoryState(),  # a store's state: the session is sealed
        transport=httpx.MockTransport(handler),
    )
    try:
        bsky.publish(post(), key="k")
    finally:
        bsky.close()
        real.close()

    assert seen == [True]
    sealed = bsky.state.get_value("bluesky.session")
    assert sealed is not None and '"' not in sealed  # a Fernet token, never plain JSON


def test_a_session_of_another_account_or_server_is_not_reused(sandbox: SandboxServer):
    state = MemoryState()
    first = make_adapter(sandbox, state)
    first.check()
    first.close()
    session = first.sessions.load()
    assert session is not None
    base = pds(sandbox).base_url
    handle = pds(sandbox).credentials["handle"]
    # Unsealed, so that only the account and the server it belongs to can tell them apart.
    kept = MemoryState()
    Sessions(kept, base, handle).save(session)
    assert Sessions(kept, base, handle).load() == session
    assert Sessions(kept, base, "someone-else.bsky.social").load() is None
    assert Sessions(kept, "https://pds.example", handle).load() is None

    second = make_adapter(sandbox, state, handle="someone-else.bsky.social")
    with pytest.raises(AuthError):
        second.check()  # the sandbox knows no such account: it logged in, not reused
    second.close()
    assert pds(sandbox).logins == 1
    assert calls(sandbox).count("com.atproto.server.createSession") == 2


def test_expired_access_token_is_refreshed_and_the_post_sent_once(
    adapter: BlueskyAdapter, sandbox: SandboxServer
):
    pds(sandbox).access_lifetime = 0.3
    adapter.check()
    old = adapter.sessions.load()
    time.sleep(0.4)
    pds(sandbox).access_lifetime = 3600

    adapter.publish(post(), key="d1")

    assert calls(sandbox)[2:] == [
        "com.atproto.repo.createRecord",
        "com.atproto.server.refreshSession",
        "com.atproto.repo.createRecord",
    ]
    assert (pds(sandbox).logins, pds(sandbox).refreshes) == (1, 1)
    assert len(sandbox.posts("bluesky")) == 1
    new = adapter.sessions.load()
    assert old is not None and new is not None
    assert new.access_jwt != old.access_jwt and new.refresh_jwt != old.refresh_jwt


def test_refused_refresh_token_means_logging_in_again(
    adapter: BlueskyAdapter, sandbox: SandboxServer
):
    pds(sandbox).access_lifetime = pds(sandbox).refresh_lifetime = 0.3
    adapter.check()
    time.sleep(0.4)
    pds(sandbox).access_lifetime = pds(sandbox).refresh_lifetime = 3600

    adapter.publish(post(), key="d1")

    assert calls(sandbox)[2:] == [
        "com.atproto.repo.createRecord",
        "com.atproto.server.refreshSession",
        "com.atproto.server.createSession",
        "com.atproto.repo.createRecord",
    ]
    assert pds(sandbox).logins == 2
    assert len(sandbox.posts("bluesky")) == 1


def test_a_session_refused_twice_is_an_auth_error(adapter: BlueskyAdapter, sandbox: SandboxServer):
    sandbox.inject("bluesky", Fault(status=401, times=2))
    with pytest.raises(AuthError, match="AuthenticationRequired"):
        adapter.publish(post(), key="d1")
    assert sandbox.posts() == []


def test_a_wrong_app_password_is_an_auth_error_asked_once(sandbox: SandboxServer):
    state = MemoryState()
    adapter = make_adapter(sandbox, state, app_password="wrong-pass-word-1234")
    with pytest.raises(AuthError) as caught:
        adapter.publish(post(), key="d1")
    assert caught.value.status_code == 401
    assert "Invalid identifier or password" in str(caught.value)
    assert "wrong-pass-word-1234" not in str(caught.value)
    with pytest.raises(AuthError):
        adapter.check()
    adapter.close()
    assert calls(sandbox) == ["com.atproto.server.createSession"]
    assert state.get_value(SESSION_KEY) is None


def test_logins_are_rate_limited_as_the_pds_does(sandbox: SandboxServer):
    for _ in range(30):
        fresh = make_adapter(sandbox, None)
        fresh.check()
        fresh.close()
    limited = make_adapter(sandbox, None)
    with pytest.raises(RateLimited) as caught:
        limited.check()
    limited.close()

    seconds = (caught.value.retry_at - datetime.now(UTC)).total_seconds()
    assert 250 < seconds <= 301
    assert caught.value.status_code == 429 and caught.value.api_code == "RateLimitExceeded"
    answer = httpx.post(
        f"{pds(sandbox).base_url}/xrpc/com.atproto.server.createSession",
        json={"identifier": "cor-sandbox.bsky.social", "password": "x"},
    )
    assert answer.status_code == 429
    assert answer.headers["RateLimit-Policy"] == "30;w=300"
    assert answer.headers["RateLimit-Remaining"] == "0"


# -- validation -------------------------------------------------------------------------------


def test_too_long_texts_are_refused_before_sending(adapter: BlueskyAdapter, sandbox: SandboxServer):
    family = "👨\u200d👩\u200d👧\u200d👦"  # one grapheme, 25 bytes
    with pytest.raises(PermanentError, match="301 graphemes"):
        adapter.publish(post("a" * 301, facets=()), key="d1")
    with pytest.raises(PermanentError, match="3025 bytes"):
        adapter.publish(post(family * 121, facets=()), key="d2")
    assert "com.atproto.repo.createRecord" not in calls(sandbox)


def test_facets_off_the_link_bytes_are_rejected_by_the_pds(
    adapter: BlueskyAdapter, sandbox: SandboxServer
):
    shifted = tuple(
        {
            **f,
            "index": {
                "byteStart": f["index"]["byteStart"] - 1,
                "byteEnd": f["index"]["byteEnd"] - 1,
            },
        }
        for f in bluesky_facets(TEXT)
    )
    with pytest.raises(PermanentError, match="InvalidRequest") as caught:
        adapter.publish(post(facets=shifted), key="d1")
    assert caught.value.status_code == 400
    assert sandbox.posts() == []


def session_token(sandbox: SandboxServer) -> str:
    credentials = pds(sandbox).credentials
    answer = httpx.post(
        f"{pds(sandbox).base_url}/xrpc/com.atproto.server.createSession",
        json={"identifier": credentials["handle"], "password": credentials["app_password"]},
    )
    token: str = answer.json()["accessJwt"]
    return token


def good_record(text: str = TEXT) -> dict[str, Any]:
    return {
        "$type": "app.bsky.feed.post",
        "text": text,
        "createdAt": "2026-11-26T09:00:00.000Z",
        "langs": ["en"],
        "facets": bluesky_facets(text),
    }


def shift(facets: list[dict[str, Any]], by: int) -> list[dict[str, Any]]:
    return [{**f, "index": {k: v + by for k, v in f["index"].items()}} for f in facets]


BAD_RECORDS: dict[str, tuple[dict[str, Any], str]] = {
    "301 graphemes": ({"text": "é" * 301, "facets": []}, "longer than 300 graphemes"),
    "3001 bytes": ({"text": "€" * 100 + "a" * 2701, "facets": []}, "longer than 3000 characters"),
    "four languages": ({"langs": ["en", "fr", "de", "bg"]}, "more than 3 elements"),
    "bad language": ({"langs": ["english language"]}, "BCP-47"),
    "no createdAt": ({"createdAt": None}, "valid atproto datetime"),
    "no time zone": ({"createdAt": "2026-11-26T09:00:00"}, "valid atproto datetime"),
    "facet past the end": (
        {
            "facets": [
                {
                    "index": {"byteStart": 60, "byteEnd": 999},
                    "features": [{"$type": "app.bsky.richtext.facet#link", "uri": LINK}],
                }
            ]
        },
        "not a range",
    ),
    "facets one byte early": ({"facets": shift(bluesky_facets(TEXT), -1)}, "covers"),
    "tag facet without #": (
        {
            "facets": [
                {**f, "index": {**f["index"], "byteStart": f["index"]["byteStart"] + 1}}
                for f in bluesky_facets(TEXT)
                if f["features"][0]["$type"].endswith("#tag")
            ]
        },
        "not its tag",
    ),
    "wrong type": ({"$type": "app.bsky.feed.like"}, "Invalid $type"),
    "card without title": (
        {
            "embed": {
                "$type": "app.bsky.embed.external",
                "external": {"uri": LINK, "description": "d"},
            }
        },
        '"title"',
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_the_sandbox_enforces_the_post_lexicon(sandbox: SandboxServer, case: str):
    changes, message = BAD_RECORDS[case]
    record = {k: v for k, v in {**good_record(), **changes}.items() if v is not None}
    answer = httpx.post(
        f"{pds(sandbox).base_url}/xrpc/com.atproto.repo.createRecord",
        json={"repo": pds(sandbox).did, "collection": "app.bsky.feed.post", "record": record},
        headers={"Authorization": f"Bearer {session_token(sandbox)}"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "InvalidRequest"
    assert message in answer.json()["message"]
    assert sandbox.posts() == []


def test_the_sandbox_takes_a_valid_record_and_reports_write_limits(sandbox: SandboxServer):
    url = f"{pds(sandbox).base_url}/xrpc/com.atproto.repo.createRecord"
    headers = {"Authorization": f"Bearer {session_token(sandbox)}"}
    body = {"repo": pds(sandbox).did, "collection": "app.bsky.feed.post", "record": good_record()}

    answer = httpx.post(url, json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["uri"].startswith(f"at://{pds(sandbox).did}/app.bsky.feed.post/")
    assert answer.json()["cid"].startswith("bafyrei")
    assert answer.headers["RateLimit-Limit"] == "5000"
    assert answer.headers["RateLimit-Remaining"] == "4997"
    assert answer.headers["RateLimit-Policy"] == "5000;w=3600"

    not_a_tid = httpx.post(url, json={**body, "rkey": "my-post"}, headers=headers)
    assert not_a_tid.status_code == 400 and "TID" in not_a_tid.json()["message"]
    unsigned = httpx.post(url, json=body, headers={"Authorization": "Bearer e30.e30.e30"})
    assert unsigned.json() == {"error": "InvalidToken", "message": "Token could not be verified"}
    anonymous = httpx.post(url, json=body)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "AuthMissing"
    assert len(sandbox.posts()) == 1


# -- errors at the boundary -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("native", 30),
        ("retry-after-seconds", 30),
        ("retry-after-date", 30),
        ("past-date", 0),
        ("none", 300),
    ],
)
def test_rate_limited_create_says_when_to_come_back(
    adapter: BlueskyAdapter, sandbox: SandboxServer, hint: str, expected: int
):
    sandbox.inject("bluesky", Fault(status=429, retry_after=30, hint=hint))  # type: ignore[arg-type]
    with pytest.raises(RateLimited) as caught:
        adapter.publish(post(), key="d1")
    seconds = (caught.value.retry_at - datetime.now(UTC)).total_seconds()
    assert expected - 2 <= seconds <= expected + 1
    assert sandbox.posts() == []


def test_a_server_error_on_create_with_nothing_stored_is_ambiguous_and_safe_to_resend(
    adapter: BlueskyAdapter, sandbox: SandboxServer
):
    sandbox.inject("bluesky", Fault(status=502))
    with pytest.raises(AmbiguousError, match="UpstreamFailure") as caught:
        adapter.publish(post(), key="d1")
    assert caught.value.status_code == 502
    assert "com.atproto.repo.getRecord" in calls(sandbox)
    assert sandbox.posts() == []

    adapter.publish(post(), key="d1")
    assert len(sandbox.posts("bluesky")) == 1


def test_a_server_error_on_a_read_is_transient(adapter: BlueskyAdapter, sandbox: SandboxServer):
    sandbox.inject(
        "bluesky",
        Fault(status=503, path=r"/xrpc/com\.atproto\.server\.getSession", method="GET"),
    )
    with pytest.raises(TransientError, match="NotEnoughResources"):
        adapter.check()


def test_a_refused_connection_is_transient(sandbox: SandboxServer):
    adapter = make_adapter(sandbox, MemoryState(), base_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientError, match="could not connect"):
        adapter.publish(post(), key="d1")
    with pytest.raises(TransientError):
        adapter.check()
    adapter.close()


@pytest.mark.parametrize("kind", ["accept-then-reset", "accept-then-hang"])
def test_a_lost_answer_is_settled_by_the_record_key(sandbox: SandboxServer, kind: str):
    adapter = make_adapter(sandbox, MemoryState(), timeout=0.5)
    adapter.check()
    sandbox.inject("bluesky", Fault(kind=kind, delay=1.5))  # type: ignore[arg-type]

    receipt = adapter.publish(post(), key="d1")
    adapter.close()

    [stored] = sandbox.posts("bluesky")
    assert receipt.remote_id == stored["uri"]
    assert calls(sandbox)[-1] == "com.atproto.repo.getRecord"


def test_a_lost_answer_that_cannot_be_checked_is_ambiguous(
    adapter: BlueskyAdapter, sandbox: SandboxServer
):
    sandbox.inject("bluesky", Fault(kind="accept-then-reset"))
    sandbox.inject("bluesky", Fault(status=503, path=GET_RECORD, method="GET"))
    with pytest.raises(AmbiguousError, match="may exist"):
        adapter.publish(post(), key="d1")
    assert len(sandbox.posts("bluesky")) == 1


def test_a_hang_before_processing_is_ambiguous(sandbox: SandboxServer):
    adapter = make_adapter(sandbox, MemoryState(), timeout=0.5)
    adapter.check()
    sandbox.inject("bluesky", Fault(kind="hang", delay=1.5))
    with pytest.raises(AmbiguousError, match="nothing is under its record key"):
        adapter.publish(post(), key="d1")
    adapter.close()
    assert sandbox.posts() == []


@pytest.mark.parametrize("answer", ["internal-error", "invalid-request"])
def test_a_resend_with_the_same_key_never_posts_twice(
    adapter: BlueskyAdapter, sandbox: SandboxServer, answer: str
):
    pds(sandbox).duplicate_answer = answer  # type: ignore[assignment]
    first = adapter.publish(post(), key="d1")
    again = adapter.publish(post(), key="d1")
    other = adapter.publish(post(), key="d2")

    assert again == first != other
    assert len(sandbox.posts("bluesky")) == 2
    expected = 500 if answer == "internal-error" else 400
    assert calls(sandbox).count("com.atproto.repo.getRecord") == 1  # the resend looked it up
    probe = httpx.post(
        f"{pds(sandbox).base_url}/xrpc/com.atproto.repo.createRecord",
        json={
            "repo": pds(sandbox).did,
            "collection": "app.bsky.feed.post",
            "rkey": record_key("d1"),
            "record": good_record(),
        },
        headers={"Authorization": f"Bearer {session_token(sandbox)}"},
    )
    assert probe.status_code == expected


# -- settings and the whole pipeline ----------------------------------------------------------


def test_from_settings_keeps_the_session_in_the_state_it_is_given(
    workdir: Path, sandbox: SandboxServer
):
    settings = Settings(
        database_url=f"sqlite:///{workdir / 'state' / 'bot.db'}",
        bluesky={
            "handle": "cor-sandbox.bsky.social",
            "app_password": pds(sandbox).credentials["app_password"],
            "base_url": pds(sandbox).base_url,
            "web_url": "https://bsky.app",
        },
        request_timeout_seconds=7,
    )
    store = SQLiteStore(str(workdir / "state" / "bot.db"))
    adapter = BlueskyAdapter.from_settings(settings, state=store)
    try:
        assert adapter.state is store
        assert adapter.http.timeout.read == 7
        assert adapter.post_url("3l2blrlakvt5l") == (
            "https://bsky.app/profile/cor-sandbox.bsky.social/post/3l2blrlakvt5l"
        )
        adapter.check()
        assert store.get_value(SESSION_KEY) is not None
    finally:
        adapter.close()
        store.close()
    assert sorted(p.name for p in (workdir / "state").iterdir() if "bluesky" in p.name) == []
    in_memory = BlueskyAdapter.from_settings(settings)
    assert isinstance(in_memory.state, MemoryState)
    in_memory.close()


def test_drain_posts_each_release_once_to_bluesky(env: Path, sandbox: SandboxServer):
    for name in ("r1.json", "r2.json"):
        write_release(
            env / "queue",
            name,
            id=name.removesuffix(".json"),
            title=f"Regions back #CohesionPolicy ({name})",
            summary="The plenary adopted its opinion on cohesion after 2027.",
            language="fr",
            networks=["bluesky"],
        )
        assert run("approve", f"queue/{name}", "--by", "Ana").exit_code == 0

    first = run("drain")
    assert first.exit_code == 0, first.output
    second = run("drain")
    assert second.exit_code == 0, second.output

    posts = sandbox.posts("bluesky")
    assert len(posts) == 2
    assert pds(sandbox).logins == 1
    for stored in posts:
        assert stored["langs"] == ["fr"]
        assert (
            stored["embed"]["external"]["uri"]
            == "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
        )
        assert {f["features"][0]["$type"] for f in stored["facets"]} == {
            "app.bsky.richtext.facet#tag",
            "app.bsky.richtext.facet#link",
        }
    rows = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert {(r["network"], r["status"]) for r in rows} == {("bluesky", "posted")}
    assert {r["url"] for r in rows} == {p["url"] for p in posts}
    # The session lives in the store, sealed with a key derived from the app password:
    # no usable token is in the database, and no file lies beside it.
    assert not (env / "socialbot.db.bluesky-session.json").exists()
    store = SQLiteStore(str(env / "socialbot.db"))
    try:
        sealed = store.get_value("bluesky.session")
    finally:
        store.close()
    assert sealed is not None and '"' not in sealed  # a Fernet token, never plain JSON
    credentials = pds(sandbox).credentials
    key = _fernet(credentials["app_password"], credentials["handle"].lower())
    session = json.loads(key.decrypt(sealed.encode()))
    database = b"".join(p.read_bytes() for p in env.iterdir() if p.name.startswith("socialbot.db"))
    for token in (session["access_jwt"], session["refresh_jwt"]):
        assert token.encode() not in database


def test_networks_checks_the_bluesky_session(env: Path, sandbox: SandboxServer):
    result = run("networks")
    [line] = [line for line in result.output.splitlines() if line.startswith("bluesky")]
    assert "credentials accepted (@cor-sandbox.bsky.social" in line
    assert sandbox.posts("bluesky") == []


def test_drain_resends_after_a_server_error_without_posting_twice(
    env: Path, sandbox: SandboxServer
):
    write_release(env / "queue", "r1.json", networks=["bluesky"])
    assert run("approve", "queue/r1.json", "--by", "Ana").exit_code == 0
    sandbox.inject("bluesky", Fault(kind="accept-then-reset"))
    sandbox.inject("bluesky", Fault(status=500, path=GET_RECORD, method="GET"))

    result = run("drain")

    assert result.exit_code == 0, result.output
    [stored] = sandbox.posts("bluesky")
    [row] = [json.loads(line) for line in run("log", "--json").output.splitlines()]
    assert (row["status"], row["url"]) == ("posted", stored["url"])

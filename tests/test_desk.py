"""The desk's handlers and forms, through Starlette's test client (no browser).

Every security point has a test here that fails when its protection is removed: CSRF,
authorization per role (an author crafting an approve POST included), four eyes, escaping,
the CSP, a disabled user's session, sign-in throttling, the trusted proxy header, and no
network credential in any page.
"""

from __future__ import annotations

import csv
import html
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from socialbot import operations
from socialbot.config import Settings, load_settings
from socialbot.desk.app import CSP, create_app
from socialbot.desk.users import Role, User, Users
from socialbot.models import DeliveryStatus, Receipt
from socialbot.sandbox import SandboxServer
from socialbot.store import SQLiteStore, Store, utcnow

SECRET = "a-test-secret-key-that-is-long-enough"
PASSWORD = "correct horse battery"
XSS_TITLES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def make_settings(workdir: Path, **overrides: Any) -> Settings:
    desk = {"secret_key": SECRET, **overrides.pop("desk", {})}
    return load_settings(desk=desk, **overrides)


@pytest.fixture
def store(workdir: Path) -> Iterator[Store]:
    opened = SQLiteStore(str(workdir / "socialbot.db"))
    yield opened
    opened.close()


# Cheap hashes keep the suite fast; the desk's own default is argon2id's recommended cost.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def add_users(store: Store) -> None:
    users = Users(store, FAST)
    for name, role in (
        ("alice", Role.AUTHOR),
        ("bob", Role.APPROVER),
        ("carol", Role.APPROVER),
        ("olga", Role.OPERATOR),
        ("ada", Role.ADMIN),
    ):
        users.add(name, role, PASSWORD)


def user(store: Store, name: str) -> User:
    found = Users(store).get(name)
    assert found is not None
    return found


class Browser:
    """A test client that signs in and sends forms with the page's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def token(self, path: str = "/sign-in") -> str:
        page = self.client.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found, f"no CSRF token on {path}"
        return found[1]

    def sign_in(self, name: str, password: str = PASSWORD) -> Any:
        return self.client.post(
            "/sign-in",
            data={"name": name, "password": password, "csrf": self.token()},
            follow_redirects=False,
        )

    def post(self, path: str, data: dict[str, Any], page: str = "/inbox") -> Any:
        return self.client.post(
            path, data={**data, "csrf": self.token(page)}, follow_redirects=False
        )


@pytest.fixture
def desk(workdir: Path, store: Store) -> Iterator[tuple[Settings, Store, Any]]:
    settings = make_settings(workdir)
    add_users(store)
    yield settings, store, create_app(settings, store, users=Users(store, FAST))


def browser(app: Any, name: str | None = None) -> Browser:
    b = Browser(TestClient(app, base_url="http://testserver"))
    if name:
        assert b.sign_in(name).status_code == 303
    return b


def add_release(
    store: Store, release_id: str = "r1", *, submit: bool = True, **fields: Any
) -> None:
    """A release written in the desk, submitted for approval unless ``submit`` is False."""
    data = {
        "id": release_id,
        "title": "Regions call for a stronger cohesion policy",
        "url": "https://example.eu/press/r1",
        "language": "en",
        "summary": "The Committee adopted its opinion on cohesion policy after 2027.",
        "networks": ["mastodon", "bluesky"],
    }
    author = fields.pop("author", "alice")
    data.update(fields)
    operations.create_release(store, data, author=author)
    if submit:
        operations.submit(store, release_id, by=author)


# -- signing in ----------------------------------------------------------------------------


def test_pages_need_a_sign_in(desk):
    _, _, app = desk
    client = TestClient(app)
    for path in ("/inbox", "/calendar", "/log", "/users", "/releases/new"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/sign-in?next=")


def test_sign_in_sets_a_hardened_cookie_and_rotates_the_session(desk):
    _, _, app = desk
    b = browser(app)
    before = b.token()
    response = b.sign_in("alice")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain HTTP, not told it is behind HTTPS
    after = b.token("/inbox")
    assert after != before, "the CSRF token (and the session) must change at sign-in"


def test_the_cookie_is_secure_behind_https(workdir, store):
    add_users(store)
    app = create_app(
        make_settings(workdir, desk={"behind_https": True}), store, users=Users(store, FAST)
    )
    response = browser(app).sign_in("alice")
    assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_is_refused_and_sign_in_is_throttled_per_account(desk):
    _, _, app = desk
    b = browser(app)
    for _ in range(5):
        assert b.sign_in("alice", "wrong password!").status_code == 401
    refused = b.sign_in("alice")  # the right password, but the account waits now
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert browser(app).sign_in("bob").status_code == 303  # another account is not locked


def test_sign_in_is_throttled_per_address(workdir, store):
    add_users(store)
    app = create_app(
        make_settings(workdir, desk={"sign_in_attempts_per_address": 3}),
        store,
        users=Users(store, FAST),
    )
    b = browser(app)
    for name in ("x1", "x2", "x3"):
        assert b.sign_in(name, "guessing-passwords").status_code == 401
    assert b.sign_in("bob").status_code == 429


def test_one_place_guessing_a_password_does_not_lock_the_person_out_elsewhere(desk):
    _, _, app = desk
    attacker = Browser(TestClient(app, client=("203.0.113.9", 5000)))
    for _ in range(5):
        assert attacker.sign_in("ada", "guessing-passwords").status_code == 401
    assert attacker.sign_in("ada").status_code == 429  # this place waits for ada ...
    admin = Browser(TestClient(app, client=("198.51.100.7", 5000)))
    assert admin.sign_in("ada").status_code == 303  # ... ada herself does not


def test_many_places_guessing_one_password_lock_that_account_everywhere(workdir, store):
    add_users(store)
    settings = make_settings(workdir, desk={"sign_in_attempts_per_account": 8})
    app = create_app(settings, store, users=Users(store, FAST))
    for n in range(8):
        place = Browser(TestClient(app, client=(f"203.0.113.{n}", 5000)))
        assert place.sign_in("ada", "guessing-passwords").status_code == 401
    elsewhere = Browser(TestClient(app, client=("198.51.100.7", 5000)))
    assert elsewhere.sign_in("ada").status_code == 429
    assert elsewhere.sign_in("bob").status_code == 303


def proxied_app(workdir: Path, store: Store, **desk: Any) -> Any:
    add_users(store)
    settings = make_settings(workdir, desk={"trusted_proxies": "10.0.0.0/8", **desk})
    return create_app(settings, store, users=Users(store, FAST))


def test_behind_the_proxy_each_visitor_is_throttled_by_their_own_address(workdir, store):
    app = proxied_app(workdir, store, sign_in_attempts_per_address=3)
    proxy = ("10.0.0.5", 5000)

    def through_proxy(forwarded: str) -> Browser:
        client = TestClient(app, client=proxy, headers={"X-Forwarded-For": forwarded})
        return Browser(client)

    # The attacker forges the leftmost entries; the proxy appends the address it saw.
    for n, name in enumerate(("x1", "x2", "x3")):
        attacker = through_proxy(f"192.0.2.{n}, 203.0.113.9")
        assert attacker.sign_in(name, "guessing-passwords").status_code == 401
    assert through_proxy("192.0.2.77, 203.0.113.9").sign_in("bob").status_code == 429
    # Everyone else behind the same proxy still signs in.
    assert through_proxy("198.51.100.7").sign_in("bob").status_code == 303
    # Another trusted proxy in the chain is skipped, not taken for the visitor.
    assert through_proxy("203.0.113.9, 10.0.0.6").sign_in("bob").status_code == 429


def test_x_forwarded_for_is_ignored_from_anyone_but_a_trusted_proxy(workdir, store):
    app = proxied_app(workdir, store, sign_in_attempts_per_address=3)
    for n, name in enumerate(("x1", "x2", "x3")):
        client = TestClient(
            app, client=("203.0.113.9", 5000), headers={"X-Forwarded-For": f"192.0.2.{n}"}
        )
        assert Browser(client).sign_in(name, "guessing-passwords").status_code == 401
    client = TestClient(
        app, client=("203.0.113.9", 5000), headers={"X-Forwarded-For": "192.0.2.99"}
    )
    assert Browser(client).sign_in("bob").status_code == 429


def test_a_disabled_users_session_stops_working(desk):
    _, store, app = desk
    b = browser(app, "alice")
    assert b.client.get("/inbox").status_code == 200
    Users(store).disable("alice")
    response = b.client.get("/inbox", follow_redirects=False)
    assert response.status_code == 303 and "/sign-in" in response.headers["location"]
    assert b.sign_in("alice").status_code == 401


def test_sign_out_ends_the_session(desk):
    _, _, app = desk
    b = browser(app, "alice")
    cookie = b.client.cookies.get("socialbot_desk")
    assert cookie is not None
    assert b.post("/sign-out", {}).status_code == 303
    replay = TestClient(app, cookies={"socialbot_desk": cookie})
    assert replay.get("/inbox", follow_redirects=False).status_code == 303


def test_a_forged_cookie_is_ignored(desk):
    _, _, app = desk
    client = TestClient(app, cookies={"socialbot_desk": '{"user": "ada"}'})
    assert client.get("/users", follow_redirects=False).status_code == 303


def test_the_desk_refuses_to_start_without_a_secret(workdir, store):
    from socialbot.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="SOCIALBOT_DESK__SECRET_KEY"):
        create_app(load_settings(), store)


# -- the trusted proxy header ----------------------------------------------------------------


def test_the_trusted_header_is_believed_only_from_the_trusted_proxy(workdir, store):
    add_users(store)
    trusting = make_settings(
        workdir, desk={"trusted_header": "X-Remote-User", "trusted_proxies": "127.0.0.0/8"}
    )
    # The test client's address is "testclient"; a proxy on loopback is simulated by
    # giving the client its address.
    app = create_app(trusting, store, users=Users(store, FAST))
    proxy = TestClient(app, client=("127.0.0.1", 5000))
    assert proxy.get("/users", headers={"X-Remote-User": "ada"}).status_code == 200
    assert "ada (admin)" in proxy.get("/inbox", headers={"X-Remote-User": "ada"}).text
    stranger = TestClient(app, client=("203.0.113.9", 5000))
    response = stranger.get("/users", headers={"X-Remote-User": "ada"}, follow_redirects=False)
    assert response.status_code == 303
    Users(store).disable("ada")
    response = proxy.get("/users", headers={"X-Remote-User": "ada"}, follow_redirects=False)
    assert response.status_code == 303


# -- headers, escaping, CSRF -----------------------------------------------------------------


def test_every_response_has_a_strict_csp_and_refuses_framing(desk):
    _, store, app = desk
    add_release(store)
    b = browser(app, "bob")
    for path in ("/sign-in", "/inbox", "/releases/r1", "/calendar", "/log", "/static/desk.css"):
        response = b.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert "frame-ancestors 'none'" in CSP
        assert response.headers["x-frame-options"] == "DENY"
    page = b.client.get("/releases/r1").text
    assert "<script>" not in page.replace('<script src="/static/desk.js" defer></script>', "")
    assert not re.search(r"\son[a-z]+=", page), "no inline event handler"
    assert 'style="' not in page, "no inline style"


def test_a_server_error_carries_the_security_headers_too(desk):
    _, store, app = desk
    bob = browser(app, "bob")
    store.set_value("desk:user:bob", "{not json")  # a damaged record: the next page fails
    client = TestClient(app, raise_server_exceptions=False, cookies=bob.client.cookies)
    response = client.get("/inbox")
    assert response.status_code == 500
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_strict_transport_security_over_https_or_behind_an_https_proxy(workdir, store):
    add_users(store)
    plain = create_app(make_settings(workdir), store, users=Users(store, FAST))
    assert "strict-transport-security" not in TestClient(plain).get("/sign-in").headers
    direct = TestClient(plain, base_url="https://desk.example").get("/sign-in")
    assert direct.headers["strict-transport-security"] == "max-age=31536000"
    proxied = create_app(
        make_settings(workdir, desk={"behind_https": True}), store, users=Users(store, FAST)
    )
    for path in ("/sign-in", "/static/desk.css", "/nowhere"):
        response = TestClient(proxied).get(path)
        assert response.headers["strict-transport-security"] == "max-age=31536000", path


@pytest.mark.parametrize("title", XSS_TITLES)
def test_release_text_is_shown_as_text(desk, title):
    _, store, app = desk
    add_release(store, title=title, summary=title, hashtags=["Cohesion"])
    b = browser(app, "bob")
    for path in ("/inbox", "/releases/r1"):
        page = b.client.get(path).text
        assert title not in page
        assert "&lt;" in page
        assert "<img src=x" not in page and "<script>alert" not in page


def test_only_http_links_are_links(desk):
    _, store, app = desk
    add_release(store, author="carol")
    operations.approve(load_settings(), store, "r1", by="bob")
    # An address that reached the store by another way than the desk's checks (a network's
    # answer, an older version) is shown as text, never as a link.
    delivery = store.get("r1", "mastodon")
    assert delivery is not None
    store.transition(delivery, DeliveryStatus.FAILED, delivery.updated_at, error="x")
    assert store.resolve("r1", "mastodon", delivery.updated_at, url="javascript:alert(1)")
    for path in ("/log", "/releases/r1"):
        page = browser(app, "olga").client.get(path).text
        assert "javascript:alert(1)" in page
        assert 'href="javascript:' not in page
        hrefs = re.findall(r'href="([^"]+)"', page)
        assert hrefs and all(h.startswith(("/", "#", "http://", "https://")) for h in hrefs)


def test_a_post_without_the_csrf_token_changes_nothing(desk):
    _, store, app = desk
    add_release(store)
    b = browser(app, "bob")
    for token in (None, "forged"):
        data = {"comment": "ok"} if token is None else {"comment": "ok", "csrf": token}
        response = b.client.post("/releases/r1/approve", data=data, follow_redirects=False)
        assert response.status_code == 403
    assert store.approvals("r1") == []
    assert b.post("/releases/r1/approve", {"comment": "ok"}).status_code == 303
    assert len(store.approvals("r1")) == 1


def test_sign_in_itself_needs_the_csrf_token(desk):
    _, _, app = desk
    client = TestClient(app)
    response = client.post("/sign-in", data={"name": "alice", "password": PASSWORD})
    assert response.status_code == 403


def test_state_changes_only_by_post(desk):
    _, store, app = desk
    add_release(store)
    b = browser(app, "olga")
    for path in ("/releases/r1/approve", "/pause", "/log/retry", "/users/add", "/sign-out"):
        assert b.client.get(path, follow_redirects=False).status_code in (404, 405), path


# -- roles -------------------------------------------------------------------------------------


def test_an_author_cannot_approve_by_crafting_the_post(desk):
    _, store, app = desk
    add_release(store, author="bob")
    b = browser(app, "alice")
    page = b.client.get("/releases/r1").text
    assert "Approve these posts" not in page
    response = b.post("/releases/r1/approve", {"comment": "sneaky"})
    assert response.status_code == 403
    assert store.approvals("r1") == []
    assert b.post("/releases/r1/reject", {"comment": "no"}).status_code == 403


@pytest.mark.parametrize(
    ("name", "path", "data"),
    [
        ("alice", "/pause", {"reason": "x"}),
        ("alice", "/log/retry", {"release": "r1", "network": "mastodon"}),
        ("bob", "/releases/r1/withdraw", {"reason": "x"}),
        ("bob", "/releases/r1/retract", {"reason": "x"}),
        ("bob", "/users/add", {"name": "eve", "role": "admin", "password": PASSWORD}),
        ("olga", "/releases/r1/approve", {}),
        ("olga", "/releases/r1/edit", {"title": "changed"}),
        ("olga", "/users/role", {"name": "olga", "role": "admin"}),
        ("ada", "/releases/r1/approve", {}),
        ("ada", "/resume", {}),
    ],
)
def test_every_role_is_refused_what_it_may_not_do(desk, name, path, data):
    _, store, app = desk
    add_release(store, author="carol")
    assert browser(app, name).post(path, data).status_code == 403
    assert store.approvals("r1") == [] and store.pauses() == {}
    assert Users(store).get("eve") is None and user(store, "olga").role is Role.OPERATOR
    assert len(store.revisions("r1")) == 1


def test_an_approver_never_approves_a_revision_they_wrote(desk):
    _, store, app = desk
    add_release(store, author="bob")
    b = browser(app, "bob")
    assert "You wrote this revision" in b.client.get("/releases/r1").text
    b.post("/releases/r1/approve", {"comment": "mine"})
    assert store.approvals("r1") == []
    assert "someone else must approve it" in b.client.get("/releases/r1").text


def test_four_eyes_shows_who_approved_and_who_still_must(workdir, store):
    add_users(store)
    settings = make_settings(workdir, approvals_required=2)
    app = create_app(settings, store, users=Users(store, FAST))
    add_release(store)
    bob = browser(app, "bob")
    assert bob.post("/releases/r1/approve", {"comment": "fine"}).status_code == 303
    page = bob.client.get("/releases/r1").text
    assert "1 of 2 approvals" in page and "approved by bob" in page
    assert "Still needed: 1 more approver, other than alice (the author) and bob" in page
    assert store.deliveries(release_id="r1") == []
    browser(app, "carol").post("/releases/r1/approve", {"comment": "also fine"})
    page = bob.client.get("/releases/r1").text
    assert "2 of 2 approvals" in page
    assert {d.network for d in store.deliveries(release_id="r1")} == {"mastodon", "bluesky"}


# -- the author's work -------------------------------------------------------------------------


def edit_form(**changes: Any) -> dict[str, Any]:
    form = {
        "title": "Regions call for a stronger cohesion policy",
        "url": "https://example.eu/press/r1",
        "language": "en",
        "summary": "The Committee adopted its opinion.",
        "body": "",
        "hashtags": "CohesionPolicy",
        "topics": "",
        "networks": ["mastodon", "bluesky"],
        "not_before": "",
    }
    form.update(changes)
    return form


def test_an_author_creates_edits_and_submits(desk):
    _, store, app = desk
    alice = browser(app, "alice")
    response = alice.post("/releases/new", {**edit_form(), "id": "r2"}, page="/releases/new")
    assert response.status_code == 303 and response.headers["location"] == "/releases/r2"
    item = operations.release_item(load_settings(), store, "r2")
    assert item.stage is operations.ReleaseStage.DRAFT
    assert item.revision.author == "alice" and item.revision.source == "desk"
    response = alice.post(
        "/releases/r2/edit",
        {
            **edit_form(title="A better title", not_before="2031-03-02T09:30"),
            "revision": "1",
            "submit": "1",
        },
        page="/releases/r2",
    )
    assert response.status_code == 303
    revision = store.latest_revisions(["r2"])["r2"]
    assert revision.number == 2 and revision.release.title == "A better title"
    # 09:30 in Brussels in March (CET, UTC+1) is 08:30 UTC.
    assert revision.release.not_before.isoformat() == "2031-03-02T08:30:00+00:00"
    item = operations.release_item(load_settings(), store, "r2")
    assert item.stage is operations.ReleaseStage.AWAITING
    page = alice.client.get("/releases/r2").text
    assert 'value="2031-03-02T09:30"' in page
    assert "+title" in page.replace("&#34;", '"') or "title:" in page


def test_hashtags_round_trip_through_the_edit_form(desk):
    _, store, app = desk
    add_release(store, hashtags=["Cohesion policy", "EU"], not_before="2031-03-02T08:30:15Z")
    alice = browser(app, "alice")
    page = alice.client.get("/releases/r1").text
    shown = re.search(r'<textarea id="e-hashtags" name="hashtags"[^>]*>([^<]*)</textarea>', page)
    assert shown and shown[1] == "Cohesion policy\nEU"
    # What a browser sends back: the form as shown (CRLF line ends), only the title changed.
    form = {
        **edit_form(title="Only the title changed", hashtags=shown[1].replace("\n", "\r\n")),
        "not_before": "2031-03-02T09:30",
        "revision": "1",
    }
    assert alice.post("/releases/r1/edit", form, "/releases/r1").status_code == 303
    saved = store.latest_revisions(["r1"])["r1"].release
    assert saved.title == "Only the title changed"
    assert saved.hashtags == ["Cohesion policy", "EU"]
    assert saved.not_before.isoformat() == "2031-03-02T08:30:15+00:00"  # seconds kept
    form = {**form, "hashtags": "Cohesion policy, reform\r\nEU\r\n", "revision": "2"}
    assert alice.post("/releases/r1/edit", form, "/releases/r1").status_code == 303
    saved = store.latest_revisions(["r1"])["r1"].release
    assert saved.hashtags == ["Cohesion policy, reform", "EU"]


def test_an_invalid_edit_keeps_what_was_typed_and_says_what_is_wrong(desk):
    _, store, app = desk
    add_release(store)
    alice = browser(app, "alice")
    response = alice.post(
        "/releases/r1/edit",
        {**edit_form(url="ftp://nope", title="Kept title"), "revision": "1"},
        page="/releases/r1",
    )
    assert response.status_code == 400
    assert '<p id="e-url-error" class="field-error">Address of the release: ' in response.text
    assert "Kept title" in response.text
    assert len(store.revisions("r1")) == 1


def test_every_field_problem_is_shown_at_its_field_at_once(desk):
    _, store, app = desk
    add_release(store)
    alice = browser(app, "alice")
    form = {
        **edit_form(url="ftp://nope", title="", language="xx", not_before="next tuesday"),
        "revision": "1",
    }
    page = alice.post("/releases/r1/edit", form, page="/releases/r1").text
    fields = {
        "e-title": "Title: cannot be empty",
        "e-url": "Address of the release: ",
        "e-language": "Language: &#39;xx&#39; is not an ISO 639-1 language code",
        "e-not-before": "Not before: &#39;next tuesday&#39; is not a date and time",
    }
    assert "Nothing was saved: 4 fields need a change." in page
    for ident, message in fields.items():
        # The message sits by the field, and the field points at it and says it is invalid.
        assert f'<p id="{ident}-error" class="field-error">{message}' in page, ident
        field = re.search(rf'<(?:input|textarea) id="{ident}"[^>]*>', page)
        assert field and 'aria-invalid="true"' in field[0], ident
        assert f'aria-describedby="{ident}-error"' in field[0], ident
        assert f'<a href="#{ident}">{message}' in page, ident  # the summary links to it
    assert "not_before" not in page.split('id="edit-h"')[0]  # no internal names in messages
    topics = re.search(r'<input id="e-topics"[^>]*>', page)
    assert topics and 'aria-invalid="true"' not in topics[0]
    assert len(store.revisions("r1")) == 1
    response = alice.post("/releases/new", {**form, "id": "bad id!"}, page="/releases/new")
    assert response.status_code == 400
    assert "Nothing was saved: 5 fields need a change." in response.text
    assert '<p id="e-id-error" class="field-error">Release id: ' in response.text


def test_an_edit_over_someone_elses_newer_revision_is_refused(desk):
    _, store, app = desk
    add_release(store)
    operations.edit_release(store, "r1", {"title": "Bob's fix"}, author="bob")
    alice = browser(app, "alice")
    response = alice.post(
        "/releases/r1/edit", {**edit_form(title="Alice's"), "revision": "1"}, page="/releases/r1"
    )
    assert response.status_code == 400 and "saved meanwhile by bob" in response.text
    assert store.latest_revisions(["r1"])["r1"].release.title == "Bob's fix"


def test_approving_from_a_stale_page_is_refused(desk):
    _, store, app = desk
    add_release(store)
    bob = browser(app, "bob")
    token = bob.token("/releases/r1")
    operations.edit_release(store, "r1", {"title": "Changed meanwhile"}, author="alice")
    operations.submit(store, "r1", by="alice")
    page = bob.client.post(
        "/releases/r1/approve", data={"csrf": token, "revision": "1", "comment": ""}
    )
    assert store.approvals("r1") == []
    assert "revision 2 was saved after the page you approved from" in page.text


def test_a_draft_its_author_never_submitted_cannot_be_approved_or_rejected(desk):
    _, store, app = desk
    add_release(store, submit=False)
    bob = browser(app, "bob")
    page = bob.client.get("/releases/r1").text
    assert "Approve these posts" not in page and ">Reject<" not in page
    assert "This revision is a draft" in page
    for action, verb in (("approve", "approved"), ("reject", "rejected")):
        sent = bob.post(f"/releases/r1/{action}", {"comment": "early"}, "/releases/r1")
        page = bob.client.get(sent.headers["location"]).text
        assert f"alice has not submitted it for approval yet, so it cannot be {verb}" in page
    assert store.approvals("r1") == [] and store.rejections("r1") == []
    assert store.deliveries(release_id="r1") == []
    operations.submit(store, "r1", by="alice")
    assert "Approve these posts" in bob.client.get("/releases/r1").text
    bob.post("/releases/r1/approve", {"comment": "now", "revision": "1"}, "/releases/r1")
    assert [a.approved_by for a in store.approvals("r1")] == ["bob"]


def test_the_counter_uses_the_composer(desk):
    _, store, app = desk
    add_release(store)
    alice = browser(app, "alice")
    form = {**edit_form(summary="x" * 600), "id": "r1"}
    data = alice.post("/count", form, page="/releases/r1").json()
    counted = {p["network"]: (p["length"], p["limit"]) for p in data["posts"]}
    release = operations.release_from_fields(
        "r1",
        {
            **edit_form(summary="x" * 600),
            "hashtags": ["CohesionPolicy"],
            "topics": [],
            "not_before": None,
        },
    )
    expected = operations.compose_posts(
        release, ["mastodon", "bluesky"], operations.compose_options(load_settings(), store)
    )
    assert counted == {p.network: (p.length, p.limit) for p in expected.posts}


def test_the_preview_marks_links_and_hashtags_in_the_releases_language(desk):
    _, store, app = desk
    add_release(store, language="fr", title="Les régions", hashtags=["Cohésion"])
    page = browser(app, "bob").client.get("/releases/r1").text
    assert 'class="post-text" lang="fr"' in page
    assert '<span class="post-tag">#Cohésion</span>' in page
    assert 'class="post-link" href="https://example.eu/press/r1"' in page
    assert re.search(r"\d+ / 500 characters", page)  # Mastodon counts against 500
    assert re.search(r"\d+ / 300 characters", page)  # Bluesky against 300 graphemes


# -- the inbox, calendar and log ---------------------------------------------------------------


def test_the_inbox_filters_and_pages(desk):
    _, store, app = desk
    for n in range(30):
        add_release(
            store, f"r{n:02}", submit=False, language="fr" if n % 2 else "en", title=f"Release {n}"
        )
    b = browser(app, "bob")
    page = b.client.get("/inbox").text
    assert "30 releases" in page and "Page 1 of 2" in page
    assert page.index("Release 29") < page.index("Release 28")  # newest first
    page = b.client.get("/inbox?language=fr&q=Release+2").text
    assert "5 releases" in page  # 21, 23, 25, 27, 29
    page = b.client.get("/inbox?state=draft").text
    assert "30 releases" in page
    assert "0 releases" in b.client.get("/inbox?state=posted").text


def test_the_whole_flow_through_the_desk_and_a_cron_drain(
    env: Path, sandbox: SandboxServer, store: Store
):
    add_users(store)
    settings = make_settings(env, networks=["mastodon", "bluesky"])
    app = create_app(settings, store, users=Users(store, FAST))
    alice = browser(app, "alice")
    alice.post("/releases/new", {**edit_form(), "id": "flow", "submit": "1"}, page="/releases/new")
    bob = browser(app, "bob")
    assert "awaiting approval" in bob.client.get("/inbox").text
    bob.post("/releases/flow/approve", {"comment": "go", "revision": "1"}, page="/releases/flow")
    result = operations.drain(settings, store)  # cron, not the desk
    assert {o.status for o in result.report.outcomes} == {DeliveryStatus.POSTED}
    olga = browser(app, "olga")
    log = olga.client.get("/log").text
    assert log.count("posted") >= 2 and sandbox.url in log
    rows = list(csv.reader(io.StringIO(olga.client.get("/log.csv?network=mastodon").text)))
    assert rows[0][:2] == ["updated_at", "release"]
    assert len(rows) == 2 and rows[1][1] == "flow" and rows[1][4] == "posted"
    assert "posted" in olga.client.get("/inbox?state=posted").text
    calendar = olga.client.get("/calendar").text
    assert "/releases/flow" in calendar and "(published)" in calendar
    month = olga.client.get("/calendar?view=month").text
    assert "/releases/flow" in month
    # No credential of any network is in any page or response.
    secrets = settings.secret_values()
    assert secrets
    for path in ("/inbox", "/releases/flow", "/log", "/log.csv", "/calendar"):
        text = olga.client.get(path).text + bob.client.get(path).text
        assert not [s for s in secrets if s in text], path


def test_operators_pause_resume_retry_and_resolve(desk):
    _, store, app = desk
    add_release(store, author="carol")
    operations.approve(load_settings(), store, "r1", by="bob")
    olga = browser(app, "olga")
    assert olga.post("/pause", {"reason": ""}, page="/log").status_code == 303
    assert store.pauses() == {}  # a reason is required
    olga.post("/pause", {"network": "mastodon", "reason": "crisis"}, page="/log")
    assert set(store.pauses()) == {"mastodon"}
    # The switch is shown on every page while on, to every role.
    for name in ("alice", "bob", "ada"):
        for path in ("/inbox", "/calendar", "/log"):
            assert "Paused: Mastodon" in browser(app, name).client.get(path).text
    olga.post("/resume", {"network": "mastodon"}, page="/log")
    assert store.pauses() == {}
    delivery = store.get("r1", "mastodon")
    store.transition(delivery, DeliveryStatus.FAILED, delivery.updated_at, error="refused")
    assert "Retry r1 on Mastodon" in olga.client.get("/log").text
    olga.post("/log/retry", {"release": "r1", "network": "mastodon"}, page="/log")
    assert store.get("r1", "mastodon").status is DeliveryStatus.PENDING
    retried = [e for e in store.audit_trail("r1") if e.action == "retry"]
    assert [e.actor for e in retried] == ["olga"]  # the operator, not "socialbot"
    assert "retry on mastodon by olga" in olga.client.get("/releases/r1").text
    store.transition(
        store.get("r1", "bluesky"), DeliveryStatus.FAILED, delivery.updated_at, error="x"
    )
    olga.post(
        "/log/resolve",
        {"release": "r1", "network": "bluesky", "verdict": "posted", "url": "javascript:x"},
        page="/log",
    )
    assert store.get("r1", "bluesky").status is DeliveryStatus.FAILED
    olga.post(
        "/log/resolve",
        {
            "release": "r1",
            "network": "bluesky",
            "verdict": "posted",
            "url": "https://bsky.app/profile/x/post/1",
        },
        page="/log",
    )
    assert store.get("r1", "bluesky").status is DeliveryStatus.POSTED
    olga.post("/releases/r1/withdraw", {"reason": "pulled"}, page="/log")
    assert store.get("r1", "mastodon").status is DeliveryStatus.WITHDRAWN
    actions = [e.action for e in store.audit_trail("r1")]
    assert {"retry", "resolve", "withdraw"} <= set(actions)


def flashes_after(b: Browser, path: str, data: dict[str, Any], page: str) -> list[tuple[str, str]]:
    """Post a form from ``page``, then read the flashes the next visit to ``page`` shows."""
    b.post(path, data, page=page)
    found = re.findall(r'<p class="flash (\w+)" role="\w+">([^<]*)</p>', b.client.get(page).text)
    return [(kind, html.unescape(message)) for kind, message in found]


def left_in_doubt(store: Store, release_id: str, network: str) -> None:
    """A send that may have reached the network, its answer lost: the delivery is unknown."""
    delivery = store.get(release_id, network)
    now = utcnow()
    assert delivery is not None and store.claim(delivery.id, "text", now) is not None
    assert store.finish(
        delivery.id, DeliveryStatus.UNKNOWN, now, expect=DeliveryStatus.SENDING, uncertain=True
    )


def test_taking_back_says_what_becomes_of_each_network(desk):
    """The flash sorts networks as the CLI does: looked for first (Mastodon), being sent with
    nothing to look on so the drain's record decides (Telegram), already posted (Bluesky),
    and in doubt with nothing to look on, for a person to settle (Telegram again)."""
    _, store, app = desk
    add_release(store, author="carol", networks=["mastodon", "bluesky", "telegram"])
    operations.approve(load_settings(), store, "r1", by="bob")
    now = utcnow()
    for network in ("mastodon", "telegram", "bluesky"):
        assert store.claim(store.get("r1", network).id, "text", now) is not None
    posted = Receipt("1", "https://bsky.app/profile/x/post/1")
    bluesky = store.get("r1", "bluesky")
    assert store.finish(
        bluesky.id, DeliveryStatus.POSTED, now, expect=DeliveryStatus.SENDING, receipt=posted
    )
    olga = browser(app, "olga")

    [(kind, said)] = flashes_after(
        olga, "/releases/r1/withdraw", {"reason": "pulled"}, "/releases/r1"
    )

    assert kind == "ok", said
    assert "may already be posted, so it is looked for first: Mastodon;" in said
    assert (
        "a drain is sending it (or was, when it stopped): Telegram; if it goes out, "
        "retract it to delete it, and if not it is withdrawn" in said
    )
    assert "already posted, and still up: Bluesky (retract deletes it)" in said
    assert "cannot be looked for" not in said

    add_release(store, "r2", author="carol", networks=["telegram"])
    operations.approve(load_settings(), store, "r2", by="bob")
    left_in_doubt(store, "r2", "telegram")

    [(kind, said)] = flashes_after(
        olga, "/releases/r2/retract", {"reason": "pulled"}, "/releases/r2"
    )

    assert kind == "error", said
    assert "may already be posted, and cannot be looked for: Telegram" in said
    assert "resolve it in the posting log" in said
    assert "sending" not in said and "looked for first" not in said


def test_approving_over_a_send_only_a_person_can_settle_says_so_as_an_error(desk):
    _, store, app = desk
    add_release(store, author="carol", networks=["telegram"])
    operations.approve(load_settings(), store, "r1", by="bob")
    left_in_doubt(store, "r1", "telegram")
    operations.edit_release(store, "r1", {"title": "Title corrected"}, author="carol")
    operations.submit(store, "r1", by="carol")

    approved, (kind, said) = flashes_after(
        browser(app, "bob"), "/releases/r1/approve", {"revision": "2"}, "/releases/r1"
    )

    assert approved == ("ok", "Approved revision 2: the posts go out as shown (bob).")
    assert kind == "error", said
    assert said.startswith("telegram: an earlier attempt may have posted the previous revision")
    assert said.endswith(
        "resolve that delivery as posted or not posted; this revision is sent "
        "only if it was not posted (in the posting log)."
    )


def test_the_admin_manages_users(desk):
    _, store, app = desk
    ada = browser(app, "ada")
    ada.post("/users/add", {"name": "eve", "role": "author", "password": PASSWORD}, "/users")
    assert user(store, "eve").role is Role.AUTHOR
    ada.post("/users/role", {"name": "eve", "role": "approver"}, "/users")
    assert user(store, "eve").role is Role.APPROVER
    ada.post("/users/disable", {"name": "eve"}, "/users")
    assert user(store, "eve").disabled
    page = ada.client.get("/users").text
    assert "eve" in page and "disabled" in page and "argon2" not in page


# -- the CLI's users commands, both databases, the demo ----------------------------------------


def test_users_commands(workdir: Path):
    from click.testing import CliRunner

    from socialbot.cli import cli

    runner = CliRunner()
    added = runner.invoke(
        cli, ["users", "add", "ana", "--role", "admin", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert added.exit_code == 0, added.output
    assert "added ana (admin)" in added.output
    short = runner.invoke(
        cli, ["users", "add", "bo", "--role", "author", "--password-stdin"], input="short\n"
    )
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    prompted = runner.invoke(
        cli, ["users", "add", "bo", "--role", "author"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output
    assert runner.invoke(cli, ["users", "set-role", "bo", "approver"]).exit_code == 0
    assert runner.invoke(cli, ["users", "disable", "bo"]).exit_code == 0
    listed = runner.invoke(cli, ["users", "list"]).output
    assert re.search(r"ana\s+admin\s+enabled", listed)
    assert re.search(r"bo\s+approver\s+disabled", listed)
    assert runner.invoke(cli, ["users", "disable", "nobody"]).exit_code == 2
    store = SQLiteStore(str(workdir / "socialbot.db"))
    try:
        assert "argon2id" in user(store, "ana").password_hash
        assert PASSWORD not in "".join(store.entries("desk:").values())
    finally:
        store.close()


def test_the_desk_works_on_both_databases(workdir: Path, database_url: str):
    from socialbot.store import open_store

    store = open_store(database_url)
    try:
        add_users(store)
        settings = make_settings(workdir, database_url=database_url)
        app = create_app(settings, store, users=Users(store, FAST))
        alice = browser(app, "alice")
        alice.post("/releases/new", {**edit_form(), "id": "pg1", "submit": "1"}, "/releases/new")
        bob = browser(app, "bob")
        assert "awaiting approval" in bob.client.get("/inbox").text
        bob.post("/releases/pg1/approve", {"revision": "1"}, "/releases/pg1")
        assert [a.approved_by for a in store.approvals("pg1")] == ["bob"]
        assert "posting" in bob.client.get("/inbox?state=posting").text
    finally:
        store.close()


def test_demo_desk_serves_the_desk_with_demo_users(tmp_path: Path):
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    shutil.copytree(Path(__file__).resolve().parent.parent / "queue", tmp_path / "queue")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCIALBOT_")}
    env["PYTHONUNBUFFERED"] = "1"
    desk_port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "socialbot",
            "demo",
            "--desk",
            "--port",
            str(free_port()),
            "--desk-port",
            str(desk_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                break
        output = "".join(lines)
        assert f"http://127.0.0.1:{desk_port}/" in output
        passwords = dict(re.findall(r"name (\w+)\s+password (\S+)", output))
        assert set(passwords) == {"author", "approver", "operator", "admin"}
        with httpx.Client(base_url=f"http://127.0.0.1:{desk_port}") as client:
            for _ in range(100):
                try:
                    page = client.get("/sign-in")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token
            signed = client.post(
                "/sign-in",
                data={"name": "approver", "password": passwords["approver"], "csrf": token[1]},
            )
            assert signed.status_code == 303
            inbox = client.get("/inbox")
            assert "awaiting approval" in inbox.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
            if process.stdout is not None:
                process.stdout.close()
    assert process.returncode == 0


def test_the_preview_shows_each_networks_images_with_alt_text_and_what_was_done(desk):
    import io
    import json

    from PIL import Image

    settings, store, app = desk
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), "navy").save(buffer, "JPEG")
    queue = settings.queue_dir
    (queue / "plenary.jpg").write_bytes(buffer.getvalue())
    (queue / "r9.json").write_text(
        json.dumps(
            {
                "title": "Regions meet in plenary",
                "url": "https://example.eu/press/r9",
                "language": "en",
                "networks": ["mastodon", "bluesky"],
                "attach": "images",
                "images": [{"file": "plenary.jpg", "alt": "The plenary <hall> in Brussels"}],
            }
        ),
        encoding="utf-8",
    )
    operations.status(settings, store)  # reads the queue: the file becomes a revision
    page = browser(app, "bob").client.get("/releases/r9").text
    assert page.count('<span class="image-alt" lang="en">The plenary &lt;hall&gt; in Brussels') == 2
    assert "<hall>" not in page  # escaped
    assert "scaled from 3000×2000 to 2000×1333" in page  # Bluesky's longest side


# -- malformed requests ------------------------------------------------------------------------


def test_a_non_ascii_csrf_token_is_refused_not_a_crash(desk):
    _, _, app = desk
    client = TestClient(app, raise_server_exceptions=False)
    client.get("/sign-in")  # a session with a token, as a visitor's
    response = client.post("/sign-in", data={"name": "alice", "password": PASSWORD, "csrf": "é"})
    assert response.status_code == 403 and "This form has expired" in response.text


def test_an_edit_with_a_revision_that_is_no_number_is_refused(desk):
    _, store, app = desk
    add_release(store)
    alice = browser(app, "alice")
    alice.client = TestClient(app, raise_server_exceptions=False, cookies=alice.client.cookies)
    response = alice.post("/releases/r1/edit", {**edit_form(), "revision": "abc"}, "/releases/r1")
    assert response.status_code == 400 and "is not a revision number" in response.text
    assert len(store.revisions("r1")) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/calendar?view=month&start=9999-12-31",
        "/calendar?start=9999-12-31",
        "/calendar?start=0001-01-01",
        "/log?since=999999d",
        "/log?since=99999999999w",
        "/log.csv?since=999999d",
        "/log.csv?since=99999999999w",
        "/log.csv?since=soon",
    ],
)
def test_out_of_range_dates_answer_400_not_500(desk, path):
    _, _, app = desk
    bob = browser(app, "bob")
    client = TestClient(app, raise_server_exceptions=False, cookies=bob.client.cookies)
    response = client.get(path)
    assert response.status_code == 400, response.text[:300]
    assert "calendar cannot show" in response.text or "Changed within" in response.text


def test_a_session_ends_session_hours_after_sign_in_even_while_in_use(desk):
    settings, _, app = desk
    lifetime = settings.desk.session_hours * 3600
    signer = app.state.desk.signer
    for age, signed_in in ((lifetime - 60, True), (lifetime + 60, False)):
        # A cookie signed just now (as every flash re-signs it) for a sign-in `age` ago.
        cookie = signer.dumps({"user": "bob", "iat": time.time() - age, "csrf": "t"})
        client = TestClient(app, cookies={"socialbot_desk": cookie})
        response = client.get("/inbox", follow_redirects=False)
        assert (response.status_code == 200) is signed_in, age


def test_the_cookie_lives_only_as_long_as_the_sign_in(desk):
    _, _, app = desk
    signer = app.state.desk.signer
    cookie = signer.dumps({"user": "bob", "iat": time.time() - 3600, "csrf": "t"})
    bob = Browser(TestClient(app, cookies={"socialbot_desk": cookie}))
    add_release(app.state.desk.store, author="carol")
    response = bob.post("/releases/r1/approve", {"comment": ""}, page="/releases/r1")
    assert response.status_code == 303  # a flash re-signs the cookie ...
    found = re.search(r"Max-Age=(\d+)", response.headers["set-cookie"])
    assert found
    max_age = int(found[1])
    assert 7 * 3600 - 5 <= max_age <= 7 * 3600  # ... for what is left of the 8 hours


def test_release_text_in_another_language_is_marked_with_it_on_every_page(desk):
    settings, store, app = desk
    add_release(
        store,
        language="fr",
        title="Les régions",
        hashtags=["Cohésion"],
        topics=["Politique régionale"],
        not_before="2031-03-04T09:00:00Z",
    )
    operations.edit_release(store, "r1", {"title": "Les régions, encore"}, author="alice")
    operations.submit(store, "r1", by="alice")
    operations.approve(settings, store, "r1", by="bob")
    delivery = store.get("r1", "mastodon")
    store.transition(delivery, DeliveryStatus.FAILED, delivery.updated_at, error="x")
    bob = browser(app, "bob")
    inbox = bob.client.get("/inbox").text
    assert re.search(r'<a href="/releases/r1" lang="fr">Les régions, encore</a>', inbox)
    calendar = bob.client.get("/calendar?start=2031-03-04").text
    assert '<span lang="fr">Les régions, encore</span>' in calendar
    log = bob.client.get("/log").text
    assert re.search(r'<p class="post-text" lang="fr">[^<]*Les régions', log)
    page = bob.client.get("/releases/r1").text
    for name in ("title", "summary", "body", "hashtags", "topics", "override_mastodon"):
        assert re.search(rf'name="{name}" lang="fr"', page), name
    assert '<dd lang="fr">Politique régionale</dd>' in page
    assert '<dd lang="fr">Cohésion</dd>' in page
    diff_lines = re.findall(r'<span class="(?:add|del)" lang="(\w+)">', page)
    assert diff_lines and set(diff_lines) == {"fr"}


def relative_luminance(colour: str) -> float:
    """WCAG 2.1's relative luminance of a #rgb or #rrggbb colour."""
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: str, other: str) -> float:
    light, dark = sorted((relative_luminance(one), relative_luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_focus_ring_has_3_to_1_against_every_background_of_the_desk():
    css = (Path(__file__).parent.parent / "src/socialbot/desk/static/desk.css").read_text()
    variables = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{3,6})", css))

    def colour(value: str) -> str:
        found = re.fullmatch(r"var\(--([\w-]+)\)", value)
        return variables[found[1]] if found else value

    backgrounds = {
        colour(v) for v in re.findall(r"background:\s*(#[0-9a-fA-F]{3,6}|var\(--[\w-]+\))", css)
    }
    assert {"#ffffff", "#0b4f8a", "#f3f5f8"} <= {b.lower() for b in backgrounds}
    focus = re.search(r"summary:focus-visible\s*\{([^}]*)\}", css)
    assert focus
    rings = re.findall(r"(?:outline|box-shadow):[^;#]*(#[0-9a-fA-F]{3,6})", focus[1])
    assert rings
    for background in backgrounds:
        best = max(contrast(ring, background) for ring in rings)
        assert best >= 3, f"focus ring {rings} on {background}: {best:.2f}:1"
    # Technique C40: two tones 9:1 apart keep 3:1 on any background added later.
    assert len(rings) == 2 and contrast(*rings) >= 9


def test_every_network_is_named_as_its_profile_names_it(desk):
    """The desk's names come from the registry: a network added there is named everywhere."""
    from socialbot.networks import PROFILES

    _, store, app = desk
    add_release(store, networks=list(PROFILES))
    page = browser(app, "olga").client.get("/releases/r1").text
    for profile in PROFILES.values():
        assert f"<h3>{profile.display_name}</h3>" in page
        assert f'<option value="{profile.name}">{profile.display_name}</option>' in page


def test_each_networks_preview_has_its_profiles_accent(desk):
    from socialbot.networks import PROFILES

    _, _, app = desk
    page = browser(app, "olga").client.get("/inbox").text
    assert '<link rel="stylesheet" href="/static/networks.css">' in page
    styles = browser(app).client.get("/static/networks.css")
    assert styles.headers["content-type"].startswith("text/css")
    assert styles.headers["content-security-policy"] == CSP
    for name, profile in PROFILES.items():
        assert re.fullmatch(r"#[0-9a-f]{6}", profile.colour), name
        assert f".post-{name} {{ border-top: 4px solid {profile.colour}; }}" in styles.text

"""The desk in a real browser: Debian's Chromium driven by Playwright for Python.

The desk is served by uvicorn on a free loopback port over a SQLite store, the networks
are the sandbox's; a drain is run as cron would run it. axe-core (vendored from the npm
package, MPL-2.0, tests/fixtures/axe/) checks every page against WCAG 2.1 AA: no serious or
critical violation. Screenshots of each page are written to docs/desk/ for the guide.
Skipped, saying why, when /usr/bin/chromium is missing (.ci/run installs it).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from socialbot import operations
from socialbot.config import Settings
from socialbot.desk.app import create_app
from socialbot.desk.users import Users
from socialbot.models import DeliveryStatus
from socialbot.sandbox import SandboxServer
from socialbot.store import SQLiteStore, Store
from tests.test_desk import FAST, PASSWORD, XSS_TITLES, add_release, add_users, make_settings

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
AXE = Path(__file__).parent / "fixtures" / "axe" / "axe.min.js"
SHOTS = ROOT / "docs" / "desk"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="browser tests need Debian's Chromium at /usr/bin/chromium "
        "(apt-get install chromium; .ci/run installs it)",
    ),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Served:
    """The desk on a free loopback port, and the store and settings behind it."""

    def __init__(self, settings: Settings, store: Store) -> None:
        import uvicorn

        self.settings = settings
        self.store = store
        app = create_app(settings, store, users=Users(store, FAST))
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the desk did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.socket.close()


@pytest.fixture
def served(env: Path, sandbox: SandboxServer) -> Iterator[Served]:
    store = SQLiteStore(str(env / "socialbot.db"))
    add_users(store)
    settings = make_settings(env, networks=["mastodon", "bluesky"])
    try:
        with Served(settings, store) as desk:
            yield desk
    finally:
        store.close()


class Person:
    """One person's browser context: signed in, every page checked as it is opened."""

    def __init__(self, chromium: Any, served: Served, name: str) -> None:
        self.context = chromium.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.served = served
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", self.console)
        self.page.on("dialog", self.dialog)
        self.open("/sign-in")
        self.page.get_by_label("Name").fill(name)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/inbox")

    def console(self, message: Any) -> None:
        if message.type == "error":  # a script error, a CSP breach, a missing file
            self.problems.append(message.text)

    def dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, path: str) -> Any:
        self.page.goto(self.served.url + path)
        return self.page

    def close(self) -> None:
        self.context.close()


def axe_violations(page: Any) -> list[str]:
    """Serious and critical WCAG 2.1 A/AA violations on the page, as 'rule: target'."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"""
    )
    return [
        f"{v['id']}: {node['target']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
        for node in v["nodes"]
    ]


def check(person: Person, shot: str | None = None) -> None:
    """No accessibility violation, no script error, no CSP breach, no dialog; a screenshot."""
    page = person.page
    assert axe_violations(page) == [], page.url
    assert person.problems == [], page.url
    assert person.dialogs == [], page.url
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)


def test_the_full_flow_in_chromium(chromium: Any, served: Served, sandbox: SandboxServer):
    # The sign-in page itself.
    visitor = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = visitor.new_page()
    response = page.goto(served.url + "/sign-in")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "sign-in.png"))
    assert axe_violations(page) == []
    visitor.close()

    # An author drafts a release; the counters come from the server as she types.
    alice = Person(chromium, served, "alice")
    page = alice.open("/releases/new")
    page.locator("#e-id").fill("cohesion-2027")
    page.locator("#e-title").fill("Regions call for a stronger cohesion policy after 2027")
    page.locator("#e-summary").fill(
        "Europe's regions and cities adopted their opinion on the future of cohesion policy."
    )
    page.locator("#e-url").fill("https://cor.europa.eu/en/news/cohesion")
    page.locator("#e-language").fill("en")
    page.locator("#e-hashtags").fill("CohesionPolicy\nEURegions")
    page.get_by_label("Mastodon", exact=True).check()
    page.get_by_label("Bluesky", exact=True).check()
    # The first answer (for the empty form) may still be shown: wait for the filled one.
    page.locator("[data-counters] li", has_text="mastodon: ").wait_for()
    assert "/ 500" in page.locator("[data-counters]").inner_text()
    check(alice, "new-release")
    page.get_by_role("button", name="Save and submit for approval").click()
    page.wait_for_url("**/releases/cohesion-2027")
    assert page.locator(".post-tag", has_text="#CohesionPolicy").count() >= 1
    saved = served.store.latest_revisions(["cohesion-2027"])["cohesion-2027"].release
    assert saved.hashtags == ["CohesionPolicy", "EURegions"]
    assert page.locator('.post-text[lang="en"]').count() == 2
    check(alice)

    # The approver sees it in the inbox and approves exactly these posts.
    bob = Person(chromium, served, "bob")
    page = bob.open("/inbox")
    assert page.get_by_text("awaiting approval").count() >= 1
    check(bob, "inbox")
    page.get_by_role("link", name="Regions call for a stronger cohesion policy after 2027").click()
    page.get_by_role("button", name="Approve these posts").wait_for()
    check(bob, "release")
    page.get_by_label("Comment").fill("Checked the figures.")
    page.get_by_role("button", name="Approve these posts").click()
    page.get_by_text("Approved revision 1").wait_for()

    # Cron drains; the posts reach the sandbox and the log shows them.
    result = operations.drain(served.settings, served.store)
    assert {o.status for o in result.report.outcomes} == {DeliveryStatus.POSTED}
    olga = Person(chromium, served, "olga")
    page = olga.open("/log")
    assert page.locator(".status-posted").count() == 2
    assert page.locator(f'a[href^="{sandbox.url}"]').count() == 2
    check(olga, "posting-log")
    page = olga.open("/calendar")
    assert page.get_by_role("link", name="Regions call").count() >= 1
    check(olga, "calendar-week")
    page = olga.open("/calendar?view=month")
    assert page.get_by_role("link", name="Regions call").count() >= 1
    check(olga, "calendar-month")
    page = bob.open("/releases/cohesion-2027")
    assert page.get_by_text("posted", exact=True).count() >= 1
    check(bob)

    ada = Person(chromium, served, "ada")
    ada.open("/users")
    check(ada, "users")
    for person in (alice, bob, olga, ada):
        person.close()


def test_roles_four_eyes_and_csrf_in_chromium(chromium: Any, served: Served):
    add_release(served.store, author="bob")
    alice = Person(chromium, served, "alice")
    page = alice.open("/releases/r1")
    assert page.get_by_role("button", name="Approve these posts").count() == 0
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    # An author crafting the approve POST, with her own valid token, is refused.
    crafted = alice.context.request.post(
        served.url + "/releases/r1/approve", form={"csrf": token, "comment": "me"}
    )
    assert crafted.status == 403
    # A forged request from another site has no token: refused before anything else.
    bob = Person(chromium, served, "bob")
    forged = bob.context.request.post(served.url + "/releases/r1/approve", form={"comment": "x"})
    assert forged.status == 403
    # Four eyes: bob wrote the revision, so the desk tells him someone else must approve.
    page = bob.open("/releases/r1")
    assert page.get_by_text("You wrote this revision").count() == 1
    assert page.get_by_role("button", name="Approve these posts").count() == 0
    assert served.store.approvals("r1") == []
    # Operators get no edit form, admins no operator switch.
    olga = Person(chromium, served, "olga")
    assert olga.open("/releases/r1").get_by_role("button", name="Save as draft").count() == 0
    ada = Person(chromium, served, "ada")
    assert ada.open("/log").get_by_text("Crisis switch").count() == 0
    for person in (alice, bob, olga, ada):
        person.close()


def test_an_edit_of_the_title_alone_keeps_every_other_field_in_chromium(
    chromium: Any, served: Served
):
    add_release(
        served.store,
        hashtags=["Cohesion policy", "EU"],
        topics=["Regional policy"],
        body="First paragraph.\n\nSecond paragraph.",
        not_before="2031-03-02T08:30:15+00:00",
        overrides={"mastodon": "Regions call for more.\nRead on."},
    )
    before = served.store.latest_revisions(["r1"])["r1"].release
    alice = Person(chromium, served, "alice")
    page = alice.open("/releases/r1")
    page.locator("#e-title").fill("A better title")
    page.get_by_role("button", name="Save as draft").click()
    page.get_by_text("Saved as revision 2").wait_for()
    after = served.store.latest_revisions(["r1"])["r1"].release
    assert after.title == "A better title"
    assert after.model_copy(update={"title": before.title}) == before
    alice.close()


def test_form_errors_are_tied_to_their_fields_in_chromium(chromium: Any, served: Served):
    alice = Person(chromium, served, "alice")
    page = alice.open("/releases/new")
    page.locator("#e-id").fill("bad-one")
    page.locator("#e-title").fill("A title")
    page.locator("#e-url").fill("ftp://example.eu/x")
    page.locator("#e-language").fill("xx")
    page.get_by_role("button", name="Save as draft").click()
    page.get_by_text("Nothing was saved: 2 fields need a change.").wait_for()
    language = page.get_by_role("textbox", name="Language (ISO 639-1 code, e.g. en, fr, bg)")
    assert language.get_attribute("aria-invalid") == "true"
    assert "is not an ISO 639-1 language code" in language.evaluate(
        "el => document.getElementById(el.getAttribute('aria-describedby')).textContent"
    )
    alice.problems.remove(  # the page itself, refused as it should be
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    )
    check(alice)
    alice.close()


@pytest.mark.parametrize("title", XSS_TITLES)
def test_hostile_titles_show_as_text_in_chromium(chromium: Any, served: Served, title: str):
    add_release(served.store, title=title, summary=title)
    bob = Person(chromium, served, "bob")
    page = bob.open("/releases/r1")
    assert page.get_by_role("heading", level=1).inner_text() == title
    assert page.locator("img[src=x]").count() == 0
    page = bob.open("/inbox")
    assert page.get_by_role("link", name=title).count() == 1
    check(bob)
    bob.close()


def test_the_pause_switch_in_chromium(chromium: Any, served: Served):
    olga = Person(chromium, served, "olga")
    page = olga.open("/log")
    page.get_by_text("Crisis switch: pause posting").click()
    page.get_by_label("Reason (shown to everyone)").fill("Embargo broken by a partner")
    page.get_by_role("button", name="Pause", exact=True).click()
    page.get_by_text("Paused: every network.").first.wait_for()
    alice = Person(chromium, served, "alice")
    for path in ("/inbox", "/calendar", "/log"):
        banner = alice.open(path).locator(".paused")
        assert "Embargo broken by a partner" in banner.inner_text()
        assert banner.get_by_role("button").count() == 0  # only operators resume
    check(alice, "paused")
    page = olga.open("/inbox")
    page.get_by_role("button", name="Resume every network").click()
    page.get_by_text("Resumed every network.").wait_for()
    assert served.store.pauses() == {}
    assert alice.open("/inbox").locator(".paused").count() == 0
    olga.close()
    alice.close()

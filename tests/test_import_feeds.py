"""Listings and feeds: every item imported once, however often cron runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from socialbot.importer import ImportStatus, KeyValueLedger, MemoryKeyValue, run_import
from socialbot.releases import read_release
from tests.import_server import serving


@pytest.fixture
def server():
    with serving() as running:
        yield running


@pytest.fixture
def ledger():
    return KeyValueLedger(MemoryKeyValue())


def run(server, queue, ledger, path, **kw):
    return run_import(
        [server.url(path)],
        queue_dir=queue,
        ledger=ledger,
        is_approved=lambda release_id: False,
        allowed_networks=["127.0.0.1/32"],
        **kw,
    )


def test_old_listing_imports_each_item_once(server, ledger, tmp_path):
    report = run(
        server,
        tmp_path,
        ledger,
        "/bg/news/Pages/press-releases.aspx",
        listing=True,
        follow_versions=False,
    )
    statuses = [(r.source.rsplit("/", 1)[-1], r.status) for r in report.results]
    assert statuses == [
        ("cohesion-alliance-recovery.aspx", ImportStatus.CREATED),
        ("green-deal-going-local.aspx", ImportStatus.CREATED),
        ("removed-release.aspx", ImportStatus.ERROR),
    ]
    assert report.results[2].message.endswith("removed-release.aspx: the server answered 404.")
    green = read_release(report.results[1].path)
    # The page states no topics or date: the listing's line gives them, split.
    assert green.topics == [
        "Green Deal",
        "Climate change (adaptation/mitigation)",
        "Energy / Environment",
    ]
    assert green.published == datetime(2023, 11, 29, tzinfo=UTC)
    assert green.language == "bg"
    assert green.summary.startswith("Градовете и регионите на Европа призоваха")
    assert green.body.startswith("- Над 300 местни лидери подписаха декларацията от Брюксел\n- ")
    files = sorted(p.name for p in tmp_path.iterdir())
    hits = len(server.hits)
    again = run(
        server,
        tmp_path,
        ledger,
        "/bg/news/Pages/press-releases.aspx",
        listing=True,
        follow_versions=False,
    )
    assert [r.status for r in again.results[:2]] == [ImportStatus.ALREADY] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    # Known items are not fetched again: the listing and the page that failed.
    assert len(server.hits) - hits == 2


def test_new_listing_cards_and_duplicate_alias(server, ledger, tmp_path):
    report = run(server, tmp_path, ledger, "/en/news", listing=True, follow_versions=False)
    assert [r.status for r in report.results] == [
        ImportStatus.CREATED,
        ImportStatus.ALREADY,  # the "-0" alias of the first card
        ImportStatus.CREATED,
    ]
    housing = read_release(report.results[0].path)
    assert housing.url == server.url("/en/news/affordable-housing-plan")
    assert housing.topics == ["Housing", "Social policy"]
    assert read_release(report.results[2].path).id == "water-resilience-en"
    second = run(server, tmp_path, ledger, "/en/news", listing=True, follow_versions=False)
    assert {r.status for r in second.results} == {ImportStatus.ALREADY}


def test_max_items_bounds_a_listing_run(server, ledger, tmp_path):
    report = run(
        server, tmp_path, ledger, "/en/news", listing=True, follow_versions=False, max_items=1
    )
    assert len(report.results) == 1
    assert "only the first 1 items" in report.notes[0]


def test_rss_teasers_are_followed_to_their_pages(server, ledger, tmp_path):
    report = run(server, tmp_path, ledger, "/feeds/rss.xml", feed=True)
    created = [r for r in report.results if r.status is ImportStatus.CREATED]
    ids = sorted(r.release_id for r in created)
    # Both items, and their language versions (the Irish page duplicates the English one).
    assert ids == sorted(
        [
            "cohesion-alliance-recovery-en",
            "cohesion-alliance-recovery-fr",
            "cohesion-alliance-recovery-bg",
            "affordable-housing-plan-de",
            "affordable-housing-plan-el",
            "affordable-housing-plan-en",
        ]
    )
    english = read_release(tmp_path / "cohesion-alliance-recovery-en.yaml")
    assert english.summary.startswith("Cohesion Alliance renews")  # the page, not the teaser
    assert "…" not in english.body
    assert english.url == server.url("/en/news/Pages/cohesion-alliance-recovery.aspx")
    assert not report.failed
    hits = len(server.hits)
    again = run(server, tmp_path, ledger, "/feeds/rss.xml", feed=True)
    assert {r.status for r in again.results} == {ImportStatus.ALREADY}
    assert len(server.hits) - hits == 1  # the feed itself, nothing else


def test_atom_with_full_text_needs_no_page(server, ledger, tmp_path):
    report = run(server, tmp_path, ledger, "/feeds/atom.xml", feed=True)
    [result] = report.results
    assert result.status is ImportStatus.CREATED, result.message
    release = read_release(result.path)
    assert release.title == ("Les régions demandent un plan européen pour la rénovation des écoles")
    assert release.summary == (
        "Les villes et les régions veulent des fonds pour rénover les écoles d’ici 2030."
    )
    assert release.body.split("\n\n")[1] == (
        "La rapporteure Anne Dupont (FR/Renew Europe) a déclaré : « Nos enfants méritent des "
        "écoles saines et sobres en énergie — c’est un investissement, pas une dépense. »"
    )
    assert release.language == "fr"
    assert release.topics == ["Education", "Energy / Environment"]
    assert release.published == datetime(2024, 11, 28, 9, tzinfo=UTC)
    assert not any("renovation-ecoles" in hit for hit in server.hits)
    again = run(server, tmp_path, ledger, "/feeds/atom.xml", feed=True)
    assert [r.status for r in again.results] == [ImportStatus.ALREADY]


def test_an_item_whose_date_is_out_of_range_loses_only_its_date(server, ledger, tmp_path):
    """Year 0 after the time-zone shift, or year 10000: that date is ignored, not the feed."""
    items = "".join(
        f"<item><title>{title}</title><link>{server.url(path)}</link>"
        f"<description>Teaser.</description><pubDate>{date}</pubDate></item>"
        for title, path, date in [
            ("Housing", "/en/news/affordable-housing-plan", "0001-01-01T00:00:00+14:00"),
            (
                "Green deal",
                "/bg/news/Pages/green-deal-going-local.aspx",
                "9999-12-31T23:59:59-14:00",
            ),
            ("Housing again", "/de/news/affordable-housing-plan", "Mon, 17 Mar 2025 10:00:00 GMT"),
        ]
    )
    feed = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>F</title>{items}</channel></rss>'
    )
    server.raw("/feeds/bad-dates.xml", feed.encode(), {"Content-Type": "application/rss+xml"})
    report = run(server, tmp_path, ledger, "/feeds/bad-dates.xml", feed=True, follow_versions=False)
    assert [r.status for r in report.results] == [ImportStatus.CREATED] * 3, [
        r.message for r in report.results
    ]

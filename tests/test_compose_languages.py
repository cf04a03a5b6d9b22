"""Real press-release text in Bulgarian, Greek, German, French and English.

The fixtures in ``tests/fixtures/releases/`` are written from the kind of
material the CoR media centre publishes (``shared/seed``): long titles,
abbreviations, a Greek question mark, French no-break spaces, inline and
malformed hashtags, domain names in the text. Each test states the post a
press officer would expect.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from socialbot.compose import ComposeOptions, ShapingRules, compose
from socialbot.compose.richtext import link_spans
from socialbot.compose.twitter_text import mastodon_urls
from socialbot.models import NETWORKS, Post, Release, TextLimits
from socialbot.releases import read_release

FIXTURES = Path(__file__).parent / "fixtures" / "releases"
OPTIONS = ComposeOptions(
    hashtag_map={
        "Cohesion policy reform": "CohesionPolicy",
        "Urban policy": "UrbanAgenda",
        "European Green Deal": "EU Green Deal",
        "Future of Europe": "FutureOfEurope",
    }
)


def fixture(name: str) -> Release:
    return read_release(FIXTURES / name)


def post(name: str, network: str) -> Post:
    return compose(fixture(name), network, OPTIONS)


def blocks(text: str) -> list[str]:
    return text.split("\n\n")


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.iterdir()))
@pytest.mark.parametrize("network", NETWORKS)
def test_every_fixture_fits_every_network_with_its_link_last(name: str, network: str):
    shaped = post(name, network)
    assert shaped.length <= shaped.limit
    shown = shaped.link_text or shaped.link  # Bluesky shows a short link (facet: the full one)
    assert shaped.text.endswith("\n\n" + shown)
    assert shaped.text.count(shown) == 1


def test_bulgarian_on_x_keeps_the_title_and_cuts_the_body_at_a_clause():
    # Not "…политиката на…" (a cut after a preposition): the last clause boundary.
    shaped = post("bg-cohesion-alliance.yaml", "x")
    assert shaped.text == (
        "Възстановяването на ЕС няма да бъде ефективно без солидна политика на сближаване, "
        "разработена в истинско партньорство с европейските градове и региони\n\n"
        "Кризата с COVID-19 показа…\n\n"
        "#CohesionAlliance #CohesionPolicy\n\n"
        "https://cor.europa.eu/bg/news/Pages/cohesion-alliance-recovery.aspx"
    )
    assert "the body is cut to fit X" in shaped.notes


def test_bulgarian_on_mastodon_shows_the_whole_first_sentence():
    lead = blocks(post("bg-cohesion-alliance.yaml", "mastodon").text)[1]
    assert lead.startswith("Кризата с COVID-19")
    assert lead.endswith("като никой не бива бъде изоставен.")


def full(network: str) -> ComposeOptions:
    """OPTIONS with the whole release as the lead (LinkedIn's default is a short lead)."""
    return dataclasses.replace(OPTIONS, rules={network: ShapingRules(lead="full")})


def test_bulgarian_in_full_keeps_2017_g_and_the_inline_hashtag_once():
    shaped = compose(fixture("bg-cohesion-alliance.yaml"), "linkedin", full("linkedin"))
    assert "през октомври 2017 г. Алиансът за сближаване (#CohesionAlliance)" in shaped.text
    assert shaped.text.count("#CohesionAlliance") == 1
    assert "Повече на cor.europa.eu." in shaped.text
    assert blocks(shaped.text)[-2] == "#CohesionPolicy #UrbanAgenda"


def test_greek_question_marks_and_abbreviations_on_x():
    shaped = post("el-plenary.yaml", "x")
    title, lead, hashtags, link = blocks(shaped.text)
    assert (
        title
        == "Ποιο μέλλον για την πολιτική συνοχής μετά το 2027; Οι περιφέρειες ζητούν να έχουν λόγο"
    )
    assert lead == (
        "Οι τοπικοί και περιφερειακοί ηγέτες ζητούν ισχυρή πολιτική συνοχής μετά το 2027, "
        "π.χ. με απλούστερους κανόνες και περισσότερη εταιρική σχέση."
    )
    assert hashtags == "#CohesionPolicy"
    # X stops a link at a Greek letter, so the path is percent-encoded.
    assert link == (
        "https://cor.europa.eu/el/news/Pages/%CE%A0%CE%BF%CE%BB%CE%B9%CF%84%CE%B9%CE%BA%CE%AE"
        "-%CF%83%CF%85%CE%BD%CE%BF%CF%87%CE%AE%CF%82-2027.aspx"
    )


def test_greek_on_bluesky_keeps_the_readable_link_and_faceted_whole():
    shaped = post("el-plenary.yaml", "bluesky")
    assert shaped.link == "https://cor.europa.eu/el/news/Pages/Πολιτική-συνοχής-2027.aspx"
    assert shaped.link_text == "cor.europa.eu/el/news/Page..."
    (facet,) = [f for f in shaped.facets if "uri" in f["features"][0]]
    data = shaped.text.encode("utf-8")
    shown = data[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode()
    assert shown == shaped.link_text
    assert facet["features"][0]["uri"] == shaped.link
    assert not link_spans(shaped.text[: -len(shown)])


def test_greek_malformed_hashtag_is_reported_and_repaired():
    shaped = post("el-plenary.yaml", "mastodon")
    assert "hashtag '# CoRplenary' is malformed; it is posted as #CoRplenary" in shaped.notes
    assert shaped.hashtags == ("#CohesionPolicy", "#CoRplenary")
    assert "Ποιος θα αποφασίζει για τα κονδύλια;" in shaped.text


def test_german_ordinals_and_z_b_do_not_end_sentences():
    shaped = post("de-green-deal.yaml", "x")
    assert blocks(shaped.text)[1] == (
        "Am 26. November hat der Europäische Ausschuss der Regionen seine Stellungnahme "
        "zum Klimaschutzgesetz angenommen."
    )
    assert shaped.hashtags == ("#GreenDealGoingLocal", "#EUGreenDeal")
    assert any("'#Green Deal Going Local' is malformed" in note for note in shaped.notes)


def test_german_on_bluesky_keeps_the_first_sentence_and_with_the_short_link_hashtags_too():
    shaped = post("de-green-deal.yaml", "bluesky")
    assert blocks(shaped.text)[1].endswith("Klimaschutzgesetz angenommen.")
    assert shaped.hashtags == ("#GreenDealGoingLocal", "#EUGreenDeal")


def test_german_on_a_tighter_bluesky_keeps_the_first_sentence_rather_than_hashtags():
    options = dataclasses.replace(OPTIONS, limits={"bluesky": TextLimits(260, 0)})
    shaped = compose(fixture("de-green-deal.yaml"), "bluesky", options)
    assert blocks(shaped.text)[1].endswith("Klimaschutzgesetz angenommen.")
    assert shaped.hashtags == ()
    assert any(note.startswith("hashtags left out on Bluesky") for note in shaped.notes)


@pytest.mark.parametrize("network", NETWORKS)
def test_german_body_link_never_takes_the_card_from_the_release(network: str):
    # The body ends "Weitere Informationen: https://…/green-deal.aspx": Mastodon would
    # build its card from that page. Even with the whole release as the lead, the text
    # stops at the sentence before it, and the release link is the only link.
    shaped = compose(fixture("de-green-deal.yaml"), network, full(network))
    assert "green-deal.aspx" not in shaped.text
    assert "Weitere Informationen" not in shaped.text
    found = mastodon_urls().extract(shaped.text, without_protocol=False)
    assert [u.url for u in found] == ([] if network == "bluesky" else [shaped.link])
    if network in ("facebook", "linkedin"):
        assert "nationalen Energie- und Klimaplänen.\n\n#GreenDealGoingLocal" in shaped.text
        assert (
            "the summary and body are cut before another link, so the link card shows the "
            "release" in shaped.notes
        )


def test_french_keeps_no_break_spaces_and_m_before_a_name():
    shaped = post("fr-session-pleniere.json", "x")
    title, lead, hashtags, _ = blocks(shaped.text)
    assert title.startswith("Session plénière\u00a0: ")
    assert lead.endswith("avec M.\u00a0Šefčovič.")
    assert hashtags == "#EUlocal #CoRplenary"
    assert shaped.link == "https://cor.europa.eu/fr/news/Pages/session-plénière-octobre.aspx"


def test_french_on_mastodon_keeps_guillemets_with_their_spaces():
    shaped = post("fr-session-pleniere.json", "mastodon")
    assert "«\u00a0L’Europe se construit dans nos territoires\u00a0», a déclaré" in shaped.text
    assert shaped.hashtags == ("#EUlocal", "#CoRplenary", "#FutureOfEurope")


def test_english_long_title_fits_x_whole_and_drops_the_summary():
    shaped = post("en-long-title.json", "x")
    title, hashtags, _ = blocks(shaped.text)
    assert title == fixture("en-long-title.json").title
    assert hashtags == "#EUBudget"
    assert shaped.hashtags == ("#CohesionAlliance", "#EUBudget")
    assert "no room for the summary on X" in shaped.notes


def test_english_long_title_fits_bluesky_whole_next_to_the_short_link():
    shaped = post("en-long-title.json", "bluesky")
    assert blocks(shaped.text)[0] == fixture("en-long-title.json").title


def test_english_long_title_is_cut_at_a_clause_on_a_tighter_bluesky():
    options = dataclasses.replace(OPTIONS, limits={"bluesky": TextLimits(200, 0)})
    shaped = compose(fixture("en-long-title.json"), "bluesky", options)
    title = blocks(shaped.text)[0]
    assert title.endswith("to keep cohesion policy for all regions…")
    assert "(#CohesionAlliance)" in title
    assert "the title is too long for Bluesky and is cut" in shaped.notes


def test_english_summary_keeps_its_domain_name_and_does_not_repeat_the_tag():
    shaped = post("en-long-title.json", "mastodon")
    assert "See europa.eu/regional_policy for the facts." in shaped.text
    assert shaped.text.count("#CohesionAlliance") == 2  # in the title and in the summary
    assert blocks(shaped.text)[-2] == "#EUBudget"

"""The composer: counting per network, links, hashtags, overrides and trimming."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pytest

from socialbot.compose import (
    ComposeOptions,
    ShapingRules,
    bluesky_facets,
    compose,
    escape_little_text,
    graphemes,
    load_options,
    measure,
)
from socialbot.compose.hashtags import normalize
from socialbot.compose.links import clickable, recognised_by, with_utm
from socialbot.compose.trimming import cut_points
from socialbot.compose.twitter_text import extract_hashtags, mastodon_urls, x_urls
from socialbot.errors import ComposeError, ConfigurationError
from socialbot.models import NETWORKS, Release, TextLimits

LINK = "https://cor.europa.eu/en/news/Pages/cohesion.aspx"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"


def release(**fields: Any) -> Release:
    data: dict[str, Any] = {
        "id": "r1",
        "title": "Regions call for a stronger cohesion policy after 2027",
        "url": LINK,
        "language": "en",
        **fields,
    }
    return Release.model_validate(data)


def sentences(count: int, words: int = 12) -> str:
    """``count`` sentences of ``words`` words each, numbered so they differ."""
    return " ".join(
        " ".join(["Sentence", str(n)] + ["word"] * (words - 2)) + "." for n in range(count)
    )


# -- counting -----------------------------------------------------------------------


def test_x_counts_every_url_as_23_with_or_without_a_scheme():
    assert measure("x", "See europa.eu now") == 4 + 23 + 4
    assert measure("x", f"Read {LINK}") == 5 + 23


def test_x_weighs_scripts_as_twitter_text_v3_does():
    assert measure("x", "Европа") == 6  # Cyrillic is in the light range
    assert measure("x", "Ευρώπη") == 6  # so is Greek
    assert measure("x", "東京") == 4  # CJK weighs 2
    assert measure("x", FAMILY) == 2  # one emoji sequence
    assert measure("x", "a\u200db") == 3  # a lone zero-width joiner weighs 1
    assert measure("x", "\u200fabc") == 5  # a right-to-left mark is outside the light ranges


def test_x_counts_after_nfc():
    assert measure("x", "Zu\u0308rich") == measure("x", "Zürich") == 6


def test_mastodon_counts_graphemes_and_links_at_the_instance_weight():
    text = f"{FAMILY} Европа https://cor.europa.eu/{'a' * 200}"
    assert measure("mastodon", text) == 1 + 1 + 6 + 1 + 23
    assert measure("mastodon", text, url_weight=30) == 1 + 1 + 6 + 1 + 30


def test_mastodon_counts_bare_domains_as_written():
    assert measure("mastodon", "see cor.europa.eu") == 17


def test_bluesky_counts_graphemes():
    assert measure("bluesky", "🇪🇺 Zu\u0308rich") == 1 + 1 + 6
    assert len(graphemes(FAMILY)) == 1


def test_linkedin_counts_the_escaped_text_and_facebook_utf16_units():
    assert measure("linkedin", "(CoR) #CohesionPolicy") == len("\\(CoR\\) #CohesionPolicy")
    assert measure("facebook", "😀") == 2


def test_an_unknown_network_is_a_compose_error():
    with pytest.raises(ComposeError, match="not a network"):
        measure("myspace", "hello")


# -- Bluesky facets and LinkedIn little text ----------------------------------------


def test_facets_use_utf8_byte_offsets():
    text = f"Европа 🇪🇺 #Кохезия and {LINK}."
    facets = bluesky_facets(text)
    data = text.encode("utf-8")
    spans = [data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode() for f in facets]
    assert spans == ["#Кохезия", LINK]
    assert facets[0]["features"] == [{"$type": "app.bsky.richtext.facet#tag", "tag": "Кохезия"}]
    assert facets[1]["features"] == [{"$type": "app.bsky.richtext.facet#link", "uri": LINK}]


def test_a_bare_domain_gets_an_https_link_facet():
    (facet,) = bluesky_facets("More on europa.eu.")
    assert facet["features"][0]["uri"] == "https://europa.eu"
    assert facet["index"] == {"byteStart": 8, "byteEnd": 17}


def test_a_required_link_is_faceted_whole():
    link = "https://cor.europa.eu/a)"
    (facet,) = bluesky_facets(f"x {link}", links=(link,))
    assert facet["features"][0]["uri"] == link
    assert facet["index"] == {"byteStart": 2, "byteEnd": 2 + len(link)}


def facet_targets(text: str, facets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each link facet's covered text and its target."""
    data = text.encode("utf-8")
    return [
        (data[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(), f["features"][0]["uri"])
        for f in facets
        if "uri" in f["features"][0]
    ]


@pytest.mark.parametrize(
    ("url", "summary", "other"),
    [
        (
            "https://europa.eu",
            "The full facts are on europa.eu/regional_policy for everyone to read.",
            ("europa.eu/regional_policy", "https://europa.eu/regional_policy"),
        ),
        (
            "https://cor.europa.eu",
            "The opinion text is at memportal.cor.europa.eu today for all readers.",
            ("memportal.cor.europa.eu", "https://memportal.cor.europa.eu"),
        ),
    ],
)
def test_a_bluesky_link_facet_never_covers_part_of_a_longer_link(
    url: str, summary: str, other: tuple[str, str]
):
    post = compose(release(url=url, summary=summary), "bluesky")
    shown = url.removeprefix("https://")
    assert facet_targets(post.text, list(post.facets)) == [other, (shown, url)]


def test_an_override_s_links_keep_their_own_facet_targets():
    link = "https://cor.europa.eu/en/news"
    text = f"French: {link}/fr and English: {link}"
    post = compose(release(url=link, overrides={"bluesky": text}), "bluesky")
    assert facet_targets(post.text, list(post.facets)) == [
        (f"{link}/fr", f"{link}/fr"),
        (link, link),
    ]


def test_a_link_shown_whole_in_the_text_is_faceted_to_its_target():
    facets = bluesky_facets(
        "See (cor.europa.eu/en). Or cor.europa.eu/en", shown=(("cor.europa.eu/en", LINK),)
    )
    assert facet_targets("See (cor.europa.eu/en). Or cor.europa.eu/en", facets) == [
        ("cor.europa.eu/en", LINK),
        ("cor.europa.eu/en", LINK),
    ]


def test_little_text_escapes_reserved_characters_but_keeps_hashtags():
    escaped = escape_little_text("Plenary (8-9 Oct) #CoRplenary, mail@cor.eu_ *new* #1")
    assert escaped == r"Plenary \(8-9 Oct\) #CoRplenary, mail\@cor.eu\_ \*new\* \#1"


# -- links --------------------------------------------------------------------------


def test_utm_parameters_merge_into_the_query_without_double_encoding():
    url = "https://cor.europa.eu/x.aspx?q=a%20b&utm_source=old#part"
    assert with_utm(url, "x", "r1") == (
        "https://cor.europa.eu/x.aspx?q=a%20b&utm_source=x&utm_medium=social&utm_campaign=r1#part"
    )


def test_utm_is_off_by_default_and_on_when_asked():
    assert compose(release(), "x").link == LINK
    post = compose(release(), "mastodon", ComposeOptions(utm=True))
    assert post.link == f"{LINK}?utm_source=mastodon&utm_medium=social&utm_campaign=r1"
    assert post.text.endswith(post.link)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://cor.europa.eu/fr/actualités/été", "https://cor.europa.eu/fr/actualités/été"),
        (
            "https://cor.europa.eu/el/Ωμέγα",
            "https://cor.europa.eu/el/%CE%A9%CE%BC%CE%AD%CE%B3%CE%B1",
        ),
        ("https://cor.europa.eu/en/page.", "https://cor.europa.eu/en/page%2E"),
        (
            "https://cor.europa.eu/wiki/Cohesion_(policy",
            "https://cor.europa.eu/wiki/Cohesion_%28policy",
        ),
        ("https://cor.europa.eu/a b", "https://cor.europa.eu/a%20b"),
        ("https://cor.europa.eu/%41%zz", "https://cor.europa.eu/%41%25zz"),
    ],
)
def test_links_are_encoded_only_where_a_network_would_stop(url: str, expected: str):
    link = clickable(url)
    assert link == expected
    assert all(recognised_by(network, link) for network in ("x", "mastodon", "bluesky"))


def test_a_link_x_would_not_make_clickable_is_refused_before_posting():
    local = release(url="http://localhost:8000/r1")
    for network in ("x", "mastodon"):
        with pytest.raises(ComposeError, match="would not be clickable"):
            compose(local, network)
    post = compose(local, "bluesky")
    assert post.text.endswith("localhost:8000/r1")  # shown as the Bluesky app shows it
    assert post.facets[-1]["features"][0]["uri"] == "http://localhost:8000/r1"


def test_the_release_link_in_the_text_is_not_posted_twice():
    post = compose(release(summary=f"Read the opinion at {LINK} today."), "mastodon")
    assert post.text.count(LINK) == 1
    assert "Read the opinion at today." in post.text
    assert any("taken out of the text" in note for note in post.notes)


@pytest.mark.parametrize(
    ("summary", "lead"),
    [
        (f"The opinion is at {LINK}. It says a lot.", "The opinion is at. It says a lot."),
        (f"Read the opinion (see {LINK}) today.", "Read the opinion (see) today."),
        (f"Read the opinion ({LINK}) today.", "Read the opinion today."),
        (f"Read the opinion [ {LINK} ], today.", "Read the opinion, today."),
        (f"Read it here: {LINK}. Then more.", "Read it here. Then more."),
        (f"{LINK}. It says a lot.", "It says a lot."),
        (f"It says a lot, {LINK}, really.", "It says a lot, really."),
        (f"It says a lot. Read it:  {LINK}", "It says a lot. Read it"),
        (f"Voir « {LINK} » ici, ou {LINK} !", "Voir ici, ou !"),
    ],
)
def test_taking_the_release_link_out_leaves_no_orphan_punctuation(summary: str, lead: str):
    post = compose(release(summary=summary), "mastodon")
    assert post.text.split("\n\n")[1] == lead


# -- hashtags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "tag", "malformed"),
    [
        ("#CohesionAlliance", "#CohesionAlliance", False),
        ("EURegions", "#EURegions", False),
        ("cohesion policy", "#CohesionPolicy", True),
        ("#Cohesion Alliance", "#CohesionAlliance", True),
        ("# CoRplenary", "#CoRplenary", True),
        ("EU-Regions", "#EURegions", True),
        ("#Κοινωνία", "#Κοινωνία", False),
        ("Children's rights", "#ChildrensRights", True),
        ("Europe’s regions", "#EuropesRegions", True),
        ("#Europeʼs", "#Europes", True),
        ("l’Europe", "#LEurope", True),
        ("l’Europe des régions", "#LEuropeDesRégions", True),
    ],
)
def test_hashtags_are_normalised_to_camel_case(raw: str, tag: str, malformed: bool):
    found, note = normalize(raw)
    assert str(found) == tag
    assert (note is not None) == malformed


@pytest.mark.parametrize("raw", ["#", "# 2027", "!!", "#" + "a" * 65])
def test_unusable_hashtags_are_left_out_with_a_note(raw: str):
    found, note = normalize(raw)
    assert found is None
    assert note is not None and "left out" in note


def test_hashtags_come_from_the_release_its_topics_and_its_text():
    post = compose(
        release(
            summary="The #CohesionAlliance met.",
            hashtags=["EURegions"],
            topics=["Cohesion policy reform", "A topic nobody mapped"],
        ),
        "mastodon",
        ComposeOptions(hashtag_map={"cohesion  POLICY reform": "CohesionPolicy"}),
    )
    assert post.hashtags == ("#CohesionAlliance", "#EURegions", "#CohesionPolicy")
    assert post.text.endswith(f"#EURegions #CohesionPolicy\n\n{LINK}")


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


@pytest.mark.parametrize("network", ["x", "mastodon", "bluesky"])
def test_a_decomposed_mapping_value_is_posted_composed_and_once(network: str):
    post = compose(
        release(summary="Le #Régions est important pour tous. Voilà.", topics=["Régions"]),
        network,
        ComposeOptions(hashtag_map={"Régions": nfd("Régions"), nfd("Cohésion"): "Cohésion"}),
    )
    assert post.hashtags == ("#Régions",)
    assert nfd("Régions") not in post.text
    assert post.text.count("#Régions") == 1


@pytest.mark.parametrize(
    ("key", "topic"),
    [
        (nfd("Politique de cohésion"), "Politique de cohésion"),
        ("Politique de cohésion", nfd("Politique de Cohésion")),
    ],
)
def test_a_topic_matches_its_mapping_key_whatever_the_normal_form(key: str, topic: str):
    post = compose(release(topics=[topic]), "x", ComposeOptions(hashtag_map={key: "Cohesion"}))
    assert post.hashtags == ("#Cohesion",)


def test_an_apostrophe_in_a_mapped_topic_s_hashtag_starts_no_new_word():
    mapping = {"Children's rights": "Children's rights", "Regions": "Europe’s regions"}
    post = compose(
        release(topics=["Children's rights", "Regions"]),
        "mastodon",
        ComposeOptions(hashtag_map=mapping),
    )
    assert post.hashtags == ("#ChildrensRights", "#EuropesRegions")


def test_hashtags_are_deduplicated_case_insensitively_and_inline_ones_not_repeated():
    post = compose(
        release(summary="Join the #CohesionAlliance.", hashtags=["cohesionalliance", "#EURegions"]),
        "mastodon",
    )
    assert post.text.count("#CohesionAlliance") == 1
    assert "#cohesionalliance" not in post.text
    assert post.hashtags == ("#CohesionAlliance", "#EURegions")


def test_each_network_has_a_maximum_of_hashtags():
    many = release(hashtags=[f"Tag{letter}" for letter in "ABCDEFG"])
    assert len(compose(many, "x").hashtags) == 2
    assert len(compose(many, "mastodon").hashtags) == 5
    x = compose(many, "x")
    assert any("#TagC" in note for note in x.notes)


def test_hashtags_are_dropped_before_the_title_is_cut():
    title = " ".join(["Regions"] * 31)  # 247, + 2 + 23 for the link: no room for a hashtag
    post = compose(release(title=title, hashtags=["CohesionPolicy"]), "x")
    assert post.text == f"{title}\n\n{LINK}"
    assert post.hashtags == ()


def test_hashtags_are_dropped_before_the_first_sentence_is():
    summary = "The plenary adopted the opinion on cohesion policy after a long debate today."
    post = compose(release(summary=summary, hashtags=["CohesionPolicy", "EURegions"]), "x")
    assert summary in post.text
    assert len(post.hashtags) < 2 or summary in post.text


def test_a_tag_bluesky_would_not_link_in_the_text_is_appended_there():
    summary = "The regions (#EURegions) and «#Ευρώπη» adopted an opinion today."
    bluesky = compose(release(summary=summary, hashtags=["EURegions"]), "bluesky")
    assert bluesky.text.split("\n\n")[1:3] == [summary, "#EURegions #Ευρώπη"]
    tags = [f["features"][0]["tag"] for f in bluesky.facets if "tag" in f["features"][0]]
    assert tags == ["EURegions", "Ευρώπη"]
    assert bluesky.hashtags == ("#EURegions", "#Ευρώπη")
    mastodon = compose(release(summary=summary, hashtags=["EURegions"]), "mastodon")
    assert mastodon.text.count("#EURegions") == 1  # X and Mastodon link it after "("


def test_a_malformed_tag_in_the_text_is_repaired_and_reported():
    post = compose(release(summary="The # CoRplenary starts today."), "mastodon")
    assert "The #CoRplenary starts today." in post.text
    assert any("'# CoRplenary'" in note for note in post.notes)


# -- the team's mapping file --------------------------------------------------------


def test_the_mapping_file_gives_topics_hashtags_and_network_rules(tmp_path: Path):
    path = tmp_path / "hashtags.yaml"
    path.write_text(
        "topics:\n  Cohesion policy reform: CohesionPolicy\n  Green Deal: EU green deal\n"
        "networks:\n  x:\n    max_hashtags: 1\n",
        encoding="utf-8",
    )
    options = load_options(path, utm=True)
    assert options.utm
    assert options.hashtag_map["Green Deal"] == "EU green deal"
    assert options.rules_for("x").max_hashtags == 1
    post = compose(release(topics=["Green Deal", "Cohesion policy reform"]), "mastodon", options)
    assert post.hashtags == ("#EUGreenDeal", "#CohesionPolicy")


def test_the_example_mapping_file_loads():
    options = load_options(Path(__file__).parents[1] / "hashtags.yaml")
    assert options.hashtag_map["Cohesion policy reform"] == "CohesionPolicy"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("topics:\n  Cohesion policy: #CohesionPolicy\n", "a # starts a comment"),
        ("topics:\n  Cohesion policy: '!!'\n", "not a usable hashtag"),
        ("- a list\n", "needs a 'topics' mapping"),
        ("topics: {}\nnetworks:\n  myspace: {}\n", "unknown network 'myspace'"),
        ("topics: {}\nnetworks:\n  x: {order: [link]}\n", "must include title and link"),
        ("topics: {}\nnetworks:\n  x: {max_hashtags: many}\n", "whole number"),
        ("topics: &a {}\nnetworks: *a\n", "alias"),
        ("topics: [unclosed\n", "not valid UTF-8 YAML"),
    ],
)
def test_a_broken_mapping_file_is_one_configuration_error(
    tmp_path: Path, content: str, message: str
):
    path = tmp_path / "hashtags.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_options(path)
    assert str(path) in str(caught.value)


def test_a_missing_mapping_file_is_an_error_only_when_named(tmp_path: Path):
    assert load_options(tmp_path / "absent.yaml", required=False) == ComposeOptions()
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_options(tmp_path / "absent.yaml", required=True)


def test_shaping_rules_are_data_a_network_can_override():
    post = compose(
        release(summary="A short summary.", hashtags=["CohesionPolicy"]),
        "linkedin",
        ComposeOptions(rules={"linkedin": ShapingRules(order=("title", "link", "hashtags"))}),
    )
    assert (
        post.text
        == f"Regions call for a stronger cohesion policy after 2027\n\n{LINK}\n\n#CohesionPolicy"
    )


# -- overrides ----------------------------------------------------------------------


def test_an_override_is_posted_as_written_with_the_link_added():
    post = compose(release(overrides={"x": "Our own words for X."}), "x")
    assert post.text == f"Our own words for X.\n\n{LINK}"
    assert post.length == 20 + 2 + 23


def test_an_override_naming_the_release_url_gets_the_utm_link_in_its_place():
    post = compose(release(overrides={"x": f"See {LINK} now"}), "x", ComposeOptions(utm=True))
    assert post.text == f"See {post.link} now"
    assert "utm_source=x" in post.link


def test_an_override_over_the_limit_is_a_clear_error():
    with pytest.raises(ComposeError) as caught:
        compose(release(overrides={"x": "Ε" * 300}), "x")
    assert str(caught.value) == (
        "x: the text override is 325 long as X counts it; the limit is 280, so shorten it by 45"
    )


def test_an_override_is_checked_against_the_instance_limit():
    options = ComposeOptions(limits={"mastodon": TextLimits(100, 23)})
    with pytest.raises(ComposeError, match="the limit is 100"):
        compose(release(overrides={"mastodon": "word " * 20}), "mastodon", options)


def test_a_bluesky_override_is_checked_in_bytes_too():
    with pytest.raises(ComposeError, match="bytes in UTF-8"):
        compose(release(overrides={"bluesky": FAMILY * 130}), "bluesky")  # 25 bytes each


# -- trimming -----------------------------------------------------------------------


def test_a_long_summary_is_cut_at_a_close_sentence_end():
    post = compose(release(summary=sentences(10)), "x")
    lead = post.text.split("\n\n")[1]
    assert lead.endswith("word.")
    assert "…" not in post.text
    assert post.length >= 200


def test_with_no_sentence_end_close_the_cut_falls_between_words_with_an_ellipsis():
    summary = "Regions, cities, villages, " * 30
    post = compose(release(summary=summary.strip()), "x")
    lead = post.text.split("\n\n")[1]
    assert lead.endswith("villages…") or lead.endswith("cities…") or lead.endswith("Regions…")
    assert post.length >= 270


def test_an_abbreviation_is_not_a_sentence_end():
    summary = "През октомври 2017 г. Алиансът за сближаване беше създаден от регионите. " * 3
    post = compose(release(summary=summary, language="bg", title="Заглавие"), "x")
    assert "2017 г.\n" not in post.text
    assert post.text.split("\n\n")[1].endswith("регионите.")


LONG_REST = (
    " The opinion was adopted by the plenary on Wednesday in Brussels with a large majority of"
    " members voting for it and with many more words following here to make the whole lead"
    " clearly longer than the room that X leaves for it in the post"
)


@pytest.mark.parametrize(
    ("language", "first", "rest"),
    [
        ("en", "Regions want a stronger cohesion policy after 2027.", LONG_REST),
        (
            "el",
            "Η Επιτροπή των Περιφερειών ενέκρινε γνωμοδότηση για το 2027.",
            " Η γνωμοδότηση εγκρίθηκε από την ολομέλεια την Τετάρτη στις Βρυξέλλες με μεγάλη"
            " πλειοψηφία των μελών της και πολλές άλλες λέξεις ακολουθούν εδώ για να γίνει το"
            " κείμενο μακρύτερο από τον χώρο που αφήνει",
        ),
        ("de", "Die Regionen wollen eine starke Kohäsionspolitik nach 2027.", LONG_REST),
    ],
)
def test_a_sentence_ending_in_a_year_ends_there(language: str, first: str, rest: str):
    post = compose(release(summary=first + rest, language=language), "x")
    assert post.text.split("\n\n")[1] == first


def test_a_number_ends_no_sentence_as_a_list_number_a_date_or_a_german_ordinal():
    def ends(text: str, language: str) -> list[str]:
        return [text[: p.index] for p in cut_points(text, language) if p.sentence]

    assert ends("1. Regions want more. 2. Cities too. Goals: 3. Money. End", "en") == [
        "1. Regions want more.",
        "1. Regions want more. 2. Cities too.",
        "1. Regions want more. 2. Cities too. Goals: 3. Money.",
    ]
    german = "Am 3. März tagt er. Der 9. Kohäsionsbericht kommt 2027. Dann"
    assert ends(german, "de") == [
        "Am 3. März tagt er.",
        "Am 3. März tagt er. Der 9. Kohäsionsbericht kommt 2027.",
    ]


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        (
            "es",
            "Quieren proteger el mar. El dictamen del Sr. Pérez. Y",
            ["Quieren proteger el mar.", "Quieren proteger el mar. El dictamen del Sr. Pérez."],
        ),
        (
            "fr",
            "Ils protègent la mer à l'est. No. 5 reste. Voir M. Dupont. Et",
            [
                "Ils protègent la mer à l'est.",
                "Ils protègent la mer à l'est. No.",
                "Ils protègent la mer à l'est. No. 5 reste.",
                "Ils protègent la mer à l'est. No. 5 reste. Voir M. Dupont.",
            ],
        ),
        (
            "en",
            "They want the Mar. Regions want no. 5 today. See e.g. Art. 3 here. And",
            [
                "They want the Mar. Regions want no. 5 today.",
                "They want the Mar. Regions want no. 5 today. See e.g. Art. 3 here.",
            ],
        ),
    ],
)
def test_each_language_has_its_own_abbreviations(language: str, text: str, expected: list[str]):
    assert [text[: p.index] for p in cut_points(text, language) if p.sentence] == expected


def test_a_spanish_lead_ends_at_el_mar():
    first = "Las regiones costeras quieren proteger el mar."
    post = compose(release(summary=first + LONG_REST, language="es"), "x")
    assert post.text.split("\n\n")[1] == first


def test_the_greek_question_mark_ends_a_sentence():
    summary = "Ποιος θα αποφασίζει για τα κονδύλια της συνοχής μετά το 2027; " * 6
    post = compose(release(summary=summary, language="el", title="Τίτλος"), "x")
    assert post.text.split("\n\n")[1].endswith("2027;")


def test_a_cut_never_leaves_an_ellipsis_glued_to_a_url():
    # Bare domains (no scheme: no card is built from them) stay in a teaser; a clause
    # cut right after one sets the ellipsis off.
    summary = " ".join(f"word{n} cor.europa.eu/page{n}," for n in range(40))
    for network in ("x", "mastodon", "bluesky"):
        post = compose(release(summary=summary), network)
        lead = post.text.split("\n\n")[1]
        assert lead.endswith("…")
        assert not lead.removesuffix("…").endswith(tuple(f"page{n}" for n in range(40)))


def test_cjk_text_is_cut_between_characters():
    title = "東京" * 200
    post = compose(release(title=title, language="ja"), "x")
    shown = post.text.split("\n\n")[0]
    assert shown.endswith("…")
    assert title.startswith(shown.removesuffix("…"))
    assert post.length <= 280
    assert "the title is too long for X and is cut" in post.notes


def test_a_cjk_lead_never_ends_inside_a_quotation():
    quote = "委員長は「復興は地域なしにはあり得ない。」"
    summary = (
        quote
        + "と述べ、"
        + "結束政策は全ての地域にとって不可欠であり今後も強化されるべきである" * 5
    )
    post = compose(release(summary=summary + "。", language="ja", title="意見を採択"), "x")
    assert post.text.split("\n\n")[1] == quote


def test_a_cjk_sentence_mark_inside_brackets_ends_no_sentence():
    text = "彼は「A。B。」と言った。次に（C。D。）E。『F！』G"
    ends = [text[: p.index] for p in cut_points(text, "ja") if p.sentence]
    assert ends == [
        "彼は「A。B。」",
        "彼は「A。B。」と言った。",
        "彼は「A。B。」と言った。次に（C。D。）",
        "彼は「A。B。」と言った。次に（C。D。）E。",
        "彼は「A。B。」と言った。次に（C。D。）E。『F！』",
    ]


def test_a_cut_inside_an_isolate_closes_it():
    summary = ("\u2067مرحبا بالعالم في المدن والمناطق الأوروبية\u2069 " * 20).strip()
    post = compose(release(summary=summary, language="ar"), "x")
    lead = post.text.split("\n\n")[1]
    assert lead.count("\u2067") == lead.count("\u2069")


def test_zero_width_joiner_sequences_are_never_split():
    summary = ", ".join([FAMILY * 3] * 100)
    post = compose(release(summary=summary), "bluesky")
    lead = post.text.split("\n\n")[1].removesuffix("…")
    assert lead
    assert all(token.rstrip(",") == FAMILY * 3 for token in lead.split())


def test_a_title_that_cannot_be_cut_between_words_needs_an_override():
    with pytest.raises(ComposeError, match="give this network a text override"):
        compose(release(title="Ω" * 300), "x")


def test_a_link_longer_than_the_limit_is_refused():
    small = ComposeOptions(limits={"mastodon": TextLimits(20, 23)})
    with pytest.raises(ComposeError, match="the link alone is 23 long"):
        compose(release(), "mastodon", small)


def test_a_long_link_costs_bluesky_only_its_short_display():
    post = compose(release(url="https://cor.europa.eu/" + "a" * 300), "bluesky")
    assert post.text.endswith("\n\ncor.europa.eu/" + "a" * 12 + "...")
    assert post.link_text == "cor.europa.eu/" + "a" * 12 + "..."
    assert post.facets[-1]["features"][0]["uri"] == "https://cor.europa.eu/" + "a" * 300


def test_the_post_uses_a_mastodon_instance_s_own_limit():
    summary = sentences(100)
    small = compose(
        release(summary=summary),
        "mastodon",
        ComposeOptions(limits={"mastodon": TextLimits(200, 23)}),
    )
    large = compose(
        release(summary=summary),
        "mastodon",
        ComposeOptions(limits={"mastodon": TextLimits(5000, 23)}),
    )
    assert (small.limit, large.limit) == (200, 5000)
    assert small.length <= 200 < 4000 < large.length <= 5000


def test_facebook_and_linkedin_get_the_whole_release_when_their_rules_ask_for_it():
    # The default is the title and a lead (test_compose_text.py); the body is there
    # for the link. A team may still set lead: full without a lead length.
    body = sentences(5)
    full = ShapingRules(lead="full")
    for network in ("facebook", "linkedin"):
        options = ComposeOptions(rules={network: full})
        post = compose(release(summary="A summary.", body=body), network, options)
        assert post.text == f"{release().title}\n\nA summary.\n\n{body}\n\n{LINK}"


def test_a_very_long_body_comes_close_to_facebook_s_limit():
    options = ComposeOptions(rules={"facebook": ShapingRules(lead="full")})
    post = compose(release(body=sentences(1100)), "facebook", options)
    assert 62_000 < post.length <= 63_206


def test_the_link_card_description_is_cut_between_words():
    post = compose(release(summary=sentences(30)), "facebook")
    assert len(post.description) <= 300
    assert post.description.endswith(".")


def test_every_network_s_post_is_the_link_and_the_title_at_least():
    for network in NETWORKS:
        post = compose(release(), network)
        shown = post.link_text or LINK
        assert post.text == f"Regions call for a stronger cohesion policy after 2027\n\n{shown}"
        assert post.length == measure(network, post.text)


def test_hashtags_in_the_text_are_what_x_finds():
    post = compose(release(summary="#Tag1 and #Tag2 https://cor.europa.eu/#frag"), "x")
    assert [f"#{tag.tag}" for tag in extract_hashtags(post.text)] == list(post.hashtags)
    assert [u.url for u in x_urls().extract(post.text)][-1] == LINK
    assert mastodon_urls().extract(post.text, without_protocol=False)[-1].url == LINK

"""Text a press officer would publish (issue 11): the posts a human expects.

Teasers end at a sentence, else at a clause boundary after a content word, else
the post is title, hashtags and link; Facebook and LinkedIn get a lead, not the
body; the release's card is the one shown; Bluesky shows a short link; an
``@handle`` tags no stranger. Realistic CoR-style text in en, fr, de, bg and el.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import regex

from socialbot.compose import ComposeOptions, ShapingRules, compose, load_options, measure
from socialbot.compose.function_words import covered, ends_on_function_word, function_words
from socialbot.compose.links import bluesky_display
from socialbot.compose.mentions import WORD_JOINER
from socialbot.compose.trimming import ELLIPSIS
from socialbot.compose.twitter_text import mastodon_urls, x_urls
from socialbot.errors import ConfigurationError
from socialbot.models import NETWORKS, Release, TextLimits

LINK = "https://cor.europa.eu/en/news/Pages/regional-leaders.aspx"
SHORT = "cor.europa.eu/en/news/Page..."

# One long opening sentence per language, with commas, as the media centre writes them.
BODIES = {
    "de": (
        "Regionen fordern mehr Mitsprache bei der Kohäsionspolitik",
        "Der Europäische Ausschuss der Regionen hat am Mittwoch in Brüssel eine Stellungnahme "
        "zur Zukunft der Kohäsionspolitik verabschiedet, in der die Mitglieder eine stärkere "
        "Rolle der Städte und Regionen bei der Planung der Programme fordern, und vor einer "
        "Zentralisierung der Mittel warnen. Die Stellungnahme geht nun an die Kommission.",
    ),
    "bg": (
        "Регионите искат по-силна политика на сближаване",
        "Европейският комитет на регионите прие в Брюксел становище относно бъдещето на "
        "политиката на сближаване, като призова за по-голяма роля на градовете и регионите "
        "при планирането на програмите, и за опростяване на правилата за бенефициерите. "
        "Становището е изпратено на Комисията.",
    ),
    "el": (
        "Οι περιφέρειες ζητούν ισχυρή πολιτική συνοχής",
        "Η Ευρωπαϊκή Επιτροπή των Περιφερειών ενέκρινε στις Βρυξέλλες γνωμοδότηση για το "
        "μέλλον της πολιτικής συνοχής, ζητώντας μεγαλύτερο ρόλο για τις πόλεις και τις "
        "περιφέρειες στον σχεδιασμό των προγραμμάτων, καθώς και απλούστερους κανόνες για τους "
        "δικαιούχους. Η γνωμοδότηση διαβιβάζεται στην Επιτροπή.",
    ),
    "fr": (
        "Les régions demandent une politique de cohésion forte après 2027",
        "Le Comité européen des régions a adopté mercredi à Bruxelles un avis sur l’avenir de "
        "la politique de cohésion, dans lequel ses membres demandent un rôle plus important "
        "pour les villes et les régions dans la conception des programmes, et mettent en garde "
        "contre une centralisation des fonds. L’avis est transmis à la Commission.",
    ),
    "en": (
        "Regions call for a stronger cohesion policy after 2027",
        "The European Committee of the Regions adopted an opinion in Brussels on Wednesday on "
        "the future of cohesion policy, in which its members call for a greater role for cities "
        "and regions in the design of programmes, and warn against any centralisation of the "
        "funds. The opinion now goes to the Commission.",
    ),
}


def release(language: str = "en", **fields: Any) -> Release:
    title, body = BODIES[language]
    data: dict[str, Any] = {
        "id": "r1",
        "title": title,
        "url": LINK,
        "language": language,
        "body": body,
        **fields,
    }
    return Release.model_validate(data)


def blocks(text: str) -> list[str]:
    return text.split("\n\n")


def lead_of(post_text: str, title: str) -> str:
    """The lead block ('' when the post is title, hashtags and link)."""
    rest = blocks(post_text)[1:-1]
    return "" if not rest or rest[0].startswith("#") else rest[0]


# -- teaser cuts --------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(BODIES))
@pytest.mark.parametrize("limit", range(90, 420, 11))
def test_a_teaser_ends_at_a_sentence_or_a_clause_never_on_a_function_word(
    language: str, limit: int
):
    options = ComposeOptions(limits={"mastodon": TextLimits(limit, 23)})
    post = compose(release(language), "mastodon", options)
    title, body = BODIES[language]
    lead = lead_of(post.text, title)
    assert post.length <= limit
    if not lead:
        assert post.text == f"{title}\n\n{LINK}"
        return
    assert body.startswith(lead.removesuffix(ELLIPSIS))
    if lead.endswith(ELLIPSIS):
        kept = lead.removesuffix(ELLIPSIS)
        # A clause cut: the source has a comma right where the teaser stops.
        assert body[len(kept) : len(kept) + 1] == ","
        assert not ends_on_function_word(kept, language)
        assert len(kept.split()) >= 4
    else:
        assert lead.endswith(".")


def test_german_teaser_does_not_end_on_zur():
    # Room for "…in Brüssel eine Stellungnahme zur…" but that is no place to stop.
    post = compose(release("de"), "x")
    assert post.text == (
        "Regionen fordern mehr Mitsprache bei der Kohäsionspolitik\n\n"
        "Der Europäische Ausschuss der Regionen hat am Mittwoch in Brüssel eine Stellungnahme "
        "zur Zukunft der Kohäsionspolitik verabschiedet…\n\n" + LINK
    )
    assert "the body is cut to fit X" in post.notes


def test_bulgarian_teaser_does_not_end_on_na():
    options = ComposeOptions(limits={"mastodon": TextLimits(200, 23)})
    post = compose(release("bg"), "mastodon", options)
    assert "политиката на…" not in post.text
    assert post.text == (
        "Регионите искат по-силна политика на сближаване\n\n"
        "Европейският комитет на регионите прие в Брюксел становище относно бъдещето на "
        "политиката на сближаване…\n\n" + LINK
    )


def test_greek_teaser_ends_at_the_clause_with_accents_folded():
    post = compose(release("el"), "bluesky")
    assert blocks(post.text)[1] == (
        "Η Ευρωπαϊκή Επιτροπή των Περιφερειών ενέκρινε στις Βρυξέλλες γνωμοδότηση για το "
        "μέλλον της πολιτικής συνοχής, ζητώντας μεγαλύτερο ρόλο για τις πόλεις και τις "
        "περιφέρειες στον σχεδιασμό των προγραμμάτων…"
    )
    assert ends_on_function_word("γνωμοδότηση για το", "el")
    assert ends_on_function_word("μέλλον ΑΠΌ", "el")  # capitals and tonos folded


def test_french_and_english_teasers_stop_at_the_comma_before_the_relative_clause():
    fr = compose(release("fr"), "x")
    assert blocks(fr.text)[1] == (
        "Le Comité européen des régions a adopté mercredi à Bruxelles un avis sur l’avenir de "
        "la politique de cohésion…"
    )
    en = compose(release("en"), "x")
    assert blocks(en.text)[1] == (
        "The European Committee of the Regions adopted an opinion in Brussels on Wednesday on "
        "the future of cohesion policy…"
    )


def test_with_no_sentence_or_clause_that_fits_the_post_is_title_hashtags_and_link():
    body = (
        "Die Mitglieder des Ausschusses der Regionen haben heute in einer gemeinsamen Erklärung "
        "die Kommission aufgefordert die Mittel für die Regionen und Städte in den kommenden "
        "Jahren nicht zu kürzen und die Verfahren für die Begünstigten deutlich zu vereinfachen."
    )
    post = compose(release("de", body=body, hashtags=["CohesionPolicy"]), "x")
    assert post.text == (
        f"Regionen fordern mehr Mitsprache bei der Kohäsionspolitik\n\n#CohesionPolicy\n\n{LINK}"
    )
    assert "no room for the body on X" in post.notes


def test_a_clause_after_a_function_word_is_no_place_to_stop():
    body = (
        "The regions and cities of the Union, and, above all, their citizens expect clear "
        "answers from the Commission on the future of the funds after the year 2027 today."
    )
    post = compose(
        release("en", body=body),
        "mastodon",
        ComposeOptions(limits={"mastodon": TextLimits(130, 23)}),
    )
    lead = lead_of(post.text, BODIES["en"][0])
    assert lead == "The regions and cities of the Union…"


def test_a_title_cut_avoids_ending_on_a_function_word():
    title = (
        "Der Ausschuss der Regionen verabschiedet in Brüssel eine Stellungnahme zur Zukunft "
        "der europäischen Kohäsionspolitik nach dem Jahr 2027 für alle Regionen der Union"
    )
    options = ComposeOptions(limits={"mastodon": TextLimits(110, 23)})
    post = compose(release("de", title=title), "mastodon", options)
    shown = blocks(post.text)[0]
    assert shown.endswith(ELLIPSIS)
    assert not ends_on_function_word(shown.removesuffix(ELLIPSIS), "de")
    # A cut between words after "zur" would fit too; "Zukunft" is where it may stop.
    assert shown == (
        "Der Ausschuss der Regionen verabschiedet in Brüssel eine Stellungnahme zur Zukunft…"
    )


def test_function_words_cover_the_eu_languages_but_maltese():
    eu = [
        "bg",
        "cs",
        "da",
        "de",
        "el",
        "en",
        "es",
        "et",
        "fi",
        "fr",
        "ga",
        "hr",
        "hu",
        "it",
        "lt",
        "lv",
        "nl",
        "pl",
        "pt",
        "ro",
        "sk",
        "sl",
        "sv",
    ]
    assert [code for code in eu if not covered(code)] == []
    assert not covered("mt")
    assert {"zur", "der", "und"} <= function_words("de")
    assert {"на", "за", "и"} <= function_words("bg")
    assert {"de", "la", "et"} <= function_words("fr")
    assert not ends_on_function_word("COVID-19", "en")
    assert not ends_on_function_word("#the", "en")


# -- Facebook and LinkedIn: a lead, not the body -------------------------------------


def test_facebook_and_linkedin_get_the_summary_as_lead_and_not_the_body():
    summary = "Regional leaders adopted their opinion on cohesion policy in Brussels."
    for network in ("facebook", "linkedin"):
        post = compose(release("en", summary=summary), network)
        assert post.text == f"{BODIES['en'][0]}\n\n{summary}\n\n{LINK}"


def test_without_a_summary_the_lead_is_the_first_paragraph_cut_near_the_see_more():
    first = BODIES["en"][1]
    body = f"{first}\n\nA second paragraph the reader finds behind the link."
    facebook = compose(release("en", body=body), "facebook")
    assert blocks(facebook.text)[1] == first  # 321 characters: under 500, whole
    assert "second paragraph" not in facebook.text
    linkedin = compose(release("en", body=body), "linkedin")
    lead = blocks(linkedin.text)[1]
    # The next clause would end at 212 characters: LinkedIn's "See more" comes first.
    assert lead == (
        "The European Committee of the Regions adopted an opinion in Brussels on Wednesday on "
        "the future of cohesion policy…"
    )
    assert measure("linkedin", lead) <= 210


def test_the_lead_length_is_set_per_network_in_the_mapping_file(tmp_path: Path):
    path = tmp_path / "hashtags.yaml"
    path.write_text("topics: {}\nlead:\n  linkedin: 500\n  facebook: 120\n", encoding="utf-8")
    options = load_options(path)
    assert options.rules_for("linkedin").lead_length == 500
    assert options.rules_for("linkedin").lead == "first"
    assert blocks(compose(release("en"), "linkedin", options).text)[1] == BODIES["en"][1]
    assert blocks(compose(release("en"), "facebook", options).text)[1] == (
        "The European Committee of the Regions adopted an opinion in Brussels on Wednesday on "
        "the future of cohesion policy…"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("lead: [500]\n", "'lead' must map a network"),
        ("lead: {myspace: 500}\n", "unknown network 'myspace'"),
        ("lead: {facebook: many}\n", "lead.facebook must be a whole number"),
        ("lead: {facebook: 0}\n", "lead.facebook must be a whole number"),
        ("mentions: {EU_CoR: '@EU_CoR'}\n", "mentions.EU_CoR must map a network"),
        ("mentions: {EU_CoR: {x: 'EU CoR'}}\n", "is not a handle"),
        ("mentions: {'EU CoR': {x: '@EU_CoR'}}\n", "is not a handle"),
        ("mentions: {EU_CoR: {myspace: '@EU_CoR'}}\n", "unknown network 'myspace'"),
    ],
)
def test_a_broken_lead_or_mentions_section_is_one_configuration_error(
    tmp_path: Path, content: str, message: str
):
    path = tmp_path / "hashtags.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_options(path)


# -- the release's card -------------------------------------------------------------


@pytest.mark.parametrize("network", NETWORKS)
def test_a_body_link_before_the_release_link_never_takes_the_card(network: str):
    summary = (
        "The opinion was adopted at the plenary session. The full text is on "
        "https://memportal.cor.europa.eu/opinion-123 with the amendments."
    )
    post = compose(release("en", summary=summary), network)
    assert "memportal" not in post.text
    assert blocks(post.text)[1] == "The opinion was adopted at the plenary session."
    schemed = [u.url for u in x_urls().extract(post.text) if u.url.startswith("http")]
    if network == "bluesky":
        assert schemed == []
        assert post.facets[-1]["features"][0]["uri"] == LINK
    else:
        assert schemed == [LINK]
        first = mastodon_urls().extract(post.text, without_protocol=False)[0]
        assert first.url == LINK  # the first link: Mastodon's card


def test_a_bare_domain_stays_in_the_teaser_as_no_card_is_built_from_it():
    summary = "Over 12 000 signatories joined. See europa.eu/regional_policy for the facts."
    post = compose(release("en", summary=summary), "mastodon")
    assert blocks(post.text)[1] == summary
    assert mastodon_urls().extract(post.text, without_protocol=False)[0].url == LINK


# -- Bluesky's short link -------------------------------------------------------------


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        (LINK, SHORT),
        ("https://cor.europa.eu/en", "cor.europa.eu/en"),
        ("https://cor.europa.eu/", "cor.europa.eu"),
        ("https://cor.europa.eu/en/news?id=1", "cor.europa.eu/en/news?id=1"),
        ("https://cor.europa.eu/en/news?id=123#p", "cor.europa.eu/en/news?id=1..."),
        ("http://localhost:8000/r1", "localhost:8000/r1"),
        ("https://cor.europa.eu/el/Πολιτική-συνοχής", "cor.europa.eu/el/Πολιτική-..."),
    ],
)
def test_the_bluesky_link_is_shown_as_the_app_shows_it(link: str, shown: str):
    assert bluesky_display(link) == shown


def test_the_bluesky_post_counts_the_short_link_and_its_facet_keeps_the_full_one():
    post = compose(release("en"), "bluesky")
    assert post.text.endswith("\n\n" + SHORT)
    assert post.link == LINK
    assert post.link_text == SHORT
    assert post.length == measure("bluesky", post.text)
    (facet,) = post.facets
    data = post.text.encode("utf-8")
    assert data[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode() == SHORT
    assert facet["features"] == [{"$type": "app.bsky.richtext.facet#link", "uri": LINK}]


# -- mentions -----------------------------------------------------------------------

MENTIONS = {
    "EU_CoR": {
        "x": "@EU_CoR",
        "mastodon": "@EU_CoR@social.example",
        "bluesky": "@cor.europa.eu",
    }
}
WITH_HANDLE = "Follow @EU_CoR and @EUinmyRegion for the plenary. Questions: press@cor.europa.eu."

# Mastodon's Account::MENTION_RE and twitter-text's mention rule, as each network reads text.
MASTODON_MENTION = regex.compile(
    r"(?<![=/\p{L}\p{N}_])@(([a-z0-9_]+([a-z0-9_.-]+[a-z0-9_]+)?)(?:@[\w.-]+\w+)?)",
    regex.IGNORECASE,
)
X_MENTION = regex.compile(r"(?:^|[^a-zA-Z0-9_!#$%&*@＠])[@＠]([a-zA-Z0-9_]{1,20})")


def mentioned(network: str, text: str) -> list[str]:
    pattern = X_MENTION if network == "x" else MASTODON_MENTION
    return [match.group(1) for match in pattern.finditer(text)]


@pytest.mark.parametrize("network", ["x", "mastodon"])
def test_a_handle_in_the_release_tags_no_one_on_x_and_mastodon(network: str):
    post = compose(release("en", summary=WITH_HANDLE), network)
    assert mentioned(network, post.text) == []
    assert f"@{WORD_JOINER}EU_CoR and @{WORD_JOINER}EUinmyRegion" in post.text
    assert "press@cor.europa.eu" in post.text  # an address is no mention, left alone
    assert any("@handles in the text are plain text" in note for note in post.notes)


@pytest.mark.parametrize("network", ["facebook", "linkedin", "bluesky"])
def test_a_handle_stays_as_written_where_text_never_tags(network: str):
    post = compose(release("en", summary=WITH_HANDLE), network)
    assert WITH_HANDLE in post.text
    assert not any(
        f["features"][0]["$type"] == "app.bsky.richtext.facet#mention" for f in post.facets
    )


def test_the_mapping_file_gives_each_network_its_own_handle(tmp_path: Path):
    path = tmp_path / "hashtags.yaml"
    path.write_text(
        "topics: {}\nmentions:\n  EU_CoR:\n    x: '@EU_CoR'\n"
        "    mastodon: '@EU_CoR@social.example'\n    bluesky: '@cor.europa.eu'\n",
        encoding="utf-8",
    )
    options = load_options(path)
    assert options.mentions == MENTIONS
    x = compose(release("en", summary=WITH_HANDLE), "x", options)
    assert mentioned("x", x.text) == ["EU_CoR"]  # tagged on purpose; the other is not
    mastodon = compose(release("en", summary=WITH_HANDLE), "mastodon", options)
    assert "Follow @EU_CoR@social.example and @\u2060EUinmyRegion" in mastodon.text
    assert mentioned("mastodon", mastodon.text) == ["EU_CoR@social.example"]
    bluesky = compose(release("en", summary=WITH_HANDLE), "bluesky", options)
    assert "Follow @cor.europa.eu and @EUinmyRegion" in bluesky.text
    # No DID without a network look-up: plain text, and not a link either.
    assert [f["features"][0]["$type"] for f in bluesky.facets] == ["app.bsky.richtext.facet#link"]
    facebook = compose(release("en", summary=WITH_HANDLE), "facebook", options)
    assert WITH_HANDLE in facebook.text


def test_a_handle_inside_a_link_is_part_of_the_link():
    summary = "Our account is https://social.example/@EU_CoR now."
    post = compose(release("en", summary=summary), "x")
    assert WORD_JOINER not in post.text


def test_an_override_keeps_its_handles_as_the_press_officer_wrote_them():
    post = compose(release("en", overrides={"mastodon": "Thanks @EU_CoR!"}), "mastodon")
    assert post.text == f"Thanks @EU_CoR!\n\n{LINK}"


def test_linkedin_shaping_rules_still_override_the_lead():
    rules = {"linkedin": ShapingRules(lead="summary", lead_length=None)}
    post = compose(release("en"), "linkedin", ComposeOptions(rules=rules))
    assert blocks(post.text)[1] == BODIES["en"][1]

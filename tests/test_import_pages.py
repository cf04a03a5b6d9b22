"""Pages become the drafts a person would write: field by field, in five languages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from socialbot.importer import ImportStatus, KeyValueLedger, MemoryKeyValue, run_import
from socialbot.importer.canonical import canonical_url, identity_key
from socialbot.importer.drafts import write_draft
from socialbot.models import Release
from socialbot.releases import read_release
from tests.import_server import ImportServer, serving

OLD = "/{}/news/Pages/cohesion-alliance-recovery.aspx"


@pytest.fixture
def server():
    with serving() as running:
        yield running


@pytest.fixture
def ledger():
    return KeyValueLedger(MemoryKeyValue())


def do_import(server: ImportServer, queue: Path, ledger, sources, approved=(), **kw):
    return run_import(
        [server.url(s) if s.startswith("/") and not Path(s).exists() else s for s in sources],
        queue_dir=queue,
        ledger=ledger,
        is_approved=lambda release_id: release_id in approved,
        allowed_networks=["127.0.0.1/32"],
        **kw,
    )


def test_old_cor_page_in_english(server, ledger, tmp_path):
    report = do_import(server, tmp_path, ledger, [OLD.format("en")], follow_versions=False)
    [result] = report.results
    assert result.status is ImportStatus.CREATED, result.message
    release = read_release(result.path)
    assert release.id == "cohesion-alliance-recovery-en"
    assert release.title == "EU recovery will not be effective without a strong cohesion policy"
    assert release.summary == (
        "Cohesion Alliance renews its commitment to keep cohesion policy a top EU priority"
    )
    paragraphs = release.body.split("\n\n")
    assert paragraphs[0].startswith("The COVID-19 crisis has shown that now more than ever")
    assert "12\u00a0000 signatories" in paragraphs[0]  # the non-breaking space is kept
    assert "Europe’s resilience" in paragraphs[0]  # the curly apostrophe too
    assert paragraphs[1] == (
        "Apostolos Tzitzikostas (EL/EPP), President of the European Committee of the Regions, "
        'said: "Cohesion is not a luxury; it is the glue that holds our Union together. We will '
        'follow closely the full application of the partnership principle by the Member States."'
    )
    assert "“Coherence and synergies" in paragraphs[2] and "overlaps — and" in paragraphs[2]
    assert paragraphs[3:] == [
        "Background",
        "The Cohesion Alliance was launched in 2017 by the European Committee of the Regions "
        "together with the main European associations of regions and cities.",
    ]
    for chrome in (
        "cookies",
        "automatic translation",
        "EU's assembly",
        "Related information",
        "Press contacts",
        "Crous",
        "Legal notice",
        "Home",
        "_spPageContextInfo",
    ):
        assert chrome not in release.body and chrome not in release.summary
    assert release.topics == [
        "Cohesion policy reform",
        "Cross-border and territorial cooperation",
        "European Structural and Investment Funds",
        "Territorial cohesion",
        "Urban policy",
    ]
    assert release.language == "en"
    assert release.url == server.url(OLD.format("en"))
    assert release.published == datetime(2020, 10, 12, tzinfo=UTC)
    assert release.version_of is None
    # The composer's broken-hashtag note, in the preview.
    assert any("# CoRplenary" in note for note in result.notes)
    assert "# CoRplenary" in result.preview


def test_old_cor_page_in_french_keeps_its_typography(server, ledger, tmp_path):
    [result] = do_import(
        server, tmp_path, ledger, [OLD.format("fr")], follow_versions=False
    ).results
    release = read_release(result.path)
    assert release.language == "fr"
    assert release.title == (
        "La relance de l'UE ne sera pas efficace sans une politique de cohésion forte"
    )
    assert release.summary.startswith("La crise de la COVID-19 a montré")
    first, second = release.body.split("\n\n")
    assert "a déclaré\u00a0: «\u00a0La cohésion n’est pas un luxe\u00a0;" in first
    assert second.endswith(
        "« La cohérence entre les instruments de relance et les fonds "
        "structurels est primordiale — pour éviter les chevauchements. »"
    )
    assert "traduction automatique" not in release.body
    assert "l'assemblée" not in release.body and "Contact" not in release.body
    assert release.topics == ["Cohesion policy reform", "Territorial cohesion", "Urban policy"]


def test_old_cor_page_in_bulgarian(server, ledger, tmp_path):
    [result] = do_import(
        server, tmp_path, ledger, [OLD.format("bg")], follow_versions=False
    ).results
    release = read_release(result.path)
    assert release.language == "bg"
    assert release.id == "cohesion-alliance-recovery-bg"
    assert release.title.startswith("Възстановяването на ЕС няма да бъде ефективно")
    assert release.summary.startswith("Кризата с COVID-19 показа")
    assert release.body.split("\n\n")[-1] == (
        "„Сближаването не е лукс, а лепилото, което държи Съюза заедно“, заяви председателят "
        "Апостолос Дзидзикостас (EL/ЕНП)."
    )
    assert "Европейският комитет на регионите е събранието" not in release.body
    assert "Социални медии" not in release.body
    assert release.topics[3] == "Financial instruments for cohesion"
    assert release.published == datetime(2020, 10, 12, tzinfo=UTC)


def test_irish_address_carrying_english_text_is_english_and_said_so(server, ledger, tmp_path):
    [result] = do_import(
        server, tmp_path, ledger, [OLD.format("ga")], follow_versions=False
    ).results
    release = read_release(result.path)
    assert release.language == "en"
    assert release.id == "cohesion-alliance-recovery-en"
    assert "Níl an leathanach" not in release.body + release.summary
    assert any("the address says 'ga' but the text is in English" in n for n in result.notes)
    assert "the address says 'ga'" in result.preview


def test_new_cor_page_in_german_with_metadata_and_image(server, ledger, tmp_path):
    path = "/de/news/affordable-housing-plan"
    [result] = do_import(server, tmp_path, ledger, [path], follow_versions=False).results
    release = read_release(result.path)
    assert release.id == "affordable-housing-plan-de"
    assert release.language == "de"
    assert release.title == "Regionen fordern einen europäischen Plan für bezahlbaren Wohnraum"
    assert release.summary == (
        "Städte und Regionen verlangen mehr Mittel und weniger Bürokratie für den sozialen "
        "Wohnungsbau."
    )
    assert release.body.split("\n\n") == [
        "Die Mitglieder des Europäischen Ausschusses der Regionen haben am Mittwoch eine "
        "Stellungnahme verabschiedet, die einen europäischen Aktionsplan für bezahlbaren "
        "Wohnraum fordert.",
        "Berichterstatter Jan Schmidt (DE/SPE) sagte: „Wohnen ist ein Grundrecht – und keine "
        "Ware.“ Die Regionen wollen, dass Investitionen in den sozialen Wohnungsbau nicht auf "
        "die Defizitregeln angerechnet werden.",
        "Der Ausschuss schlägt vor, die Kohäsionsmittel gezielt für die Sanierung von "
        "Wohnungen einzusetzen.",
    ]
    assert release.topics == ["Housing", "Social policy"]
    assert release.published == datetime(2024, 10, 9, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    assert release.url == server.url(path)
    assert result.image_url == server.url("/sites/default/files/housing-plenary.jpg")
    assert result.image_alt == "Mitglieder des Ausschusses während der Plenartagung im Hemicycle"
    text = result.path.read_text("utf-8")
    assert "# Lead image: " + server.url("/sites/default/files/housing-plenary.jpg") in text
    assert "Teilen" not in release.body and "Cookies" not in release.body


def test_new_cor_page_in_greek(server, ledger, tmp_path):
    path = "/el/news/affordable-housing-plan"
    [result] = do_import(server, tmp_path, ledger, [path], follow_versions=False).results
    release = read_release(result.path)
    assert release.language == "el"
    assert release.title == "Οι περιφέρειες ζητούν ευρωπαϊκό σχέδιο για οικονομικά προσιτή στέγαση"
    assert release.summary.startswith("Οι πόλεις και οι περιφέρειες ζητούν")
    assert release.body.endswith("«Η στέγαση είναι θεμελιώδες δικαίωμα — όχι εμπόρευμα».")
    assert release.topics == ["Housing"]


def test_other_institution_through_open_graph_json_ld_and_extractor(server, ledger, tmp_path):
    path = "/press/2025/03/17/water-resilience"
    [result] = do_import(server, tmp_path, ledger, [path + "?utm_source=x&fbclid=1"]).results
    release = read_release(result.path)
    assert release.id == "water-resilience-en"
    assert release.title == "Ministers agree on water resilience strategy"
    assert release.summary == (
        "Environment ministers today agreed on a common approach to droughts and floods."
    )
    paragraphs = release.body.split("\n\n")
    assert paragraphs[0].startswith("The strategy asks member states to cut water losses")
    assert paragraphs[1].startswith("“Water does not stop at borders")
    assert paragraphs[-1].startswith("Next steps:")
    for chrome in (
        "cookies",
        "Skip to main",
        "Related press releases",
        "Privacy",
        "Council adopts",
    ):
        assert chrome not in release.body
    assert release.topics == ["Water", "Climate adaptation"]
    assert release.language == "en"
    assert release.url == server.url(path)  # rel=canonical, its utm_source dropped
    assert release.published == datetime(2025, 3, 17, 10, tzinfo=UTC)
    assert result.image_alt == "A river in flood next to a village"


def test_reimport_updates_a_draft_and_leaves_an_approved_release(server, ledger, tmp_path):
    path = "/en/news/affordable-housing-plan"
    first = do_import(server, tmp_path, ledger, [path], follow_versions=False).results[0]
    again = do_import(server, tmp_path, ledger, [path + "?utm_campaign=z"], follow_versions=False)
    assert again.results[0].status is ImportStatus.ALREADY
    assert "has not changed" in again.results[0].message
    # The page changes: a draft nobody approved follows it.
    for route in (path, path + "-0"):
        server.raw(
            route,
            server.fixture("cor-new-en.html").replace(b"red tape", b"paperwork"),
            {"Content-Type": "text/html; charset=utf-8"},
        )
    updated = do_import(server, tmp_path, ledger, [path + "-0"], follow_versions=False).results[0]
    assert updated.status is ImportStatus.UPDATED, updated.message
    assert updated.release_id == first.release_id
    assert "paperwork" in read_release(first.path).summary
    # Once approved, the release is left alone.
    server.raw(
        path,
        server.fixture("cor-new-en.html").replace(b"red tape", b"bureaucracy"),
        {"Content-Type": "text/html; charset=utf-8"},
    )
    approved = do_import(
        server, tmp_path, ledger, [path], approved={first.release_id}, follow_versions=False
    ).results[0]
    assert approved.status is ImportStatus.ALREADY
    assert "approved" in approved.message
    assert "paperwork" in read_release(first.path).summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["affordable-housing-plan-en.yaml"]


def test_language_versions_become_linked_releases(server, ledger, tmp_path):
    report = do_import(server, tmp_path, ledger, [OLD.format("en")])
    by_language = {r.language: r for r in report.results if r.status is ImportStatus.CREATED}
    assert sorted(by_language) == ["bg", "en", "fr"]
    root = by_language["en"].release_id
    assert read_release(by_language["en"].path).version_of is None
    for lang in ("fr", "bg"):
        assert read_release(by_language[lang].path).version_of == root
    # The Irish address carries the English text: the same release, not a fourth one.
    [irish] = [r for r in report.results if "/ga/" in r.source]
    assert irish.status is ImportStatus.ALREADY
    assert irish.release_id == root
    assert {e.release_id for e in ledger.members(root)} == {
        r.release_id for r in by_language.values()
    }
    # New-generation pages link the same way, whichever version comes first.
    report = do_import(server, tmp_path, ledger, ["/el/news/affordable-housing-plan"])
    created = {r.language: r.release_id for r in report.results if r.release_id}
    assert sorted(created) == ["de", "el", "en"]
    for lang in ("de", "en"):
        assert read_release(tmp_path / f"{created[lang]}.yaml").version_of == created["el"]


def test_saved_page_file(server, ledger, tmp_path):
    saved = tmp_path / "saved.html"
    saved.write_bytes(server.fixture("cor-new-de.html"))
    queue = tmp_path / "queue"
    [result] = do_import(server, queue, ledger, [str(saved)]).results
    assert result.status is ImportStatus.CREATED
    assert read_release(result.path).url == server.url("/de/news/affordable-housing-plan")
    nameless = tmp_path / "nameless.html"
    nameless.write_text("<html><body><h1>Just a title</h1><p>Some words of text here.</p>")
    [result] = do_import(server, queue, ledger, [str(nameless)]).results
    assert result.status is ImportStatus.ERROR
    assert "does not say its address" in result.message


@pytest.mark.parametrize(
    "text",
    [
        "# CoRplenary: a title",
        "- not a list",
        "yes",
        "no",
        "2024",
        "1e3",
        "null",
        "~",
        "key: value",
        "'quoted'",
        '"double"',
        "@mention",
        "`tick`",
        "%percent",
        "!tag",
        "&anchor",
        "*alias",
        "a # comment",
        "  spaced  ",
        "trailing:",
        "{flow}",
        "[list]",
        "line\nbreak  \nwith # hash\n- dash",
        "tab\tinside",
        "„Bulgarian quotes“ «French» — dash\u00a0nbsp",
    ],
)
def test_draft_yaml_round_trips_every_awkward_scalar(tmp_path, text):
    release = Release(
        id="awkward",
        title=text.strip() or "x",
        url="https://example.org/a?b=1#c",
        language="no",
        summary=text,
        body=text + "\n\n" + text,
        topics=[text.strip() or "x", "Energy / Environment"],
    )
    path = tmp_path / "awkward.yaml"
    write_draft(release, path, ["a comment"])
    assert read_release(path) == release
    assert yaml.safe_load(path.read_text("utf-8"))["language"] == "no"


def test_canonical_urls():
    url = "HTTPS://Cor.Europa.EU:443/en/news/regions-call-housing-0?utm_source=x&b=2&fbclid=y#top"
    assert canonical_url(url) == "https://cor.europa.eu/en/news/regions-call-housing-0?b=2"
    assert identity_key(url) == "https://cor.europa.eu/en/news/regions-call-housing?b=2"
    assert identity_key("https://x.eu/en/news/Pages/eu-recovery-cohesion-0.aspx") == (
        "https://x.eu/en/news/Pages/eu-recovery-cohesion.aspx"
    )
    assert identity_key("https://x.eu/en/news/covid-19") == "https://x.eu/en/news/covid-19"
    assert identity_key("https://x.eu/en/news/eu-budget-2") == "https://x.eu/en/news/eu-budget-2"


def test_a_page_read_again_and_again_in_one_process_keeps_its_text():
    """The desk imports for hours in one process: reading a page must not depend on what the
    process read before (trafilatura's own deduplication remembers text for the process)."""
    from socialbot.importer.pages import read_page

    content = (Path(__file__).parent / "fixtures" / "import" / "generic-water.html").read_bytes()
    url = "https://www.consilium.example.eu/press/2025/03/17/water-resilience"
    bodies = [read_page(content, url=url).body for _ in range(4)]
    assert bodies[0].startswith("The strategy asks member states to cut water losses")
    assert bodies == [bodies[0]] * 4


def test_control_characters_of_a_page_never_reach_the_draft_or_the_terminal():
    from socialbot.importer.pages import read_page

    page = (
        "<html lang='en'><head><title>x</title></head><body><main>"
        "<h1>Regions \x1b[2J\x1b]0;pwned\x07meet \x9b31min Brussels</h1>"
        "<p>The plenary\x08 adopted\x00 six opinions today on cohesion and housing.</p>"
        "</main></body></html>"
    ).encode()
    draft = read_page(page, url="https://cor.europa.eu/en/news/regions-meet")
    assert draft.title == "Regions [2J]0;pwnedmeet 31min Brussels"
    assert not any(0 < ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in draft.title + draft.body)


OLD_COR_ONE_PARAGRAPH = """<html lang="en"><head><title>x</title></head><body>
<div id="contentBox">
 <h1 class="cor-news-title">Regions call for a stronger cohesion policy</h1>
 <div class="cor-news-date">12.10.2020</div>
 <img src="/img/cohesion.jpg" alt="Members of the Cohesion Alliance">
 <div>Press release | Cohesion policy reform;Cross-border and territorial cooperation;\
Urban policy;</div>
 <p>The Cohesion Alliance renewed its commitment to keep cohesion policy a top EU priority.</p>
 <h3>Related information</h3>
 <p>Social media team</p>
</div></body></html>"""


def test_an_old_cor_release_of_one_paragraph_keeps_its_layout_topics_date_and_image():
    """The seed page's shape: a title, the type line, one paragraph, then boilerplate."""
    from socialbot.importer.pages import read_page

    url = "https://cor.europa.eu/en/news/Pages/one-paragraph.aspx"
    draft = read_page(OLD_COR_ONE_PARAGRAPH.encode(), url=url)
    assert draft.layout == "cor-old"
    assert draft.summary.startswith("The Cohesion Alliance renewed its commitment")
    assert draft.body == ""
    assert draft.topics == (
        "Cohesion policy reform",
        "Cross-border and territorial cooperation",
        "Urban policy",
    )
    assert draft.published is not None and draft.published.date().isoformat() == "2020-10-12"
    assert draft.image_url == "https://cor.europa.eu/img/cohesion.jpg"
    assert draft.image_alt == "Members of the Cohesion Alliance"


def test_numbered_releases_are_two_releases_and_only_a_0_is_an_alias():
    base = "https://cor.europa.eu/en/news/Pages/european-cohesion-forum-day-{}.aspx"
    assert identity_key(base.format(1)) != identity_key(base.format(2))
    assert identity_key(base.format(0)) == identity_key(
        "https://cor.europa.eu/en/news/Pages/european-cohesion-forum-day.aspx"
    )

"""A press-release page made into the fields of a draft release.

Three kinds of page are read:

* the CoR media centre's older pages (``/{lang}/news/Pages/<Slug>.aspx``): the text
  blocks after the title, without the machine-translation offer, up to the boilerplate
  about the Committee, "Related information" or the press contacts;
* its newer pages (``/{lang}/news/<slug>``): the ``<article>`` with its title, lead and
  body, plus their Open Graph and JSON-LD metadata;
* any other page: Open Graph, JSON-LD ``NewsArticle``, ``<html lang>``,
  ``rel=canonical`` and ``hreflang`` alternates, and trafilatura for the main text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from socialbot.importer import html
from socialbot.importer.canonical import canonical_url, url_language
from socialbot.importer.html import PageError, clean, one_line, text_of
from socialbot.models import LANGUAGES

MAX_TOPICS = 50

MACHINE_TRANSLATION = re.compile(
    r"automatic translation|machine translation|traduction automatique|automatische "
    r"Übersetzung|автоматичен превод|αυτόματη μετάφραση|traducción automática|"
    r"traduzione automatica|automatický překlad|automaattisen käännöksen|"
    r"aistriúchán uathoibríoch",
    re.IGNORECASE,
)
BOILERPLATE = re.compile(
    r"^(The European Committee of the Regions is the EU'?s assembly|"
    r"Le Comité européen des régions est l'assemblée|"
    r"Der Europäische Ausschuss der Regionen ist die Versammlung|"
    r"Европейският комитет на регионите е събранието|"
    r"Η Ευρωπαϊκή Επιτροπή των Περιφερειών είναι η συνέλευση|"
    r"About the European Committee of the Regions|À propos du Comité européen des régions)",
    re.IGNORECASE,
)
STOP_HEADINGS = re.compile(
    r"^(Related information|Informations connexes|Informations complémentaires|"
    r"Weitere Informationen|Verwandte Informationen|Свързана информация|"
    r"Σχετικές πληροφορίες|Press contacts?|Press officers?|Contacts? presse|"
    r"Pressekontakte?|Pressesprecher|Контакти? за пресата|Контакт|Επικοινωνία|"
    r"Contact|Kontakt|Share this page|Partager cette page|Diese Seite teilen)\b\s*:?",
    re.IGNORECASE,
)
TYPE_LINE = re.compile(
    r"^(?P<type>[^|\d\n]{3,40}?)\s*(?P<date>\d{1,2}[./]\d{1,2}[./]\d{4})?\s*\|\s*(?P<topics>.*)$"
)
_CHROME = re.compile(
    r"cookie|consent|banner|breadcrumb|share|social|newsletter|skip|navigation|"
    r"\bnav\b|menu|related|sidebar|footer|header|contact|ribbon",
    re.IGNORECASE,
)
_LEAD = re.compile(r"standfirst|lead|intro|summary|chapeau|highlight", re.IGNORECASE)
_TOPICS_CLASS = re.compile(r"(^|[\s_-])(topics?|tags?|keywords?)($|[\s_-])", re.IGNORECASE)
_DATE_LINE = re.compile(
    r"^\W*(\d{1,2}\.?\s*[./ ]\s*\w+\.?\s*[./ ]\s*\d{4}"
    r"|\w+\.? \d{1,2},? \d{4}|\d{4}-\d{2}-\d{2})\W*$"
)
_BLOCKS = ("p", "li", "h2", "h3", "h4", "h5", "blockquote")
_OLD_COR = re.compile(r"/[a-z]{2}/news/Pages/[^/]+\.aspx$", re.IGNORECASE)
_NEW_COR = re.compile(r"/[a-z]{2}/news/[^/]+/?$")


@dataclass(frozen=True)
class PageDraft:
    """What a page says, before the language check and the ledger."""

    title: str
    summary: str
    body: str
    url: str
    topics: tuple[str, ...] = ()
    published: datetime | None = None
    declared_language: str | None = None
    url_language: str | None = None
    image_url: str | None = None
    image_alt: str | None = None
    alternates: dict[str, str] = field(default_factory=dict)
    layout: str = "generic"

    def text(self) -> str:
        return "\n\n".join(part for part in (self.title, self.summary, self.body) if part)


@dataclass
class _Meta:
    """The page's standard metadata."""

    title: str = ""
    description: str = ""
    canonical: str | None = None
    language: str | None = None
    published: datetime | None = None
    image_url: str | None = None
    image_alt: str | None = None
    topics: list[str] = field(default_factory=list)
    article_body: str = ""
    alternates: dict[str, str] = field(default_factory=dict)


def split_topics(line: str) -> list[str]:
    """``Cohesion policy reform;Territorial cohesion;`` as a list, spacing tidied."""
    topics = []
    for part in re.split(r"[;\n]", line):
        topic = one_line(part)
        if topic and topic not in topics:
            topics.append(topic)
    return topics[:MAX_TOPICS]


def parse_type_line(line: str) -> tuple[str, datetime | None, list[str]] | None:
    """``Press release29.11.2023 | A;B;`` as (type, date, topics); None if it is not one."""
    match = TYPE_LINE.match(one_line(line))
    if not match or (";" not in match.group("topics") and not match.group("topics").strip()):
        return None
    topics = split_topics(match.group("topics"))
    if not topics:
        return None
    return match.group("type").strip(), html.parse_date(match.group("date")), topics


def read_page(content: bytes, *, url: str, charset: str | None = None) -> PageDraft:
    """The draft fields of one page. Raises PageError with a sentence for the user."""
    doc = html.parse(html.decode(content, charset))
    base = doc.xpath("//base/@href")
    if base:
        url = html.absolute(url, str(base[0])) or url
    meta = _metadata(doc, url)
    html.strip_chrome(doc)
    where = meta.canonical or url
    path = urlsplit(where).path
    if _OLD_COR.search(path) or _OLD_COR.search(urlsplit(url).path):
        draft = _blocks_after_title(doc, meta, where, "cor-old")
    elif doc.xpath("//article//h1") and (_NEW_COR.search(path) or meta.title):
        draft = _blocks_after_title(doc, meta, where, "article")
    else:
        draft = None
    if draft is None:  # a release of one paragraph has an empty body, and that is right
        draft = _generic(doc, content, meta, where)
    if not draft.title:
        raise PageError("the page has no title")
    return draft


def _metadata(doc: Any, url: str) -> _Meta:
    meta = _Meta()

    def prop(*names: str) -> str:
        for name in names:
            for attr in ("property", "name", "itemprop"):
                values = doc.xpath(f'//meta[@{attr}="{name}"]/@content')
                if values and str(values[0]).strip():
                    return str(values[0])
        return ""

    articles = [
        item
        for item in html.json_ld(doc)
        if {str(t) for t in _as_list(item.get("@type"))}
        & {"NewsArticle", "Article", "ReportageNewsArticle", "PressRelease", "BlogPosting"}
    ]
    ld = articles[0] if articles else {}
    meta.title = one_line(str(ld.get("headline") or "")) or one_line(prop("og:title"))
    meta.description = one_line(prop("og:description", "description")) or one_line(
        str(ld.get("description") or "")
    )
    canonical = doc.xpath('//link[@rel="canonical"]/@href') or [prop("og:url")]
    meta.canonical = html.absolute(url, str(canonical[0])) if canonical else None
    lang = doc.xpath("/html/@lang") or [prop("og:locale"), str(ld.get("inLanguage") or "")]
    meta.language = _language_code(str(lang[0])) if lang and lang[0] else None
    meta.published = (
        html.parse_date(str(ld.get("datePublished") or ""))
        or html.parse_date(prop("article:published_time", "datePublished", "date", "dcterms.date"))
        or html.parse_date(next(iter(doc.xpath("//article//time/@datetime")), None))
    )
    image = _as_list(ld.get("image"))[:1]
    if image and isinstance(image[0], dict):
        meta.image_url = html.absolute(url, str(image[0].get("url") or ""))
        meta.image_alt = one_line(str(image[0].get("caption") or "")) or None
    elif image:
        meta.image_url = html.absolute(url, str(image[0]))
    meta.image_url = html.absolute(url, prop("og:image")) or meta.image_url
    meta.image_alt = one_line(prop("og:image:alt")) or meta.image_alt
    keywords = _as_list(ld.get("keywords"))
    tags = [str(v) for v in doc.xpath('//meta[@property="article:tag"]/@content')]
    found: list[str] = []
    for item in [*keywords, *tags]:
        found.extend(split_topics(str(item).replace(",", ";")) if not tags else [one_line(item)])
    meta.topics = [t for t in dict.fromkeys(found) if t]
    meta.article_body = clean(str(ld.get("articleBody") or ""))
    for link in doc.xpath('//link[@rel="alternate"][@hreflang][@href]'):
        code = _language_code(str(link.get("hreflang")))
        href = html.absolute(url, link.get("href"))
        if code and href and code not in meta.alternates:
            meta.alternates[code] = canonical_url(href)
    return meta


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _language_code(value: str) -> str | None:
    code = value.strip().lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else None


def _is_chrome(element: Any) -> bool:
    """Inside navigation, a cookie banner, a share bar, a contact block, ..."""
    for ancestor in element.iterancestors():
        if ancestor.tag in ("nav", "header", "footer", "aside"):
            return True
        marks = f"{ancestor.get('class', '')} {ancestor.get('id', '')} {ancestor.get('role', '')}"
        if ancestor.tag not in ("html", "body", "main", "article") and _CHROME.search(marks):
            return True
    return False


def _blocks_after_title(doc: Any, meta: _Meta, url: str, layout: str) -> PageDraft | None:
    """The text blocks that follow the page's ``<h1>``, up to the boilerplate."""
    headings = [h for h in doc.xpath("//h1") if not _is_chrome(h) and text_of(h)]
    if not headings:
        return None
    h1 = headings[0]
    title = one_line(text_of(h1))
    lead: list[str] = []
    highlights: list[str] = []
    paragraphs: list[str] = []
    topics: list[str] = []
    published = meta.published
    inside_title = set(h1.iterdescendants())
    after_title = False
    stopped = False
    taken: set[Any] = set()
    for element in doc.iter(*_BLOCKS, "h1", "div", "time", "span", "ul", "ol"):
        if element is h1:
            after_title = True
            continue
        if not after_title or element in inside_title:
            continue
        if any(ancestor in taken for ancestor in element.iterancestors()):
            continue
        marks = f"{element.get('class', '')} {element.get('id', '')}"
        if element.tag == "time" or (element.tag != "li" and "date" in marks.lower()):
            text = one_line(text_of(element))
            if len(text) < 60:
                published = published or html.parse_date(element.get("datetime") or text)
                taken.add(element)
                continue
        if element.tag in ("div", "span", "ul", "ol"):
            text = one_line(text_of(element))
            if _TOPICS_CLASS.search(marks):
                parts = [one_line(text_of(a)) for a in element.xpath(".//a|.//li")]
                parsed = parse_type_line(text)
                found = [p for p in parts if p] or (parsed[2] if parsed else split_topics(text))
                topics.extend(found)
                taken.add(element)
            elif MACHINE_TRANSLATION.search(text) and len(text) < 200:
                taken.add(element)
            elif len(text) < 400 and (parsed := parse_type_line(text)) and not paragraphs:
                # "Press release | A;B;" in a plain block of its own, before the text.
                published = published or parsed[1]
                topics.extend(parsed[2])
                taken.add(element)
            continue
        if stopped or _is_chrome(element):
            continue
        text = text_of(element)
        if not text:
            continue
        taken.add(element)
        flat = one_line(text)
        if MACHINE_TRANSLATION.search(flat) and len(flat) < 200:
            continue
        if BOILERPLATE.match(flat) or STOP_HEADINGS.match(flat):
            stopped = True  # only the topics and the date may still follow
            continue
        parsed = parse_type_line(flat)
        if parsed and not paragraphs:
            published = published or parsed[1]
            topics.extend(parsed[2])
            continue
        if not paragraphs and not highlights and _is_lead(element) and not lead:
            lead.append(text)
        elif element.tag == "li" and not paragraphs:
            highlights.append(f"- {flat}")
        elif element.tag == "li":
            paragraphs.append(f"- {flat}")
        else:
            paragraphs.append(text)
    if not (lead or highlights or paragraphs):
        return None  # no text after the title: not this layout after all
    summary = "\n".join(lead)
    rest = list(paragraphs)
    if not summary and rest:
        summary = rest.pop(0)
    body_parts = (["\n".join(highlights)] if highlights else []) + rest
    body = "\n\n".join(_join_list_items(body_parts))
    lead_image, lead_alt = _lead_image(doc, url, h1)
    return PageDraft(
        title=title or meta.title,
        summary=summary or meta.description,
        body=body,
        url=canonical_url(url),
        topics=tuple(dict.fromkeys(topics or meta.topics)),
        published=published,
        declared_language=meta.language,
        url_language=url_language(url),
        image_url=meta.image_url or lead_image,
        image_alt=meta.image_alt or lead_alt,
        alternates=meta.alternates,
        layout=layout,
    )


def _join_list_items(parts: list[str]) -> list[str]:
    """Consecutive ``- item`` lines stay one block."""
    joined: list[str] = []
    for part in parts:
        if joined and part.startswith("- ") and joined[-1].startswith("- "):
            joined[-1] += "\n" + part
        else:
            joined.append(part)
    return joined


def _is_lead(element: Any) -> bool:
    marks = f"{element.get('class', '')} {element.get('id', '')}"
    if _LEAD.search(marks):
        return True
    if element.tag != "p":
        return False
    strong = "".join(text_of(s) for s in element.xpath("./strong|./b"))
    return bool(strong) and one_line(strong) == one_line(text_of(element))


def _lead_image(doc: Any, url: str, h1: Any) -> tuple[str | None, str | None]:
    """The address and alt text of the page's first picture: in its ``<article>`` or
    ``<main>``, else the first after the title in the title's own container (old CoR pages
    have neither element)."""
    candidates = [*doc.xpath("//article//img[@src]|//main//img[@src]")]
    for sibling in h1.itersiblings():
        candidates.extend(img for img in sibling.iter("img") if img.get("src"))
    img = next((img for img in candidates if not _is_chrome(img)), None)
    if img is None:  # not "if not img": an lxml element without children is falsy
        return None, None
    return html.absolute(url, img.get("src")), one_line(img.get("alt") or "") or None


def _generic(doc: Any, content: bytes, meta: _Meta, url: str) -> PageDraft:
    """Any other page: its metadata, and trafilatura's main text."""
    import trafilatura

    extracted = trafilatura.extract(
        html.decode(content),
        url=url,
        include_comments=False,
        include_tables=False,
        include_images=False,
        favor_precision=True,
        # Not trafilatura's deduplication: its cache lives as long as the process, so a
        # page read again in one process, or a feed of similar pages, would lose its text.
        deduplicate=False,
    )
    text = clean(extracted or meta.article_body or "")
    paragraphs = [p for p in text.split("\n") if p.strip()]
    h1 = [one_line(text_of(h)) for h in doc.xpath("//h1") if not _is_chrome(h)]
    titles = doc.xpath("//title")
    title = meta.title or (h1[0] if h1 and h1[0] else "")
    if not title and titles:
        title = re.split(r"\s[|–—-]\s", one_line(text_of(titles[0])))[0]
    while paragraphs and (
        one_line(paragraphs[0]) == one_line(title) or _DATE_LINE.match(paragraphs[0])
    ):
        paragraphs.pop(0)
    summary = meta.description
    if summary and paragraphs and one_line(paragraphs[0]) == one_line(summary):
        paragraphs.pop(0)
    elif not summary and paragraphs:
        summary = paragraphs.pop(0)
    return PageDraft(
        title=one_line(title),
        summary=summary,
        body="\n\n".join(_join_list_items(paragraphs)),
        url=canonical_url(url),
        topics=tuple(meta.topics),
        published=meta.published,
        declared_language=meta.language,
        url_language=url_language(url),
        image_url=meta.image_url,
        image_alt=meta.image_alt,
        alternates=meta.alternates,
        layout="generic",
    )


def with_hints(
    draft: PageDraft, *, topics: list[str] | None = None, published: datetime | None = None
) -> PageDraft:
    """What a listing or feed said about the item fills what the page left out."""
    return replace(
        draft,
        topics=draft.topics or tuple(topics or ()),
        published=draft.published or published,
    )

"""Pages that list press releases: both generations of the CoR media centre.

* Older listings: per item a link to ``/{lang}/news/Pages/<Slug>.aspx`` (often twice, on
  the image and on the title), a type-and-topics line such as ``Press release29.11.2023 |
  Cohesion policy reform;Urban policy;`` and a teaser cut mid-word.
* Newer listings: server-rendered cards, ``article.c-card`` with a title link,
  ``p.c-card__text`` and ``time[datetime]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from socialbot.importer import html
from socialbot.importer.canonical import canonical_url
from socialbot.importer.html import PageError, one_line, text_of
from socialbot.importer.pages import parse_type_line


@dataclass(frozen=True)
class ListingItem:
    """One release as a listing or a feed shows it."""

    url: str
    title: str = ""
    topics: tuple[str, ...] = ()
    published: datetime | None = None
    teaser: str = ""


def read_listing(content: bytes, *, url: str, charset: str | None = None) -> list[ListingItem]:
    """The releases a listing page links to, in page order, each once."""
    doc = html.parse(html.decode(content, charset))
    base = doc.xpath("//base/@href")
    if base:
        url = html.absolute(url, str(base[0])) or url
    html.strip_chrome(doc)
    items = _cards(doc, url) + _old_items(doc, url)
    unique: dict[str, ListingItem] = {}
    for item in items:
        unique.setdefault(canonical_url(item.url), item)
    if not unique:
        raise PageError("the page lists no press releases this import recognises")
    return list(unique.values())


def _cards(doc: Any, url: str) -> list[ListingItem]:
    items = []
    for card in doc.xpath('//article[contains(concat(" ", @class, " "), " c-card ")]'):
        links = card.xpath('.//*[contains(@class, "c-card__title")]//a[@href]') or card.xpath(
            ".//a[@href]"
        )
        href = html.absolute(url, links[0].get("href")) if links else None
        if href is None:
            continue
        teaser = card.xpath('.//p[contains(@class, "c-card__text")]')
        when = card.xpath(".//time/@datetime")
        topics: list[str] = []
        for line in card.xpath('.//*[contains(@class, "c-card__meta") or contains(@class, "tag")]'):
            parsed = parse_type_line(text_of(line))
            if parsed:
                topics.extend(parsed[2])
        items.append(
            ListingItem(
                url=href,
                title=one_line(text_of(links[0])),
                topics=tuple(topics),
                published=html.parse_date(str(when[0])) if when else None,
                teaser=one_line(text_of(teaser[0])) if teaser else "",
            )
        )
    return items


def _old_items(doc: Any, url: str) -> list[ListingItem]:
    """Each type-and-topics line, with the link and teaser of the block around it."""
    items = []
    for element in doc.iter("div", "p", "span", "li"):
        own = one_line(text_of(element))
        parsed = parse_type_line(own) if "|" in own and len(own) < 600 else None
        if parsed is None or element.xpath(".//div|.//p"):
            continue
        container = element.getparent()
        while container is not None and not container.xpath(".//a[@href]"):
            container = container.getparent()
        if container is None:
            continue
        links = container.xpath(".//a[@href]")
        href = html.absolute(url, links[-1].get("href"))
        if href is None:
            continue
        titles = [one_line(text_of(a)) for a in links] + [
            one_line(alt) for alt in container.xpath(".//img/@alt")
        ]
        title = max(titles, key=len, default="")
        texts = [
            one_line(text_of(p))
            for p in container.xpath(".//p")
            if p is not element and one_line(text_of(p)) not in (title, own)
        ]
        items.append(
            ListingItem(
                url=href,
                title=title,
                topics=tuple(parsed[2]),
                published=parsed[1],
                teaser=max(texts, key=len, default=""),
            )
        )
    return items

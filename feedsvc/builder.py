"""Articles -> feed documents. Pure: no I/O, no clock; the only user of feedgen."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feedsvc.config import Config
from feedsvc.dates import EPOCH
from feedsvc.model import Article, Author, Document
from feedsvc.urls import join_url, slugize

MEDIA_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
}
GENERATOR_URI = "https://github.com/feedsvc/feedsvc"


@dataclass(frozen=True, slots=True)
class FeedNode:
    """One feed: the site, or one category node; `directory` is its URL path ('' for the site)."""

    directory: str
    names: tuple[str, ...]
    articles: tuple[Article, ...]


def build_documents(articles: Iterable[Article], config: Config) -> dict[str, Document]:
    """Every document for these articles, keyed by URL path without the leading slash."""
    documents: dict[str, Document] = {}
    for node in collect_nodes(articles, config):
        for fmt in config.feeds.formats:
            document = render_feed(node, fmt, config)
            documents[document.path] = document
    return documents


def collect_nodes(articles: Iterable[Article], config: Config) -> list[FeedNode]:
    """The site feed and every category node, each with its articles newest first."""
    ordered = sorted(articles, key=_newest_first)
    members: dict[tuple[str, ...], list[Article]] = {}
    names: dict[tuple[str, ...], tuple[str, ...]] = {}
    for article in ordered:
        for slugs, path in _category_nodes(article, config):
            bucket = members.setdefault(slugs, [])
            if not bucket or bucket[-1] is not article:
                bucket.append(article)
            names.setdefault(slugs, path)
    nodes = [FeedNode("", (), tuple(ordered))]
    for slugs in sorted(members):
        directory = "categories/" + "/".join(slugs)
        nodes.append(FeedNode(directory, names[slugs], tuple(members[slugs])))
    return nodes


def _newest_first(article: Article) -> tuple[float, str]:
    return (-article.published.timestamp(), article.id)


def _category_nodes(
    article: Article, config: Config
) -> Iterable[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(slug path, name path) of every node the article belongs to (Hexo hierarchy)."""
    mapping = config.feeds.category_map
    for path in article.categories:
        slugs = tuple(mapping.get(name) or slugize(name) for name in path)
        depths = range(1, len(path) + 1) if config.feeds.category_hierarchy else [len(path)]
        for depth in depths:
            yield slugs[:depth], path[:depth]


def render_feed(node: FeedNode, fmt: str, config: Config) -> Document:
    """Render one node in one format ('rss' or 'atom') as a Document."""
    entries = node.articles[: config.feeds.limit]
    updated = max((a.updated for a in entries), default=EPOCH)
    path = f"{node.directory}/feed.{fmt}".lstrip("/")
    generator = _feed_generator(node, fmt, path, updated, config)
    for article in entries:
        _add_entry(generator, article, full=config.feeds.content == "full")
    body = generator.rss_str(pretty=True) if fmt == "rss" else generator.atom_str(pretty=True)
    return make_document(path, MEDIA_TYPES[fmt], body, updated)


def make_document(path: str, media_type: str, body: bytes, last_modified: datetime) -> Document:
    """Wrap built bytes with their strong validator (RFC 9110 §8.8.3)."""
    digest = hashlib.sha256(body).hexdigest()[:32]
    return Document(path, media_type, body, digest, last_modified)


def feed_title(config: Config, names: tuple[str, ...]) -> str:
    """`Site` for the site feed, `Site — 金融 / 财联社` for a category node."""
    return f"{config.site.title} — {' / '.join(names)}" if names else config.site.title


def _feed_generator(
    node: FeedNode, fmt: str, path: str, updated: datetime, config: Config
) -> FeedGenerator:
    site = config.site
    generator = FeedGenerator()
    generator.load_extension("dc", atom=False, rss=True)
    generator.load_extension("media", atom=False, rss=True)
    generator.register_extension(
        "links", _LinksExtension, _EntryLinksExtension, atom=True, rss=False
    )
    self_url = join_url(site.base_url, path)
    home = join_url(site.home, node.directory + "/") if node.directory else site.home
    generator.id(self_url)
    generator.title(feed_title(config, node.names))
    generator.description(site.description)
    generator.subtitle(site.description)
    generator.language(site.language)
    generator.author({"name": site.default_author})
    # Order matters to feedgen: the last `link` call sets RSS <link>.
    generator.link(href=self_url, rel="self", type=MEDIA_TYPES[fmt].split(";")[0])
    generator.link(href=home, rel="alternate", type="text/html")
    generator.generator("feedsvc", uri=GENERATOR_URI)
    if site.icon:
        generator.icon(site.icon)
        generator.logo(site.icon)
    # Invariant 1: the document's time is the data's time, never the clock's.
    generator.updated(updated)
    generator.lastBuildDate(updated)
    return generator


def _add_entry(generator: FeedGenerator, article: Article, *, full: bool) -> None:
    entry = generator.add_entry(order="append")
    entry.id(article.id)
    entry.guid(article.id, permalink=False)
    entry.title(article.title)
    entry.link(href=article.link, rel="alternate", type="text/html")
    entry.published(article.published)
    entry.updated(article.updated)
    entry.author([_author(a) for a in article.authors])
    entry.dc.dc_creator([a.name for a in article.authors])
    summary = article.summary or article.title
    entry.description(summary)
    entry.summary(summary)
    if full:
        entry.content(article.content_html, type="html")
    for name in _category_names(article):
        entry.category(term=name, label=name)
    links = [{"href": article.link, "rel": "alternate", "type": "text/html"}]
    if article.image:
        media_type = image_type(article.image)
        # RSS 2.0 requires length; 0 is the RSS Best Practices Profile's "unknown".
        entry.enclosure(article.image, 0, media_type)
        entry.media.content({"url": article.image, "medium": "image", "type": media_type})
        entry.media.thumbnail({"url": article.image})
        links.append({"href": article.image, "rel": "enclosure", "type": media_type, "length": "0"})
    entry.links.links = links


def image_type(url: str) -> str:
    """The media type of an image URL, guessed from its path."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith("image/") else "application/octet-stream"


class _LinksExtension(BaseExtension):  # type: ignore[misc]
    """Feed half of the entry-links workaround below; adds nothing at feed level."""


class _EntryLinksExtension(BaseEntryExtension):  # type: ignore[misc]
    """Writes Atom entry links with their attributes.

    feedgen 1.0.0 drops `rel`, `type` and `length` from Atom entry links (it reads
    them from the new element instead of the link's dict), so an enclosure becomes
    a second alternate link that validators reject. This rewrites the links the
    entry already wrote, in place, from the list the builder sets.
    """

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_atom(self, entry: Any) -> Any:
        # feedgen builds Atom elements without a namespace and declares the
        # Atom namespace as the document default when it serializes.
        written = entry.findall("link")
        if not written:
            return entry
        position = list(entry).index(written[0])
        for element in written:
            entry.remove(element)
        for offset, link in enumerate(self.links):
            element = etree.Element("link", link)
            entry.insert(position + offset, element)
        return entry


def _author(author: Author) -> Mapping[str, str]:
    fields = {"name": author.name}
    if author.email:
        fields["email"] = author.email
    if author.url:
        fields["uri"] = author.url
    return fields


def _category_names(article: Article) -> list[str]:
    names: list[str] = []
    for path in article.categories:
        names.extend(n for n in path if n not in names)
    names.extend(t for t in article.tags if t not in names)
    return names

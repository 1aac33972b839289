"""RSS 2.0 and Atom 1.0 by feedgen and lxml (the only user of both): a feed's channel,
each article's entry serialized where it sits in a whole feed, and the extensions that
write what feedgen 1.0.0 leaves out or gets wrong."""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.ext.dc import DcEntryExtension, DcExtension
from feedgen.ext.media import MediaEntryExtension, MediaExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feedsvc.build.archives import HISTORY_NS
from feedsvc.build.documents import FEED_TYPES
from feedsvc.build.entryfields import author_fields, filed_names, image_type
from feedsvc.build.membership import FeedNode, feed_home, feed_title
from feedsvc.config import Config
from feedsvc.model import Article, Origin
from feedsvc.urls import join_url

GENERATOR_URI = "https://github.com/feedsvc/feedsvc"
ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# What closes a whole document after its last entry: a spliced document ends with it.
XML_TAILS = {"rss": b"  </channel>\n</rss>\n", "atom": b"</feed>\n"}


def feed_generator(
    node: FeedNode,
    fmt: str,
    path: str,
    updated: datetime,
    config: Config,
    *,
    links: tuple[tuple[str, str], ...] = (),
    archived: bool = False,
) -> FeedGenerator:
    """A generator holding a node's feed without entries, every field from the data;
    `links` are RFC 5005 (rel, absolute URL), `archived` marks an archive."""
    site = config.site
    generator = _new_generator()
    self_url = join_url(site.base_url, path)
    generator.id(self_url)
    generator.title(feed_title(config, node))
    generator.description(site.description)
    generator.subtitle(site.description)
    generator.language(site.language)
    generator.author({"name": site.default_author})
    # Order matters to feedgen: the last `link` call sets RSS <link>, so the home page is last.
    media_type = FEED_TYPES[fmt]
    generator.link(href=self_url, rel="self", type=media_type)
    _add_links(generator, media_type, config.feeds.websub_hub, links)
    generator.feedsvc.archived = archived
    generator.link(href=feed_home(config, node), rel="alternate", type="text/html")
    if fmt == "rss":
        # RSS 2.0 <ttl>: minutes a reader may cache the feed, as Cache-Control says.
        generator.ttl(max(1, config.server.cache_max_age // 60))
    generator.generator("feedsvc", uri=GENERATOR_URI)
    if site.icon:
        generator.icon(site.icon)
        generator.logo(site.icon)
    # Invariant 1: the document's time is the data's time, never the clock's.
    generator.updated(updated)
    generator.lastBuildDate(updated)
    return generator


def _add_links(
    generator: FeedGenerator, media_type: str, hub: str | None, links: tuple[tuple[str, str], ...]
) -> None:
    """The channel's hub and RFC 5005 §4 links (current, prev-archive) after its self link:
    feedgen writes them in Atom, the channel extension in RSS."""
    # WebSub §4: the hub and self links tell subscribers where to subscribe.
    added = [{"href": hub, "rel": "hub"}] if hub else []
    added += [{"href": href, "rel": rel, "type": media_type} for rel, href in links]
    for attributes in added:
        generator.link(**attributes)
    generator.feedsvc.links = added


def xml_head(generator: FeedGenerator, fmt: str) -> bytes:
    """What comes before the entries of a spliced document: the whole feed feedgen
    writes for a generator without entries, less its XML_TAILS."""
    whole = generator.rss_str(pretty=True) if fmt == "rss" else generator.atom_str(pretty=True)
    return bytes(whole).removesuffix(XML_TAILS[fmt])


def xml_entries(article: Article, html: str, formats: Collection[str]) -> dict[str, bytes]:
    """An article's RSS item and Atom entry, for those of `formats`, each as it stands in
    a whole feed; `html` is the full content, or "" for summaries only."""
    wanted = [fmt for fmt in ("rss", "atom") if fmt in formats]
    if not wanted:
        return {}
    entry = _new_entry()
    fill_entry(entry, article, html)
    return {fmt: _in_context(entry, fmt) for fmt in wanted}


def _in_context(entry: FeedEntry, fmt: str) -> bytes:
    """An entry serialized where it sits in a whole feed: RSS items two levels deep under
    a root declaring the channel's namespaces, Atom entries one level under <feed>."""
    if fmt == "rss":
        root = etree.Element("rss", nsmap=_rss_namespaces())
        etree.SubElement(root, "channel").append(entry.rss_entry())
        opening = b"<channel>\n"
    else:
        root = etree.Element("feed")
        root.append(entry.atom_entry())
        opening = b"<feed>\n"
    text = etree.tostring(root, pretty_print=True, encoding="UTF-8")
    return bytes(text[text.index(opening) + len(opening) : -len(XML_TAILS[fmt])])


@functools.cache
def _rss_namespaces() -> dict[str | None, str]:
    """The namespaces feedgen declares on <rss> with the extensions loaded here."""
    generator = _new_generator()
    generator.title("t")
    generator.link(href="http://example.invalid/")
    generator.description("d")
    return dict(etree.fromstring(generator.rss_str()).nsmap)


def fill_entry(entry: FeedEntry, article: Article, html: str) -> None:
    """Set every field of a feedgen entry from an article (dates from the data, never now);
    `html` is the full content, or "" for summaries only."""
    entry.id(article.id)
    entry.guid(article.id, permalink=False)
    entry.title(article.title)
    entry.link(href=article.link, rel="alternate", type="text/html")
    entry.published(article.published)
    entry.updated(article.updated)
    entry.author([author_fields(a, url="uri", email="email") for a in article.authors])
    entry.dc.dc_creator([a.name for a in article.authors])
    summary = article.summary or article.title
    entry.description(summary)
    entry.summary(summary)
    if html:
        entry.content(html, type="html")
    for name in filed_names(article):
        entry.category(term=name, label=name)
    links = [{"href": article.link, "rel": "alternate", "type": "text/html"}]
    if article.image:
        media_type = image_type(article.image)
        # RSS 2.0 requires length; 0 is the RSS Best Practices Profile's "unknown".
        entry.enclosure(article.image, 0, media_type)
        # group=None puts them straight in <item>: a media:group of one content is an error.
        media = {"url": article.image, "medium": "image", "type": media_type}
        entry.media.content(media, group=None)
        entry.media.thumbnail({"url": article.image}, group=None)
        links.append({"href": article.image, "rel": "enclosure", "type": media_type, "length": "0"})
    entry.feedsvc.links = links
    if article.origin:
        # RSS 2.0 <source url>: the channel the item came from, by its title.
        origin = article.origin
        entry.source(url=origin.feed_url, title=origin.title or origin.feed_url)
    entry.feedsvc.origin = article.origin
    entry.feedsvc.language = article.language


class _ChannelExtension(BaseExtension):  # type: ignore[misc]
    """Channel links feedgen does not write in RSS: `<atom:link rel="hub">` for WebSub,
    RFC 5005's `current` and `prev-archive`; and `<fh:archive/>` in archives (both
    formats), declared on the element so no other document changes."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []  # attributes of each atom:link
        self.archived = False

    def extend_rss(self, rss_feed: Any) -> Any:
        channel = rss_feed.find("channel")  # feedgen always writes one
        own = channel.find(f"{{{ATOM_NS}}}link")
        at = list(channel).index(own) + 1 if own is not None else 0
        for offset, attributes in enumerate(self.links):
            channel.insert(at + offset, etree.Element(f"{{{ATOM_NS}}}link", attributes))
        if self.archived:
            channel.insert(at + len(self.links), _archive_marker())
        return rss_feed

    def extend_atom(self, atom_feed: Any) -> Any:
        if self.archived:
            atom_feed.append(_archive_marker())
        return atom_feed


def _archive_marker() -> Any:
    """RFC 5005 §4: `<fh:archive/>` marks a document as an archive."""
    return etree.Element(f"{{{HISTORY_NS}}}archive", nsmap={"fh": HISTORY_NS})


class _AtomEntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """Writes what feedgen 1.0.0 gets wrong or leaves out in Atom entries.

    It drops `rel`, `type` and `length` from Atom entry links (it reads them from the
    new element instead of the link's dict), so an enclosure becomes a second alternate
    link that validators reject: the links the entry already wrote are rewritten, in
    place, from the list fill_entry sets. Its Atom source holds only a title and a link
    without `rel`: it is replaced by the whole `<source>` (RFC 4287 §4.2.11) of a
    republished item, the upstream feed's id, title, self link and home page (not its
    `updated`: see feedsvc.sources.feed.Channel). And it has no entry `xml:lang`. RSS
    has its `<source url>` from feedgen and no per-item language.
    """

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.origin: Origin | None = None
        self.language: str | None = None

    def extend_atom(self, entry: Any) -> Any:
        # feedgen builds Atom elements without a namespace and declares the
        # Atom namespace as the document default when it serializes.
        written = entry.findall("link")
        if written:
            position = list(entry).index(written[0])
            for element in written:
                entry.remove(element)
            for offset, link in enumerate(self.links):
                entry.insert(position + offset, etree.Element("link", link))
        if self.language:
            entry.set(XML_LANG, self.language)
        for source in entry.findall("source"):
            entry.remove(source)
        if self.origin is not None:
            entry.append(_atom_source(self.origin))
        return entry


def _atom_source(origin: Origin) -> Any:
    """`<source>` as feedgen writes Atom elements: without a namespace (the document
    declares Atom the default)."""
    source = etree.Element("source")
    etree.SubElement(source, "id").text = origin.id
    if origin.title:
        etree.SubElement(source, "title").text = origin.title
    etree.SubElement(source, "link", {"rel": "self", "href": origin.feed_url})
    if origin.home:
        etree.SubElement(source, "link", {"rel": "alternate", "href": origin.home})
    if origin.updated is not None:
        etree.SubElement(source, "updated").text = origin.updated.isoformat()
    return source


# The feedgen extensions of every feed and entry: (namespace, feed class, entry class,
# used in Atom, used in RSS). Registered by class: an entry's load_extension first tries
# to import a module that does not exist, per entry.
_EXTENSIONS: tuple[tuple[str, type, type, bool, bool], ...] = (
    ("dc", DcExtension, DcEntryExtension, False, True),
    ("media", MediaExtension, MediaEntryExtension, False, True),
    ("feedsvc", _ChannelExtension, _AtomEntryExtension, True, True),
)


def _new_generator() -> FeedGenerator:
    generator = FeedGenerator()
    for name, feed_class, entry_class, atom, rss in _EXTENSIONS:
        generator.register_extension(name, feed_class, entry_class, atom=atom, rss=rss)
    return generator


def _new_entry() -> FeedEntry:
    entry = FeedEntry()
    for name, _, entry_class, atom, rss in _EXTENSIONS:
        entry.register_extension(name, entry_class, atom=atom, rss=rss)
    return entry

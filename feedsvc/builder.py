"""Articles -> every served document. Pure: no I/O, no clock; the only user of feedgen.

Over 300 lines: SiteBuilder (which nodes to render) and FeedRenderer (how a feed is
spliced from shared pieces) share the feedgen helpers below, which STYLE.md keeps in
this one module (the only user of feedgen and lxml).
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.ext.dc import DcEntryExtension, DcExtension
from feedgen.ext.media import MediaEntryExtension, MediaExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feedsvc.archives import HISTORY_NS, archive_name, by_month
from feedsvc.budget import document_size, fit_count
from feedsvc.config import Config
from feedsvc.dates import EPOCH, load_timezone
from feedsvc.feedsettings import FeedSettings, SettingsTable
from feedsvc.gzparts import FRAME_BYTES, Compressor, Part, trailer
from feedsvc.jsonfeed import ITEM_SEPARATOR, json_head, json_item, json_tail
from feedsvc.model import Article, Author, Document, Origin, Problem
from feedsvc.nodes import FeedNode, NodeIndex, NodeKeys, digest, node_title
from feedsvc.pages import Archive, FeedLinks, render_feed_view, render_index, render_opml
from feedsvc.processes.cpus import Cores
from feedsvc.urls import join_url

MEDIA_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
HTML = "text/html; charset=utf-8"
OPML = "text/x-opml; charset=utf-8"
VIEW_NAME = "feed.html"
GENERATOR_URI = "https://github.com/feedsvc/feedsvc"
ATOM_NS = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True, slots=True)
class SiteBuild:
    """One build: every document by URL path, the feed nodes, and warnings about them."""

    documents: dict[str, Document]
    nodes: list[FeedNode]
    problems: list[Problem]


@dataclass(slots=True)
class _Built:
    """What the builder keeps of one rendered node."""

    signature: str
    documents: list[Document]  # its feeds, its HTML view, then its archives
    links: FeedLinks | None  # None for nodes seeded from disk (made when first needed)
    cuts: dict[str, tuple[int, int]]  # feed path -> (entries left out, kept) by the budget
    months: dict[str, tuple[str, list[Document]]]  # month -> (signature, archive documents)


class SiteBuilder:
    """Builds every document, re-rendering only the feeds whose entries changed.

    A feed node's documents depend on its names and its first `limit` articles (every
    article, for a feed with archives), so they are kept with that signature and reused
    while it is equal; each month's archive has a signature of its own. Signatures hold
    the articles' revisions (`Article.revision`), so an equal article made anew (a
    re-parse, a copy from another process) renders nothing.
    One builder serves one Config; a new config gets a new builder.
    """

    def __init__(self, config: Config, cores: Cores | None = None) -> None:
        self.config = config
        self.tz = load_timezone(config.site.timezone)
        self.settings = SettingsTable(config)
        self._nodes: dict[tuple[str, str], _Built] = {}
        self._pages: tuple[str, list[Document]] | None = None
        self._documents: dict[str, Document] = {}  # of the last build
        self._page_lines: tuple[object, ...] = ()
        self._cut_problems: dict[tuple[str, str], list[Problem]] = {}
        self._author_urls: dict[str, str] = {}
        self.config_digest = digest(
            (config.site, config.sources, config.feeds, config.server.cache_max_age)
        )
        self._last: tuple[tuple[str, ...], dict[Any, Any], SiteBuild] | None = None
        self._index = NodeIndex(config, self.settings)
        self._feeds = FeedRenderer(config, cores, self.settings)
        self.rendered = 0  # nodes rendered since creation: reloads that change little keep it low

    def build(self, articles: Iterable[Article], keep: NodeKeys | None = None) -> SiteBuild:
        """Every feed in every format, each feed's HTML view, the index and the OPML.

        Articles of the very same revisions return the very same SiteBuild, so a reload
        that finds nothing new does no work here.
        """
        given = tuple(articles)
        revisions = tuple(article.revision for article in given)
        kept = dict(keep or {})
        if self._last is not None and self._last[0] == revisions and self._last[1] == kept:
            return self._last[2]
        build = self._build(given, keep)
        self._last = (revisions, kept, build)
        return build

    def _build(self, articles: tuple[Article, ...], keep: NodeKeys | None) -> SiteBuild:
        nodes, problems = self._index.update(articles, keep)
        kept = self._nodes
        stale = [n for n in nodes if n.key not in kept or kept[n.key].signature != n.signature]
        # All at once: a cold start's go on every core.
        self._feeds.render_entries(self._feeds.wanted(stale))
        # The last build's documents, with those of re-rendered and vanished nodes replaced.
        documents = dict(self._documents)
        listed = {node.key for node in nodes}
        for key in [key for key in kept if key not in listed]:
            for doc in kept.pop(key).documents:
                del documents[doc.path]
            self._cut_problems.pop(key, None)
        for node in stale:
            old = kept.get(node.key)
            if old is not None:
                for doc in old.documents:
                    del documents[doc.path]
            built = kept[node.key] = self._render_node(node, old)
            documents.update((doc.path, doc) for doc in built.documents)
            self._note_cuts(node.key, built)
        self._feeds.forget_unlisted(nodes)
        for doc in self._render_pages(nodes):
            documents[doc.path] = doc
        self._documents = documents
        if self._cut_problems:  # in node order, so `check` lists them the same every time
            cuts = self._cut_problems
            problems.extend(p for node in nodes for p in cuts.get(node.key, ()))
        problems.extend(self.settings.unmatched(listed))
        return SiteBuild(documents, nodes, problems)

    def _note_cuts(self, key: tuple[str, str], built: _Built) -> None:
        """Keep a warning per feed document the byte budget cut."""
        budget = self.settings.of(*key).max_bytes
        if built.cuts:
            self._cut_problems[key] = [
                Problem(
                    "feeds",
                    None,
                    f"/{path}: {left} oldest of {left + kept} entries left out "
                    f"to stay within max_bytes ({budget} bytes)",
                    "warning",
                )
                for path, (left, kept) in built.cuts.items()
            ]
        else:
            self._cut_problems.pop(key, None)

    def _render_node(self, node: FeedNode, old: _Built | None) -> _Built:
        self.rendered += 1
        config = self.config
        settings = self.settings.of(*node.key)
        months = by_month(node.articles, self.tz) if settings.archived else []
        newest = months[0][0] if months else None
        feeds: list[Document] = []
        cuts: dict[str, tuple[int, int]] = {}
        for fmt in settings.formats:
            doc, kept = self._feeds.render(node, fmt, settings, newest)
            feeds.append(doc)
            listed = min(len(node.articles), settings.limit)
            if kept < listed:
                cuts[doc.path] = (listed - kept, kept)
        shown = min(k for _, k in cuts.values()) if cuts else None
        link = self._feed_links(node, settings, shown, [m for m, _ in months])
        view = render_feed_view(
            link,
            description=config.site.description,
            language=config.site.language,
            index_url=join_url(config.site.base_url, "/"),
            tz=self.tz,
            author_url=self._author_url,
        )
        page = self._feeds.document(node.path(VIEW_NAME), HTML, view, feeds[0].last_modified)
        archives = self._render_archives(node, settings, months, old.months if old else {})
        documents = [*feeds, page, *(d for _, docs in archives.values() for d in docs)]
        return _Built(node.signature, documents, link, cuts, archives)

    def _render_archives(
        self,
        node: FeedNode,
        settings: FeedSettings,
        months: list[tuple[str, tuple[Article, ...]]],
        old: dict[str, tuple[str, list[Document]]],
    ) -> dict[str, tuple[str, list[Document]]]:
        """Each month's archive documents; a month whose articles and neighbour are
        unchanged keeps its documents."""
        archives: dict[str, tuple[str, list[Document]]] = {}
        for index, (month, articles) in enumerate(months):
            older = months[index + 1][0] if index + 1 < len(months) else None
            newer = months[index - 1][0] if index else None
            revisions = [a.revision for a in articles]
            signature = digest((node.names, month, older, newer, revisions))
            if month in old and old[month][0] == signature:
                archives[month] = old[month]
                continue
            docs = [
                self._feeds.render_archive(
                    node, fmt, settings, month=month, articles=articles, around=(older, newer)
                )
                for fmt in settings.formats
            ]
            archives[month] = (signature, docs)
        return archives

    def _author_url(self, name: str) -> str | None:
        """The URL of an author's feed (its first format), for the HTML views: every
        author of a listed article has one."""
        url = self._author_urls.get(name)
        if url is None:
            key = self._index.author_key(name)
            fmt = self.settings.of(*key).formats[0]
            url = join_url(self.config.site.base_url, f"{key[1]}/feed.{fmt}")
            self._author_urls[name] = url
        return url

    def _feed_links(
        self, node: FeedNode, settings: FeedSettings, shown: int | None, months: list[str]
    ) -> FeedLinks:
        return _feed_links(node, self.config, settings, shown, months)

    def _render_pages(self, nodes: list[FeedNode]) -> list[Document]:
        links = [self._links(node) for node in nodes]
        # What the index and the OPML say of each feed.
        lines = tuple(
            (link.title, len(link.articles), link.updated, bool(link.archives)) for link in links
        )
        if self._pages is not None and lines == self._page_lines:
            return self._pages[1]
        signature = digest(lines)
        self._page_lines = lines
        if self._pages is not None and self._pages[0] == signature:  # seeded from disk
            return self._pages[1]
        config = self.config
        newest = max((link.updated for link in links if link.updated), default=EPOCH)
        index = render_index(
            config.site.title,
            links,
            description=config.site.description,
            language=config.site.language,
            tz=self.tz,
        )
        opml = render_opml(config.site.title, config.site.default_author, links)
        pages = [
            self._feeds.document("index.html", HTML, index, newest),
            self._feeds.document("feeds.opml", OPML, opml, newest),
        ]
        self._pages = (signature, pages)
        return pages

    def _links(self, node: FeedNode) -> FeedLinks:
        built = self._nodes[node.key]
        if built.links is None:  # seeded from the last run: the links cost no rendering
            settings = self.settings.of(*node.key)
            shown = min((k for _, k in built.cuts.values()), default=None)
            months = sorted(built.months, reverse=True)
            built.links = self._feed_links(node, settings, shown, months)
        return built.links

    @property
    def entries(self) -> tuple[int, int]:
        """Feed entries rendered and asked for since creation (for a progress bar)."""
        return self._feeds.entries_rendered, self._feeds.entries_wanted

    def export(self) -> dict[str, Any]:
        """What a restarted builder needs to reuse this one's documents (JSON-ready): each
        node's signature, its budget cuts and its archive months' signatures (its
        documents' paths follow from its directory)."""
        nodes = {
            f"{kind}:{directory}": [
                built.signature,
                {path: list(cut) for path, cut in built.cuts.items()},
                {month: signature for month, (signature, _) in built.months.items()},
            ]
            for (kind, directory), built in self._nodes.items()
        }
        return {
            "config": self.config_digest,
            "nodes": nodes,
            "pages": self._pages[0] if self._pages else None,
        }

    def seed(self, exported: Mapping[str, Any], documents: Mapping[str, Document]) -> None:
        """Start from what `export` said of `documents` (a restart): nodes whose signature
        is unchanged are not rendered again. Ignored when the config differs."""
        if exported.get("config") != self.config_digest:
            return
        for name, (signature, cuts, months) in exported["nodes"].items():
            kind, directory = name.split(":", 1)
            formats = self.settings.of(kind, directory).formats
            names = [f"feed.{fmt}" for fmt in formats] + [VIEW_NAME]
            paths = [f"{directory}/{n}".lstrip("/") for n in names]
            archived = {
                month: [f"{directory}/{archive_name(month, f)}".lstrip("/") for f in formats]
                for month in months
            }
            wanted = paths + [p for group in archived.values() for p in group]
            if all(path in documents for path in wanted):
                built = self._nodes[(kind, directory)] = _Built(
                    signature,
                    [documents[p] for p in wanted],
                    None,
                    {path: (cut[0], cut[1]) for path, cut in cuts.items()},
                    {m: (months[m], [documents[p] for p in ps]) for m, ps in archived.items()},
                )
                self._note_cuts((kind, directory), built)
                self._documents.update((path, documents[path]) for path in wanted)
        pages = ["index.html", "feeds.opml"]
        if exported.get("pages") and all(path in documents for path in pages):
            self._pages = (exported["pages"], [documents[p] for p in pages])
            self._documents.update((path, documents[path]) for path in pages)


def build_site(
    articles: Iterable[Article], config: Config, keep: NodeKeys | None = None
) -> SiteBuild:
    """Build everything once, without a cache (check, build and tests)."""
    return SiteBuilder(config).build(articles, keep)


_XML_TAILS = {"rss": b"  </channel>\n</rss>\n", "atom": b"</feed>\n"}


FORMAT_ORDER = ("rss", "atom", "json")  # of the cached Parts: a tuple costs less than a dict


class FeedRenderer:
    """Renders feeds as a head, entries and a tail, each entry rendered and compressed once.

    An article listed by the site feed, three category levels and three tags would
    otherwise be serialized and deflated seven times per format. Its entry is rendered
    by feedgen in the context it has in a whole feed (same depth, same namespace
    declarations), so the spliced document is byte for byte what feedgen writes for
    the whole feed (a test compares them). Entries are cached by `Article.revision`,
    so an equal article made anew reuses its entry.
    """

    def __init__(
        self, config: Config, cores: Cores | None = None, settings: SettingsTable | None = None
    ) -> None:
        self.config = config
        self.settings = settings or SettingsTable(config)
        # Entries in the default content mode are cached by revision, the other by
        # revision + "/full" or "/summary" (an override of `content`).
        self.full = config.feeds.content == "full"
        self.cores = cores or Cores(processes=1)
        self._compressor = Compressor()
        # article revision -> its entry's Part per format, in FORMAT_ORDER
        self._entries: dict[str, tuple[Part | None, ...]] = {}
        self._listed = 0  # entries kept at the last look in forget_unlisted
        # Entries asked for and rendered since creation (a progress bar follows both).
        self.entries_wanted = self.entries_rendered = 0
        self._fixed = {
            data: self._compressor.part(data)
            for data in (*_XML_TAILS.values(), ITEM_SEPARATOR, json_tail(True), json_tail(False))
        }

    def render(
        self, node: FeedNode, fmt: str, settings: FeedSettings, archive: str | None = None
    ) -> tuple[Document, int]:
        """One node's subscription feed in one format ('rss', 'atom' or 'json'), and how
        many entries it holds: its first `limit` articles, less the oldest of them while
        it is over its byte budget (one always stays). `archive` is its newest archive's
        month, for the prev-archive link (RFC 5005 §4)."""
        entries = node.articles[: settings.limit]
        path = node.path(f"feed.{fmt}")
        links = (("prev-archive", node.path(archive_name(archive, fmt))),) if archive else ()
        pieces = [self._entry(a, fmt, settings.full) for a in entries]
        head = self._head_part(node, fmt, path, entries, links, archived=False)
        count = len(entries)
        if count > 1 and not self._fits(fmt, head, pieces, settings.max_bytes):
            count = self._fit(
                node,
                fmt,
                path=path,
                entries=entries,
                links=links,
                head=head,
                pieces=pieces,
                budget=settings.max_bytes,
            )
            # The head names the newest update of what is left.
            head = self._head_part(node, fmt, path, entries[:count], links, archived=False)
        parts = self._splice(fmt, head, pieces[:count])
        updated = max((a.updated for a in entries[:count]), default=EPOCH)
        return document(path, MEDIA_TYPES[fmt], parts, updated, node.path(VIEW_NAME)), count

    def _fits(self, fmt: str, head: Part, pieces: Sequence[Part], budget: int) -> bool:
        """Whether the whole feed is within `budget` bytes (nearly every feed is)."""
        separators = (len(pieces) - 1) * self._fixed[ITEM_SEPARATOR].size if fmt == "json" else 0
        body = sum(piece.size for piece in pieces) + separators
        return head.size + body + self._tail(fmt, not pieces).size <= budget

    def _fit(
        self,
        node: FeedNode,
        fmt: str,
        *,
        path: str,
        entries: Sequence[Article],
        links: tuple[tuple[str, str], ...],
        head: Part,
        pieces: Sequence[Part],
        budget: int,
    ) -> int:
        """How many entries the feed keeps within `budget` identity bytes (at least one).

        Computed from the sizes of the pieces already rendered; only the head is made
        again, since leaving entries out may change its date (and so, in principle, its
        length): one extra turn at most in practice.
        """
        separator = self._fixed[ITEM_SEPARATOR].size if fmt == "json" else 0
        tail = self._tail(fmt, not entries).size
        sizes = [piece.size for piece in pieces]
        count = len(sizes)
        size = head.size
        while count > 1 and document_size(size, sizes[:count], separator, tail) > budget:
            count = min(count - 1, fit_count(size, sizes[:count], separator, tail, budget))
            size = self._head_part(node, fmt, path, entries[:count], links, archived=False).size
        return count

    def render_archive(
        self,
        node: FeedNode,
        fmt: str,
        settings: FeedSettings,
        *,
        month: str,
        articles: Sequence[Article],
        around: tuple[str | None, str | None],
    ) -> Document:
        """One month's archive of a node (RFC 5005 §4): every article of the month, a
        `current` link to the subscription feed, `prev-archive` to the month before and
        `next-archive` to the month after, when there are such months (`around`)."""
        path = node.path(archive_name(month, fmt))
        links = [("current", node.path(f"feed.{fmt}"))]
        for rel, other in zip(("prev-archive", "next-archive"), around, strict=True):
            if other:
                links.append((rel, node.path(archive_name(other, fmt))))
        head = self._head_part(node, fmt, path, articles, tuple(links), archived=True)
        pieces = [self._entry(a, fmt, settings.full) for a in articles]
        updated = max((a.updated for a in articles), default=EPOCH)
        return document(path, MEDIA_TYPES[fmt], self._splice(fmt, head, pieces), updated)

    def _head_part(
        self,
        node: FeedNode,
        fmt: str,
        path: str,
        entries: Sequence[Article],
        links: tuple[tuple[str, str], ...],
        *,
        archived: bool,
    ) -> Part:
        updated = max((a.updated for a in entries), default=EPOCH)
        return self._compressor.part(
            self._head(node, fmt, path, updated, links=links, archived=archived)
        )

    def _tail(self, fmt: str, empty: bool) -> Part:
        return self._fixed[json_tail(empty) if fmt == "json" else _XML_TAILS[fmt]]

    def _splice(self, fmt: str, head: Part, pieces: Sequence[Part]) -> list[Part]:
        """A whole document: its head, its entries (JSON items comma-separated), its tail."""
        if fmt != "json" or len(pieces) < 2:
            return [head, *pieces, self._tail(fmt, not pieces)]
        parts = [head, pieces[0]]
        separator = self._fixed[ITEM_SEPARATOR]
        for piece in pieces[1:]:
            parts.append(separator)
            parts.append(piece)
        parts.append(self._tail(fmt, False))
        return parts

    def document(
        self, path: str, media_type: str, body: bytes, last_modified: datetime
    ) -> Document:
        """A document made of one piece (pages and the OPML)."""
        return document(path, media_type, [self._compressor.part(body)], last_modified)

    def wanted(self, nodes: Iterable[FeedNode]) -> Iterable[tuple[Article, bool]]:
        """(article, full content) of every entry these nodes list: their first `limit`,
        or every article of a feed with archives."""
        for node in nodes:
            settings = self.settings.of(*node.key)
            listed = node.articles if settings.archived else node.articles[: settings.limit]
            for article in listed:
                yield article, settings.full

    def render_entries(self, wanted: Iterable[tuple[Article, bool]]) -> None:
        """Render now the entries wanted that are not rendered yet.

        All at once, so that a big batch (a cold start: every listed article) runs on
        every core; the parts are the same as rendering each entry when first met.
        """
        missing: dict[bool, dict[str, Article]] = {True: {}, False: {}}
        for article, full in wanted:
            key = self._key(article, full)
            if key not in self._entries:
                missing[full][key] = article
        self.entries_wanted += sum(len(batch) for batch in missing.values())
        for full, batch in missing.items():
            keys, articles = list(batch), list(batch.values())
            rendered = self.cores.map(_render_entries, (self.config, full), articles)
            for key, parts in zip(keys, rendered, strict=True):
                self._entries[key] = parts
                self.entries_rendered += 1

    def _key(self, article: Article, full: bool) -> str:
        if full == self.full:
            return article.revision
        return article.revision + ("/full" if full else "/summary")

    def forget_unlisted(self, nodes: list[FeedNode]) -> None:
        """Forget the entries of articles no feed lists any more.

        Looked at only once the cache has grown by a quarter since the last look, so a
        reload that changes little pays nothing and the cache stays within 125% of what
        the feeds list.
        """
        if len(self._entries) <= self._listed * 5 // 4:
            return
        live = {self._key(a, full) for a, full in self.wanted(nodes)}
        self._entries = {key: value for key, value in self._entries.items() if key in live}
        self._listed = len(self._entries)

    def _head(
        self,
        node: FeedNode,
        fmt: str,
        path: str,
        updated: datetime,
        *,
        links: tuple[tuple[str, str], ...] = (),
        archived: bool = False,
    ) -> bytes:
        config = self.config
        base = config.site.base_url
        absolute = tuple((rel, join_url(base, target)) for rel, target in links)
        if fmt == "json":
            site = config.site
            return json_head(
                title=feed_title(config, node),
                home_page_url=_home(node, config),
                feed_url=join_url(site.base_url, path),
                description=site.description,
                language=site.language,
                author=site.default_author,
                icon=site.icon,
                hub=config.feeds.websub_hub,
                # JSON Feed 1.1 has no archives: next_url pages along the same chain.
                next_url=dict(absolute).get("prev-archive"),
            )
        generator = _feed_generator(
            node, fmt, path, updated, config, links=absolute, archived=archived
        )
        whole = generator.rss_str(pretty=True) if fmt == "rss" else generator.atom_str(pretty=True)
        return bytes(whole).removesuffix(_XML_TAILS[fmt])

    def _entry(self, article: Article, fmt: str, full: bool) -> Part:
        key = article.revision if full == self.full else self._key(article, full)
        parts = self._entries.get(key)
        if parts is None:
            parts = self._entries[key] = self.entry_parts(article, full)
        part = parts[FORMAT_ORDER.index(fmt)]
        assert part is not None
        return part

    def entry_parts(self, article: Article, full: bool) -> tuple[Part | None, ...]:
        """An article's entry in each format of FORMAT_ORDER (None for formats no feed is
        built in); `full` puts in the whole content, else only the summary."""
        formats = self.settings.formats
        html = article.content_html if full else ""  # inflated once for every format
        rendered: dict[str, bytes] = {}
        if "json" in formats:
            rendered["json"] = json_item(article, html)
        if "rss" in formats or "atom" in formats:
            entry = _new_entry()
            fill_entry(entry, article, html)
            if "rss" in formats:
                rendered["rss"] = _in_context(entry.rss_entry(), "rss")
            if "atom" in formats:
                rendered["atom"] = _in_context(entry.atom_entry(), "atom")
        return tuple(
            self._compressor.part(rendered[fmt]) if fmt in rendered else None
            for fmt in FORMAT_ORDER
        )


def _render_entries(
    shared: tuple[Config, bool], articles: Sequence[Article]
) -> list[tuple[Part | None, ...]]:
    """Entries of a batch of articles (run by feedsvc.cores, possibly in another process);
    `shared` is the config and whether entries carry the full content."""
    config, full = shared
    renderer = FeedRenderer(config)
    return [renderer.entry_parts(article, full) for article in articles]


def _in_context(element: Any, fmt: str) -> bytes:
    """An entry serialized where it sits in a whole feed: RSS items two levels deep under
    a root declaring the channel's namespaces, Atom entries one level under <feed>."""
    if fmt == "rss":
        root = etree.Element("rss", nsmap=_rss_namespaces())
        etree.SubElement(root, "channel").append(element)
        opening = b"<channel>\n"
    else:
        root = etree.Element("feed")
        root.append(element)
        opening = b"<feed>\n"
    text = etree.tostring(root, pretty_print=True, encoding="UTF-8")
    return bytes(text[text.index(opening) + len(opening) : -len(_XML_TAILS[fmt])])


@functools.cache
def _rss_namespaces() -> dict[str | None, str]:
    """The namespaces feedgen declares on <rss> with the extensions the builder loads."""
    generator = _new_generator()
    generator.title("t")
    generator.link(href="http://example.invalid/")
    generator.description("d")
    return dict(etree.fromstring(generator.rss_str()).nsmap)


def document(
    path: str, media_type: str, parts: list[Part], last_modified: datetime, view: str | None = None
) -> Document:
    """Wrap built parts as a gzip document with a strong validator per coding (RFC 9110 §8.8.3).

    The tag is a digest of the pieces' digests and the trailer, which determine the gzip
    bytes and so the identity bytes too; the identity representation gets the bare tag,
    gzip the tag plus "-gz".
    """
    tail, size = trailer(parts)
    digests = tuple(part.digest for part in parts)
    tag = hashlib.sha256(b"".join(digests) + tail).hexdigest()[:32]
    pieces = tuple(part.deflated for part in parts)
    gzip_size = FRAME_BYTES + sum(map(len, pieces))
    return Document(
        path,
        media_type,
        pieces,
        tail,
        size,
        gzip_size,
        tag,
        f"{tag}-gz",
        last_modified,
        view,
        digests,
    )


def feed_title(config: Config, node: FeedNode) -> str:
    """The title of a node's feed: the site's, plus what the node is."""
    return node_title(config.site.title, node)


def _home(node: FeedNode, config: Config) -> str:
    return join_url(config.site.home, node.directory + "/") if node.directory else config.site.home


def _feed_links(
    node: FeedNode,
    config: Config,
    settings: FeedSettings,
    shown: int | None,
    months: Sequence[str],
) -> FeedLinks:
    """What pages say of a node; `shown` is how many entries its cut feeds hold (None: all
    of its first `limit`), `months` its archives, newest first."""
    base = config.site.base_url
    urls = [(fmt, join_url(base, node.path(f"feed.{fmt}"))) for fmt in settings.formats]
    entries = node.articles[: settings.limit if shown is None else shown]
    updated = max((a.updated for a in entries), default=None)
    formats = settings.formats
    archives = tuple(
        Archive(month, [(f, join_url(base, node.path(archive_name(month, f)))) for f in formats])
        for month in months
    )
    return FeedLinks(
        feed_title(config, node),
        _home(node, config),
        urls,
        entries,
        updated,
        view=join_url(base, node.path(VIEW_NAME)),
        archives=archives,
    )


def _feed_generator(
    node: FeedNode,
    fmt: str,
    path: str,
    updated: datetime,
    config: Config,
    *,
    links: tuple[tuple[str, str], ...] = (),
    archived: bool = False,
) -> FeedGenerator:
    site = config.site
    generator = _new_generator()
    self_url = join_url(site.base_url, path)
    home = _home(node, config)
    generator.id(self_url)
    generator.title(feed_title(config, node))
    generator.description(site.description)
    generator.subtitle(site.description)
    generator.language(site.language)
    generator.author({"name": site.default_author})
    # Order matters to feedgen: the last `link` call sets RSS <link>.
    media_type = MEDIA_TYPES[fmt].split(";")[0]
    generator.link(href=self_url, rel="self", type=media_type)
    if config.feeds.websub_hub:
        # WebSub §4: the hub and self links tell subscribers where to subscribe.
        generator.link(href=config.feeds.websub_hub, rel="hub")
        generator.links.hub = config.feeds.websub_hub
    for rel, href in links:  # RFC 5005 §4: current, prev-archive
        generator.link(href=href, rel=rel, type=media_type)
    generator.links.history = [(rel, href, media_type) for rel, href in links]
    generator.links.archived = archived
    generator.link(href=home, rel="alternate", type="text/html")
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


def fill_entry(entry: FeedEntry, article: Article, html: str) -> None:
    """Set every field of a feedgen entry from an article (dates from the data, never now);
    `html` is the full content, or "" for summaries only."""
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
    if html:
        entry.content(html, type="html")
    for name in _category_names(article):
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
    entry.links.links = links
    if article.origin:
        # RSS 2.0 <source url>: the channel the item came from, by its title.
        origin = article.origin
        entry.source(url=origin.feed_url, title=origin.title or origin.feed_url)
    entry.origin.origin = article.origin
    entry.origin.language = article.language


def image_type(url: str) -> str:
    """The media type of an image URL, guessed from its path."""
    guessed, _ = mimetypes.guess_type(urlsplit(url).path)
    return guessed if guessed and guessed.startswith("image/") else "application/octet-stream"


class _LinksExtension(BaseExtension):  # type: ignore[misc]
    """Channel links feedgen does not write in RSS: `<atom:link rel="hub">` for WebSub,
    RFC 5005's `current` and `prev-archive`; and `<fh:archive/>` in archives (both
    formats), declared on the element so no other document changes."""

    def __init__(self) -> None:
        self.hub: str | None = None
        self.history: list[tuple[str, str, str]] = []  # (rel, href, type)
        self.archived = False

    def extend_rss(self, rss_feed: Any) -> Any:
        channel = rss_feed.find("channel")
        if channel is None:
            return rss_feed
        own = channel.find(f"{{{ATOM_NS}}}link")
        at = list(channel).index(own) + 1 if own is not None else 0
        added = [{"href": self.hub, "rel": "hub"}] if self.hub else []
        added += [{"href": href, "rel": rel, "type": kind} for rel, href, kind in self.history]
        for offset, attributes in enumerate(added):
            channel.insert(at + offset, etree.Element(f"{{{ATOM_NS}}}link", attributes))
        if self.archived:
            channel.insert(at + len(added), _archive_marker())
        return rss_feed

    def extend_atom(self, atom_feed: Any) -> Any:
        if self.archived:
            atom_feed.append(_archive_marker())
        return atom_feed


def _archive_marker() -> Any:
    """RFC 5005 §4: `<fh:archive/>` marks a document as an archive."""
    return etree.Element(f"{{{HISTORY_NS}}}archive", nsmap={"fh": HISTORY_NS})


class _EntryLinksExtension(BaseEntryExtension):  # type: ignore[misc]
    """Writes Atom entry links with their attributes.

    feedgen 1.0.0 drops `rel`, `type` and `length` from Atom entry links (it reads
    them from the new element instead of the link's dict), so an enclosure becomes
    a second alternate link that validators reject. This rewrites the links the
    entry already wrote, in place, from the list the builder sets.
    """

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []

    def extend_rss(self, entry: Any) -> Any:
        return entry

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


class _EntryOriginExtension(BaseEntryExtension):  # type: ignore[misc]
    """Writes what feedgen cannot in Atom entries: the whole `<source>` (RFC 4287
    §4.2.11) of a republished item, and the entry's `xml:lang`.

    feedgen 1.0.0's Atom source holds only a title and a link without `rel`; this
    replaces it with the upstream feed's id, title, self link and home page (not its
    `updated`: see feedsvc.sources.feed.Channel). RSS has its `<source url>` from
    feedgen and no per-item language.
    """

    def __init__(self) -> None:
        self.origin: Origin | None = None
        self.language: str | None = None

    def extend_rss(self, entry: Any) -> Any:
        return entry

    def extend_atom(self, entry: Any) -> Any:
        if self.language:
            entry.set(XML_LANG, self.language)
        for written in entry.findall("source"):
            entry.remove(written)
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


# The feedgen extensions of every feed and entry: (namespace, feed class, entry class,
# used in Atom, used in RSS). Registered by class: an entry's load_extension first tries
# to import a module that does not exist, per entry.
_EXTENSIONS: tuple[tuple[str, type, type, bool, bool], ...] = (
    ("dc", DcExtension, DcEntryExtension, False, True),
    ("media", MediaExtension, MediaEntryExtension, False, True),
    ("links", _LinksExtension, _EntryLinksExtension, True, True),
    ("origin", BaseExtension, _EntryOriginExtension, True, False),
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

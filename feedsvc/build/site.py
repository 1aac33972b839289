"""The site build: which feed nodes to render again, and the reuse of every other node's
documents, within a run (SiteRenderer.build) and across a restart (export, seed), and
their bytes read back from the snapshot files once written (rebase). Over 300 lines:
those three keep one record of each node, `_Built`, in step."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

from feedsvc.build.archives import archive_name, by_month
from feedsvc.build.documents import VIEW_NAME, rebased_document
from feedsvc.build.entries import Entries
from feedsvc.build.feeds import FeedRenderer
from feedsvc.build.feedsettings import FeedSettings, SettingsTable
from feedsvc.build.gzparts import Compressor, View
from feedsvc.build.membership import FeedNode, Kind, NodeIndex, NodeKeys, digest
from feedsvc.build.pages import FeedLinks
from feedsvc.build.sitepages import Line, SitePages, line_of
from feedsvc.dates import load_timezone
from feedsvc.model import Article, Document, Problem
from feedsvc.processes.cpus import Cores
from feedsvc.settings import Config


@dataclass(frozen=True, slots=True)
class SiteBuild:
    """One build: every document by URL path, the feed nodes, and warnings about them."""

    documents: dict[str, Document]
    nodes: list[FeedNode]
    problems: list[Problem]
    # The paths of documents this build made, replaced or removed since the build before
    # (None: any may have: the first build of a renderer).
    touched: set[str] | None = None


@dataclass(slots=True)
class _Built:
    """What the site build keeps of one rendered node."""

    signature: str
    documents: list[Document]  # its feeds, its HTML view, then its archives
    links: FeedLinks | None  # None for nodes seeded from disk (made when first needed)
    line: Line | None  # line_of(links), saved with the node (None: seeded from before it was)
    cuts: dict[str, tuple[int, int]]  # feed path -> (entries left out, kept) by the budget
    months: dict[str, tuple[str, list[Document]]]  # month -> (signature, archive documents)


class SiteRenderer:
    """Builds every document, re-rendering only the feeds whose entries changed.

    A feed node's documents depend on its names and its first `limit` articles (every
    article, for a feed with archives), so they are kept with that signature and reused
    while it is equal; each month's archive has a signature of its own. Signatures hold
    the articles' revisions (`Article.revision`), so an equal article made anew (a
    re-parse, a copy from another process) renders nothing.
    One SiteRenderer serves one Config; a new config gets a new one.
    """

    def __init__(
        self, config: Config, cores: Cores | None = None, before: SiteRenderer | None = None
    ) -> None:
        self.config = config
        self.tz = load_timezone(config.site.timezone)
        self.settings = SettingsTable(config)
        self._nodes: dict[tuple[str, str], _Built] = {}
        self._exported: dict[str, tuple[Any, ...]] = {}  # by `kind:directory`: export's nodes
        self._fresh: list[tuple[str, str]] = []  # nodes rendered since the last `rebase`
        self._documents: dict[str, Document] = {}  # of the last build
        self._cut_problems: dict[tuple[str, str], list[Problem]] = {}
        self.config_digest = digest(
            (config.site, config.sources, config.feeds, config.server.cache_max_age)
        )
        self._last: tuple[tuple[str, ...], dict[Any, Any], SiteBuild] | None = None
        self._index = NodeIndex(config, self.settings)
        compressor = Compressor()  # shared: a part's bytes depend on that part alone
        self._entries = Entries(config, compressor, cores, self.settings)
        if before is not None:  # the renderer of the config before an edit
            self._entries.take_over(before.entries_cache)
        self._feeds = FeedRenderer(config, self._entries, compressor)
        self._pages = SitePages(config, self.settings, self._index.author_key, compressor, self.tz)
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
        found, whole = self._touched_nodes(nodes)
        stale = [
            n for _, n in found if n and (n.key not in kept or kept[n.key].signature != n.signature)
        ]
        # All at once: a cold start's go on every core.
        self._entries.render(self._entries.wanted(stale))
        # The last build's documents, with those of re-rendered and vanished nodes replaced.
        documents = dict(self._documents)
        touched: set[str] = set()
        vanished = [key for key, node in found if node is None and key in kept]
        for key in vanished:
            for doc in kept.pop(key).documents:
                touched.add(doc.path)
                del documents[doc.path]
            self._cut_problems.pop(key, None)
            del self._exported[_name(key)]
        for node in stale:
            old = kept.get(node.key)
            for doc in old.documents if old else ():
                touched.add(doc.path)
                del documents[doc.path]
            built = kept[node.key] = self._render_node(node, old)
            documents.update((doc.path, doc) for doc in built.documents)
            touched.update(doc.path for doc in built.documents)
            self._note_cuts(node.key, built)
            self._exported[_name(node.key)] = _export(built)
            self._fresh.append(node.key)
        self._entries.forget_unlisted(nodes)
        # What the index and OPML say of a feed follows from its signature: with no feed
        # rendered, come or gone, they stay (a restart's first build makes no links).
        if stale or vanished or self._pages.signature is None:
            lines = tuple(self._line(node) for node in nodes)
            for doc in self._pages.render(lines, lambda: [self._links(n) for n in nodes]):
                touched.add(doc.path)
                documents[doc.path] = doc
        self._documents = documents
        if self._cut_problems:  # in node order, so `check` lists them the same every time
            cuts = self._cut_problems
            problems.extend(p for node in nodes for p in cuts.get(node.key, ()))
        problems.extend(self.settings.unmatched(node.key for node in nodes))
        return SiteBuild(documents, nodes, problems, None if whole else touched)

    def _touched_nodes(
        self, nodes: list[FeedNode]
    ) -> tuple[list[tuple[tuple[str, str], FeedNode | None]], bool]:
        """The nodes the index touched since the last build, by key (None: gone), and
        whether that is every node, as at a renderer's first build (after a restart's
        seed, every node is compared with what was rendered)."""
        keys = self._index.take_touched()
        if keys is not None:
            return [(key, self._index.node(key)) for key in sorted(keys)], False
        listed = {node.key for node in nodes}
        found: list[tuple[tuple[str, str], FeedNode | None]] = [(n.key, n) for n in nodes]
        return found + [(key, None) for key in self._nodes if key not in listed], True

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
        link = self._pages.links(node, cuts, [m for m, _ in months])
        page = self._pages.view(node, link, feeds[0].last_modified)
        archives = self._render_archives(node, settings, months, old.months if old else {})
        documents = [*feeds, page, *(d for _, docs in archives.values() for d in docs)]
        return _Built(node.signature, documents, link, line_of(link), cuts, archives)

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

    def _line(self, node: FeedNode) -> Line:
        """What the index and the OPML say of `node`: saved with it, so that a restart's
        first build makes no links unless they change (50 ms at 50,000 posts)."""
        built = self._nodes[node.key]
        if built.line is None:  # seeded from a generation written before lines were saved
            built.line = line_of(self._links(node))
            self._exported[_name(node.key)] = _export(built)
        return built.line

    def _links(self, node: FeedNode) -> FeedLinks:
        built = self._nodes[node.key]
        if built.links is None:  # seeded from the last run: the links cost no rendering
            built.links = self._pages.links(node, built.cuts, sorted(built.months, reverse=True))
        return built.links

    def rebase(self, view: View, everything: bool = False) -> None:
        """Hold the entries and documents made since the last call (all of them with
        `everything`) as views of the snapshot files they were written to (`view`,
        SnapshotWriter.view): one copy of their bytes per machine, in the page cache,
        rather than one more in the builder. The bytes stay the same; the last build's
        documents are replaced in place."""
        self._entries.rebase(view, everything)
        keys = list(self._nodes) if everything else self._fresh
        documents = self._documents
        for key in keys:
            built = self._nodes.get(key)
            if built is None:
                continue
            built.documents = [rebased_document(doc, view) for doc in built.documents]
            by_path = {doc.path: doc for doc in built.documents}  # archives are among them
            built.months = {
                month: (signature, [by_path[doc.path] for doc in docs])
                for month, (signature, docs) in built.months.items()
            }
            documents.update(by_path)
        for page in self._pages.rebase(view):
            documents[page.path] = page
        self._fresh = []

    @property
    def entries_cache(self) -> Entries:
        """The rendered entries (a restart restores them: feedsvc.state.catchup)."""
        return self._entries

    @property
    def index(self) -> NodeIndex:
        """The node index builds update (a restart restores it: feedsvc.state.catchup)."""
        return self._index

    @property
    def entries(self) -> tuple[int, int]:
        """Feed entries rendered and asked for since creation (for a progress bar)."""
        return self._entries.rendered, self._entries.asked

    def export(self) -> dict[str, Any]:
        """What a SiteRenderer after a restart needs to reuse these documents: under
        "nodes", each node's signature, its budget cuts, its archive months' signatures
        and its line in the index (its documents' paths follow from its directory),
        JSON-ready.

        The nodes are a read-only view kept up to date as nodes are rendered, and a node's
        entry is replaced, never changed, so exporting costs nothing and comparing with
        the last export costs little for the nodes not rendered again."""
        return {
            "config": self.config_digest,
            "nodes": MappingProxyType(self._exported),
            "pages": self._pages.signature,
        }

    def seed(self, exported: Mapping[str, Any], documents: Mapping[str, Document]) -> None:
        """Start from what `export` said of `documents` (a restart): nodes whose signature
        is unchanged are not rendered again. Ignored when the config differs."""
        if exported.get("config") != self.config_digest:
            return
        for name, (signature, cuts, months, *line) in exported["nodes"].items():
            kind, directory = name.split(":", 1)
            node = FeedNode(cast(Kind, kind), directory, (), ())  # for its documents' paths
            formats = self.settings.of(kind, directory).formats
            paths = [node.path(f"feed.{fmt}") for fmt in formats] + [node.path(VIEW_NAME)]
            archived = {m: [node.path(archive_name(m, f)) for f in formats] for m in months}
            wanted = paths + [p for group in archived.values() for p in group]
            if all(path in documents for path in wanted):
                built = self._nodes[(kind, directory)] = _Built(
                    signature,
                    [documents[p] for p in wanted],
                    None,
                    tuple(line[0]) if line else None,
                    {path: (cut[0], cut[1]) for path, cut in cuts.items()},
                    {m: (months[m], [documents[p] for p in ps]) for m, ps in archived.items()},
                )
                self._note_cuts((kind, directory), built)
                self._exported[name] = _export(built)
                self._documents.update((path, documents[path]) for path in wanted)
        pages = self._pages.seed(exported.get("pages"), documents)
        self._documents.update((page.path, page) for page in pages)


def _name(key: tuple[str, str]) -> str:
    return f"{key[0]}:{key[1]}"


def _export(built: _Built) -> tuple[Any, ...]:
    """A node's entry in `SiteRenderer.export`."""
    return (
        built.signature,
        {path: list(cut) for path, cut in built.cuts.items()},
        {month: signature for month, (signature, _) in built.months.items()},
        *([list(built.line)] if built.line else []),  # as JSON gives it back
    )

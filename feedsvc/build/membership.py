"""Which feeds exist and which articles each holds: the site, every category node, tag and
author (the nodes), kept up to date as articles come, change and go. Over 300 lines: the
index, what it touched for the site build, and what a restart carries on from
(`export`/`restore`) must agree on its inner lists."""

from __future__ import annotations

import functools
import hashlib
from array import array
from bisect import bisect_left, insort
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Literal

from feedsvc.build.feedsettings import SettingsTable
from feedsvc.model import Article, Problem
from feedsvc.settings import Config
from feedsvc.urls import join_url, slugize

Kind = Literal["site", "category", "tag", "author"]


@dataclass(frozen=True, slots=True)
class FeedNode:
    """One feed: `directory` is its URL path ('' for the site); articles are newest first."""

    kind: Kind
    directory: str
    names: tuple[str, ...]
    articles: tuple[Article, ...]
    # What its documents depend on: a digest of its names and its first `limit` entries'
    # revisions, or every entry's for a feed with archives (the site build renders a node
    # again only when this changes).
    signature: str = ""

    def path(self, name: str) -> str:
        """The URL path (no leading slash) of one of this node's documents, e.g. `feed.atom`."""
        return f"{self.directory}/{name}".lstrip("/")

    @property
    def key(self) -> tuple[Kind, str]:
        """Identity of the node across reloads."""
        return (self.kind, self.directory)


NodeKeys = Mapping[tuple[Kind, str], tuple[str, ...]]
_Key = tuple[Kind, str]
IndexState = tuple[
    list[str],  # the revisions of the articles held, in order
    # Each node's members, newest first: their places in that list, as unsigned 32-bit
    # integers in native order (array "I"), which unpickle in one piece.
    dict[_Key, bytes],
    dict[_Key, list[tuple[tuple[str, ...], int]]],  # each node's name paths and their counts
    list[tuple[_Key, tuple[str, ...], str]],  # each node: key, names, signature
    dict[_Key, list[Problem]],  # each node's warnings
]
"""A NodeIndex as plain values (NodeIndex.export), for a later process to carry on from."""


def newest_first(article: Article) -> tuple[float, str, str, str]:
    """Sort key: newest published first; ties broken by id, then by where the article
    lives, so the order is total and never depends on the order articles arrive in."""
    return (-article.published.timestamp(), article.id, article.source, article.path)


_KIND_ORDER = {"site": 0, "category": 1, "tag": 2, "author": 3}  # of the index and OPML
_BULK = 64  # more changes than this in one node: merge by sorting, not one by one


class NodeIndex:
    """The site, category, tag and author nodes, kept between reloads and updated in place.

    A reload usually adds, edits or removes a handful of articles; only the nodes those
    articles belong to (before or after) are regrouped, and every other node keeps its
    very FeedNode, so the site build sees at once that it has nothing to render. Articles
    are told apart by `Article.revision`, never by object identity: an equal article
    made anew (a re-parse, a copy from another process) is no change. A few
    changes are placed by binary search; many are merged by one sort. Per membership
    the index holds one reference, and per node a count of the name paths leading to
    it (more than one only when names collide on one URL).
    One index serves one Config; a new config gets a new index.
    """

    def __init__(self, config: Config, settings: SettingsTable | None = None) -> None:
        self._paths = _Memberships(config)
        self._settings = settings or SettingsTable(config)
        self._order: list[_Key] = []  # node keys, the site first: sorted when keys come or go
        self._articles: dict[str, Article] = {}  # by revision: the objects the nodes hold
        self._members: dict[_Key, list[Article]] = {}  # newest first
        self._names: defaultdict[_Key, Counter[tuple[str, ...]]] = defaultdict(Counter)
        self._nodes: dict[_Key, FeedNode] = {}
        self._problems: dict[_Key, list[Problem]] = {}
        # Nodes made, replaced or removed since the last `take_touched` (None: every node).
        self._touched: set[_Key] | None = None

    def update(
        self, articles: Iterable[Article], keep: NodeKeys | None = None
    ) -> tuple[list[FeedNode], list[Problem]]:
        """Every node (the site first, then by kind and directory) and a warning per slug
        collision. `keep` maps (kind, directory) -> names of nodes that must exist even
        when empty, so a category whose articles were all deleted still answers with a
        valid, empty feed."""
        added, gone = self._take(articles)
        leaving: dict[_Key, list[Article]] = {}
        arriving: dict[_Key, list[Article]] = {}
        for changes, sign, batch in ((leaving, -1, gone), (arriving, 1, added)):
            for article in batch:
                self._count(article, sign, changes)
        changed = leaving.keys() | arriving.keys()
        for key in changed:
            members = self._members.setdefault(key, [])
            _apply(members, leaving.get(key, ()), arriving.get(key, ()))
            if not members:
                del self._members[key], self._names[key]
            self._node(key)
        self._touch(changed)
        self._keep(keep or {})
        if len(self._order) != len(self._nodes) or any(k not in self._nodes for k in leaving):
            self._order = sorted(self._nodes, key=lambda key: (_KIND_ORDER[key[0]], key[1]))
        order = self._order
        problems = [p for key in order for p in self._problems.get(key, ())]
        return [self._nodes[key] for key in order], problems

    def _take(self, articles: Iterable[Article]) -> tuple[list[Article], list[Article]]:
        """Hold these articles from now on; returns those added and those gone, by revision."""
        previous = self._articles
        given: dict[str, Article] = {}
        added: list[Article] = []
        for article in articles:
            revision = article.revision
            if revision in given:
                continue
            kept = previous.get(revision)
            if kept is None:
                added.append(article)
            # Unchanged: keep the object the nodes already hold, so one copy stays alive.
            given[revision] = article if kept is None else kept
        self._articles = given
        return added, [a for revision, a in previous.items() if revision not in given]

    def export(self) -> IndexState:
        """What `restore` in a later process needs to carry on from this index."""
        revisions = list(self._articles)
        at = {revision: n for n, revision in enumerate(revisions)}
        return (
            revisions,
            {
                key: array("I", [at[a.revision] for a in members]).tobytes()
                for key, members in self._members.items()
            },
            {key: list(counts.items()) for key, counts in self._names.items()},
            [(key, node.names, node.signature) for key, node in self._nodes.items()],
            {key: list(problems) for key, problems in self._problems.items()},
        )

    def restore(self, state: IndexState, articles: Mapping[str, Article]) -> bool:
        """Carry on from `export` of an index of the same config (a restart), the articles
        it held being `articles` by revision: the next update regroups only what changed
        since, as if this process had made it. False (and nothing restored) when an
        article it held is not among them."""
        revisions, members, names, nodes, problems = state
        try:  # map(): C loops over every article and every membership (a restart's path)
            held = list(map(articles.__getitem__, revisions))
        except KeyError:
            return False
        self._articles = dict(zip(revisions, held, strict=True))
        self._members = {key: _places(held, places) for key, places in members.items()}
        self._names = defaultdict(Counter, {key: Counter(dict(c)) for key, c in names.items()})
        self._nodes = {
            key: FeedNode(key[0], key[1], node_names, tuple(self._members.get(key, ())), signature)
            for key, node_names, signature in nodes
        }
        self._problems = {key: list(found) for key, found in problems.items()}
        self._order = sorted(self._nodes, key=lambda key: (_KIND_ORDER[key[0]], key[1]))
        self._touched = None  # the renderer compares every node with what it was seeded with
        return True

    def _keep(self, keep: NodeKeys) -> None:
        """Nodes in `keep` exist even when empty, the site always; an empty node no longer
        kept (`feedsvc forget`) goes."""
        made = {key: names for key, names in keep.items() if key not in self._nodes}
        if ("site", "") not in self._nodes:
            made[("site", "")] = ()
        for key, kept_names in made.items():
            self._nodes[key] = self._feed_node(key, kept_names, ())
        gone = [
            k for k in self._nodes if k not in self._members and k not in keep and k[0] != "site"
        ]
        for key in gone:
            del self._nodes[key]
        self._touch(made.keys() | set(gone))

    def _touch(self, keys: Iterable[_Key]) -> None:
        if self._touched is not None:
            self._touched.update(keys)

    def take_touched(self) -> set[_Key] | None:
        """The nodes made, replaced or removed since the last call (None: look at every
        node, as after the first update): the only ones whose documents may change."""
        touched, self._touched = self._touched, set()
        return touched

    def node(self, key: _Key) -> FeedNode | None:
        """The node of `key`, if there is one."""
        return self._nodes.get(key)

    def author_key(self, name: str) -> tuple[Kind, str]:
        """The key of the node of an author's name (whether or not it exists)."""
        return self._paths.author(name)

    def _count(self, article: Article, sign: int, changes: dict[_Key, list[Article]]) -> None:
        """Note an article leaving (-1) or arriving (+1) in every node it belongs to."""
        for key, paths in self._paths.of(article).items():
            changes.setdefault(key, []).append(article)
            counts = self._names[key]
            for names in paths:
                counts[names] += sign

    def _node(self, key: _Key) -> None:
        members = self._members.get(key)
        self._nodes.pop(key, None)
        self._problems.pop(key, None)
        if not members:
            return  # emptied: gone unless `keep` holds it
        paths = self._paths.of(members[0])[key]
        if len(+self._names[key]) > 1:  # names collide: say so in the order they appear
            seen = dict.fromkeys(n for a in members for n in self._paths.of(a)[key])
            first, *others = seen
            self._problems[key] = [_collision(key, first, names) for names in others]
        self._nodes[key] = self._feed_node(key, paths[0], tuple(members))

    def _feed_node(
        self, key: _Key, names: tuple[str, ...], members: tuple[Article, ...]
    ) -> FeedNode:
        settings = self._settings.of(*key)
        listed = members if settings.archived else members[: settings.limit]
        revisions = [a.revision for a in listed]
        return FeedNode(key[0], key[1], names, members, digest((names, revisions)))


def _places(held: list[Article], places: bytes) -> list[Article]:
    """The articles at these places of `held` (an array "I" as bytes, IndexState): taken
    by one itemgetter, in C; a call per member was 70-100 ms of a 50,000-post restart
    (400,000 memberships)."""
    at = memoryview(places).cast("I").tolist()
    if len(at) < 2:  # an itemgetter of one place gives the article, not a tuple
        return [held[n] for n in at]
    return list(itemgetter(*at)(held))


def _apply(members: list[Article], leaving: Sequence[Article], arriving: Sequence[Article]) -> None:
    """Take `leaving` out of a newest-first list and put `arriving` in its place."""
    if not members or len(leaving) + len(arriving) > _BULK:
        if leaving:
            drop = {a.revision for a in leaving}
            members[:] = [a for a in members if a.revision not in drop]
        members.extend(arriving)
        members.sort(key=newest_first)
        return
    for article in leaving:
        at = bisect_left(members, newest_first(article), key=newest_first)
        # Equal sort keys sit together; they differ only when a remote feed repeats a guid.
        while members[at].revision != article.revision:
            at += 1
        del members[at]
    for article in arriving:
        insort(members, article, key=newest_first)


def _collision(key: tuple[Kind, str], first: tuple[str, ...], names: tuple[str, ...]) -> Problem:
    kind, directory = key
    return Problem(
        "feeds",
        None,
        f"{kind} {' / '.join(names)!r} and {' / '.join(first)!r} share the URL "
        f"/{directory}/; merged into one feed (set feeds.{kind}_map to separate them)",
        "warning",
    )


class _Memberships:
    """Node keys for category paths, tags and authors, computed once per distinct name."""

    def __init__(self, config: Config) -> None:
        self.category_map = config.feeds.category_map
        self.tag_map = config.feeds.tag_map
        self.author_map = config.feeds.author_map
        self.default_author = config.site.default_author
        self.hierarchy = config.feeds.category_hierarchy
        # Cached per instance: the maps are this config's.
        self.categories = functools.cache(self._categories)
        self.tag = functools.cache(self._tag)
        self.author = functools.cache(self._author)

    def _categories(self, path: tuple[str, ...]) -> list[tuple[_Key, tuple[str, ...]]]:
        """(key, names) of every node a category path puts an article in (Hexo)."""
        slugs = [self.category_map.get(name) or slugize(name) for name in path]
        depths = range(1, len(path) + 1) if self.hierarchy else [len(path)]
        return [(("category", "categories/" + "/".join(slugs[:d])), path[:d]) for d in depths]

    def _tag(self, tag: str) -> _Key:
        """The key of a tag's node."""
        return ("tag", "tags/" + (self.tag_map.get(tag) or slugize(tag)))

    def _author(self, name: str) -> _Key:
        """The key of an author's node."""
        return ("author", "authors/" + (self.author_map.get(name) or slugize(name)))

    def of(self, article: Article) -> dict[_Key, tuple[tuple[str, ...], ...]]:
        """Every node an article belongs to, with the name paths that lead there."""
        pairs = [pair for path in article.categories for pair in self.categories(path)]
        pairs += [(self.tag(tag), (tag,)) for tag in article.tags]
        authors = [a.name for a in article.authors] or [self.default_author]
        pairs += [(self.author(name), (name,)) for name in authors]
        found: dict[_Key, tuple[tuple[str, ...], ...]] = {("site", ""): ((),)}
        for key, names in pairs:
            seen = found.get(key, ())
            if names not in seen:
                found[key] = (*seen, names)
        return found


def digest(value: object) -> str:
    """A signature of a value made of strings, numbers, tuples and lists: its repr's
    SHA-256, the same in every process and run."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:32]


def feed_title(config: Config, node: FeedNode) -> str:
    """The title of a node's feed: `Site`, `Site — 金融 / 财联社` for a category node,
    `Site — #A股` for a tag, `Site — 财联社 (author)` for an author."""
    site_title = config.site.title
    if node.kind == "category":
        return f"{site_title} — {' / '.join(node.names)}"
    if node.kind == "tag":
        return f"{site_title} — #{node.names[0]}"
    if node.kind == "author":
        return f"{site_title} — {node.names[0]} (author)"
    return site_title


def feed_home(config: Config, node: FeedNode) -> str:
    """The web page a node's feed stands for: the site's home, or the node's folder under it."""
    home = config.site.home
    return join_url(home, node.directory + "/") if node.directory else home


def node_keys(nodes: Iterable[FeedNode]) -> NodeKeys:
    """(kind, directory) -> names of every node, to keep empty nodes alive across reloads."""
    return {node.key: node.names for node in nodes}

"""Which feeds exist: the site, every category node and every tag, each with its articles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from feedsvc.config import Config
from feedsvc.model import Article, Problem
from feedsvc.urls import slugize

Kind = Literal["site", "category", "tag"]


@dataclass(frozen=True, slots=True)
class FeedNode:
    """One feed: `directory` is its URL path ('' for the site); articles are newest first."""

    kind: Kind
    directory: str
    names: tuple[str, ...]
    articles: tuple[Article, ...]

    def path(self, name: str) -> str:
        """The URL path (no leading slash) of one of this node's documents, e.g. `feed.atom`."""
        return f"{self.directory}/{name}".lstrip("/")

    @property
    def key(self) -> tuple[Kind, str]:
        """Identity of the node across reloads."""
        return (self.kind, self.directory)


NodeKeys = Mapping[tuple[Kind, str], tuple[str, ...]]


def collect_nodes(
    articles: Iterable[Article], config: Config, keep: NodeKeys | None = None
) -> tuple[list[FeedNode], list[Problem]]:
    """The nodes of these articles, computed once (see NodeIndex)."""
    return NodeIndex(config).update(articles, keep)


def newest_first(article: Article) -> tuple[float, str, str, str]:
    """Sort key: newest published first; ties broken by id, then by where the article
    lives, so the order is total and never depends on the order articles arrive in."""
    return (-article.published.timestamp(), article.id, article.source, article.path)


# A node's member: its sort key, the article, and every name path through which the
# article reaches the node (more than one only when names collide on one URL).
_Member = tuple[tuple[float, str, str, str], Article, tuple[tuple[str, ...], ...]]


class NodeIndex:
    """The site, category and tag nodes, kept between reloads and updated in place.

    A reload usually adds, edits or removes a handful of articles; only the nodes those
    articles belong to (before or after) are regrouped, and every other node keeps its
    very FeedNode, so the builder sees at once that it has nothing to render. Work is
    linear in the articles that changed plus the sizes of the nodes they touch.
    One index serves one Config; a new config gets a new index.
    """

    def __init__(self, config: Config) -> None:
        self._paths = _Memberships(config)
        self._articles: dict[int, Article] = {}  # by id(): unchanged files give the same objects
        self._members: dict[_Key, list[_Member]] = {}
        self._nodes: dict[tuple[Kind, str], FeedNode] = {}
        self._problems: dict[tuple[Kind, str], list[Problem]] = {}

    def update(
        self, articles: Iterable[Article], keep: NodeKeys | None = None
    ) -> tuple[list[FeedNode], list[Problem]]:
        """Every node (the site first, then by kind and directory) and a warning per slug
        collision. `keep` maps (kind, directory) -> names of nodes that must exist even
        when empty, so a category whose articles were all deleted still answers with a
        valid, empty feed."""
        given = {id(article): article for article in articles}
        gone = {key: a for key, a in self._articles.items() if key not in given}
        added = [a for key, a in given.items() if key not in self._articles]
        self._articles = given
        changed: dict[tuple[Kind, str], list[_Member]] = {}
        for article in gone.values():
            for key in self._paths.of(article):
                changed.setdefault(key, [])
        for article in added:
            sort_key = newest_first(article)
            for key, names in self._paths.of(article).items():
                changed.setdefault(key, []).append((sort_key, article, names))
        for key, new in changed.items():
            old = self._members.get(key, [])
            kept = [m for m in old if id(m[1]) not in gone] if gone else old
            members = kept + new if new else kept
            members.sort(key=_sort_key)
            if members:
                self._members[key] = members
            else:
                self._members.pop(key, None)
            self._nodes.pop(key, None)
        for key, kept_names in (keep or {}).items():
            if key not in self._members and key not in self._nodes:
                self._nodes[key] = FeedNode(key[0], key[1], kept_names, ())
        for key in changed:
            self._node(key)
        self._nodes.setdefault(("site", ""), FeedNode("site", "", (), ()))
        order = sorted(self._nodes, key=lambda key: (key[0] != "site", key))
        problems = [p for key in order for p in self._problems.get(key, ())]
        return [self._nodes[key] for key in order], problems

    def _node(self, key: tuple[Kind, str]) -> None:
        members = self._members.get(key)
        self._problems.pop(key, None)
        if not members:
            return  # emptied: gone unless `keep` holds it
        kind, directory = key
        first = members[0][2]
        if any(m[2] != first for m in members) or len(first) > 1:
            variants = list(dict.fromkeys(names for m in members for names in m[2]))
            self._problems[key] = [_collision(key, variants[0], names) for names in variants[1:]]
        self._nodes[key] = FeedNode(kind, directory, first[0], tuple([m[1] for m in members]))


def _sort_key(member: _Member) -> tuple[float, str, str, str]:
    return member[0]


def _collision(key: tuple[Kind, str], first: tuple[str, ...], names: tuple[str, ...]) -> Problem:
    kind, directory = key
    return Problem(
        "feeds",
        None,
        f"{kind} {' / '.join(names)!r} and {' / '.join(first)!r} share the URL "
        f"/{directory}/; merged into one feed (set feeds.{kind}_map to separate them)",
        "warning",
    )


_Key = tuple[Kind, str]
_SITE: tuple[_Key, tuple[tuple[str, ...], ...]] = (("site", ""), ((),))


class _Memberships:
    """Node keys for category paths and tags, computed once per distinct name."""

    def __init__(self, config: Config) -> None:
        self.category_map = config.feeds.category_map
        self.tag_map = config.feeds.tag_map
        self.hierarchy = config.feeds.category_hierarchy
        self._categories: dict[tuple[str, ...], list[tuple[_Key, tuple[str, ...]]]] = {}
        self._tags: dict[str, _Key] = {}

    def categories(self, path: tuple[str, ...]) -> list[tuple[_Key, tuple[str, ...]]]:
        """(key, names) of every node a category path puts an article in (Hexo)."""
        cached = self._categories.get(path)
        if cached is not None:
            return cached
        slugs = [self.category_map.get(name) or slugize(name) for name in path]
        depths = range(1, len(path) + 1) if self.hierarchy else [len(path)]
        found: list[tuple[_Key, tuple[str, ...]]] = [
            (("category", "categories/" + "/".join(slugs[:d])), path[:d]) for d in depths
        ]
        self._categories[path] = found
        return found

    def tag(self, tag: str) -> _Key:
        """The key of a tag's node."""
        found = self._tags.get(tag)
        if found is None:
            found = self._tags[tag] = ("tag", "tags/" + (self.tag_map.get(tag) or slugize(tag)))
        return found

    def of(self, article: Article) -> dict[_Key, tuple[tuple[str, ...], ...]]:
        """Every node an article belongs to, with the name paths that lead there."""
        found = dict([_SITE])
        for path in article.categories:
            for key, names in self.categories(path):
                seen = found.get(key)
                if seen is None:
                    found[key] = (names,)
                elif names not in seen:
                    found[key] = (*seen, names)
        for tag in article.tags:
            key = self.tag(tag)
            seen = found.get(key)
            if seen is None:
                found[key] = ((tag,),)
            elif (tag,) not in seen:
                found[key] = (*seen, (tag,))
        return found


def node_title(site_title: str, node: FeedNode) -> str:
    """`Site`, `Site — 金融 / 财联社` for a category node, `Site — #A股` for a tag."""
    if node.kind == "category":
        return f"{site_title} — {' / '.join(node.names)}"
    if node.kind == "tag":
        return f"{site_title} — #{node.names[0]}"
    return site_title


def node_keys(nodes: Iterable[FeedNode]) -> NodeKeys:
    """(kind, directory) -> names of every node, to keep empty nodes alive across reloads."""
    return {node.key: node.names for node in nodes}

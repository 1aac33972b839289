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
    """The site, category and tag nodes for these articles, plus a warning per slug collision.

    `keep` maps (kind, directory) -> names of nodes that must exist even when empty, so a
    category whose articles were all deleted still answers with a valid, empty feed.
    """
    ordered = sorted(articles, key=newest_first)
    groups = _Groups()
    paths = _Memberships(config)
    for article in ordered:
        for path in article.categories:
            for directory, names in paths.categories(path):
                groups.add("category", directory, names, article)
        for tag in article.tags:
            groups.add("tag", paths.tag(tag), (tag,), article)
    for (kind, directory), names in (keep or {}).items():
        if kind != "site":
            groups.ensure(kind, directory, names)
    nodes = [FeedNode("site", "", (), tuple(ordered))]
    nodes.extend(groups.nodes())
    return nodes, groups.collisions


def newest_first(article: Article) -> tuple[float, str]:
    """Sort key: newest published first, ties broken by id so the order is total."""
    return (-article.published.timestamp(), article.id)


class _Memberships:
    """Node directories for category paths and tags, computed once per distinct name."""

    def __init__(self, config: Config) -> None:
        self.category_map = config.feeds.category_map
        self.tag_map = config.feeds.tag_map
        self.hierarchy = config.feeds.category_hierarchy
        self._categories: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = {}
        self._tags: dict[str, str] = {}

    def categories(self, path: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
        """(directory, names) of every node a category path puts an article in (Hexo)."""
        found = self._categories.get(path)
        if found is None:
            slugs = [self.category_map.get(name) or slugize(name) for name in path]
            depths = range(1, len(path) + 1) if self.hierarchy else [len(path)]
            found = [("categories/" + "/".join(slugs[:d]), path[:d]) for d in depths]
            self._categories[path] = found
        return found

    def tag(self, tag: str) -> str:
        """The directory of a tag's node."""
        found = self._tags.get(tag)
        if found is None:
            found = self._tags[tag] = "tags/" + (self.tag_map.get(tag) or slugize(tag))
        return found


class _Groups:
    """Articles grouped by (kind, directory); linear in articles × memberships."""

    def __init__(self) -> None:
        self.members: dict[tuple[Kind, str], list[Article]] = {}
        self.names: dict[tuple[Kind, str], tuple[str, ...]] = {}
        self.collisions: list[Problem] = []
        self._seen_names: dict[tuple[Kind, str], set[tuple[str, ...]]] = {}

    def add(self, kind: Kind, directory: str, names: tuple[str, ...], article: Article) -> None:
        key = (kind, directory)
        bucket = self.members.get(key)
        if bucket is None:
            self.members[key] = [article]
            self.names[key] = names
            return
        # An article reaches a node once per path through it; keep it once.
        if bucket[-1] is not article:
            bucket.append(article)
        if self.names[key] != names:
            self._collision(key, names)

    def ensure(self, kind: Kind, directory: str, names: tuple[str, ...]) -> None:
        key = (kind, directory)
        self.members.setdefault(key, [])
        self.names.setdefault(key, names)

    def _collision(self, key: tuple[Kind, str], names: tuple[str, ...]) -> None:
        first = self.names[key]
        seen = self._seen_names.setdefault(key, {first})
        if names not in seen:
            seen.add(names)
            self.collisions.append(
                Problem(
                    "feeds",
                    None,
                    f"{key[0]} {' / '.join(names)!r} and {' / '.join(first)!r} share the URL "
                    f"/{key[1]}/; merged into one feed (set feeds.{key[0]}_map to separate them)",
                    "warning",
                )
            )

    def nodes(self) -> list[FeedNode]:
        return [
            FeedNode(kind, directory, self.names[key], tuple(self.members[key]))
            for key in sorted(self.members)
            for kind, directory in [key]
        ]


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

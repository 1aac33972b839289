"""Per-feed settings: `feeds.*` with the first matching `feeds.overrides` entry applied."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from feedsvc.config import Config
from feedsvc.model import Problem

# Node kinds (membership.Kind) as feed paths and `feeds.archive` name them.
KIND_NAMES = {"site": "site", "category": "categories", "tag": "tags", "author": "authors"}


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """What one feed is built with."""

    limit: int
    full: bool  # feeds.content == "full"
    formats: tuple[str, ...]
    max_bytes: int
    archived: bool  # RFC 5005 monthly archives (feeds.archive)


@functools.lru_cache(maxsize=256)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """`*` is one segment (or part of one), `**` any number of segments, zero included.

    Matched against the feed path with a slash after every segment, so `categories/金融/**`
    matches `categories/金融/` itself and everything below it.
    """
    parts = []
    for segment in pattern.split("/"):
        if segment == "**":
            parts.append("(?:[^/]+/)*")
        else:
            parts.append("[^/]*".join(map(re.escape, segment.split("*"))) + "/")
    return re.compile("".join(parts))


def is_match(pattern: str, path: str) -> bool:
    """Whether a feed path (`site`, `categories/金融/财联社`) matches an override pattern."""
    return pattern_regex(pattern).fullmatch(path + "/") is not None


class SettingsTable:
    """Settings of every feed, resolved once per feed path; remembers which overrides
    matched any feed, for the warning about those that match none."""

    def __init__(self, config: Config) -> None:
        feeds = config.feeds
        self.config_path = config.path
        self.overrides = feeds.overrides
        self.archived_kinds = frozenset(feeds.archive)
        self._default = FeedSettings(
            feeds.limit, feeds.content == "full", feeds.formats, feeds.max_bytes, False
        )
        self.of = functools.cache(self._resolve)
        self._matched: dict[tuple[str, str], tuple[int, ...]] = {}
        # Every format any feed is built in: entries are rendered in these.
        self.formats = tuple(
            dict.fromkeys([*feeds.formats, *(f for o in self.overrides for f in o.formats or ())])
        )

    def _resolve(self, kind: str, directory: str) -> FeedSettings:
        """The settings of the feed of this node kind and directory (`of` caches them)."""
        base = replace(self._default, archived=KIND_NAMES[kind] in self.archived_kinds)
        path = "site" if kind == "site" else directory  # what overrides match: `tags/A股`
        matching = tuple(n for n, o in enumerate(self.overrides) if is_match(o.match, path))
        self._matched[(kind, directory)] = matching
        if not matching:
            return base
        first = self.overrides[matching[0]]
        return replace(
            base,
            limit=first.limit or base.limit,
            full=base.full if first.content is None else first.content == "full",
            formats=first.formats or base.formats,
            max_bytes=first.max_bytes or base.max_bytes,
        )

    def unmatched(self, keys: Iterable[tuple[str, str]]) -> list[Problem]:
        """A warning for each override that matches none of these feeds."""
        if not self.overrides:
            return []
        seen: set[int] = set()
        for kind, directory in keys:
            self.of(kind, directory)
            seen.update(self._matched[(kind, directory)])
        return [
            Problem(
                self.config_path,
                o.line or None,
                f"feeds.overrides[{n}].match: {o.match!r} matches no feed",
                "warning",
            )
            for n, o in enumerate(self.overrides)
            if n not in seen
        ]

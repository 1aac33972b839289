"""Each article's entry in every format, rendered and compressed once and shared by every
feed that lists it; a big batch of new entries runs on every core.

An article listed by the site feed, three category levels and three tags would
otherwise be serialized and deflated seven times per format. Entries are cached by
`Article.revision`, so an equal article made anew reuses its entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from feedsvc.build.feedsettings import SettingsTable
from feedsvc.build.gzparts import Compressor, Part, View, rebased
from feedsvc.build.jsonfeed import json_item
from feedsvc.build.membership import FeedNode
from feedsvc.build.xmlfeed import xml_entries
from feedsvc.model import Article
from feedsvc.processes.cpus import Cores
from feedsvc.settings import Config

FORMAT_ORDER = ("rss", "atom", "json")  # of the cached Parts: a tuple costs less than a dict


class Entries:
    """Entry parts by article revision, in each format any feed is built in."""

    def __init__(
        self,
        config: Config,
        compressor: Compressor | None = None,
        cores: Cores | None = None,
        settings: SettingsTable | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or SettingsTable(config)
        # Entries in the default content mode are cached by revision, the other by
        # revision + "/full" or "/summary" (an override of `content`).
        self.full = config.feeds.content == "full"
        self.cores = cores or Cores(processes=1)
        self._compressor = compressor or Compressor()
        # article revision -> its entry's Part per format, in FORMAT_ORDER
        self._entries: dict[str, tuple[Part | None, ...]] = {}
        self._listed = 0  # entries kept at the last look in forget_unlisted
        self._fresh: list[str] = []  # keys rendered since the last `rebase`
        # Entries a restart restored, taken when first wanted (`restore`).
        self._saved: dict[str, tuple[tuple[bytes, int, int] | None, ...]] = {}
        self._view: View | None = None
        # Entries asked for and rendered since creation (a progress bar follows both).
        self.asked = self.rendered = 0

    @property
    def made_for(self) -> tuple[tuple[str, ...], bool]:
        """What of the config entries are made of besides their article: the formats any
        feed is built in and whether they carry the whole content by default."""
        return self.settings.formats, self.full

    def take_over(self, before: Entries) -> None:
        """Carry on with the entries `before` (made for an earlier config) holds, when
        its formats and default content are this config's: an entry is made of its
        article alone otherwise, so an edit of titles, limits or maps renders none again
        (at 50,000 posts, most of a reload after a config edit)."""
        if before.made_for != self.made_for:
            return
        self._entries, self._saved, self._view = before._entries, before._saved, before._view
        self._listed, self._fresh = before._listed, before._fresh

    def part(self, article: Article, fmt: str, full: bool) -> Part:
        """An article's entry in one format, with the whole content or only the summary."""
        key = article.revision if full == self.full else self._key(article, full)
        if not self._has(key):
            self._entries[key] = self.parts(article, full)
            self._fresh.append(key)
        part = self._entries[key][FORMAT_ORDER.index(fmt)]
        assert part is not None
        return part

    def parts(self, article: Article, full: bool) -> tuple[Part | None, ...]:
        """An article's entry in each format of FORMAT_ORDER (None for formats no feed is
        built in); `full` puts in the whole content, else only the summary."""
        formats = self.settings.formats
        html = article.content_html if full else ""  # inflated once for every format
        rendered = xml_entries(article, html, formats)
        if "json" in formats:
            rendered["json"] = json_item(article, html)
        return tuple(
            self._compressor.part(rendered[fmt]) if fmt in rendered else None
            for fmt in FORMAT_ORDER
        )

    def wanted(self, nodes: Iterable[FeedNode]) -> Iterable[tuple[Article, bool]]:
        """(article, full content) of every entry these nodes list: their first `limit`,
        or every article of a feed with archives."""
        for node in nodes:
            settings = self.settings.of(*node.key)
            listed = node.articles if settings.archived else node.articles[: settings.limit]
            for article in listed:
                yield article, settings.full

    def render(self, wanted: Iterable[tuple[Article, bool]]) -> None:
        """Render now the entries wanted that are not rendered yet.

        All at once, so that a big batch (a cold start: every listed article) runs on
        every core; the parts are the same as rendering each entry when first met.
        """
        missing: dict[bool, dict[str, Article]] = {True: {}, False: {}}
        for article, full in wanted:
            key = self._key(article, full)
            if not self._has(key):
                missing[full][key] = article
        self.asked += sum(len(batch) for batch in missing.values())
        for full, batch in missing.items():
            keys, articles = list(batch), list(batch.values())
            rendered = self.cores.map(_render_entries, (self.config, full), articles)
            for key, parts in zip(keys, rendered, strict=True):
                self._entries[key] = parts
                self.rendered += 1
            self._fresh.extend(keys)

    def export(self) -> list[SavedEntry]:
        """Every entry as its parts' (digest, size, CRC-32), for `restore` after a restart."""
        made = [
            (key, tuple(None if p is None else (p.digest, p.size, p.crc) for p in parts))
            for key, parts in self._entries.items()
        ]
        return made + [item for item in self._saved.items() if item[0] not in self._entries]

    def restore(self, saved: Iterable[SavedEntry], view: View) -> None:
        """Take the entries of `export`, each when first wanted, if `view` finds its parts
        on disk (their bytes are the same whenever made: an entry is keyed by its
        article's revision, for one config), so a restart renders only the entries of
        articles that changed."""
        self._saved.update(saved)
        self._view = view
        # Those of the last process's look (forget_unlisted): looked at once it grows.
        self._listed = len(self._entries) + len(self._saved)

    def _has(self, key: str) -> bool:
        """Whether the entry of `key` is rendered, or restored (its parts read from disk)."""
        if key in self._entries:
            return True
        kept = self._saved.pop(key, None)
        if kept is None or self._view is None:
            return False
        view = self._view
        parts = tuple(None if e is None else Part(view(e[0]) or b"", *e[1:], e[0]) for e in kept)
        if not all(p is None or p.deflated for p in parts):
            return False
        self._entries[key] = parts
        return True

    def rebase(self, view: View, everything: bool = False) -> None:
        """Hold the entries rendered since the last call (every entry with `everything`)
        as the views `view` gives of their bytes (feedsvc.state.snapshotwriter), letting
        go of the builder's own copies."""
        keys = list(self._entries) if everything else self._fresh
        for key in keys:
            parts = self._entries.get(key)
            if parts is not None:
                self._entries[key] = tuple(p and rebased(p, view) for p in parts)
        self._fresh = []

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
        if len(self._entries) + len(self._saved) <= self._listed * 5 // 4:
            return
        live = {self._key(a, full) for a, full in self.wanted(nodes)}
        self._entries = {key: value for key, value in self._entries.items() if key in live}
        self._saved = {key: value for key, value in self._saved.items() if key in live}
        self._listed = len(self._entries) + len(self._saved)


SavedEntry = tuple[str, tuple[tuple[bytes, int, int] | None, ...]]
"""An entry as Entries.export gives it: its key, and per format its part's digest, size
and CRC-32 (None for a format no feed is built in)."""


def _render_entries(
    shared: tuple[Config, bool], articles: Sequence[Article]
) -> list[tuple[Part | None, ...]]:
    """Entries of a batch of articles (run by feedsvc.processes.cpus, possibly in another process);
    `shared` is the config and whether entries carry the full content."""
    config, full = shared
    entries = Entries(config)
    return [entries.parts(article, full) for article in articles]

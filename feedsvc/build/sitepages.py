"""The site's pages from its feed nodes: what they say of each feed (FeedLinks), each
feed's HTML view, and the index and OPML, made again only when what they list changes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import overload

from feedsvc.build.archives import archive_name
from feedsvc.build.documents import HTML, OPML, VIEW_NAME, document, rebased_document
from feedsvc.build.feedsettings import SettingsTable
from feedsvc.build.gzparts import Compressor, View
from feedsvc.build.membership import FeedNode, digest, feed_home, feed_title
from feedsvc.build.pages import Archive, FeedLinks, render_feed_view, render_index, render_opml
from feedsvc.dates import EPOCH
from feedsvc.model import Document
from feedsvc.settings import Config
from feedsvc.urls import join_url

PAGE_PATHS = ("index.html", "feeds.opml")
Line = tuple[str, int, str | None, bool]
"""What the index and the OPML say of a feed (`line_of`): all a change to them follows from."""


def line_of(link: FeedLinks) -> Line:
    """A feed's line: its title, entries, last update (ISO 8601) and whether it has
    archives; JSON-ready, so a restart has it without making the feed's links again."""
    updated = link.updated.isoformat() if link.updated else None
    return (link.title, len(link.articles), updated, bool(link.archives))


class SitePages:
    """Links, views, and the index and OPML of one Config's site."""

    def __init__(
        self,
        config: Config,
        settings: SettingsTable,
        author_key: Callable[[str], tuple[str, str]],
        compressor: Compressor,
        tz: tzinfo,
    ) -> None:
        self.config = config
        self.settings = settings
        self.tz = tz
        self._author_key = author_key
        self._compressor = compressor
        self._author_url = functools.cache(self._author_feed)
        self._pages: tuple[str, list[Document]] | None = None  # (signature, documents)
        self._lines: tuple[object, ...] = ()

    def links(
        self, node: FeedNode, cuts: Mapping[str, tuple[int, int]], months: Sequence[str]
    ) -> FeedLinks:
        """What pages say of a node; `cuts` are its feeds' (entries left out, kept) by the
        byte budget, `months` its archives, newest first."""
        config = self.config
        settings = self.settings.of(*node.key)
        formats = settings.formats

        # One URI per node, not one per document (a restart makes them all at once): the
        # names are plain, and to_uri leaves their characters alone wherever they fall.
        folder = join_url(config.site.base_url, node.path(""))

        def url(name: str) -> str:
            return folder + name

        # The entries every feed of the node holds: its first `limit`, or fewer when cut.
        entries = node.articles[: min((k for _, k in cuts.values()), default=settings.limit)]
        return FeedLinks(
            feed_title(config, node),
            feed_home(config, node),
            [(fmt, url(f"feed.{fmt}")) for fmt in formats],
            entries,
            max((a.updated for a in entries), default=None),
            view=url(VIEW_NAME),
            archives=_Archives(folder, months, formats),
        )

    def view(self, node: FeedNode, link: FeedLinks, last_modified: datetime) -> Document:
        """A feed's HTML view, for a browser that follows its URL."""
        site = self.config.site
        body = render_feed_view(
            link,
            description=site.description,
            language=site.language,
            index_url=join_url(site.base_url, "/"),
            tz=self.tz,
            author_url=self._author_url,
        )
        return self._document(node.path(VIEW_NAME), HTML, body, last_modified)

    def _author_feed(self, name: str) -> str:
        """The URL of an author's feed (its first format), for the HTML views: every
        author of a listed article has one."""
        kind, directory = self._author_key(name)
        fmt = self.settings.of(kind, directory).formats[0]
        return join_url(self.config.site.base_url, f"{directory}/feed.{fmt}")

    def render(
        self, lines: tuple[Line, ...], made: Callable[[], list[FeedLinks]]
    ) -> list[Document]:
        """The index and the OPML of the feeds of these lines (`made` makes what they
        list of each); the last ones while every line is unchanged."""
        if self._pages is not None and lines == self._lines:
            return self._pages[1]
        signature = digest(lines)
        self._lines = lines
        if self._pages is not None and self._pages[0] == signature:  # seeded from disk
            return self._pages[1]
        links = made()
        site = self.config.site
        newest = max((link.updated for link in links if link.updated), default=EPOCH)
        index = render_index(
            site.title, links, description=site.description, language=site.language, tz=self.tz
        )
        opml = render_opml(site.title, site.default_author, links)
        pages = [
            self._document("index.html", HTML, index, newest),
            self._document("feeds.opml", OPML, opml, newest),
        ]
        self._pages = (signature, pages)
        return pages

    def _document(self, path: str, media_type: str, body: bytes, modified: datetime) -> Document:
        return document(path, media_type, [self._compressor.part(body)], modified)

    @property
    def signature(self) -> str | None:
        """What the last index and OPML were made from, for `seed` after a restart."""
        return self._pages[0] if self._pages else None

    def rebase(self, view: View) -> list[Document]:
        """The index and OPML with their pieces read from where `view` has them."""
        if self._pages is None:
            return []
        signature, pages = self._pages
        self._pages = (signature, [rebased_document(page, view) for page in pages])
        return self._pages[1]

    def seed(self, signature: str | None, documents: Mapping[str, Document]) -> list[Document]:
        """Take the index and OPML of a run whose pages had this signature; returns them
        (none when any is missing)."""
        if not signature or not all(path in documents for path in PAGE_PATHS):
            return []
        pages = [documents[path] for path in PAGE_PATHS]
        self._pages = (signature, pages)
        return pages


class _Archives(Sequence[Archive]):
    """A feed's monthly archives, newest first, each made when asked for: a feed's view
    lists them, while the index and the OPML ask only whether a feed has any, of every
    feed at once (after a restart, 749 feeds of up to 120 months each at 50,000 posts:
    60 ms of the first build, had they all been made)."""

    def __init__(self, folder: str, months: Sequence[str], formats: Sequence[str]) -> None:
        self._folder, self._months, self._formats = folder, months, formats

    def __len__(self) -> int:
        return len(self._months)

    @overload
    def __getitem__(self, index: int) -> Archive: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Archive]: ...

    def __getitem__(self, index: int | slice) -> Archive | Sequence[Archive]:
        if isinstance(index, slice):
            return [self._archive(month) for month in self._months[index]]
        return self._archive(self._months[index])

    def _archive(self, month: str) -> Archive:
        folder = self._folder
        return Archive(month, [(f, folder + archive_name(month, f)) for f in self._formats])

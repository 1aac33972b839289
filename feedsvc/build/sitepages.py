"""The site's pages from its feed nodes: what they say of each feed (FeedLinks), each
feed's HTML view, and the index and OPML, made again only when what they list changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, tzinfo

from feedsvc.build.archives import archive_name
from feedsvc.build.documents import HTML, OPML, VIEW_NAME
from feedsvc.build.feedsettings import FeedSettings, SettingsTable
from feedsvc.build.membership import FeedNode, digest, feed_home, feed_title
from feedsvc.build.pages import Archive, FeedLinks, render_feed_view, render_index, render_opml
from feedsvc.dates import EPOCH
from feedsvc.model import Document
from feedsvc.settings import Config
from feedsvc.urls import join_url

PAGE_PATHS = ("index.html", "feeds.opml")
MakeDocument = Callable[[str, str, bytes, datetime], Document]  # path, media type, body, date


class SitePages:
    """Links, views, and the index and OPML of one Config's site."""

    def __init__(
        self,
        config: Config,
        settings: SettingsTable,
        author_key: Callable[[str], tuple[str, str]],
        make: MakeDocument,
        tz: tzinfo,
    ) -> None:
        self.config = config
        self.settings = settings
        self.tz = tz
        self._author_key = author_key
        self._make = make
        self._author_urls: dict[str, str] = {}
        self._pages: tuple[str, list[Document]] | None = None  # (signature, documents)
        self._lines: tuple[object, ...] = ()

    def links(
        self, node: FeedNode, settings: FeedSettings, shown: int | None, months: Sequence[str]
    ) -> FeedLinks:
        """What pages say of a node; `shown` is how many entries its cut feeds hold (None: all
        of its first `limit`), `months` its archives, newest first."""
        config = self.config
        base = config.site.base_url
        formats = settings.formats
        urls = [(fmt, join_url(base, node.path(f"feed.{fmt}"))) for fmt in formats]
        entries = node.articles[: settings.limit if shown is None else shown]
        updated = max((a.updated for a in entries), default=None)
        archives = tuple(
            Archive(
                month, [(f, join_url(base, node.path(archive_name(month, f)))) for f in formats]
            )
            for month in months
        )
        return FeedLinks(
            feed_title(config, node),
            feed_home(config, node),
            urls,
            entries,
            updated,
            view=join_url(base, node.path(VIEW_NAME)),
            archives=archives,
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
        return self._make(node.path(VIEW_NAME), HTML, body, last_modified)

    def _author_url(self, name: str) -> str | None:
        """The URL of an author's feed (its first format), for the HTML views: every
        author of a listed article has one."""
        url = self._author_urls.get(name)
        if url is None:
            key = self._author_key(name)
            fmt = self.settings.of(*key).formats[0]
            url = join_url(self.config.site.base_url, f"{key[1]}/feed.{fmt}")
            self._author_urls[name] = url
        return url

    def render(self, links: list[FeedLinks]) -> list[Document]:
        """The index and the OPML of these feeds; the last ones while what they say of
        each feed is unchanged."""
        lines = tuple(
            (link.title, len(link.articles), link.updated, bool(link.archives)) for link in links
        )
        if self._pages is not None and lines == self._lines:
            return self._pages[1]
        signature = digest(lines)
        self._lines = lines
        if self._pages is not None and self._pages[0] == signature:  # seeded from disk
            return self._pages[1]
        site = self.config.site
        newest = max((link.updated for link in links if link.updated), default=EPOCH)
        index = render_index(
            site.title, links, description=site.description, language=site.language, tz=self.tz
        )
        opml = render_opml(site.title, site.default_author, links)
        pages = [
            self._make("index.html", HTML, index, newest),
            self._make("feeds.opml", OPML, opml, newest),
        ]
        self._pages = (signature, pages)
        return pages

    @property
    def signature(self) -> str | None:
        """What the last index and OPML were made from, for `seed` after a restart."""
        return self._pages[0] if self._pages else None

    def seed(self, signature: str | None, documents: Mapping[str, Document]) -> list[Document]:
        """Take the index and OPML of a run whose pages had this signature; returns them
        (none when any is missing)."""
        if not signature or not all(path in documents for path in PAGE_PATHS):
            return []
        pages = [documents[path] for path in PAGE_PATHS]
        self._pages = (signature, pages)
        return pages

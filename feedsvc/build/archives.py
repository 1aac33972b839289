"""RFC 5005 §4 archived feeds: which month each article is archived in, and the names.

A feed with archives has one archive document per month that holds any of its articles
(`archive-2021-10.atom` beside `feed.atom`), with every article of that month, in the
site's time zone. The newest archive is the month of the feed's newest article: it is
still growing, so it is served as an ordinary feed; every older one is complete and is
served as immutable. Both follow from the documents alone (no clock), so every process
and replica agrees on them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import tzinfo
from itertools import groupby

from feedsvc.model import Article

HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005 §6: fh:archive
_NAME = re.compile(r"archive-(\d{4})-(\d{2})\.(?:rss|atom|json)\Z")


def archive_name(month: str, fmt: str) -> str:
    """The file name of one month's archive: `archive-2021-10.atom`."""
    return f"archive-{month}.{fmt}"


def by_month(articles: Sequence[Article], tz: tzinfo) -> list[tuple[str, tuple[Article, ...]]]:
    """(`YYYY-MM`, articles) of every month that holds any, newest month first.

    `articles` are newest first, so each month's articles are one run of the sequence.
    """

    def month(article: Article) -> str:
        local = article.published.astimezone(tz)
        return f"{local.year:04d}-{local.month:02d}"

    return [(name, tuple(run)) for name, run in groupby(articles, month)]


def is_archive(path: str) -> bool:
    """Whether a document path names a monthly archive."""
    return _NAME.search(path.rsplit("/", 1)[-1]) is not None


def past_archives(paths: Iterable[str]) -> set[str]:
    """The archive paths that are not their feed's newest month: complete, so immutable."""
    newest: dict[str, str] = {}
    archives: list[tuple[str, str, str]] = []
    for path in paths:
        folder, _, name = path.rpartition("/")
        found = _NAME.match(name)
        if found is None:
            continue
        month = f"{found[1]}-{found[2]}"
        archives.append((path, folder, month))
        newest[folder] = max(newest.get(folder, ""), month)
    return {path for path, folder, month in archives if month != newest[folder]}

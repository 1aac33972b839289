"""RFC 5005 §4 monthly archives (`feeds.archive`): the chain holds every article once."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

import feedparser
import pytest
from lxml import etree

from feedsvc.build.archives import HISTORY_NS, past_archives
from feedsvc.build.site import SiteRenderer
from feedsvc.model import Document
from feedsvc.resources import prepare_resources, wsgi_path
from feedsvc.settings import Config

from tests.support.articles import post

T0 = datetime(2021, 10, 20, tzinfo=UTC)
BASE = "http://127.0.0.1:8080/"


# 9 posts over Oct 2021 - Jan 2022 (Asia/Shanghai months), the newest first in feeds.
POSTS = [
    post(n, T0 + timedelta(days=days), f"<p>Body {n}</p>", "财联社")
    for n, days in enumerate([0, 5, 11, 12, 30, 41, 45, 60, 75])
]


def _links(body: bytes, fmt: str) -> dict[str, str]:
    if fmt == "json":
        data = json.loads(body)
        return {"next": data["next_url"]} if "next_url" in data else {}
    feed = feedparser.parse(body).feed
    return {link.rel: link.href for link in feed.get("links", [])}


def _ids(body: bytes, fmt: str) -> list[str]:
    if fmt == "json":
        return [item["id"] for item in json.loads(body)["items"]]
    return [entry.id for entry in feedparser.parse(body).entries]


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
@pytest.mark.parametrize("directory", ["", "authors/财联社/"])
def test_following_the_chain_from_the_feed_yields_every_article_and_none_twice(
    make_config: Callable[..., Config], fmt: str, directory: str
) -> None:
    config = make_config(feeds={"limit": 2, "archive": ["site", "authors"]})
    documents = SiteRenderer(config).build(POSTS).documents
    follow = "next" if fmt == "json" else "prev-archive"
    body = documents[f"{directory}feed.{fmt}"].body
    seen = set(_ids(body, fmt))
    assert len(seen) == 2
    archived: list[str] = []
    months = []
    while follow in _links(body, fmt):
        path = unquote(_links(body, fmt)[follow].removeprefix(BASE))
        months.append(path.rsplit("-", 2)[-2:])
        body = documents[path].body
        archived.extend(_ids(body, fmt))
        if fmt != "json":
            assert _links(body, fmt)["current"] == f"{BASE}{quote(directory)}feed.{fmt}"
    assert len(archived) == len(set(archived)) == len(POSTS)  # never in two archives
    assert seen | set(archived) == {a.id for a in POSTS}
    assert [m[0] + "-" + m[1].split(".")[0] for m in months] == [
        "2022-01",
        "2021-12",
        "2021-11",
        "2021-10",
    ]


def test_archives_carry_fh_archive_and_the_subscription_feed_does_not(
    make_config: Callable[..., Config],
) -> None:
    documents = SiteRenderer(make_config(feeds={"archive": ["site"]})).build(POSTS).documents
    marker = f"{{{HISTORY_NS}}}archive"
    for fmt in ("rss", "atom"):
        archive = etree.fromstring(documents[f"archive-2021-11.{fmt}"].body)
        assert len(archive.findall(f".//{marker}")) == 1
        assert etree.fromstring(documents[f"feed.{fmt}"].body).findall(f".//{marker}") == []
    others = [p for p in documents if p.startswith(("categories/", "authors/"))]
    assert not [p for p in others if "archive" in p]


def test_without_feeds_archive_there_are_no_archives_and_no_links(config: Config) -> None:
    documents = SiteRenderer(config).build(POSTS).documents
    assert not [p for p in documents if "archive-" in p]
    assert b"prev-archive" not in documents["feed.atom"].body
    assert b"archives" not in documents["index.html"].body


def test_the_index_links_each_feed_archives_once_and_the_view_lists_the_months(
    make_config: Callable[..., Config],
) -> None:
    documents = SiteRenderer(make_config(feeds={"archive": ["authors"]})).build(POSTS).documents
    index = documents["index.html"].body.decode()
    assert index.count(">archives</a>") == 1
    author = f"{BASE}authors/{quote('财联社')}"
    assert f'href="{author}/feed.html#archives"' in index
    view = documents["authors/财联社/feed.html"].body.decode()
    assert view.count(f'href="{author}/archive-20') == 4 * 3  # 4 months, 3 formats


def _resources(documents: dict[str, Document]) -> dict[str, str]:
    resources = prepare_resources(documents, 300, {})
    return {
        path: dict(resources[wsgi_path(path)].variant(False, False).headers)["Cache-Control"]
        for path in documents
        if "archive-" in path
    }


def test_past_months_are_immutable_and_the_newest_is_an_ordinary_feed(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(feeds={"archive": ["site"]})
    first = SiteRenderer(config).build(POSTS[:7]).documents  # Oct-Dec: December is the newest
    caching = _resources(first)
    assert caching["archive-2021-12.atom"].startswith("public, max-age=300")
    assert caching["archive-2021-11.atom"] == "public, max-age=31536000, immutable"
    # A January post makes December past, also for a worker told only what changed.
    second = SiteRenderer(config).build(POSTS).documents
    changed = [p for p in second if p not in first or second[p].etag != first[p].etag]
    previous = prepare_resources(first, 300, {})
    resources = prepare_resources(second, 300, previous, changed)
    headers = dict(resources[wsgi_path("archive-2021-12.atom")].variant(False, False).headers)
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_past_archives_are_all_but_the_newest_month_of_each_feed() -> None:
    paths = [
        "archive-2021-10.atom",
        "archive-2021-11.atom",
        "tags/x/archive-2021-10.rss",
        "tags/x/feed.rss",
        "categories/archive-2099-01.atom/feed.atom",
    ]
    assert past_archives(paths) == {"archive-2021-10.atom"}

"""The node index updated in place agrees with grouping from scratch, whatever the history."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedsvc.build import membership
from feedsvc.build.membership import NodeIndex
from feedsvc.model import Article, Author, deflate_html
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.store import Store

from conftest import write_article

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CATEGORY_PATHS = [
    ("金融",),
    ("金融", "财联社"),
    ("金融", "银行"),
    ("Tech",),
    ("tech",),
    ("Tech", "AI"),
]
TAGS = ["A股", "AI", "ai", "央行"]


def make_article(n: int, version: int, hours: int, categories: list, tags: list) -> Article:
    return Article(
        id=f"urn:post:{n % 7}",  # ids repeat across files: the order must not depend on it
        source="posts",
        path=f"p{n}.md",
        title=f"Post {n} v{version}",
        link=f"https://news.example.cn/p{n}/",
        published=T0 + timedelta(hours=hours),
        updated=T0 + timedelta(hours=hours, minutes=version),
        content=deflate_html("<p>x</p>"),
        categories=tuple(categories),
        tags=tuple(tags),
    )


posts = st.builds(
    make_article,
    st.integers(0, 30),
    st.integers(0, 3),
    st.integers(0, 5),  # few distinct times: many ties
    st.lists(st.sampled_from(CATEGORY_PATHS), max_size=2),
    st.lists(st.sampled_from(TAGS), max_size=2),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.parametrize("bulk", [0, 64], ids=["merged by sorting", "placed one by one"])
@given(st.lists(st.lists(posts, max_size=12), min_size=1, max_size=6))
def test_updates_in_place_match_a_fresh_grouping(
    make_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    bulk: int,
    history: list[list[Article]],
) -> None:
    monkeypatch.setattr(membership, "_BULK", bulk)
    config = make_config()
    index = NodeIndex(config)
    current: dict[str, Article] = {}
    before: dict[tuple[str, str], membership.FeedNode] = {}
    for step in history:
        # Each step adds or replaces some files and removes the ones it lists twice.
        for article in step:
            if article.path in current and current[article.path].title == article.title:
                del current[article.path]
            else:
                current[article.path] = article
        articles = list(current.values())
        keep = {("category", "categories/gone"): ("Gone",)}
        built, problems = index.update(articles, keep)
        fresh_nodes, fresh_problems = NodeIndex(config).update(reversed(articles), keep)
        assert built == fresh_nodes
        assert problems == fresh_problems
        # Every node made, replaced or removed is among those touched (the site build
        # looks at no other).
        after = {node.key: node for node in built}
        touched = index.take_touched()
        if touched is not None:
            moved = {k for k in before.keys() | after.keys() if before.get(k) is not after.get(k)}
            assert moved <= touched
        before = after


def test_unchanged_nodes_keep_their_objects(make_config: Callable[..., Config]) -> None:
    index = NodeIndex(make_config())
    a = make_article(1, 0, 1, [("金融", "银行")], ["央行"])
    b = make_article(2, 0, 2, [("Tech",)], [])
    first = {n.key: n for n in index.update([a, b])[0]}
    edited = replace(b, title="Edited")
    second = {n.key: n for n in index.update([a, edited])[0]}
    assert (
        second[("category", "categories/金融/银行")] is first[("category", "categories/金融/银行")]
    )
    assert second[("tag", "tags/央行")] is first[("tag", "tags/央行")]
    assert second[("category", "categories/Tech")].articles == (edited,)
    assert second[("site", "")].articles == (edited, a)


def test_equal_but_new_articles_keep_every_node(make_config: Callable[..., Config]) -> None:
    index = NodeIndex(make_config())
    articles = [make_article(n, 0, n, [CATEGORY_PATHS[n]], [TAGS[n % 4]]) for n in range(6)]
    first = index.update(articles)[0]
    copies = [replace(a) for a in articles]  # what a re-parse or another process gives
    assert copies == articles and all(c is not a for c, a in zip(copies, articles, strict=True))
    second = index.update(copies)[0]
    assert len(second) == len(first)
    assert all(new is old for new, old in zip(second, first, strict=True))


@pytest.mark.parametrize("bulk", [0, 64], ids=["merged by sorting", "placed one by one"])
def test_a_repeated_guid_loses_the_right_copy(
    make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch, bulk: int
) -> None:
    monkeypatch.setattr(membership, "_BULK", bulk)
    config = make_config()
    index = NodeIndex(config)
    # A remote feed may list one guid twice: same source, path, id and date, other text.
    first, second = (make_article(1, 0, 1, [], []), make_article(1, 1, 1, [], []))
    second = replace(second, updated=first.updated)
    index.update([first, second])  # ties keep their order: first, then second
    site = index.update([first])[0][0]
    assert [a.title for a in site.articles] == ["Post 1 v0"]


def test_every_author_name_gets_a_feed_listed_in_the_index_and_the_opml(
    make_config: Callable[..., Config], tmp_path: Path, now: Callable[[], datetime]
) -> None:
    articles = tmp_path / "articles"
    write_article(articles, "a.md", title="A", date="2022-01-01", author="财联社")
    write_article(articles, "b.md", title="B", date="2022-01-02", author={"name": "Li Ming"})
    write_article(articles, "c.md", title="C", date="2022-01-03", author=["财联社", "Wu / Ke"])
    write_article(articles, "d.md", title="D", date="2022-01-04")  # site.author: Desk
    store = Store()
    Reloader(make_config(), store, now=now).reload()
    documents = store.current.documents
    expected = {"财联社": ["C", "A"], "Li-Ming": ["B"], "Wu-Ke": ["C"], "Desk": ["D"]}
    for slug, titles in expected.items():
        feed = feedparser.parse(documents[f"authors/{slug}/feed.atom"].body)
        assert [e.title for e in feed.entries] == titles
        assert feed.feed.title.startswith("Test Newsroom — ")
        url = f"http://127.0.0.1:8080/authors/{quote(slug)}/feed.rss"
        assert f'xmlUrl="{url}"'.encode() in documents["feeds.opml"].body
        assert f'href="{url}"'.encode() in documents["index.html"].body
    view = documents["feed.html"].body.decode()
    link = f'<a href="http://127.0.0.1:8080/authors/{quote("Wu-Ke")}/feed.rss" rel="author">'
    assert link in view


def test_authors_sharing_a_slug_share_a_feed_with_a_warning(
    make_config: Callable[..., Config],
) -> None:
    first = make_article(1, 0, 1, [], [])
    second = replace(make_article(2, 0, 2, [], []), authors=(Author("Wu-Ke"),))
    nodes, problems = NodeIndex(make_config()).update(
        [replace(first, authors=(Author("Wu Ke"),)), second]
    )
    [author] = [n for n in nodes if n.kind == "author"]
    assert author.directory == "authors/Wu-Ke" and len(author.articles) == 2
    [warning] = problems
    assert "share the URL /authors/Wu-Ke/" in warning.message
    assert "feeds.author_map" in warning.message


def test_an_author_whose_articles_are_gone_keeps_a_valid_empty_feed(
    make_config: Callable[..., Config], tmp_path: Path, now: Callable[[], datetime]
) -> None:
    articles = tmp_path / "articles"
    write_article(articles, "a.md", title="A", date="2022-01-01", author="财联社")
    path = write_article(articles, "b.md", title="B", date="2022-01-02", author="Li")
    store = Store()
    reloader = Reloader(make_config(), store, now=now)
    reloader.reload()
    path.unlink()
    reloader.reload()
    feed = feedparser.parse(store.current.documents["authors/Li/feed.atom"].body)
    assert not feed.bozo and feed.entries == []


def test_a_forgotten_empty_node_is_touched_when_it_goes(make_config: Callable[..., Config]) -> None:
    index = NodeIndex(make_config())
    a = make_article(1, 0, 1, [("Tech",)], [])
    keep = {("category", "categories/Tech"): ("Tech",)}
    index.update([a], keep)
    assert index.take_touched() is None  # the first update: every node
    index.update([], keep)  # emptied but kept: a valid empty feed
    assert ("category", "categories/Tech") in (index.take_touched() or set())
    assert index.node(("category", "categories/Tech")) is not None
    index.update([], {})  # `feedsvc forget`: no longer kept
    assert index.take_touched() == {("category", "categories/Tech")}
    assert index.node(("category", "categories/Tech")) is None
    index.update([], {})
    assert index.take_touched() == set()

"""The byte budget (`feeds.max_bytes`): a feed over it leaves out its oldest entries."""

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import feedparser
from hypothesis import given
from hypothesis import strategies as st

from feedsvc.build.feeds import document_size, fit_count
from feedsvc.build.site import SiteBuilder
from feedsvc.config import Config
from feedsvc.model import Article

from tests.support.articles import post

T0 = datetime(2022, 3, 1, tzinfo=UTC)


@given(
    st.integers(0, 500),
    st.lists(st.integers(1, 400), min_size=1, max_size=30),
    st.integers(0, 3),
    st.integers(0, 50),
    st.integers(1, 6000),
)
def test_fit_count_is_the_most_entries_that_fit_but_at_least_one(
    head: int, sizes: list[int], separator: int, tail: int, budget: int
) -> None:
    fitting = [
        k
        for k in range(1, len(sizes) + 1)
        if document_size(head, sizes[:k], separator, tail) <= budget
    ]
    assert fit_count(head, sizes, separator, tail, budget) == max(fitting, default=1)


def sized(n: int, body_bytes: int = 3000) -> Article:
    """Post n, a day after post n - 1, with a body of about `body_bytes` bytes."""
    return post(n, T0 + timedelta(days=n), f"<p>{n} " + "字" * (body_bytes // 3) + "</p>")


def test_a_feed_over_its_budget_keeps_the_newest_entries_that_fit_in_every_format(
    make_config: Callable[..., Config],
) -> None:
    articles = [sized(n) for n in range(20)]
    unlimited = SiteBuilder(make_config()).build(articles).documents
    config = make_config(
        feeds={"max_bytes": 20_000, "overrides": [{"match": "categories/**", "max_bytes": 9000}]}
    )
    build = SiteBuilder(config).build(articles)
    for path, budget in (("feed", 20_000), ("categories/金融/feed", 9000)):
        for fmt in ("rss", "atom", "json"):
            body = build.documents[f"{path}.{fmt}"].body
            assert len(body) <= budget < unlimited[f"{path}.{fmt}"].size
            titles = _titles(body, fmt)
            assert titles == [f"Post {n}" for n in range(19, 19 - len(titles), -1)]
            message = f"/{path}.{fmt}: {20 - len(titles)} oldest of 20 entries left out"
            assert [p for p in build.problems if p.message.startswith(message)], message
            # The most that fit: one entry more would be over the budget.
            assert len(body) + len(_one_entry(unlimited, path, fmt, len(titles))) > budget
    # The author Desk's feeds are cut too.
    assert len(build.problems) == 9 and all(p.severity == "warning" for p in build.problems)


def _titles(body: bytes, fmt: str) -> list[str]:
    if fmt == "json":
        return [item["title"] for item in json.loads(body)["items"]]
    return [entry.title for entry in feedparser.parse(body).entries]


def _one_entry(documents: dict, path: str, fmt: str, index: int) -> bytes:
    """The bytes the entry after the first `index` adds to the uncut document."""
    body = documents[f"{path}.{fmt}"].body
    marker = {"rss": b"<item>", "atom": b"<entry>", "json": b'\n  {\n   "id"'}[fmt]
    starts = [i for i in range(len(body)) if body.startswith(marker, i)]
    return body[starts[index] : starts[index + 1]]


def test_the_newest_entry_stays_even_when_it_alone_is_over(
    make_config: Callable[..., Config],
) -> None:
    build = SiteBuilder(make_config(feeds={"max_bytes": 1000})).build(
        [sized(1, 6000), sized(2, 6000)]
    )
    for fmt in ("rss", "atom", "json"):
        assert _titles(build.documents[f"feed.{fmt}"].body, fmt) == ["Post 2"]


def test_feeds_within_budget_are_untouched_and_warn_nothing(
    make_config: Callable[..., Config],
) -> None:
    articles = [sized(n, 100) for n in range(5)]
    build = SiteBuilder(make_config()).build(articles)
    assert build.problems == []
    assert len(_titles(build.documents["feed.atom"].body, "atom")) == 5


def test_archives_are_exempt_from_the_budget(make_config: Callable[..., Config]) -> None:
    articles = [replace(sized(n), published=T0 + timedelta(hours=n)) for n in range(10)]
    config = make_config(feeds={"max_bytes": 8000, "archive": ["site"]})
    documents = SiteBuilder(config).build(articles).documents
    assert len(_titles(documents["feed.atom"].body, "atom")) < 10
    assert len(_titles(documents["archive-2022-03.atom"].body, "atom")) == 10

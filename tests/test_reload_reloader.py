import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import yaml

from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.store import Store
from feedsvc.urls import join_url

from conftest import write_article
from tests.support.upstream import Reply, Upstream


def titles(store: Store, path: str = "feed.atom") -> list[str]:
    return [e.title for e in feedparser.parse(store.current.documents[path].body).entries]


def test_new_edited_and_deleted_articles_show_after_a_reload(
    reloader: Reloader, store: Store, articles_dir: Path
) -> None:
    first = write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    reloader.reload()
    assert titles(store) == ["A"]
    write_article(articles_dir, "b.md", title="B", date="2022-01-02")
    write_article(articles_dir, "a.md", title="A edited", date="2022-01-01")
    os.utime(first, ns=(1, 1_800_000_000_000_000_000))
    reloader.reload()
    assert titles(store) == ["B", "A edited"]
    (articles_dir / "b.md").unlink()
    summary = reloader.reload()
    assert titles(store) == ["A edited"]
    assert summary.articles == 1


def test_snapshot_is_replaced_whole(reloader: Reloader, store: Store, articles_dir: Path) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    reloader.reload()
    before = store.current
    write_article(articles_dir, "b.md", title="B", date="2022-01-02", categories=["X"])
    reloader.reload()
    assert "categories/X/feed.rss" not in before.documents
    assert "categories/X/feed.rss" in store.current.documents
    assert store.current.generation == before.generation + 1


def test_unchanged_sources_give_unchanged_documents(
    reloader: Reloader, store: Store, articles_dir: Path
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    reloader.reload()
    etags = {p: d.etag for p, d in store.current.documents.items()}
    summary = reloader.reload()
    assert summary.changed == 0
    assert {p: d.etag for p, d in store.current.documents.items()} == etags


def test_future_post_appears_on_the_first_reload_after_its_date(
    config: Config, store: Store, articles_dir: Path
) -> None:
    clock = [datetime(2026, 11, 25, tzinfo=UTC)]
    reloader = Reloader(config, store, now=lambda: clock[0])
    write_article(articles_dir, "later.md", title="Later", date="2026-12-01T00:00:00Z")
    write_article(articles_dir, "now.md", title="Now", date="2026-11-01T00:00:00Z")
    reloader.reload()
    assert titles(store) == ["Now"]
    clock[0] = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    reloader.reload()
    assert titles(store) == ["Later", "Now"]


def test_vanished_source_keeps_its_last_good_articles(
    reloader: Reloader, store: Store, articles_dir: Path
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    reloader.reload()
    shutil.rmtree(articles_dir)
    reloader.reload()
    assert titles(store) == ["A"]
    [problem] = store.current.problems
    assert "source articles: folder is missing" in str(problem)


def test_a_failing_build_keeps_the_previous_snapshot(
    reloader: Reloader, store: Store, articles_dir: Path, monkeypatch: object
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    reloader.reload()
    before = store.current

    def explode(*args: object) -> None:
        raise RuntimeError("builder bug")

    monkeypatch.setattr(reloader.renderer, "build", explode)  # type: ignore[attr-defined]
    write_article(articles_dir, "b.md", title="B", date="2022-01-02")  # something to build
    summary = reloader.reload()
    assert store.current.documents is before.documents
    assert summary.problems == 1
    [problem] = store.current.problems
    assert "reload failed: RuntimeError('builder bug')" in str(problem)


def test_check_mode_counts(make_config: Callable[..., Config]) -> None:
    config = make_config()
    assert Reloader(config, Store()).reload().articles == 0


def test_an_undated_remote_item_is_in_the_reload_that_fetched_it(tmp_path: Path) -> None:
    """An item without a date is dated when first fetched; a fetch made inline (check,
    build) must not date it after the moment the reload publishes up to."""
    upstream = Upstream()
    upstream.routes["/wire.rss"] = Reply(
        body=b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>
<link>https://wire.example/</link><description>Wire</description>
<item><title>Undated note</title><link>https://wire.example/n</link><guid>n1</guid>
</item></channel></rss>""",
        headers={"Content-Type": "application/rss+xml"},
    )
    ticks = iter(range(1000))
    started = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

    def clock() -> datetime:  # a second passes whenever anyone looks
        return started + timedelta(seconds=next(ticks))

    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "site": {"title": "T", "base_url": "https://news.example"},
                "sources": [{"name": "wire", "type": "feed", "url": upstream.base + "/wire.rss"}],
            }
        ),
        encoding="utf-8",
    )
    try:
        store = Store()
        summary = Reloader(load_config(config_path), store, now=clock).reload()
    finally:
        upstream.close()
    assert summary.articles == 1
    assert titles(store) == ["Undated note"]


def test_changed_documents_are_counted_from_what_the_build_touched(
    reloader: Reloader, store: Store, articles_dir: Path
) -> None:
    """A reload counts (and pings) the documents new or different since the last one; the
    build names the few it touched rather than every document being compared."""
    pings: list[list[str]] = []
    reloader.on_change = pings.append
    write_article(articles_dir, "a.md", title="A", date="2022-01-01", tags=["宏观"])
    write_article(articles_dir, "b.md", title="B", date="2022-01-02", categories=["金融"])
    reloader.reload()
    steps = [
        lambda: write_article(articles_dir, "a.md", title="A2", date="2022-01-01", tags=["宏观"]),
        lambda: write_article(articles_dir, "c.md", title="C", date="2022-01-03", tags=["AI"]),
        (articles_dir / "b.md").unlink,
        lambda: write_article(articles_dir, "a.md", title="A2", date="2022-01-01", tags=["AI"]),
    ]
    for step in steps:
        before = store.current.documents
        step()
        summary = reloader.reload()
        after = store.current.documents
        expected = sorted(
            p for p, d in after.items() if p not in before or before[p].etag != d.etag
        )
        assert summary.changed == len(expected) > 0
        assert sorted(pings[-1]) == sorted(
            join_url(reloader.config.site.base_url, p) for p in expected if after[p].view
        )


class CountingGets(dict[str, object]):
    """Documents that count how many were looked up."""

    gets = 0

    def get(self, key: str, default: object = None) -> object:
        CountingGets.gets += 1
        return super().get(key, default)


def test_after_a_reload_that_finds_nothing_new_an_edit_compares_what_it_touched(
    reloader: Reloader, store: Store, articles_dir: Path
) -> None:
    """A scheduled or requested reload that finds nothing keeps the build; the next edit's
    changes are still those its build touched, not a comparison of every document."""
    for n in range(30):
        write_article(articles_dir, f"p{n}.md", title=f"P{n}", date="2022-01-01", tags=[f"t{n}"])
    reloader.reload()
    assert reloader.reload().changed == 0  # nothing new
    current = store.current
    store.swap(replace(current, documents=CountingGets(current.documents)))
    write_article(articles_dir, "p0.md", title="P0, edited", date="2022-01-01", tags=["t0"])
    summary = reloader.reload()
    assert summary.changed > 0
    assert CountingGets.gets < len(current.documents) / 4, (
        CountingGets.gets,
        len(current.documents),
    )

from collections.abc import Callable
from pathlib import Path

import feedparser
import yaml

from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.store import Store
from feedsvc.watch import ConfigWatcher

from conftest import write_article


def edit(config: Config, **changes: dict) -> None:
    path = Path(config.path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for section, values in changes.items():
        data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def title(store: Store) -> str:
    return str(feedparser.parse(store.current.documents["feed.atom"].body).feed.title)


def make(config: Config, now: Callable) -> tuple[Reloader, Store]:
    store = Store()
    return Reloader(config, store, now=now, watcher=ConfigWatcher(config)), store


def test_valid_edit_is_applied_on_the_next_reload(
    config: Config, articles_dir: Path, now: Callable
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01", categories=["金融"])
    reloader, store = make(config, now)
    reloader.reload()
    assert title(store) == "Test Newsroom"
    edit(
        config,
        site={"title": "Renamed Newsroom"},
        feeds={"limit": 1, "category_map": {"金融": "finance"}},
    )
    reloader.reload()
    assert title(store) == "Renamed Newsroom"
    assert "categories/finance/feed.atom" in store.current.documents
    assert reloader.config.feeds.limit == 1
    assert store.current.problems == ()


def test_a_site_edit_parses_again_only_when_articles_are_made_of_it(
    config: Config, articles_dir: Path, now: Callable
) -> None:
    """A new description or title is in every feed without a file parsed again; the site's
    author is every unauthored article's author, so an edit of it parses them again."""
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    write_article(articles_dir, "b.md", title="B", date="2022-01-02")
    reloader, store = make(config, now)
    reloader.reload()
    source = reloader.sources[0]
    reads = source.reads  # type: ignore[union-attr]
    edit(config, site={"description": "每日要闻与深度分析", "title": "钱塘晚报"})
    reloader.reload()
    feed = feedparser.parse(store.current.documents["feed.atom"].body)
    assert (feed.feed.subtitle, feed.feed.title) == ("每日要闻与深度分析", "钱塘晚报")
    assert reloader.sources[0] is source
    assert source.reads == reads  # type: ignore[union-attr]
    edit(config, site={"author": "钱塘日报"})
    reloader.reload()
    feed = feedparser.parse(store.current.documents["feed.atom"].body)
    assert {e.author for e in feed.entries} == {"钱塘日报"}
    assert reloader.sources[0].reads == 2  # type: ignore[union-attr]  # a new source


def test_a_config_edit_renders_again_only_the_entries_it_changes(
    config: Config, articles_dir: Path, now: Callable
) -> None:
    """Entries are made of their article alone but for the formats and the content mode:
    an edit of the site's description and the feeds' limit renders no entry again, and
    the documents are those a fresh start makes; an edit of the formats renders them."""
    for n in range(4):
        write_article(
            articles_dir, f"p{n}.md", f"正文 {n}。", title=f"P{n}", date=f"2022-01-0{n + 1}"
        )
    reloader, store = make(config, now)
    reloader.reload()
    edit(config, site={"description": "每日要闻"}, feeds={"limit": 3})
    reloader.reload()
    assert reloader.renderer.entries_cache.rendered == 0
    fresh = Store()
    Reloader(load_config(config.path), fresh, now=now).reload()
    assert {p: d.etag for p, d in store.current.documents.items()} == {
        p: d.etag for p, d in fresh.current.documents.items()
    }
    edit(config, feeds={"formats": ["atom", "rss"]})
    reloader.reload()
    assert reloader.renderer.entries_cache.rendered == 3  # the limit: 3 listed


def test_invalid_edit_keeps_the_last_good_config_and_is_reported(
    config: Config, articles_dir: Path, now: Callable
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    reloader, store = make(config, now)
    reloader.reload()
    Path(config.path).write_text(
        Path(config.path).read_text(encoding="utf-8") + "feeds:\n  limt: 3\n", encoding="utf-8"
    )
    reloader.reload()
    assert title(store) == "Test Newsroom"
    [problem] = store.current.problems
    assert problem.path == config.path and problem.message == "feeds.limt: unknown key"
    assert problem.line is not None and problem.severity == "error"
    Path(config.path).write_text("site: [broken\n", encoding="utf-8")
    reloader.reload()
    assert "invalid YAML" in store.current.problems[0].message
    assert title(store) == "Test Newsroom"


def test_vanished_config_keeps_serving(config: Config, articles_dir: Path, now: Callable) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    reloader, store = make(config, now)
    reloader.reload()
    Path(config.path).unlink()
    reloader.reload()
    assert title(store) == "Test Newsroom"
    assert "cannot read" in store.current.problems[0].message


def test_server_address_change_needs_a_restart(
    config: Config, articles_dir: Path, now: Callable
) -> None:
    reloader, store = make(config, now)
    reloader.reload()
    edit(config, server={"port": 9999, "cache_max_age": 60})
    reloader.reload()
    [warning] = store.current.problems
    assert warning.severity == "warning"
    assert warning.message == "server.port changed; it takes effect after a restart"
    variant = store.current.resources["/feed.atom"].variant(False, False)
    assert (
        "Cache-Control",
        "public, max-age=60, stale-while-revalidate=60, stale-if-error=86400",
    ) in variant.headers


def test_a_new_state_path_needs_a_restart(
    config: Config, articles_dir: Path, now: Callable
) -> None:
    """The state directory is opened and locked at start: an edit of state.path is told
    to need a restart, and the running server keeps its own directory meanwhile."""
    reloader, store = make(config, now)
    reloader.reload()
    edit(config, state={"path": "elsewhere"})
    reloader.reload()
    [warning] = store.current.problems
    assert (warning.severity, warning.message) == (
        "warning",
        "state.path changed; it takes effect after a restart",
    )


def test_unchanged_file_is_not_parsed_again(config: Config, now: Callable) -> None:
    watcher = ConfigWatcher(config)
    assert watcher.check() is None
    Path(config.path).write_text(Path(config.path).read_text() + "\n", encoding="utf-8")
    assert watcher.check() is None  # same settings, nothing to apply
    assert watcher.problems == []

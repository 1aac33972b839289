"""Per-feed settings (`feeds.overrides`): which feeds a pattern matches, what it changes."""

from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
import yaml

from feedsvc.build.feedsettings import is_match
from feedsvc.errors import ConfigError
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.store import Store
from feedsvc.watch import ConfigWatcher

from conftest import write_article


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("site", "site", True),
        ("site", "tags/site", False),
        ("tags/*", "tags/A股", True),
        ("tags/*", "tags", False),
        ("categories/*", "categories/金融/财联社", False),
        ("categories/金融/**", "categories/金融", True),
        ("categories/金融/**", "categories/金融/财联社/深度", True),
        ("categories/金融/**", "categories/金融x", False),
        ("categories/**/深度", "categories/金融/财联社/深度", True),
        ("authors/财联社", "authors/财联社", True),
        ("authors/财*", "authors/财联社", True),
        ("**", "site", True),
    ],
)
def test_star_is_one_segment_and_double_star_any(pattern: str, path: str, matches: bool) -> None:
    assert is_match(pattern, path) is matches


def _posts(articles_dir: Path) -> None:
    for n in range(3):
        write_article(
            articles_dir,
            f"{n}.md",
            body=f"Full body {n}.",
            title=f"Post {n}",
            date=f"2022-01-0{n + 1}",
            categories=["金融", "财联社"],
            tags=["A股"],
            author="财联社",
            description=f"Lead {n}.",
        )


def _build(config: Config, now: Callable) -> dict[str, bytes]:
    store = Store()
    Reloader(config, store, now=now).reload()
    return {path: doc.body for path, doc in store.current.documents.items()}


def test_first_matching_override_sets_limit_content_and_formats(
    make_config: Callable[..., Config], articles_dir: Path, now: Callable
) -> None:
    _posts(articles_dir)
    overrides = [
        {"match": "categories/金融/**", "limit": 1, "content": "summary"},
        {"match": "categories/金融", "limit": 2},  # shadowed by the first
        {"match": "tags/*", "formats": ["atom"]},
    ]
    docs = _build(make_config(feeds={"overrides": overrides}), now)
    for directory in ("categories/金融", "categories/金融/财联社"):
        [entry] = feedparser.parse(docs[f"{directory}/feed.atom"]).entries
        assert entry.title == "Post 2"
        for fmt in ("rss", "atom", "json"):
            assert b"Full body" not in docs[f"{directory}/feed.{fmt}"]
    assert [p for p in docs if p.startswith("tags/")] == [
        "tags/A股/feed.atom",
        "tags/A股/feed.html",
    ]
    site = feedparser.parse(docs["feed.atom"])
    assert len(site.entries) == 3 and "Full body 2" in site.entries[0].content[0].value


def test_an_override_matching_no_feed_is_a_warning_with_its_line(
    make_config: Callable[..., Config], articles_dir: Path, now: Callable
) -> None:
    _posts(articles_dir)
    config = make_config(feeds={"overrides": [{"match": "tags/none", "limit": 1}]})
    store = Store()
    Reloader(config, store, now=now).reload()
    line = Path(config.path).read_text(encoding="utf-8").splitlines().index("  - limit: 1") + 1
    [warning] = [p for p in store.current.problems if "overrides" in p.message]
    assert warning.severity == "warning"
    expected = "feeds.overrides[0].match: 'tags/none' matches no feed"
    assert str(warning) == f"{config.path}:{line}: {expected}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"match": "tags/*", "content": "teaser"}, "feeds.overrides[0].content: must be one of"),
        ({"match": "tags/*", "limt": 2}, "feeds.overrides[0].limt: unknown key"),
        ({"match": "blog/**", "limit": 2}, "feeds.overrides[0].match: must start with"),
        ({"match": "tags/*"}, "feeds.overrides[0]: sets nothing"),
        ({"match": "tags/*", "formats": ["atom", "html"]}, "unknown format 'html'"),
    ],
)
def test_an_invalid_override_is_a_config_error_naming_key_and_line(
    make_config: Callable[..., Config], override: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(feeds={"overrides": [override]})
    [problem] = raised.value.problems
    assert message in problem.message and problem.line is not None and problem.line > 1


def test_overrides_are_applied_on_a_hot_config_reload(
    config: Config, articles_dir: Path, now: Callable
) -> None:
    _posts(articles_dir)
    store = Store()
    reloader = Reloader(config, store, now=now, watcher=ConfigWatcher(config))
    reloader.reload()
    assert len(feedparser.parse(store.current.documents["feed.atom"].body).entries) == 3
    path = Path(config.path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["feeds"] = {"overrides": [{"match": "site", "limit": 1, "content": "summary"}]}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    reloader.reload()
    [entry] = feedparser.parse(store.current.documents["feed.atom"].body).entries
    assert entry.title == "Post 2"
    assert b"Full body" not in store.current.documents["feed.atom"].body
    category = store.current.documents["categories/金融/feed.atom"].body
    assert len(feedparser.parse(category).entries) == 3

"""Shared fixtures: configs and articles written into tmp_path, a fixed clock, app and client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.store import Store
from feedsvc.web import create_app

from tests.support.seaweed import SeaweedFS

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SAMPLE_SHAPED = """
---
title: '钱塘证券首届“客户服务日”启幕：以数字化重塑财富管理'
categories: 
 - 金融
 - 财联社
 - 深度
headimg: 'https://img.example.cn/images/20211024/a1.png'
author: 财联社
comments: false
date: Sun, 24 Oct 2021 11:30:58 GMT
thumbnail: 'https://img.example.cn/images/20211024/a1.png'
---

<div>   
<div class="m-b-10"><p><strong>财联社（杭州，记者 林晓）讯</strong>，10月24日，钱塘证券举办客户服务日。</p>
<p>公司表示将持续推进数字化转型。</p></div>  
</div>
"""


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Write config.yaml into tmp_path (articles in tmp_path/articles) and load it."""

    def make(**overrides: Any) -> Config:
        (tmp_path / "articles").mkdir(exist_ok=True)
        data = {
            "site": {
                "title": "Test Newsroom",
                "base_url": "http://127.0.0.1:8080",
                "timezone": "Asia/Shanghai",
                "author": "Desk",
            },
            "sources": [{"name": "articles", "path": "articles"}],
        }
        data = _deep_merge(data, overrides)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return load_config(path)

    return make


def write_article(
    directory: Path, name: str, body: str = "Body text.", **front_matter: Any
) -> Path:
    """Write a front-matter article `name` under `directory` and return its path."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    header = yaml.safe_dump(front_matter, allow_unicode=True, sort_keys=False)
    path.write_text(f"---\n{header}---\n\n{body}\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 store for the session (it takes seconds to start); each test uses
    buckets of its own."""
    store = SeaweedFS(tmp_path_factory.mktemp("seaweed"))
    store.start()
    yield store
    store.stop()


@pytest.fixture
def aws_env(seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The store's credentials in the AWS variables (of this process and its children)."""
    environment = seaweed.environment()
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    path = tmp_path / "articles"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def now() -> Callable[[], datetime]:
    return lambda: NOW


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def reloader(config: Config, store: Store, now: Callable[[], datetime]) -> Reloader:
    return Reloader(config, store, now=now)


@pytest.fixture
def app(reloader: Reloader, store: Store, config: Config) -> Any:
    return create_app(store)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def eventually(condition: Callable[[], bool], seconds: float = 15, every: float = 0.1) -> bool:
    """Whether `condition` holds within `seconds` (asked every `every` seconds)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


PublishingConfig = Callable[..., Config]


def write_corpus(articles: Path, count: int = 6) -> None:
    """Articles in two category trees and a few tags."""
    for n in range(count):
        write_article(
            articles,
            f"post-{n}.md",
            f"Body of post {n}, with *Markdown*.",
            title=f"Post {n}",
            date=f"2022-01-{n % 28 + 1:02d}T10:00:00+08:00",
            categories=["金融", f"desk-{n % 3}"] if n % 2 else ["Engineering"],
            tags=[f"t{n % 4}"],
        )


@pytest.fixture
def publishing(
    make_config: Callable[..., Config], seaweed: SeaweedFS, aws_env: dict[str, str]
) -> PublishingConfig:
    """A config whose publish block names a new bucket of the store (prefix `site/`)."""

    def make(**overrides: Any) -> Config:
        bucket = seaweed.new_bucket()
        publish = {"url": f"s3://{bucket}/site", "endpoint_url": seaweed.endpoint}
        return make_config(publish={**publish, **overrides.pop("publish", {})}, **overrides)

    return make


def bucket_of(config: Config) -> str:
    assert config.publish.url is not None
    return config.publish.url.removeprefix("s3://").split("/")[0]

"""`feedsvc serve` with publish.url: every reload reaches the bucket; a failing store is
shown and caught up with, and never stops serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.store import Store

from conftest import eventually, write_article
from tests.support.seaweed import SeaweedFS
from tests.support.server import Server, free_port

pytestmark = pytest.mark.e2e


def write_config(tmp_path: Path, port: int, url: str, endpoint: str) -> Path:
    config = tmp_path / "config.yaml"
    data: dict[str, Any] = {
        "site": {"title": "Published", "base_url": f"http://127.0.0.1:{port}"},
        "sources": [{"name": "articles", "path": "articles"}],
        "reload": {"interval_seconds": 60},
        "server": {"workers": 1, "threads": 2},
        "publish": {"url": url, "endpoint_url": endpoint},
    }
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    return config


def built(config: Path) -> dict[str, bytes]:
    reloader = Reloader(load_config(config), Store())
    reloader.reload()
    return {path: doc.body for path, doc in reloader.store.current.documents.items()}


@pytest.fixture
def serving(
    tmp_path: Path, seaweed: SeaweedFS, aws_env: dict[str, str]
) -> Iterator[tuple[Server, Path, str]]:
    """A server publishing to a bucket that does not exist yet (the test makes it or not)."""
    articles = tmp_path / "articles"
    for n in range(3):
        write_article(
            articles,
            f"p{n}.md",
            f"Body {n}",
            title=f"P{n}",
            date=f"2022-01-0{n + 1}",
            categories=[f"c{n}"],
        )
    bucket = f"serve-{tmp_path.name[-20:].lower().replace('_', '-')}"
    port = free_port()
    config = write_config(tmp_path, port, f"s3://{bucket}/feeds", seaweed.endpoint)
    yield Server(config, port, tmp_path / "serve.log", ready=False), config, bucket


def test_each_reload_reaches_the_bucket(
    serving: tuple[Server, Path, str], seaweed: SeaweedFS
) -> None:
    server, config, bucket = serving
    seaweed.client().create_bucket(Bucket=bucket)
    try:
        server.wait_ready()
        assert eventually(lambda: seaweed.objects(bucket, "feeds/") == built(config), 20)
        write_article(
            config.parent / "articles",
            "p1.md",
            "Edited",
            title="P1 edited",
            date="2022-01-02",
            categories=["c1"],
        )
        assert eventually(lambda: b"P1 edited" in seaweed.objects(bucket, "feeds/")["feed.rss"])
        # The bucket is never ahead of the workers: they served the edit before it went up.
        served = requests.get(server.base + "/feed.rss", timeout=5, headers={"Connection": "close"})
        assert b"P1 edited" in served.content
        # The feed goes up before the index, in the same publication.
        assert eventually(lambda: seaweed.objects(bucket, "feeds/") == built(config))
        metrics = requests.get(server.base + "/metrics", timeout=5).text
        assert "feedsvc_publish_failing 0.0" in metrics
        assert 'feedsvc_publish_objects_total{action="uploaded"}' in metrics
        assert requests.get(server.base + "/healthz", timeout=5).json()["status"] == "ok"
    finally:
        server.stop()


def test_failing_store_is_shown_never_stops_serving_and_is_caught_up(
    serving: tuple[Server, Path, str], seaweed: SeaweedFS
) -> None:
    server, config, bucket = serving
    try:
        server.wait_ready()

        def failure() -> list[dict[str, Any]]:
            health = requests.get(server.base + "/healthz", timeout=5).json()
            return [p for p in health["problems"] if p["path"] == "publish.url"]

        assert eventually(lambda: bool(failure()), 20)
        assert "the bucket does not exist" in failure()[0]["message"]
        assert requests.get(server.base + "/healthz", timeout=5).json()["status"] == "degraded"
        metrics = requests.get(server.base + "/metrics", timeout=5).text
        assert "feedsvc_publish_failing 1.0" in metrics
        # Reloads go on while publishing fails.
        write_article(
            config.parent / "articles", "p3.md", "New", title="P3 while failing", date="2022-01-05"
        )
        assert eventually(
            lambda: "P3 while failing" in requests.get(server.base + "/feed.rss", timeout=5).text
        )
        seaweed.client().create_bucket(Bucket=bucket)
        assert eventually(lambda: not failure(), 30)
        assert eventually(lambda: seaweed.objects(bucket, "feeds/") == built(config))
        assert requests.get(server.base + "/healthz", timeout=5).json()["status"] == "ok"
    finally:
        server.stop()

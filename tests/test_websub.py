from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from feedsvc.config import Config
from feedsvc.reload.reloader import Reloader
from feedsvc.store import Store
from feedsvc.transport import post_form
from feedsvc.websub import Publisher, Relay

from conftest import write_article
from hubstub import HubStub
from test_e2e import Server, free_port

fast_post = functools.partial(post_form, backoff=0.0)


@pytest.fixture
def hub() -> Iterator[HubStub]:
    stub = HubStub()
    yield stub
    stub.close()


def test_publisher_pings_once_per_topic(hub: HubStub) -> None:
    publisher = Publisher(hub.url, "http://127.0.0.1:8080", post=fast_post)
    publisher.publish(["http://127.0.0.1:8080/feed.atom", "http://127.0.0.1:8080/feed.rss"])
    publisher.wait()
    assert hub.topics() == ["http://127.0.0.1:8080/feed.atom", "http://127.0.0.1:8080/feed.rss"]
    assert all(call["hub.mode"] == ["publish"] for call in hub.calls)
    assert hub.calls[0]["user-agent"][0].startswith("feedsvc/")
    assert "(+http://127.0.0.1:8080)" in hub.calls[0]["user-agent"][0]
    assert publisher.results == {"ok": 2}
    publisher.close()


def test_failures_are_retried_with_backoff_then_counted() -> None:
    hub = HubStub(script=[503, 502, 204, 500, 500, 500, 400])
    try:
        publisher = Publisher(hub.url, "http://x", post=fast_post)
        publisher.publish(["t1", "t2", "t3"])
        publisher.wait()
        assert hub.topics() == ["t1", "t1", "t1", "t2", "t2", "t2", "t3"]
        assert publisher.results == {"ok": 1, "failed": 2}
    finally:
        hub.close()


def test_unreachable_hub_never_blocks_the_caller() -> None:
    publisher = Publisher(f"http://127.0.0.1:{free_port()}/hub", "http://x", post=fast_post)
    started = time.perf_counter()
    publisher.publish(["t"] * 5)
    assert time.perf_counter() - started < 0.05
    publisher.wait()
    assert publisher.results == {"failed": 5}


def test_reloads_ping_for_changed_feeds_only(
    make_config: Callable[..., Config], articles_dir: Path, hub: HubStub
) -> None:
    config = make_config(feeds={"websub_hub": hub.url, "formats": ["atom", "rss"]})
    relay = Relay(lambda: config.feeds.websub_hub, lambda: config.site.base_url)
    reloader = Reloader(config, Store(), on_change=relay)
    write_article(articles_dir, "a.md", title="A", date="2022-01-01", categories=["金融"])
    write_article(articles_dir, "b.md", title="B", date="2022-01-02", categories=["科技"])
    reloader.reload()  # the first build pings nothing: nothing changed for subscribers
    reloader.reload()
    assert hub.calls == []
    write_article(articles_dir, "b.md", title="B edited", date="2022-01-02", categories=["科技"])
    os.utime(articles_dir / "b.md", ns=(1, 1_900_000_000_000_000_000))
    reloader.reload()
    relay.publishers[hub.url].wait()
    base = "http://127.0.0.1:8080"
    assert sorted(hub.topics()) == sorted(
        f"{base}/{d}feed.{fmt}"
        for d in ("", "categories/%E7%A7%91%E6%8A%80/", "authors/Desk/")
        for fmt in ("atom", "rss")
    )


@pytest.mark.e2e
def test_one_ping_per_changed_feed_with_two_workers(tmp_path: Path, hub: HubStub) -> None:
    port = free_port()
    articles = tmp_path / "articles"
    write_article(articles, "a.md", title="A", date="2022-01-01")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": {"title": "Hubbed", "base_url": f"http://127.0.0.1:{port}"},
                "sources": [{"name": "articles", "path": "articles"}],
                "feeds": {"websub_hub": hub.url, "formats": ["atom"]},
                "reload": {"interval_seconds": 3600},
                "server": {"workers": 2},
            }
        ),
        encoding="utf-8",
    )
    server = Server(config, port, tmp_path / "serve.log")
    try:
        server.process.send_signal(signal.SIGHUP)  # a reload that changes nothing
        time.sleep(1.5)
        assert hub.calls == []
        write_article(articles, "a.md", title="A, corrected", date="2022-01-01")
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not hub.calls:
            time.sleep(0.1)
        time.sleep(1.0)  # room for a duplicate from the other worker, which must not come
        # The site's feed and its author's (site.author, by default the site title).
        assert sorted(hub.topics()) == [
            f"http://127.0.0.1:{port}/authors/Hubbed/feed.atom",
            f"http://127.0.0.1:{port}/feed.atom",
        ]
    finally:
        assert server.stop() == 0

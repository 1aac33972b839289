from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.store import Store
from feedsvc.transport import post_form
from feedsvc.websub import Publisher, Relay

from conftest import eventually, write_article
from tests.support.hubstub import HubStub
from tests.support.server import Server, free_port, get, log_of, write_config

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
    reloader = Reloader(config, Store())
    reloader.on_change = relay
    write_article(articles_dir, "a.md", title="A", date="2022-01-01", categories=["金融"])
    write_article(articles_dir, "b.md", title="B", date="2022-01-02", categories=["科技"])
    reloader.reload()  # the first build pings nothing: nothing changed for subscribers
    reloader.reload()
    assert relay.publishers == {}  # no ping was queued, so none can arrive later
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
    config = write_config(
        tmp_path, port, site={"title": "Hubbed"}, feeds={"websub_hub": hub.url, "formats": ["atom"]}
    )
    server = Server(config, port, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    try:
        before = health(base)
        server.process.send_signal(signal.SIGHUP)  # a reload that changes nothing
        assert eventually(lambda: health(base) != before), "the reload never finished"
        write_article(articles, "a.md", title="A, corrected", date="2022-01-01")
        server.process.send_signal(signal.SIGHUP)
        assert eventually(lambda: len(hub.calls) >= 2), log_of(server)
        # A later change with other feeds: the builder's one publisher pings in order, so
        # a ping of the first reload, or a second one for the correction, comes before
        # these are all in.
        write_article(articles, "b.md", title="B", date="2022-01-02", author="Wire")
        wire = f"{base}/authors/Wire/feed.atom"
        assert eventually(lambda: len(hub.calls) >= 4 and wire in hub.topics()), log_of(server)
        topics = hub.topics()
        # The site's feed and its author's (site.author, by default the site title), then
        # the site's feed and the new author's.
        assert [sorted(topics[:2]), sorted(topics[2:])] == [
            [f"{base}/authors/Hubbed/feed.atom", f"{base}/feed.atom"],
            [wire, f"{base}/feed.atom"],
        ]
    finally:
        assert server.stop() == 0


def health(base: str) -> tuple[str | None, int]:
    """When the last reload ran, and the generation it made (a reload that changes
    nothing makes none)."""
    answer = get(base, "/healthz").json()
    return answer["last_reload"], answer["generation"]

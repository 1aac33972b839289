"""End to end: the real `feedsvc serve` on a free loopback port, read the way readers do."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import feedparser
import pytest
import requests

from conftest import SAMPLE_SHAPED, write_article
from tests.support.commands import run_cli
from tests.support.server import ROOT, Server, free_port, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    port = free_port()
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "2021-10-24-brokerage-day.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    write_article(
        articles,
        "blog/etag.md",
        "ETags let pollers skip **unchanged** feeds.",
        title="Polling politely",
        date="2022-05-09T14:00:00+08:00",
        categories=["Engineering"],
        tags=["http"],
    )
    config = write_config(
        tmp_path,
        port,
        site={"title": "E2E Newsroom"},
        reload={"interval_seconds": 1},
        server={"workers": 1, "threads": 2},
    )
    running = Server(config, port, tmp_path / "serve.log")
    yield running, articles
    running.stop()


def test_reader_subscribes_polls_and_sees_new_articles(server: tuple[Server, Path]) -> None:
    srv, articles = server
    feed = feedparser.parse(srv.base + "/feed.atom")
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.status == 200
    sample = next(e for e in feed.entries if e.title.startswith("钱塘证券"))
    assert sample.author == "财联社"
    assert sample.published == "2021-10-24T11:30:58+00:00"
    assert "金融" in [t.term for t in sample.tags]

    path = "/categories/" + "/".join(quote(s) for s in ["金融", "财联社", "深度"]) + "/feed.atom"
    category = feedparser.parse(srv.base + path)
    assert not category.bozo
    assert category.feed.title == "E2E Newsroom — 金融 / 财联社 / 深度"
    assert [e.title for e in category.entries] == [sample.title]

    again = feedparser.parse(srv.base + "/feed.atom", etag=feed.etag)
    assert again.status == 304
    plain = requests.get(
        srv.base + "/feed.rss",
        headers={
            "If-None-Match": '"x", '
            + requests.get(srv.base + "/feed.rss", timeout=5).headers["ETag"]
        },
        timeout=5,
    )
    assert plain.status_code == 304 and plain.content == b""

    write_article(
        articles,
        "blog/new.md",
        "Fresh.",
        title="Dropped in while serving",
        date="2022-06-01T08:00:00Z",
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        polled = feedparser.parse(srv.base + "/feed.atom", etag=feed.etag)
        if polled.status == 200 and "Dropped in while serving" in [e.title for e in polled.entries]:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the new article never appeared")
    assert polled.etag != feed.etag
    assert srv.stop() == 0


def test_broken_file_is_reported_and_the_rest_still_served(server: tuple[Server, Path]) -> None:
    srv, articles = server
    (articles / "broken.md").write_bytes(b"---\ntitle: [oops\n---\n\xff\xfe")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        health = requests.get(srv.base + "/healthz", timeout=5).json()
        if health["problems"]:
            break
        time.sleep(0.3)
    assert health["status"] == "degraded"
    assert health["problems"][0]["path"].endswith("broken.md")
    assert len(feedparser.parse(srv.base + "/feed.rss").entries) == 2


def test_second_serve_on_a_taken_port_exits_2(server: tuple[Server, Path], tmp_path: Path) -> None:
    srv, _ = server
    port = srv.base.rsplit(":", 1)[1]
    result = run_cli("serve", "--config", str(tmp_path / "config.yaml"), "--port", port)
    assert result.returncode == 2
    assert "address already in use" in result.stderr


def test_repository_samples_are_served_without_drafts_or_future_posts(tmp_path: Path) -> None:
    port = free_port()
    srv = Server(ROOT / "config.yaml", port, tmp_path / "serve.log")
    try:
        feed = feedparser.parse(srv.base + "/feed.atom")
        rss = feedparser.parse(srv.base + "/feed.rss")
        health = requests.get(srv.base + "/healthz", timeout=5).json()
    finally:
        assert srv.stop() == 0
    assert not feed.bozo and not rss.bozo
    titles = [e.title for e in feed.entries]
    assert len(titles) >= 12
    assert [e.title for e in rss.entries] == titles
    assert not any("0.9" in t or "Next Century" in t for t in titles)
    assert health["problems"] == []
    assert any(is_cjk(t) for t in titles) and any(t.isascii() for t in titles)


def is_cjk(title: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in title)


def raw_request(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        return conn.recv(4096).split(b"\r\n", 1)[0]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /feed.atom HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", b"431"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"431"),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"GET /feed.atom?" + b"q" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"GET /feed.atom\x00 HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET /%ff%fe/feed.atom HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"GET /%2e%2e/config.yaml HTTP/1.1\r\nHost: x\r\n\r\n", b"404"),
        (b"DELETE /feed.atom HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
        (b"BREW /feed.atom HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
    ],
)
def test_hostile_requests_get_4xx_from_the_real_server(
    server: tuple[Server, Path], request_bytes: bytes, status: bytes
) -> None:
    srv, _ = server
    assert raw_request(srv.base, request_bytes).split(b" ")[1] == status
    assert requests.get(srv.base + "/healthz", timeout=5).status_code == 200


def test_sigint_stops_the_server_cleanly(server: tuple[Server, Path]) -> None:
    srv, _ = server
    assert requests.get(srv.base + "/feed.atom", timeout=5).status_code == 200
    srv.process.send_signal(signal.SIGINT)
    assert srv.process.wait(timeout=10) == 0


def test_a_reader_follows_an_author_feed_and_its_archives_over_http(tmp_path: Path) -> None:
    port = free_port()
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "2021-10-24-brokerage-day.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    for n, date in enumerate(["2021-11-02T09:00:00+08:00", "2021-12-01T09:00:00+08:00"]):
        write_article(articles, f"{n}.md", title=f"Later {n}", date=date, author="财联社")
    config = write_config(
        tmp_path,
        port,
        feeds={"limit": 1, "archive": ["authors"]},
        server={"workers": 1, "threads": 2},
    )
    srv = Server(config, port, tmp_path / "serve.log")
    try:
        base = f"{srv.base}/authors/{quote('财联社')}/"
        feed = feedparser.parse(base + "feed.atom")
        assert not feed.bozo and [e.title for e in feed.entries] == ["Later 1"]
        seen = []
        link = {lk.rel: lk.href for lk in feed.feed.links}.get("prev-archive")
        caching = []
        while link:
            response = requests.get(link, timeout=5)
            caching.append(response.headers["Cache-Control"])
            archive = feedparser.parse(response.content)
            seen.extend(e.title for e in archive.entries)
            link = {lk.rel: lk.href for lk in archive.feed.links}.get("prev-archive")
        assert sorted(seen) == sorted(["Later 1", "Later 0", feed_sample_title()])
        assert caching[0].startswith("public, max-age=300")  # December: the current month
        assert caching[1:] == ["public, max-age=31536000, immutable"] * 2
    finally:
        srv.stop()


def feed_sample_title() -> str:
    return "钱塘证券首届“客户服务日”启幕：以数字化重塑财富管理"

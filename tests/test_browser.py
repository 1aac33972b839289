"""A person opening a feed URL in a real browser (headless Chromium) sees a page, not XML.

Needs Debian's `chromium`; `.ci/run` installs it and runs `pytest -m browser`. `make test`
deselects this module so that the suite needs no system browser.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from tests.support.server import ROOT, Server, free_port

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    config = tmp_path_factory.mktemp("browser") / "config.yaml"
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:8080", f"http://127.0.0.1:{port}")
    config.write_text(text.replace("path: articles", f"path: {ROOT / 'articles'}"), "utf-8")
    running = Server(config, port, config.parent / "serve.log")
    yield running
    running.stop()


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is required: apt-get install chromium"
    return found


def dump_dom(url: str, profile: Path) -> str:
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize(
    "path", ["/feed.atom", "/feed.rss", "/categories/%E9%87%91%E8%9E%8D/feed.atom"]
)
def test_browser_sees_a_readable_page_and_readers_still_get_the_feed(
    server: Server, path: str, tmp_path: Path
) -> None:
    feed = feedparser.parse(server.base + path)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.entries
    dom = dump_dom(server.base + path, tmp_path / "profile")
    assert "This is a web feed" in dom
    for entry in feed.entries[:5]:
        assert entry.title in dom
    for raw in ("<?xml", "&lt;feed", "&lt;rss", "<feed", "<rss", "<channel"):
        assert raw not in dom, raw

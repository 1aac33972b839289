"""The id ledger through the real server and CLI: renames followed live, restarts that
re-date nothing and fetch conditionally, emptied feeds kept until `feedsvc forget`,
`feedsvc check` telling what the next reload does to ids, and kill -9 mid-write."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.state.ledger import Ledger
from feedsvc.store import Store
from feedsvc.urls import entry_id

from conftest import eventually, write_article
from tests.support.commands import run_cli
from tests.support.server import ROOT, Server, free_port, get, log_of, settings
from tests.support.upstream import Reply, Upstream

pytestmark = pytest.mark.e2e

WIRE = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Partner Wire</title><link>https://partner.example/</link>
<description>Wire</description>
<item><title>Undated wire note</title><link>https://partner.example/news/note</link>
<guid>wire-note-1</guid><description>No date here.</description></item>
</channel></rss>"""


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    server.routes["/wire.rss"] = lambda headers: (
        Reply(304)
        if headers.get("if-none-match") == '"w1"'
        else Reply(body=WIRE, headers={"Content-Type": "application/rss+xml", "ETag": '"w1"'})
    )
    yield server
    server.close()


@pytest.fixture
def site(tmp_path: Path, upstream: Upstream) -> Iterator[tuple[Path, list[Server]]]:
    """A config with a folder and a remote source; the servers a test starts."""
    articles = tmp_path / "articles"
    write_article(
        articles,
        "finance/x.md",
        "央行宣布降准。",
        title="央行降准",
        date="2024-03-01",
        categories=["金融"],
    )
    write_article(
        articles, "old.md", "旧闻。", title="旧闻", date="2024-01-01", categories=["旧栏目"]
    )
    data = settings(8080, reload={"interval_seconds": 3600}, server={"workers": 1})
    data["sources"] = [
        {"name": "articles", "path": "articles"},
        {"name": "wire", "type": "feed", "url": upstream.base + "/wire.rss", "interval_seconds": 1},
    ]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    started: list[Server] = []
    yield config, started
    for server in started:
        if server.process.poll() is None:
            server.stop()


def start(config: Path, started: list[Server]) -> Server:
    server = Server(config, free_port(), config.parent / f"serve-{len(started)}.log")
    started.append(server)
    return server


def items(server: Server, path: str = "/feed.json") -> dict[str, dict[str, object]]:
    return {i["title"]: i for i in get(server.base, path).json()["items"]}


def test_a_restart_keeps_ids_dates_and_emptied_feeds_and_fetches_conditionally(
    site: tuple[Path, list[Server]], upstream: Upstream
) -> None:
    config, started = site
    server = start(config, started)
    assert eventually(lambda: "Undated wire note" in items(server)), log_of(server)
    before = items(server)
    (config.parent / "articles/old.md").unlink()
    assert eventually(lambda: "旧闻" not in items(server))
    assert server.stop() == 0
    upstream.requests.clear()
    server = start(config, started)
    # The first fetch after the restart is conditional, and answered 304.
    assert eventually(lambda: len(upstream.requests) > 0), log_of(server)
    assert upstream.requests[0][1].get("if-none-match") == '"w1"'
    after = items(server)
    for title in ("央行降准", "Undated wire note"):
        assert (after[title]["id"], after[title]["date_published"]) == (
            before[title]["id"],
            before[title]["date_published"],
        )
    emptied = get(server.base, "/categories/%E6%97%A7%E6%A0%8F%E7%9B%AE/feed.atom")
    assert emptied.status_code == 200 and b"<entry>" not in emptied.content


def test_a_failing_upstream_keeps_its_items_through_a_restart(
    site: tuple[Path, list[Server]], upstream: Upstream
) -> None:
    config, started = site
    server = start(config, started)
    assert eventually(lambda: "Undated wire note" in items(server)), log_of(server)
    assert server.stop() == 0
    upstream.routes["/wire.rss"] = Reply(503, b"down for maintenance")
    upstream.requests.clear()
    server = start(config, started)
    assert eventually(lambda: len(upstream.requests) > 0), log_of(server)
    server.process.send_signal(signal.SIGHUP)  # a reload that sees the failed fetch

    def failing_but_kept() -> bool:
        problems = get(server.base, "/healthz").json()["problems"]
        return any("keeping its last good items" in p["message"] for p in problems)

    assert eventually(failing_but_kept), log_of(server)
    assert "Undated wire note" in items(server)


def test_a_live_rename_keeps_the_id_and_forget_drops_an_emptied_feed(
    site: tuple[Path, list[Server]],
) -> None:
    config, started = site
    server = start(config, started)
    before = items(server)["央行降准"]
    articles = config.parent / "articles"
    (articles / "finance/2024").mkdir()
    (articles / "finance/x.md").rename(articles / "finance/2024/rbi-cut.md")
    (articles / "old.md").unlink()
    assert eventually(lambda: "旧闻" not in items(server))
    after = items(server)["央行降准"]
    assert (after["id"], after["url"]) == (before["id"], before["url"])
    emptied = "/categories/%E6%97%A7%E6%A0%8F%E7%9B%AE/feed.atom"
    assert get(server.base, emptied).status_code == 200
    forget = run_cli("forget", "--config", str(config), "categories/旧栏目")
    assert forget.returncode == 0, forget.stderr
    assert "forgot categories/旧栏目" in forget.stdout
    assert eventually(lambda: get(server.base, emptied).status_code == 404), log_of(server)
    assert server.stop() == 0


def test_check_tells_what_the_next_reload_does_to_ids_and_writes_nothing(
    site: tuple[Path, list[Server]], tmp_path: Path
) -> None:
    config, _ = site
    assert run_cli("build", "--config", str(config), "--out", str(tmp_path / "out")).returncode == 0
    articles = config.parent / "articles"
    (articles / "finance/x.md").rename(articles / "finance/rbi-cut.md")
    write_article(articles, "dup.md", "另一篇。", title="Another", date="2024-02-01", id="urn:x:1")
    write_article(
        articles, "dup2.md", "又一篇。", title="Yet another", date="2024-02-02", id="urn:x:1"
    )
    before = dump(config)
    check = run_cli("check", "--config", str(config))
    assert "articles/finance/rbi-cut.md: renamed from articles/finance/x.md" in check.stdout
    assert "articles/dup2.md: id urn:x:1 is articles/dup.md's already" in check.stdout
    assert dump(config) == before
    assert run_cli("check", "--config", str(config)).stdout == check.stdout


def dump(config: Path) -> list[str]:
    with sqlite3.connect(config.parent / ".feedsvc" / "ledger.sqlite3") as db:
        return list(db.iterdump())


def test_kill_9_while_the_ledger_is_written_loses_at_most_that_reload(tmp_path: Path) -> None:
    """A builder renaming 300 articles per reload, killed at moments spread over its
    reloads: the ledger opens clean every time, and the next reload gives every article
    the id it was first published with."""
    script = tmp_path / "churn.py"
    script.write_text(CHURN.format(root=str(tmp_path)), encoding="utf-8")
    for n in range(300):
        write_article(
            tmp_path / "articles", f"p{n}.md", f"Body {n}.", title=f"Post {n}", date="2024"
        )
    (tmp_path / "state").mkdir()
    first = {entry_id("http://127.0.0.1:8080", "articles", f"p{n}.md") for n in range(300)}
    config = tmp_path / "config.yaml"
    site = {"title": "T", "base_url": "http://127.0.0.1:8080"}
    config.write_text(
        yaml.safe_dump({"site": site, "sources": [{"name": "articles", "path": "articles"}]})
    )
    ledger, _ = Ledger.open(tmp_path / "state")
    Reloader(load_config(config), Store(), ledger=ledger).reload()  # ids published at p*.md
    ledger.close()
    churned = tmp_path / "churned"
    for delay in (0.0, 0.05, 0.1, 0.2, 0.3):
        churned.unlink(missing_ok=True)
        child = subprocess.Popen([sys.executable, str(script)], cwd=ROOT)
        assert eventually(churned.exists)  # one reload done: the next ones are under way
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        ledger, damaged = Ledger.open(tmp_path / "state")
        try:
            assert damaged is None
            reloader = Reloader(load_config(config), Store(), ledger=ledger)
            reloader.reload()
            present = {row.id for row in ledger.rows().values() if row.present}
        finally:
            ledger.close()
        assert present == first


CHURN = """
from pathlib import Path
from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.state.ledger import Ledger
from feedsvc.store import Store

root = Path({root!r})
articles = root / "articles"
config = root / "config.yaml"
ledger, _ = Ledger.open(root / "state")
reloader = Reloader(load_config(config), Store(), ledger=ledger)
while True:
    for path in sorted(articles.glob("*.md")):
        path.rename(path.with_name(("y" if path.name[0] == "x" else "x") + path.name[1:]))
    reloader.reload()
    (root / "churned").touch()
"""

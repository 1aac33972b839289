"""The id ledger through the builder: renames, moves, a new base_url, collisions, restarts."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from feedsvc.build.site import SiteRenderer
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.state.ledger import FILE, Ledger
from feedsvc.store import Store
from feedsvc.urls import entry_id

from conftest import NOW, write_article
from tests.support.upstream import Reply, Upstream

Make = Callable[..., Config]


class Site:
    """A Reloader with a ledger in `state`, restartable like a builder process."""

    def __init__(self, make_config: Make, state: Path, **overrides: Any) -> None:
        self.make_config, self.state, self.overrides = make_config, state, overrides
        self.reloader: Reloader | None = None
        self.ledger: Ledger | None = None
        self.start()

    def start(self, **overrides: Any) -> None:
        self.stop()
        self.overrides.update(overrides)
        self.config = self.make_config(**self.overrides)
        self.state.mkdir(exist_ok=True)
        self.ledger, self.damaged = Ledger.open(self.state)
        self.reloader = Reloader(self.config, Store(), now=lambda: NOW, ledger=self.ledger)

    def stop(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def reload(self) -> dict[str, dict[str, Any]]:
        """Reload; the site feed's items by title (JSON Feed)."""
        assert self.reloader is not None
        self.reloader.reload()
        return self.items()

    def items(self, path: str = "feed.json") -> dict[str, dict[str, Any]]:
        assert self.reloader is not None
        document = self.reloader.store.current.documents[path]
        return {item["title"]: item for item in json.loads(document.body)["items"]}

    @property
    def problems(self) -> list[str]:
        assert self.reloader is not None
        return [str(p) for p in self.reloader.store.current.problems]


@pytest.fixture
def site(make_config: Make, tmp_path: Path) -> Iterator[Site]:
    running = Site(make_config, tmp_path / "state")
    yield running
    running.stop()


def post(articles: Path, name: str, title: str, body: str = "正文。", **fields: Any) -> Path:
    fields.setdefault("date", "2024-03-01 08:00:00")
    return write_article(articles, name, body, title=title, categories=["金融"], **fields)


def test_a_fresh_ledger_gives_the_derived_ids_and_the_same_bytes(
    site: Site, articles_dir: Path
) -> None:
    post(articles_dir, "a.md", "央行降准")
    post(articles_dir, "b.md", "Markets close higher", date="2024-03-02 09:00:00")
    site.reload()
    assert site.reloader is not None
    with_ledger = site.reloader.store.current.documents
    without = SiteRenderer(site.config).build(site.reloader.sources[0].read().articles).documents
    assert {p: d.etag for p, d in with_ledger.items()} == {p: d.etag for p, d in without.items()}


def test_a_renamed_article_keeps_its_id_date_and_link(site: Site, articles_dir: Path) -> None:
    post(articles_dir, "finance/x.md", "央行降准")
    before = site.reload()["央行降准"]
    (articles_dir / "finance/x.md").rename(articles_dir / "finance/rbi-cut.md")
    after = site.reload()["央行降准"]
    assert (after["id"], after["url"], after["date_published"]) == (
        before["id"],
        before["url"],
        before["date_published"],
    )
    assert after["url"].endswith("/x/")


def test_a_move_to_a_subfolder_keeps_the_id(site: Site, articles_dir: Path) -> None:
    post(articles_dir, "finance/x.md", "央行降准")
    before = site.reload()["央行降准"]["id"]
    (articles_dir / "finance/2024").mkdir()
    (articles_dir / "finance/x.md").rename(articles_dir / "finance/2024/x.md")
    assert site.reload()["央行降准"]["id"] == before


def test_a_rename_with_an_edit_is_matched_by_title_and_date(site: Site, articles_dir: Path) -> None:
    post(articles_dir, "a.md", "Rates on hold", body="First draft.")
    before = site.reload()["Rates on hold"]["id"]
    (articles_dir / "a.md").unlink()
    post(articles_dir, "rates.md", "Rates on hold", body="Corrected figures.")
    after = site.reload()["Rates on hold"]
    assert after["id"] == before
    assert "Corrected figures" in after["content_html"]


def test_a_rename_and_a_new_base_url_in_one_reload_keep_the_id(
    site: Site, articles_dir: Path
) -> None:
    post(articles_dir, "a.md", "央行降准")
    before = site.reload()["央行降准"]
    (articles_dir / "a.md").rename(articles_dir / "rbi.md")
    site.start(site={"base_url": "https://news.example.cn"})
    after = site.reload()["央行降准"]
    assert after["id"] == before["id"]
    assert after["url"] == "https://news.example.cn/2024/03/01/a/"


def test_a_new_base_url_or_permalink_moves_links_not_ids(site: Site, articles_dir: Path) -> None:
    post(articles_dir, "a.md", "央行降准")
    post(articles_dir, "b.md", "Markets close higher")
    before = site.reload()
    site.start(site={"base_url": "https://news.example.cn", "permalink": "news/:slug.html"})
    after = site.reload()
    assert {t: i["id"] for t, i in after.items()} == {t: i["id"] for t, i in before.items()}
    assert after["央行降准"]["url"] == "https://news.example.cn/news/a.html"


def test_a_front_matter_slug_or_link_wins_over_the_inherited_one(
    site: Site, articles_dir: Path
) -> None:
    post(articles_dir, "a.md", "央行降准")
    before = site.reload()["央行降准"]
    (articles_dir / "a.md").unlink()
    post(articles_dir, "b.md", "央行降准", slug="rrr-cut")
    after = site.reload()["央行降准"]
    assert after["id"] == before["id"]
    assert after["url"].endswith("/rrr-cut/")


def test_two_new_paths_matching_one_gone_article_get_fresh_ids_and_a_warning(
    site: Site, articles_dir: Path
) -> None:
    post(articles_dir, "a.md", "央行降准")
    before = site.reload()["央行降准"]["id"]
    (articles_dir / "a.md").unlink()
    post(articles_dir, "b.md", "央行降准")
    post(articles_dir, "c.md", "央行降准")
    site.reload()
    assert site.reloader is not None
    feed = json.loads(site.reloader.store.current.documents["feed.json"].body)
    ids = {item["id"] for item in feed["items"]}
    assert before not in ids and len(ids) == 2
    warnings = [p for p in site.problems if "matches more than one" in p]
    assert len(warnings) == 2 and all("a.md" in w for w in warnings)


def test_an_explicit_id_wins_and_a_second_claim_keeps_its_own(
    site: Site, articles_dir: Path
) -> None:
    post(articles_dir, "a.md", "First claim", id="tag:news.example.cn,2024:rrr")
    assert site.reload()["First claim"]["id"] == "tag:news.example.cn,2024:rrr"
    post(articles_dir, "b.md", "Second claim", id="tag:news.example.cn,2024:rrr")
    items = site.reload()
    assert items["First claim"]["id"] == "tag:news.example.cn,2024:rrr"
    assert items["Second claim"]["id"].startswith("urn:uuid:")
    [warning] = [p for p in site.problems if "already" in p]
    assert "articles/b.md" in warning and "articles/a.md" in warning


def test_a_restart_keeps_ids_and_first_seen_dates_of_undated_articles(
    site: Site, articles_dir: Path
) -> None:
    path = write_article(articles_dir, "undated.md", "正文。", title="无日期")
    written = NOW.timestamp() - 86400
    os.utime(path, (written, written))
    before = site.reload()["无日期"]
    site.start()
    os.utime(path, (written + 3600, written + 3600))  # edited later
    after = site.reload()["无日期"]
    assert (after["id"], after["date_published"]) == (before["id"], before["date_published"])
    assert after["date_modified"] > before["date_published"]


def test_renamed_while_the_builder_was_down_keeps_its_id(site: Site, articles_dir: Path) -> None:
    post(articles_dir, "a.md", "央行降准")
    before = site.reload()["央行降准"]["id"]
    site.stop()
    (articles_dir / "a.md").rename(articles_dir / "b.md")
    site.start()
    assert site.reload()["央行降准"]["id"] == before


def test_a_new_file_at_a_renamed_articles_old_path_gets_another_id(
    site: Site, articles_dir: Path
) -> None:
    post(articles_dir, "a.md", "Old story")
    old = site.reload()["Old story"]["id"]
    (articles_dir / "a.md").rename(articles_dir / "b.md")
    site.reload()
    post(articles_dir, "a.md", "New story", date="2024-04-01 08:00:00")
    items = site.reload()
    assert items["Old story"]["id"] == old
    assert items["New story"]["id"] != old


def test_an_emptied_category_stays_through_a_restart(site: Site, articles_dir: Path) -> None:
    path = write_article(
        articles_dir, "a.md", "正文。", title="旧闻", date="2024-03-01", categories=["旧栏目"]
    )
    site.reload()
    path.unlink()
    site.start()
    site.reload()
    assert site.items("categories/旧栏目/feed.json") == {}


def test_a_damaged_ledger_is_moved_aside_and_ids_fall_back(
    site: Site, articles_dir: Path, tmp_path: Path
) -> None:
    post(articles_dir, "a.md", "央行降准")
    derived = site.reload()["央行降准"]["id"]
    (articles_dir / "a.md").rename(articles_dir / "b.md")
    site.reload()
    site.stop()
    ledger = tmp_path / "state" / FILE
    ledger.write_bytes(b"not a database, a truncated download" * 100)
    site.start()
    assert site.damaged is not None and "moved to" in site.damaged.message
    assert list((tmp_path / "state").glob(f"{FILE}.damaged-*"))
    assert site.reload()["央行降准"]["id"] == entry_id(
        site.config.site.base_url, "articles", "b.md"
    )
    assert derived != entry_id(site.config.site.base_url, "articles", "b.md")


def test_a_ledger_of_another_version_is_not_used(site: Site, tmp_path: Path) -> None:
    site.stop()
    with sqlite3.connect(tmp_path / "state" / FILE) as db:
        db.execute("PRAGMA user_version = 99")
    site.start()
    assert site.damaged is not None and "schema version 99" in site.damaged.message


def test_a_ledger_of_the_version_before_its_mark_is_given_one_and_keeps_its_ids(
    site: Site, articles_dir: Path, tmp_path: Path
) -> None:
    post(articles_dir, "a.md", "央行降准")
    site.reload()
    (articles_dir / "a.md").rename(articles_dir / "b.md")
    followed = site.reload()["央行降准"]["id"]
    site.stop()
    with sqlite3.connect(tmp_path / "state" / FILE) as db:  # as version 1 wrote it
        for trigger in ("article_added", "article_changed", "article_removed"):
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DROP TABLE changes")
        db.execute("PRAGMA user_version = 1")
    site.start()
    assert site.damaged is None
    assert site.ledger is not None
    _, count = site.ledger.mark()
    assert site.reload()["央行降准"]["id"] == followed
    post(articles_dir, "c.md", "新发布")
    site.reload()
    assert site.ledger.mark()[1] > count


def test_a_no_change_reload_writes_nothing(site: Site, articles_dir: Path) -> None:
    for n in range(20):
        post(articles_dir, f"p{n}.md", f"Story {n}")
    site.reload()
    assert site.ledger is not None
    before = site.ledger.total_changes
    site.reload()
    assert site.ledger.total_changes == before
    post(articles_dir, "p3.md", "Story 3", body="Edited.")
    site.reload()
    assert site.ledger.total_changes == before + 2  # the edited article's row, the mark


def test_replicas_with_fresh_state_agree(make_config: Make, tmp_path: Path) -> None:
    articles = tmp_path / "articles"
    post(articles, "a.md", "央行降准")
    write_article(articles, "undated.md", "正文。", title="无日期")
    etags = []
    for replica in ("one", "two"):
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
        running = Site(make_config, tmp_path / replica)
        running.reload()
        assert running.reloader is not None
        etags.append({p: d.etag for p, d in running.reloader.store.current.documents.items()})
        running.stop()
    assert etags[0] == etags[1]


def test_a_remote_sources_backoff_and_validators_outlive_a_restart(
    make_config: Make, tmp_path: Path
) -> None:
    upstream = Upstream()
    try:
        upstream.routes["/wire"] = Reply(
            body=WIRE, headers={"Content-Type": "application/rss+xml", "ETag": '"v1"'}
        )
        wire = {"name": "wire", "type": "feed", "url": upstream.base + "/wire"}
        site = Site(make_config, tmp_path / "state", sources=[wire])
        first = site.reload()["Undated wire note"]
        upstream.routes["/wire"] = Reply(503, b"down")
        source = site.reloader.sources[0]  # type: ignore[union-attr]
        source._next_fetch = 0  # due now: fail once, then back off
        site.reload()
        assert len(upstream.requests) == 2
        site.start()  # a restart while the upstream is down and the backoff runs
        restarted = site.reloader.sources[0]  # type: ignore[union-attr]
        assert not restarted.is_due()
        items = site.reload()
        assert len(upstream.requests) == 2  # the backoff holds through the restart
        assert items["Undated wire note"]["date_published"] == first["date_published"]
        restarted._next_fetch = 0
        upstream.routes["/wire"] = Reply(304)
        site.reload()
        assert upstream.requests[-1][1]["if-none-match"] == '"v1"'
        site.stop()
    finally:
        upstream.close()


WIRE = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Wire</title><link>https://partner.example/</link>
<description>Wire</description>
<item><title>Undated wire note</title><link>https://partner.example/news/note</link>
<guid>wire-note-1</guid><description>No date here.</description></item>
</channel></rss>"""


def test_a_kept_body_that_no_longer_parses_is_fetched_again_unconditionally(
    make_config: Make, tmp_path: Path
) -> None:
    upstream = Upstream()
    try:
        upstream.routes["/wire"] = Reply(
            body=WIRE, headers={"Content-Type": "application/rss+xml", "ETag": '"v1"'}
        )
        wire = {"name": "wire", "type": "feed", "url": upstream.base + "/wire"}
        site = Site(make_config, tmp_path / "state", sources=[wire])
        site.reload()
        site.stop()
        with sqlite3.connect(tmp_path / "state" / FILE) as db:  # what another version kept
            db.execute("UPDATE fetches SET body = ?", (zlib.compress(b"<html>not a feed"),))
        site.start()
        site.reload()
        assert "if-none-match" not in upstream.requests[-1][1]  # a 304 would leave it empty
        assert "Undated wire note" in site.items()
        site.stop()
    finally:
        upstream.close()


def test_forget_is_seen_after_the_builder_wrote_to_the_ledger(
    site: Site, articles_dir: Path
) -> None:
    """Defect: every write of the builder's own connection (a remote fetch keeping its
    schedule, say) reset what `changed_elsewhere` compares with, so a `feedsvc forget`
    committed before it went unseen and the emptied feed stayed until a restart."""
    post(articles_dir, "a.md", "央行降准", tags=["lonely"])
    site.reload()
    (articles_dir / "a.md").unlink()
    site.reload()
    assert site.reloader is not None and site.ledger is not None
    assert "tags/lonely/feed.json" in site.reloader.store.current.documents
    forget, _ = Ledger.open(site.state)
    assert forget is not None
    assert forget.forget_nodes(["tags/lonely"]) == ["tags/lonely"]
    forget.close()
    site.ledger.save_schedule("remote", "http://127.0.0.1:9/feed.xml", 1, 0.0)
    site.reload()
    assert "tags/lonely/feed.json" not in site.reloader.store.current.documents

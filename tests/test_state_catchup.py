"""The catch-up after a restart: the builder's memory (ids placed, node index) saved with the
parse cache, so the first reload neither places nor regroups what did not change."""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import feedsvc.model
from feedsvc.build.entries import Entries
from feedsvc.build.membership import FeedNode, NodeIndex
from feedsvc.build.pages import FeedLinks
from feedsvc.build.sitepages import SitePages
from feedsvc.model import Article, ReloadSummary
from feedsvc.processes.builder import AfterReload
from feedsvc.processes.resume import memory_path, warm_start
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.sources.directory import DirectorySource, Listing
from feedsvc.state import catchup
from feedsvc.state.catchup import load_memory
from feedsvc.state.ledger import Ledger
from feedsvc.state.placing import Placer
from feedsvc.state.snapshots import index_path, validate
from feedsvc.state.snapshotwriter import SnapshotWriter
from feedsvc.store import Store

from conftest import eventually, write_article
from tests.support.processes import running


class Counts:
    """Nodes regrouped, articles placed and feeds linked by a reload (none: nothing done anew)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.regrouped: list[tuple[str, str]] = []
        self.placed: list[str] = []
        self.linked = 0  # feeds whose links (for the index and OPML) were made
        node, assign, links = NodeIndex._node, Placer._assign, SitePages.links

        def counting_node(index: NodeIndex, key: tuple[str, str]) -> None:
            self.regrouped.append(key)
            node(index, key)  # type: ignore[arg-type]

        def counting_assign(placer: Placer, todo: list, work: object) -> None:  # type: ignore[type-arg]
            self.placed.extend(a.path for a in todo)
            assign(placer, todo, work)  # type: ignore[arg-type]

        def counting_links(pages: SitePages, *args: Any) -> FeedLinks:
            self.linked += 1
            return links(pages, *args)

        monkeypatch.setattr(NodeIndex, "_node", counting_node)
        monkeypatch.setattr(SitePages, "links", counting_links)
        monkeypatch.setattr(Placer, "_assign", counting_assign)

    def clear(self) -> None:
        self.regrouped.clear()
        self.placed.clear()


class SavingAfterReload(AfterReload):
    """The builder's steps after a reload, waiting for the caches' save, which the builder
    leaves to a thread: what a later start of the test reads is written."""

    def __call__(self, summary: ReloadSummary) -> int:
        generation = super().__call__(summary)
        self.saved()
        return generation


class Site:
    """A builder's parts on one state directory; `start` is a (re)start of the process."""

    def __init__(self, config: Config, tmp_path: Path) -> None:
        self.config = config
        self.folder = tmp_path / "state" / "snapshots"
        self.folder.mkdir(parents=True, exist_ok=True)

    def start(self, *, warm: bool = True, watched: bool = False) -> tuple[Reloader, AfterReload]:
        ledger, _ = Ledger.open(self.folder.parent)
        reloader = Reloader(self.config, Store(), prepare=False, ledger=ledger)
        writer = SnapshotWriter(self.folder)
        after = SavingAfterReload(reloader, writer, lambda _: None, lambda _: None)
        if warm:
            warm_start(reloader, after.writer, self.folder, watched=watched)
        return reloader, after


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    for n in range(6):
        write_article(
            folder,
            f"p{n}.md",
            title=f"P{n}",
            date=f"2022-01-0{n + 1}",
            tags=[f"t{n % 2}"],
            categories=[["News", f"Desk {n % 3}"]],
        )
    return folder


@pytest.fixture
def site(make_config: Callable[..., Config], tmp_path: Path, articles: Path) -> Site:
    site = Site(make_config(), tmp_path)
    reloader, after = site.start(warm=False)
    after(reloader.reload())
    return site


def edit_p5(articles: Path) -> None:
    """A new title for p5.md, in the same feeds: the site, News, News/Desk 2, t1, Desk."""
    write_article(
        articles,
        "p5.md",
        title="P5, edited",
        date="2022-01-06",
        tags=["t1"],
        categories=[["News", "Desk 2"]],
    )


def documents(reloader: Reloader) -> dict[str, str]:
    return {p: d.gzip_etag for p, d in reloader.store.current.documents.items()}


def test_a_restart_with_nothing_changed_places_groups_and_renders_nothing(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    before, _ = site.start(warm=False)  # a cold build of the same files, for comparison
    before.reload()
    counts = Counts(monkeypatch)
    reloader, after = site.start()
    summary = reloader.reload()
    after(summary)
    assert (counts.regrouped, counts.placed, counts.linked, reloader.renderer.rendered) == (
        [],
        [],
        0,
        0,
    )
    assert summary.changed == 0
    assert documents(reloader) == documents(before)


def test_a_post_edited_while_down_is_the_only_one_placed_and_regrouped(
    site: Site, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_p5(articles)
    counts = Counts(monkeypatch)
    reloader, after = site.start()
    after(reloader.reload())
    assert counts.placed == ["p5.md"]
    # Its nodes only: the site, its two category levels, its tag and the author.
    assert sorted(counts.regrouped) == [
        ("author", "authors/Desk"),
        ("category", "categories/News"),
        ("category", "categories/News/Desk-2"),
        ("site", ""),
        ("tag", "tags/t1"),
    ]
    assert "P5, edited" in reloader.store.current.documents["feed.atom"].body.decode()
    # What the index and the OPML say of each feed is saved with it: only the feeds
    # rendered again make their links.
    assert counts.linked == reloader.renderer.rendered == 5
    # Its entry alone is rendered (in each content mode its feeds use): the other
    # articles' entries are those saved, read from the snapshot files.
    rendered, _ = reloader.renderer.entries
    assert 1 <= rendered <= 2
    fresh, _ = site.start(warm=False)
    fresh.reload()
    assert documents(reloader) == documents(fresh)


def test_an_id_the_ledger_gave_elsewhere_since_is_placed_again(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory is older than the ledger (saved at most every 30 s): an article whose
    path the ledger no longer gives the id remembered is placed as usual."""
    ledger, _ = Ledger.open(site.folder.parent)
    assert ledger is not None
    with ledger.transaction() as db:
        db.execute("UPDATE articles SET id = 'moved' WHERE path = 'p2.md'")
    counts = Counts(monkeypatch)
    reloader, _ = site.start()
    reloader.reload()
    assert counts.placed == ["p2.md"]
    assert "<id>moved</id>" in reloader.store.current.documents["feed.atom"].body.decode()


def test_a_restart_reads_the_ledgers_rows_only_when_it_changed_since(
    site: Site, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory holds the ledger's mark: unchanged, the ids remembered are the ledger's
    and none of its rows is read; changed (here by hand), every row is."""
    reads: list[int] = []
    present = Ledger.present
    monkeypatch.setattr(Ledger, "present", lambda ledger: reads.append(1) or present(ledger))
    edit_p5(articles)
    reloader, after = site.start()
    after(reloader.reload())
    assert reads == []
    ledger, _ = Ledger.open(site.folder.parent)
    assert ledger is not None
    with ledger.transaction() as db:
        db.execute("UPDATE articles SET last_seen = last_seen WHERE path = 'p2.md'")
    reloader, _ = site.start()
    reloader.reload()
    assert reads == [1]
    assert "P5, edited" in reloader.store.current.documents["feed.atom"].body.decode()


@pytest.mark.parametrize(
    "damage",
    [lambda data: data[: len(data) // 2], lambda data: data[:-40] + bytes(40), lambda _: b"x"],
    ids=["truncated", "garbled", "foreign"],
)
def test_a_damaged_memory_is_ignored_with_a_warning_and_the_catch_up_groups_anew(
    site: Site,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[bytes], bytes],
) -> None:
    path = memory_path(site.folder)
    path.write_bytes(damage(path.read_bytes()))
    counts = Counts(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="feedsvc.state.parsecache"):
        reloader, _ = site.start()
    assert any(str(path) in r.getMessage() for r in caplog.records)
    summary = reloader.reload()
    assert counts.regrouped  # grouped anew, as without a memory
    assert (summary.changed, reloader.renderer.rendered) == (0, 0)


def test_a_memory_of_another_config_is_not_used(
    site: Site, make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    site.config = make_config(feeds={"limit": 2})
    counts = Counts(monkeypatch)
    reloader, _ = site.start()
    reloader.reload()
    assert ("site", "") in counts.regrouped
    assert len(reloader.store.current.documents["feed.atom"].body.decode().split("<entry>")) == 3


@pytest.mark.parametrize(
    ("edit", "rendered"),
    [
        ({"site": {"description": "每日要闻"}, "feeds": {"limit": 3}}, 0),
        ({"feeds": {"formats": ["rss"]}}, 6),
    ],
    ids=["description and limit", "formats"],
)
def test_after_a_config_edit_a_restart_renders_only_the_entries_it_changed(
    site: Site, make_config: Callable[..., Config], edit: dict[str, Any], rendered: int
) -> None:
    """The config edited while the server was down: entries are made of their article but
    for the formats and the content mode, so the restart renders none again unless those
    changed, and serves what a cold start of the new config serves."""
    site.config = make_config(**edit)
    cold, _ = site.start(warm=False)
    cold.reload()
    reloader, _ = site.start()
    reloader.reload()
    assert reloader.renderer.entries_cache.rendered == rendered
    assert documents(reloader) == documents(cold)


def test_a_generation_that_cannot_be_resumed_from_is_numbered_after(site: Site) -> None:
    """The main process validated generation 1 and the workers serve it, then its index
    went (damaged or removed) before the builder read it: the builder builds anew and
    writes generation 2, not 1 again, which workers that never go back would ignore."""
    index_path(site.folder, 1).unlink()
    reloader, after = site.start(warm=False)
    warm_start(reloader, after.writer, site.folder, checked=1)
    assert after(reloader.reload()) == 2
    assert validate(site.folder) == 2


def test_after_a_new_base_url_a_restart_computes_no_revision_and_places_nothing(
    site: Site, make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ledger keeps the ids of the old base_url, so every article is published with
    other ids than it is parsed with: the memory gives them as published (revision and
    all) without computing a revision, as a resume at 50,000 posts cannot afford."""
    site.config = make_config(site={"base_url": "https://news.example.org"})
    reloader, after = site.start()
    after(reloader.reload())  # the config changed: this start places and groups anew
    computed: list[str] = []
    revision = feedsvc.model._revision
    monkeypatch.setattr(
        feedsvc.model, "_revision", lambda a: computed.append(a.path) or revision(a)
    )
    counts = Counts(monkeypatch)
    reloader, _ = site.start()
    assert computed == []
    summary = reloader.reload()
    assert (counts.placed, summary.changed, reloader.renderer.rendered) == ([], 0, 0)
    cold, _ = site.start(warm=False)
    cold.reload()
    assert documents(reloader) == documents(cold)
    assert "https://news.example.org/" in documents_text(reloader)["feed.atom"]


def documents_text(reloader: Reloader) -> dict[str, str]:
    return {p: d.body.decode() for p, d in reloader.store.current.documents.items()}


def test_a_warm_start_leaves_what_it_loaded_out_of_the_collectors_reach(site: Site) -> None:
    """Collections over a resume's millions of objects were a third of it at 50,000 posts."""
    gc.unfreeze()
    try:
        site.start()
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_after_a_restart_an_edit_looks_at_the_entries_of_its_own_feeds_only(
    site: Site, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restored entries count as the entry cache's last look (Entries.forget_unlisted),
    so the first edits after a restart do not list every feed's entries again."""
    reloader, after = site.start()
    after(reloader.reload())
    looked: list[int] = []
    wanted = Entries.wanted

    def counting(entries: Entries, nodes: Iterable[FeedNode]) -> Iterable[tuple[Article, bool]]:
        nodes = list(nodes)
        looked.append(len(nodes))
        return wanted(entries, nodes)

    monkeypatch.setattr(Entries, "wanted", counting)
    edit_p5(articles)
    after(reloader.reload())
    # The site, its two category levels, its tag and the author; not all 8 feeds.
    assert looked == [5]


@pytest.mark.parametrize(
    "module", ["feedsvc.build.entries", "feedsvc.build.membership", "feedsvc.state.placing"]
)
def test_a_memory_saved_by_other_code_of_the_shapes_it_holds_is_not_used(
    site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    module: str,
) -> None:
    """The entries, the index and the placing are saved in shapes their modules define: a
    memory written by another version of any of them reads as foreign, never as garbage."""
    changed = tmp_path / "changed.py"
    changed.write_bytes(Path(sys.modules[module].__file__ or "").read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(sys.modules[module], "__file__", str(changed))
    catchup.stamp.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="feedsvc.state.parsecache"):
            assert load_memory(memory_path(site.folder)) is None
        assert "another version" in caplog.text
    finally:
        catchup.stamp.cache_clear()


def test_a_watched_warm_start_has_another_process_list_the_folder_meanwhile(
    site: Site, articles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_p5(articles)
    made_by = tmp_path / "listed-by"
    listing = DirectorySource.listing

    def recorded(source: DirectorySource) -> Listing:
        made_by.write_text(str(os.getpid()))
        return listing(source)

    monkeypatch.setattr(DirectorySource, "listing", recorded)
    reloader, after = site.start(watched=True)
    assert int(made_by.read_text()) != os.getpid()

    def no_scan(_: DirectorySource) -> None:
        raise AssertionError("the catch-up walked the folder again")

    monkeypatch.setattr(DirectorySource, "_walk", no_scan)
    reloader.changed_files = set  # the watch saw nothing change since the listing
    after(reloader.reload())
    assert "P5, edited" in reloader.store.current.documents["feed.atom"].body.decode()


def test_when_the_listing_process_dies_the_catch_up_scans(
    site: Site, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_p5(articles)

    def dies(_: DirectorySource) -> Listing:
        os._exit(1)

    monkeypatch.setattr(DirectorySource, "listing", dies)
    reloader, after = site.start(watched=True)
    reloader.changed_files = set
    after(reloader.reload())
    assert "P5, edited" in reloader.store.current.documents["feed.atom"].body.decode()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_listing_process_runs_on_idle_cpu_only(
    site: Site, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It must not take CPU from the builder's resume or the workers' start: it has the
    whole resume to finish in."""
    listing = DirectorySource.listing

    def noting_policy(source: DirectorySource) -> Listing:
        listed = listing(source)
        listed.paths.append(f"policy {os.sched_getscheduler(0)}")  # comes back with it
        return listed

    monkeypatch.setattr(DirectorySource, "listing", noting_policy)
    reloader, _ = site.start(watched=True)
    (source,) = reloader.sources
    assert isinstance(source, DirectorySource) and source._listed is not None
    assert source._listed.paths[-1] == f"policy {os.SCHED_IDLE}"
    assert os.sched_getscheduler(0) != os.SCHED_IDLE  # the builder's own resume is not


@pytest.mark.parametrize(
    ("files", "listing"),
    [
        (3000, ""),  # a listing larger than a pipe holds: its send would wait for a reader
        # On idle CPU of a busy machine a listing may take long: here it never ends.
        (0, "DirectorySource.listing = lambda source: time.sleep(600);"),
    ],
    ids=["sending", "listing"],
)
def test_a_listing_whose_builder_is_gone_ends(
    make_config: Callable[..., Config], tmp_path: Path, files: int, listing: str
) -> None:
    """A builder stopped while it resumes never reads its listing: the listing process
    must end all the same, or it would hold the state directory's lock it inherited and
    the next start would be refused as a second server."""
    folder = tmp_path / "articles"
    folder.mkdir()
    for n in range(files):
        (folder / f"post-{n:05d}.md").write_text("---\ntitle: x\n---\n", encoding="utf-8")
    config = make_config()
    code = (
        "import os, time; from pathlib import Path;"
        "from feedsvc.config import load_config;"
        "from feedsvc.processes.resume import ListingAhead;"
        "from feedsvc.sources.directory import DirectorySource;"
        f"{listing}"
        f"config = load_config({str(config.path)!r});"
        f"source = DirectorySource(config.sources[0], config.site, Path({str(tmp_path)!r}));"
        "listing = ListingAhead([source]);"
        f"Path({str(tmp_path / 'pid')!r}).write_text(str(listing._process.pid));"
        "os._exit(0)"  # the builder, gone before hand_over
    )
    subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, check=True)
    pid = int((tmp_path / "pid").read_text())
    try:
        assert eventually(lambda: not running(pid), 10), "the listing outlived its builder"
    finally:
        if running(pid):
            os.kill(pid, signal.SIGKILL)

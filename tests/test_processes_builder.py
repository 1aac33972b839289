"""The builder's side and the workers' followers, in one process: a real Unix socket and a
real state directory."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from feedsvc.build.site import SiteRenderer
from feedsvc.metrics import Metrics
from feedsvc.model import Snapshot
from feedsvc.processes import builder as builder_module
from feedsvc.processes.announcer import Announcer
from feedsvc.processes.builder import AfterReload, _make_reloader
from feedsvc.processes.follower import Follower
from feedsvc.processes.resume import memory_path, parse_cache_path, warm_start
from feedsvc.reload.loop import ReloadLoop
from feedsvc.reload.reloader import Reloader
from feedsvc.resources import wsgi_path
from feedsvc.settings import Config
from feedsvc.state.snapshots import read_index
from feedsvc.state.snapshotwriter import SnapshotWriter
from feedsvc.store import Store

from conftest import eventually, write_article


def served(snapshot: Snapshot) -> dict[str, tuple[bytes, str]]:
    """Every document's bytes and tag, after checking the resources serve those documents."""
    documents, resources = snapshot.documents, snapshot.resources
    assert resources.keys() == {wsgi_path(p) for p in documents} | {"/"}
    for path, document in documents.items():
        resource = resources[wsgi_path(path)]
        assert resource.document.gzip_etag == document.gzip_etag, path
        view = documents.get(document.view) if document.view else None
        assert (resource.view_document and resource.view_document.gzip_etag) == (
            view and view.gzip_etag
        ), path
    return {p: (d.gzip_body, d.gzip_etag) for p, d in documents.items()}


def served_bytes(snapshot: Snapshot) -> dict[str, tuple[bytes, str]]:
    """What the builder made (it prepares no resources)."""
    return {p: (d.gzip_body, d.gzip_etag) for p, d in snapshot.documents.items()}


class Builder:
    """A builder process's parts, run in this process."""

    def __init__(self, config: Config, tmp_path: Path) -> None:
        self.reloader = Reloader(config, Store(), prepare=False)
        self.folder = tmp_path / "state" / "snapshots"
        self.writer = SnapshotWriter(self.folder)
        self.after = AfterReload(self.reloader, self.writer, lambda _: None, lambda _: None)
        self.loop = ReloadLoop(self.reloader, self.after)
        self.socket_path = str(tmp_path / "builder.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        listener.listen()
        self.after.announcer = Announcer(listener, self.loop)
        self.after.announcer.start()
        self.loop.start()

    def reload(self) -> int:
        return self.loop.ask().result(30).generation

    def follower(self) -> Follower:
        return Follower(self.socket_path, self.folder, Store())


@pytest.fixture
def builder(make_config: Callable[..., Config], tmp_path: Path) -> Iterator[Builder]:
    yield Builder(make_config(), tmp_path)


def test_every_worker_follows_every_reload_byte_for_byte(builder: Builder, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    for n in range(12):
        write_article(
            folder, f"p{n}.md", title=f"第{n}篇", date=f"2026-01-{n + 1:02d}", tags=["宏观"]
        )
    early = builder.follower()
    # A worker that starts before the first build waits for it...
    starting = threading.Thread(target=early.start, args=(None,))
    starting.start()
    builder.reload()
    starting.join(10)
    assert served(early.store.current) == served_bytes(builder.reloader.store.current)
    # ...and one that starts later serves the newest generation at once.
    late = builder.follower()
    late.start(builder.writer.generation)
    for step in range(3):
        write_article(
            folder, f"p{step}.md", body=f"改稿 {step}", title=f"第{step}篇", date="2026-02-01"
        )
        (folder / f"p{11 - step}.md").unlink()
        generation = builder.reload()
        built = builder.reloader.store.current
        for follower in (early, late):
            assert eventually(
                lambda f=follower, g=generation: f.store.current.generation == g, 10, every=0.01
            )
            assert served(follower.store.current) == served_bytes(built)


def test_a_reload_request_is_answered_after_the_worker_serves_its_result(
    builder: Builder, tmp_path: Path
) -> None:
    folder = tmp_path / "articles"
    write_article(folder, "a.md", title="Before", date="2026-01-01")
    builder.reload()
    follower = builder.follower()
    follower.start(None)
    write_article(folder, "b.md", title="Asked for", date="2026-01-02")
    summary = follower.reload()
    assert summary.articles == 2
    assert b"Asked for" in follower.store.current.documents["feed.atom"].body


def test_files_no_worker_serves_are_removed(builder: Builder, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    write_article(folder, "a.md", title="First", date="2026-01-01", tags=["x"])
    builder.reload()
    follower = builder.follower()
    follower.start(None)
    for n in range(4):
        write_article(folder, "a.md", title=f"Edit {n}", date="2026-01-01", tags=["x"])
        generation = builder.reload()
        assert eventually(
            lambda g=generation: follower.store.current.generation == g, 10, every=0.01
        )
    # Once the worker serves the newest, one more reload collects everything older.
    write_article(folder, "b.md", title="Another", date="2026-01-02")
    generation = builder.reload()
    assert eventually(lambda: follower.store.current.generation == generation, 10, every=0.01)
    builder.reload()
    names = sorted(os.listdir(builder.folder))
    assert [n for n in names if n.startswith("gen-")] == [f"gen-{generation:08d}.idx"]
    # Every segment left holds a piece the newest generation lists, and those of the
    # edits in between (each with a feed head no feed lists any more) are gone.
    segments = {int(n[4:12]) for n in names if n.startswith("seg-")}
    assert segments == set(read_index(builder.folder, generation).segments)
    assert len(segments) < generation
    assert served(follower.store.current) == served_bytes(builder.reloader.store.current)


def test_a_generation_a_worker_cannot_load_is_asked_for_again_after_a_pause(
    builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newest generation is damaged: the worker asks again a second later, not in a
    loop (the builder announces its newest on every connection: reconnecting at once
    made 180,000 attempts in two minutes)."""
    write_article(tmp_path / "articles", "a.md", title="A", date="2026-01-01")
    generation = builder.reload()
    index = builder.folder / f"gen-{generation:08d}.idx"
    whole = index.read_bytes()
    index.write_bytes(whole[:-1])  # truncated
    connections: list[float] = []
    connect = Follower._connect

    def counting(follower: Follower) -> socket.socket:
        connections.append(time.monotonic())
        return connect(follower)

    monkeypatch.setattr(Follower, "_connect", counting)
    follower = builder.follower()
    # start() returns once a generation is served: never, here.
    threading.Thread(target=follower.start, args=(None,), daemon=True).start()
    time.sleep(1.5)
    assert follower.store.current.generation == 0
    assert 2 <= len(connections) <= 3, len(connections)
    # Whole again: the next attempt serves it (and the follower falls quiet, as in the
    # other tests, instead of logging every second for the rest of the session).
    index.write_bytes(whole)
    assert eventually(lambda: follower.store.current.generation == generation, 5)


def test_many_edits_leave_few_segments(
    builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("feedsvc.state.snapshotwriter.MAX_SEGMENTS", 4)
    folder = tmp_path / "articles"
    for n in range(6):
        write_article(folder, f"p{n}.md", title=f"P{n}", date=f"2026-01-0{n + 1}", tags=[f"t{n}"])
    builder.reload()
    follower = builder.follower()
    follower.start(None)
    for n in range(12):
        # Each edit leaves a segment in which the edited entry stays listed.
        write_article(
            folder,
            f"p{n % 6}.md",
            title=f"P{n % 6} v{n}",
            date=f"2026-01-0{n % 6 + 1}",
            tags=[f"t{n % 6}"],
        )
        generation = builder.reload()
        assert eventually(
            lambda g=generation: follower.store.current.generation == g, 10, every=0.01
        )
    builder.reload()
    segments = [n for n in os.listdir(builder.folder) if n.startswith("seg-")]
    assert len(segments) <= 4 + 2
    assert served(follower.store.current) == served_bytes(builder.reloader.store.current)


def test_a_restarted_builder_counts_and_pings_only_what_changed_while_it_was_down(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    folder = tmp_path / "articles"
    for n in range(4):
        write_article(folder, f"p{n}.md", title=f"P{n}", date=f"2022-01-0{n + 1}", tags=[f"t{n}"])
    config = make_config()
    snapshots = tmp_path / "state" / "snapshots"

    def builder() -> tuple[Reloader, AfterReload, list[str]]:
        pinged: list[str] = []
        reloader = Reloader(config, Store(), prepare=False)
        writer = SnapshotWriter(snapshots)
        return reloader, AfterReload(reloader, writer, lambda _: None, pinged.extend), pinged

    reloader, after, _ = builder()
    after(reloader.reload())
    after.saved()  # the caches are written in a thread of their own
    write_article(folder, "p3.md", title="P3, edited", date="2022-01-04", tags=["t3"])
    reloader, after, pinged = builder()
    warm_start(reloader, after.writer, snapshots)
    summary = reloader.reload()
    after(summary)
    # The site, t3 and the author (site.author) in three formats and their three views
    # (the index and the OPML list no entry titles, so they stay).
    assert summary.changed == 12
    assert sorted(pinged) == sorted(
        f"http://127.0.0.1:8080/{feed}.{fmt}"
        for feed in ("feed", "tags/t3/feed", "authors/Desk/feed")
        for fmt in ("rss", "atom", "json")
    )


def test_a_reload_that_finds_nothing_new_builds_and_writes_nothing(
    builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "articles"
    write_article(folder, "a.md", title="Only", date="2026-01-01")
    first = builder.reload()
    follower = builder.follower()
    follower.start(first)
    calls: list[str] = []
    for owner, name in (
        (SiteRenderer, "build"),
        (SiteRenderer, "export"),
        (SnapshotWriter, "write"),
    ):
        real = getattr(owner, name)

        def counted(*args: Any, real: Any = real, name: str = name) -> Any:
            calls.append(name)
            return real(*args)

        monkeypatch.setattr(owner, name, counted)
    before = follower.store.current
    assert builder.reload() == first
    assert calls == []
    # The workers are still told of the reload: /healthz gives its time.
    assert eventually(lambda: follower.store.current.loaded_at != before.loaded_at)
    assert follower.store.current.documents is before.documents
    write_article(folder, "a.md", title="Edited", date="2026-01-01")
    assert builder.reload() == first + 1
    assert calls == ["build", "export", "write"]


def test_the_builder_holds_what_it_wrote_as_views_of_the_snapshot_files(
    builder: Builder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One copy of the pieces per machine: once a generation is written, the builder's
    documents and entries read their bytes from the mapped segments (as workers do), and
    after the writer moved pieces (compaction) none is left on a removed segment."""
    monkeypatch.setattr("feedsvc.state.snapshotwriter.MAX_SEGMENTS", 3)
    folder = tmp_path / "articles"
    for n in range(5):
        write_article(folder, f"p{n}.md", title=f"稿{n}", date=f"2026-01-0{n + 1}", tags=["宏观"])
    follower = builder.follower()
    for step in range(8):
        generation = builder.reload()
        documents = builder.reloader.store.current.documents
        pieces = [piece for doc in documents.values() for piece in doc.pieces]
        assert pieces and all(isinstance(piece, memoryview) for piece in pieces)
        entries = builder.reloader.renderer._entries._entries.values()
        assert all(isinstance(p.deflated, memoryview) for parts in entries for p in parts if p)
        mapped = set(map(id, builder.writer._maps.values()))
        assert all(id(piece.obj) in mapped for piece in pieces)
        if step == 0:
            follower.start(generation)
        assert eventually(lambda g=generation: follower.store.current.generation == g, 10)
        assert served(follower.store.current) == served_bytes(builder.reloader.store.current)
        write_article(
            folder, f"p{step % 5}.md", title=f"改{step}", date="2026-02-01", tags=["宏观"]
        )


def test_a_config_edited_before_the_builder_reads_it_counts_at_its_first_reload(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """The main process reads the config, then forks the builder, which imports its
    modules and loads its state before it makes its reloader: an edit meanwhile is the
    config its first reload runs with (it was the running config's file, unnoticed)."""
    write_article(tmp_path / "articles", "a.md", title="A", date="2022-01-01")
    config = make_config()
    make_config(site={"title": "Edited Newsroom"})  # saved while the builder started
    folder = tmp_path / "state" / "snapshots"
    folder.mkdir(parents=True)
    reloader = _make_reloader(config, folder, Metrics(), restarted=False)
    reloader.reload()
    assert b"<title>Edited Newsroom" in reloader.store.current.documents["feed.atom"].body


def test_the_caches_are_written_beside_the_reloads_that_follow(
    make_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing the parse cache and the builder memory (about a second at 50,000 posts)
    does not hold up the next reload: it runs in a thread of its own."""
    folder = tmp_path / "articles"
    write_article(folder, "a.md", title="A", date="2022-01-01")
    snapshots = tmp_path / "state" / "snapshots"
    snapshots.mkdir(parents=True)
    started, release = threading.Event(), threading.Event()
    write = builder_module.write_together

    def held(files: Any) -> None:
        started.set()
        release.wait(10)
        write(files)

    monkeypatch.setattr(builder_module, "write_together", held)
    reloader = Reloader(make_config(), Store(), prepare=False)
    after = AfterReload(reloader, SnapshotWriter(snapshots), lambda _: None, lambda _: None)
    after(reloader.reload())
    assert started.wait(5)
    write_article(folder, "a.md", title="A, edited", date="2022-01-01")
    after(reloader.reload())  # while the save is held
    assert b"A, edited" in reloader.store.current.documents["feed.atom"].body
    assert not parse_cache_path(snapshots).exists()
    release.set()
    after.saved()
    assert parse_cache_path(snapshots).exists() and memory_path(snapshots).exists()


def test_the_config_is_applied_after_the_announcement_even_when_it_fails(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """The generation goes to the workers first; the config (the folders watched, the
    schedule, which starts after the first reload) is applied then, whatever became of
    the announcement."""
    write_article(tmp_path / "articles", "a.md", title="A", date="2022-01-01")
    snapshots = tmp_path / "state" / "snapshots"
    snapshots.mkdir(parents=True)
    steps: list[str] = []

    class Failing:
        def announce(self, generation: int, status: object) -> None:
            steps.append("announce")
            raise OSError("a worker's socket broke")

    reloader = Reloader(make_config(), Store(), prepare=False)
    after = AfterReload(
        reloader, SnapshotWriter(snapshots), lambda _: steps.append("config"), lambda _: None
    )
    after.announcer = Failing()  # type: ignore[assignment]
    with pytest.raises(OSError, match="socket broke"):
        after(reloader.reload())
    assert steps == ["announce", "config"]

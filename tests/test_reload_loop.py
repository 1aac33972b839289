"""The reload loop (feedsvc.reload): every ask is answered by a reload that started after
it, asks made during a reload are one more reload, and what a reload applies (folders
to watch, feeds to keep) holds through config edits on the real server."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests
import yaml

from feedsvc.processes.announcer import Announcer
from feedsvc.processes.builder import AfterReload
from feedsvc.processes.follower import Follower
from feedsvc.reload.loop import Reloaded, ReloadLoop
from feedsvc.reload.reloader import Reloader, ReloadSummary
from feedsvc.settings import Config
from feedsvc.state.snapshots import SnapshotReader, validate
from feedsvc.state.snapshotwriter import SnapshotWriter
from feedsvc.store import Store
from feedsvc.web import create_app

from conftest import eventually, write_article
from tests.support.processes import children
from tests.support.server import Server, free_port, get, settings

SUMMARY = ReloadSummary(1, 1, 0, 0, 0.0)


class GatedReloader:
    """Stands in for a Reloader: each reload records the state of the world it read,
    and the first one waits at a gate, so that asks can arrive while it runs."""

    def __init__(self) -> None:
        self.world = "before"
        self.seen: list[str] = []  # the world each reload read, in order
        self.running = threading.Event()
        self.gate = threading.Event()

    def reload(self) -> ReloadSummary:
        self.seen.append(self.world)
        if len(self.seen) == 1:
            self.running.set()
            assert self.gate.wait(10)
        return ReloadSummary(len(self.seen), 0, 0, 0, 0.0)


@pytest.fixture
def gated() -> Iterator[tuple[GatedReloader, ReloadLoop]]:
    reloader = GatedReloader()
    loop = ReloadLoop(reloader, lambda summary: summary.articles)  # type: ignore[arg-type]
    loop.start()
    yield reloader, loop
    reloader.gate.set()


def test_asks_during_a_reload_are_answered_by_exactly_one_more_reload(
    gated: tuple[GatedReloader, ReloadLoop],
) -> None:
    reloader, loop = gated
    first = loop.ask()
    assert reloader.running.wait(10)
    reloader.world = "after"  # the reload running has read the world already
    during = [loop.ask() for _ in range(5)]
    poke = threading.Thread(target=loop.poke)  # a signal's ask, from another thread
    poke.start()
    poke.join()  # asked while the first reload runs, not after it
    assert not first.done() and not any(f.done() for f in during)
    reloader.gate.set()
    assert first.result(10).generation == 1
    results = [f.result(10) for f in during]
    assert {r.generation for r in results} == {2}
    assert all(r.summary.articles == 2 for r in results)
    assert reloader.seen == ["before", "after"]
    # One more ask is the third reload: nothing ran in between for nothing.
    assert loop.ask().result(10).generation == 3
    assert reloader.seen == ["before", "after", "after"]


def test_an_ask_is_answered_by_a_reload_that_started_after_it(
    gated: tuple[GatedReloader, ReloadLoop],
) -> None:
    reloader, loop = gated
    reloader.gate.set()
    for n in range(1, 6):
        reloader.world = f"state {n}"
        result = loop.ask().result(10)
        assert reloader.seen[result.generation - 1] == f"state {n}"


class PausingReloader(Reloader):
    """A real Reloader whose first reload pauses after it has read every source."""

    def __init__(self, config: Config) -> None:
        super().__init__(config, Store(), prepare=False)
        self.read = threading.Event()
        self.gate = threading.Event()
        self.reloads = 0

    def reload(self) -> ReloadSummary:
        summary = super().reload()
        self.reloads += 1
        if self.reloads == 1:
            self.read.set()
            assert self.gate.wait(10)
        return summary


def test_every_asker_gets_a_generation_holding_what_was_saved_before_its_ask(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    articles = tmp_path / "articles"
    write_article(articles, "a.md", title="Early", date="2022-01-01")
    reloader = PausingReloader(make_config())
    folder = tmp_path / "state" / "snapshots"
    publisher = AfterReload(reloader, SnapshotWriter(folder), lambda _: None, lambda _: None)
    feeds: dict[int, bytes] = {}  # generation -> its feed.atom, read before any newer one

    def after(summary: ReloadSummary) -> int:
        generation = publisher(summary)
        documents = SnapshotReader(folder).read(generation)[0]
        feeds[generation] = documents["feed.atom"].body
        return generation

    loop = ReloadLoop(reloader, after)
    loop.start()
    first = loop.ask()
    try:
        assert reloader.read.wait(10)
        later: list[Future[Reloaded]] = []
        for n in range(3):
            write_article(articles, f"late{n}.md", title=f"Late {n}", date="2022-02-01")
            later.append(loop.ask())
    finally:
        reloader.gate.set()
    done, _ = wait([first, *later], timeout=20)
    assert len(done) == 4
    early = feeds[first.result().generation]
    assert b"Early" in early and b"Late 0" not in early
    generations = {f.result().generation for f in later}
    assert generations == {first.result().generation + 1}
    final = feeds[generations.pop()]
    assert all(f"Late {n}".encode() in final for n in range(3))
    assert reloader.reloads == 2


def test_an_operator_syncs_with_the_watch_the_schedule_looks_at_every_file() -> None:
    reloader = GatedReloader()
    reloader.gate.set()
    scans: list[tuple[str, str]] = []
    loop = ReloadLoop(reloader, lambda summary: summary.articles)  # type: ignore[arg-type]
    loop.scan = lambda: scans.append(("every file", reloader.world))
    loop.sync = lambda: scans.append(("sync", reloader.world))
    loop.start()
    loop.poke()  # a watch or a remote fetch: what changed
    reloader.world = "watched"
    assert eventually(lambda: len(reloader.seen) == 1)
    assert scans == []
    reloader.world = "asked"
    loop.ask().result(10)  # POST /-/reload: every change made before the ask
    assert scans == [("sync", "asked")]
    reloader.world = "scheduled"
    loop.ask(everything=True).result(10)  # the schedule's safety net, SIGHUP
    assert scans == [("sync", "asked"), ("every file", "scheduled")]


def test_a_failed_publish_does_not_end_the_loop() -> None:
    """Defect (feedsvc/reload.py, ReloadLoop._reload/_run): when `after` raises, the
    askers get the exception, but `_reload` re-raises it and `_run` has no handler, so
    the loop's thread ends: every later ask (schedule, SIGHUP, watch, `POST /-/reload`)
    waits forever and the server never reloads again. (AfterReload catches OSError
    only: any other exception from the writer, the announcer or collect ends the loop.)"""
    calls: list[int] = []

    def after(summary: ReloadSummary) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("publishing failed once")
        return len(calls)

    reloader = GatedReloader()
    reloader.gate.set()
    loop = ReloadLoop(reloader, after)  # type: ignore[arg-type]
    loop.start()
    failed = loop.ask()
    with pytest.raises(RuntimeError, match="failed once"):
        failed.result(10)
    assert loop.ask().result(3).generation == 2


class FullDisk(SnapshotWriter):
    """A writer on a disk that fills up on demand: write raises, as on ENOSPC."""

    full: OSError | None = None

    def write(self, *args: Any, **kwargs: Any) -> int:
        if self.full is not None:
            raise self.full
        return super().write(*args, **kwargs)


class InProcessServer:
    """A builder's parts and one worker's, in this process, over a real Unix socket."""

    def __init__(self, config: Config, tmp_path: Path) -> None:
        self.reloader = Reloader(config, Store(), prepare=False)
        self.folder = tmp_path / "state" / "snapshots"
        self.writer = FullDisk(self.folder)
        self.pings: list[str] = []
        self.after = AfterReload(self.reloader, self.writer, lambda _: None, self.pings.extend)
        self.loop = ReloadLoop(self.reloader, self.after)
        socket_path = str(tmp_path / "builder.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(socket_path)
        listener.listen()
        self.after.announcer = Announcer(listener, self.loop)
        self.after.announcer.start()
        self.loop.start()
        self.first = self.loop.ask().result(30).generation
        self.follower = Follower(socket_path, self.folder, Store())
        self.follower.start(None)
        self.client = create_app(self.follower.store, self.follower).test_client()

    def serves(self, condition: Callable[[], bool]) -> bool:
        return eventually(condition, 10)


@pytest.fixture
def full_disk(make_config: Callable[..., Config], tmp_path: Path) -> InProcessServer:
    articles = tmp_path / "articles"
    write_article(articles, "a.md", title="Before the disk filled", date="2022-01-01")
    return InProcessServer(make_config(), tmp_path)


def test_a_reload_that_cannot_write_its_snapshot_keeps_the_last_generation(
    full_disk: InProcessServer, tmp_path: Path
) -> None:
    server = full_disk
    before = server.client.get("/feed.atom")
    assert server.client.get("/healthz").json["status"] == "ok"
    server.writer.full = OSError(errno.ENOSPC, "No space left on device")
    write_article(tmp_path / "articles", "b.md", title="Written while full", date="2022-02-01")
    result = server.loop.ask().result(30)
    assert result.generation == server.first  # nothing new to serve
    assert validate(server.folder) == server.first

    def degraded() -> bool:
        return bool(server.client.get("/healthz").json["status"] == "degraded")

    assert server.serves(degraded)
    health = server.client.get("/healthz").json
    assert health["generation"] == server.first
    messages = [p["message"] for p in health["problems"]]
    assert any(m.startswith("cannot write the snapshot") and "No space left" in m for m in messages)
    still = server.client.get("/feed.atom", headers={"If-None-Match": before.headers["ETag"]})
    assert still.status_code == 304
    assert b"Written while full" not in server.client.get("/feed.atom").data
    # Space again: the next reload publishes what was skipped, and the problem goes.
    server.writer.full = None
    result = server.loop.ask().result(30)
    assert result.generation == server.first + 1
    assert server.serves(lambda: b"Written while full" in server.client.get("/feed.atom").data)
    assert server.serves(lambda: server.client.get("/healthz").json["status"] == "ok")


def test_feeds_a_failed_write_changed_are_pinged_once_they_are_published(
    full_disk: InProcessServer, tmp_path: Path
) -> None:
    """Defect (feedsvc/processes/builder.py, AfterReload.__call__): when the write fails, the
    URLs the reload changed are dropped (`self._changed.clear()`); the next reload
    publishes those very documents but changed nothing itself, so the WebSub hub is never
    told of them and push subscribers miss the post until some later change."""
    server = full_disk
    base = server.reloader.config.site.base_url.rstrip("/")
    write_article(tmp_path / "articles", "c.md", title="Written with space", date="2022-01-15")
    server.loop.ask().result(30)
    assert f"{base}/feed.atom" in server.pings  # a published change is pinged
    server.pings.clear()
    server.writer.full = OSError(errno.ENOSPC, "No space left on device")
    write_article(tmp_path / "articles", "b.md", title="Written while full", date="2022-02-01")
    server.loop.ask().result(30)
    assert server.pings == []  # nothing new is served yet: no ping
    server.writer.full = None
    server.loop.ask().result(30)
    assert server.serves(lambda: b"Written while full" in server.client.get("/feed.atom").data)
    assert f"{base}/feed.atom" in server.pings, server.pings


# End to end: what the loop applies after a config edit, on the real server.

TOKEN = "loop-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Site:
    """A served config.yaml in tmp_path that a test edits, and the servers it ran."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.config = tmp_path / "config.yaml"
        self.port = free_port()
        self.servers: list[Server] = []

    def configure(self, **sections: Any) -> None:
        data = settings(self.port, server={"workers": 1, "reload_token": TOKEN})
        for name, values in sections.items():
            if isinstance(values, dict):
                data.setdefault(name, {}).update(values)
            else:
                data[name] = values
        self.config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    def start(self) -> Server:
        log = self.tmp_path / f"serve-{len(self.servers)}.log"
        self.servers.append(Server(self.config, self.port, log))
        return self.servers[-1]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    running = Site(tmp_path)
    yield running
    for server in running.servers:
        server.stop()


def reload_now(server: Server) -> dict[str, Any]:
    answer = requests.post(server.base + "/-/reload", headers=AUTH, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.mark.e2e
@pytest.mark.parametrize("made", ["before the edit", "after the edit"])
def test_a_folder_added_by_a_config_edit_is_watched(site: Site, made: str) -> None:
    """The edit turns reload.watch on and adds a folder source; `POST /-/reload` applies
    it (nothing watches the config before). A post saved into the new folder afterwards
    is served with no further signal: the schedule is an hour away.

    Defect, "after the edit" (feedsvc/watch.py, FolderWatch.follow): a source folder that
    does not exist yet when the config is applied cannot be watched ("cannot watch for
    changes ... the scheduled reload picks them up"), and nothing watches for it to
    appear: the config folder's watch only passes events for the config file. Posts
    saved into it wait for the schedule (an hour here)."""
    articles = site.tmp_path / "articles"
    write_article(articles, "a.md", title="In the first folder", date="2022-01-01")
    site.configure(reload={"watch": False})
    server = site.start()
    more = site.tmp_path / "more"
    if made == "before the edit":
        more.mkdir()
    site.configure(
        reload={"watch": True},
        sources=[{"name": "articles", "path": "articles"}, {"name": "more", "path": "more"}],
    )
    reload_now(server)
    more.mkdir(exist_ok=True)
    write_article(more, "b.md", title="Saved into the new folder", date="2022-01-03")
    assert eventually(
        lambda: b"Saved into the new folder" in get(server.base, "/feed.atom").content
    )
    # And the old folder is still watched.
    write_article(articles, "c.md", title="Saved into the first folder", date="2022-01-04")
    assert eventually(
        lambda: b"Saved into the first folder" in get(server.base, "/feed.atom").content
    )


def builders(server: Server) -> list[int]:
    found = []
    for pid in children(server.process.pid):
        with contextlib.suppress(OSError):
            if os.sched_getscheduler(pid) == os.SCHED_IDLE:
                found.append(pid)
    return found


@pytest.mark.e2e
@pytest.mark.parametrize("through", ["a config edit", "a builder restart", "a server restart"])
def test_an_emptied_category_stays_a_feed(site: Site, through: str) -> None:
    """A category whose last article goes stays an empty, valid feed for its subscribers
    (feedsvc.reload.reloader: "kept through config edits too").

    Defect, "a builder restart" and "a server restart" (feedsvc/processes/builder.py with
    feedsvc/reload/reloader.py): the feeds served so far (Reloader.known_nodes) live only in
    the builder's memory; neither the generation's builder section nor warm_start
    carries them, so the first reload of a new builder drops the emptied category and
    its feed turns into a 404."""
    articles = site.tmp_path / "articles"
    write_article(articles, "solo.md", title="Only one", date="2022-01-01", categories=["Solo"])
    write_article(articles, "keep.md", title="Kept", date="2022-01-02", categories=["Other"])
    site.configure(reload={"watch": False})
    server = site.start()
    path = "/categories/Solo/feed.atom"
    assert get(server.base, path).status_code == 200
    (articles / "solo.md").unlink()
    assert reload_now(server)["articles"] == 1
    emptied = get(server.base, path)
    assert emptied.status_code == 200  # subscribers keep a valid, empty feed
    assert feedparser.parse(emptied.content).entries == []
    if through == "a builder restart":
        builder = builders(server)
        assert len(builder) == 1
        os.kill(builder[0], signal.SIGKILL)
        assert eventually(lambda: builders(server) not in ([], builder), 15)
    elif through == "a server restart":
        assert server.stop() == 0
        server = site.start()
    site.configure(reload={"watch": False}, site={"title": "Renamed Newsroom"})
    assert eventually(lambda: b"Renamed Newsroom" in reload_and_get(server, "/feed.atom"))
    after = get(server.base, path)
    assert after.status_code == 200, "the emptied category's feed became a 404"
    feed = feedparser.parse(after.content)
    assert not feed.bozo and feed.entries == []
    assert feed.feed.title.startswith("Renamed Newsroom")


def reload_and_get(server: Server, path: str) -> bytes:
    """The document after a reload (a reload asked of a builder not yet back fails)."""
    with contextlib.suppress(requests.RequestException):
        requests.post(server.base + "/-/reload", headers=AUTH, timeout=10)
    return get(server.base, path).content

"""feedsvc.watch: a change in a source folder asks for a reload at once, and a burst for at
most one more."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from watchdog.events import (
    FileClosedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from feedsvc.settings import Config
from feedsvc.watch import FolderWatch, _Handler

from conftest import write_article


class Calls:
    """The watch's `on_change`: each call drains the watch, as a reload does, and is kept
    with what it drained (None: every file), so that a test can wait for the call that saw
    a given file and look at every call before it."""

    def __init__(self) -> None:
        self.watch: FolderWatch | None = None
        self.drained: list[set[str] | None] = []
        self._seen = 0  # calls already handed to a test by `until`
        self._changed = threading.Condition()

    def __call__(self) -> None:
        assert self.watch is not None
        with self._changed:
            self.drained.append(self.watch.drain())
            self._changed.notify_all()

    def until(self, path: Path, seconds: float = 5) -> list[set[str] | None]:
        """The calls since the last `until`, up to the first that drained `path` (or every
        file); fails after `seconds` without one."""
        wanted = os.path.realpath(path)

        def index() -> int | None:
            for n in range(self._seen, len(self.drained)):
                drained = self.drained[n]
                if drained is None or wanted in drained:
                    return n
            return None

        with self._changed:
            assert self._changed.wait_for(lambda: index() is not None, seconds), (
                f"no call drained {path} within {seconds} s: {self.drained[self._seen :]}"
            )
            found = index()
            assert found is not None
            calls, self._seen = self.drained[self._seen : found + 1], found + 1
        return calls

    def wait(self, seconds: float = 5) -> bool:
        """Whether a call comes (after those handed out so far) within `seconds`."""
        with self._changed:
            found = self._changed.wait_for(lambda: len(self.drained) > self._seen, seconds)
            self._seen = len(self.drained)
        return found


@pytest.fixture
def start_watch() -> Iterator[Callable[[float], tuple[FolderWatch, Calls]]]:
    """Makes watches (with their settle time) that are stopped after the test."""
    started: list[FolderWatch] = []

    def start(settle_seconds: float) -> tuple[FolderWatch, Calls]:
        calls = Calls()
        calls.watch = FolderWatch(calls, settle_seconds)
        started.append(calls.watch)
        return calls.watch, calls

    yield start
    for watch in started:
        watch.stop()


@pytest.fixture
def watching(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config
) -> tuple[FolderWatch, Calls]:
    """A watch of `config` whose files are known: its next drain names what changes next."""
    watch, calls = start_watch(0.2)
    watch.follow(config)
    watch.drain()
    return watch, calls


def test_a_new_edited_or_deleted_post_asks_for_a_reload(
    watching: tuple[FolderWatch, Calls], articles_dir: Path
) -> None:
    _, calls = watching
    post = write_article(articles_dir / "2026" / "11", "new.md", title="New", date="2026-11-25")
    calls.until(post)
    post.write_text(post.read_text(encoding="utf-8") + "\nMore.\n", encoding="utf-8")
    calls.until(post)
    post.unlink()
    calls.until(post)


def test_a_burst_of_writes_is_at_most_two_reloads(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config, articles_dir: Path
) -> None:
    watch, calls = start_watch(1.0)  # wide enough for a slow disk
    watch.follow(config)
    watch.drain()
    posts = [  # as a git pull or an rsync would
        write_article(articles_dir, f"p{n}.md", title=f"P{n}", date="2026-11-25") for n in range(30)
    ]
    # The watch reports a folder's events in order: the call that drains the last post
    # comes after every post's events.
    burst = calls.until(posts[-1], seconds=10)
    assert None in burst or set().union(*burst) == {os.path.realpath(post) for post in posts}
    # The first completed write at once, the rest of the burst once it settles...
    assert len(burst) <= 2, burst
    # ...and nothing more: the next call is for the next write, and drains only it.
    later = write_article(articles_dir, "later.md", title="Later", date="2026-11-25")
    assert calls.until(later) == [{os.path.realpath(later)}]


def test_reading_the_posts_asks_for_nothing(
    watching: tuple[FolderWatch, Calls], articles_dir: Path
) -> None:
    _, calls = watching
    post = write_article(articles_dir, "p.md", title="P", date="2026-11-25")
    calls.until(post)
    post.read_bytes()  # what a reload does: it must not start another one
    # The watch reports a folder's events in order: by the call for a later write, the
    # read's events have been seen, and neither asked nor left the post to drain.
    later = write_article(articles_dir, "later.md", title="Later", date="2026-11-25")
    assert calls.until(later) == [{os.path.realpath(later)}]


def test_watch_off_or_no_folder_watches_nothing(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]],
    make_config: Callable[..., Config],
    articles_dir: Path,
) -> None:
    watch, calls = start_watch(0.05)
    watch.follow(make_config(reload={"watch": False}))
    assert watch.folders == set()
    write_article(articles_dir, "p.md", title="P", date="2026-11-25")
    # A config edit that turns it on: the first call is for the first file written since.
    watch.follow(make_config())
    assert watch.folders == {str(articles_dir.resolve())}
    watch.drain()
    later = write_article(articles_dir, "later.md", title="Later", date="2026-11-25")
    assert calls.until(later) == [{os.path.realpath(later)}]
    # And one that points at a missing folder.
    watch.follow(make_config(sources=[{"name": "gone", "path": "nowhere"}]))
    assert watch.folders == set()


def test_the_config_file_counts_and_its_neighbours_do_not(
    watching: tuple[FolderWatch, Calls], config: Config
) -> None:
    _, calls = watching
    folder = Path(config.path).parent
    # Saved in place, and saved the way many editors do: a new file renamed over it.
    Path(config.path).write_text(Path(config.path).read_text(encoding="utf-8"), "utf-8")
    assert calls.wait()
    (folder / "config.yaml.new").write_text(Path(config.path).read_text(encoding="utf-8"))
    (folder / "config.yaml.new").replace(config.path)
    assert calls.wait()


def test_the_config_folder_watch_passes_over_every_other_file(tmp_path: Path) -> None:
    # A call for the config names no file, so no later inotify event could show that a
    # neighbour's write was passed over: the filter is asked event by event instead.
    config_path = str(tmp_path / "config.yaml")
    seen: list[tuple[bool, tuple[str, ...] | None]] = []
    handler = _Handler(
        lambda complete, paths: seen.append((complete, paths)), config_path, lambda _path: None
    )
    neighbour, draft = str(tmp_path / "notes.txt"), str(tmp_path / "config.yaml.new")
    for event in (
        FileModifiedEvent(neighbour),
        FileClosedEvent(neighbour),
        FileClosedEvent(draft),
        FileDeletedEvent(neighbour),
    ):
        handler.on_any_event(event)
    assert seen == []
    handler.on_any_event(FileClosedEvent(config_path))
    handler.on_any_event(FileMovedEvent(draft, config_path))
    assert seen == [(True, ()), (True, ())]


def test_a_completed_write_asks_at_once_not_when_the_burst_settles(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config, articles_dir: Path
) -> None:
    watch, calls = start_watch(30.0)  # a settle time no test waits for
    watch.follow(config)
    post = write_article(articles_dir, "p.md", title="P", date="2026-11-25")  # written, closed
    calls.until(post)


def test_one_saved_file_is_one_reload(
    watching: tuple[FolderWatch, Calls], articles_dir: Path
) -> None:
    _, calls = watching
    a = write_article(articles_dir, "a.md", title="A", date="2026-11-25")  # made, written, closed
    assert calls.until(a) == [{os.path.realpath(a)}]
    # A second call for the same save would come before the next file's, or with it, and
    # drain something other than that file alone.
    b = write_article(articles_dir, "b.md", title="B", date="2026-11-25")
    assert calls.until(b) == [{os.path.realpath(b)}]


def test_the_watch_remembers_which_files_changed(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config, articles_dir: Path
) -> None:
    watch, calls = start_watch(0.2)
    watch.follow(config)
    assert watch.drain() is None  # files of a folder just watched are not known
    post = write_article(articles_dir, "p.md", title="P", date="2026-11-25")
    assert calls.until(post) == [{os.path.realpath(post)}]
    assert watch.drain() == set()
    (articles_dir / "2027").mkdir()  # a folder: any file under it may be new
    later = write_article(articles_dir / "2027", "q.md", title="Q", date="2026-11-25")
    assert calls.until(later)[-1] is None
    watch.forget()  # the scheduled reload: look at everything
    assert watch.drain() is None


def test_sync_waits_for_every_change_made_before_it(config: Config, articles_dir: Path) -> None:
    """An operator's request after a save: the save's events may not have been read yet.
    `sync` returns once they have (the cookie's event comes after them), so the next
    drain names the file."""
    watch = FolderWatch(lambda: None)
    seen = watch._changed

    def late(complete: bool, paths: tuple[str, ...] | None) -> None:
        time.sleep(0.1)  # a busy watch: each event is handled 0.1 s after it came
        seen(complete, paths)

    watch._changed = late  # type: ignore[method-assign]
    try:
        watch.follow(config)
        assert watch.drain() is None  # a folder just watched: every file
        post = write_article(articles_dir, "saved.md", title="Saved", date="2026-11-25")
        watch.sync()
        assert watch.drain() == {os.path.realpath(post)}
        assert not [p for p in os.listdir(articles_dir) if p.startswith(".feedsvc")]
    finally:
        watch.stop()


def test_a_sync_that_cannot_be_seen_looks_at_every_file(config: Config) -> None:
    watch = FolderWatch(lambda: None)
    watch._cookie_seen = lambda _path: None  # type: ignore[method-assign]
    try:
        watch.follow(config)
        watch.drain()
        assert watch.drain() == set()
        watch.sync(timeout=0.2)
        assert watch.drain() is None
    finally:
        watch.stop()


def test_a_sync_without_a_watch_looks_at_every_file(config: Config) -> None:
    watch = FolderWatch(lambda: None)
    watch.sync()
    assert watch.drain() is None


def test_after_restart_the_next_drain_holds_what_changed_since(
    config: Config, articles_dir: Path
) -> None:
    """What the builder's start relies on: watched, then `restart`, then a listing; the
    first reload is told what changed after it (and not that everything may have)."""
    watch = FolderWatch(lambda: None)
    try:
        watch.follow(config)
        assert watch.restart()
        post = write_article(articles_dir, "p.md", title="P", date="2026-11-25")
        watch.sync()
        assert watch.drain() == {os.path.realpath(post)}
    finally:
        watch.stop()


def test_restart_says_so_when_a_folder_is_not_watched(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(sources=[{"name": "missing", "path": str(tmp_path / "nowhere")}])
    watch = FolderWatch(lambda: None)
    try:
        watch.follow(config)
        assert not watch.restart()
        assert watch.drain() is None
    finally:
        watch.stop()

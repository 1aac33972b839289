"""feedsvc.watch: a change in a source folder asks for a reload at once, and a burst for at
most one more."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feedsvc.config import Config
from feedsvc.watch import FolderWatch

from conftest import write_article


class Calls:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def wait(self, seconds: float = 5) -> bool:
        found = self.event.wait(seconds)
        self.event.clear()
        return found

    def settle(self) -> None:
        """Let the rest of a burst's events pass, so that the next wait is for the next step."""
        time.sleep(0.5)
        self.event.clear()


@pytest.fixture
def start_watch() -> Iterator[Callable[[float], tuple[FolderWatch, Calls]]]:
    """Makes watches (with their settle time) that are stopped after the test."""
    started: list[FolderWatch] = []

    def start(settle_seconds: float) -> tuple[FolderWatch, Calls]:
        calls = Calls()
        started.append(FolderWatch(calls, settle_seconds))
        return started[-1], calls

    yield start
    for watch in started:
        watch.stop()


@pytest.fixture
def watching(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config
) -> tuple[FolderWatch, Calls]:
    watch, calls = start_watch(0.2)
    watch.follow(config)
    return watch, calls


def test_a_new_edited_or_deleted_post_asks_for_a_reload(
    watching: tuple[FolderWatch, Calls], articles_dir: Path
) -> None:
    _, calls = watching
    post = write_article(articles_dir / "2026" / "11", "new.md", title="New", date="2026-11-25")
    assert calls.wait()
    calls.settle()
    post.write_text(post.read_text(encoding="utf-8") + "\nMore.\n", encoding="utf-8")
    assert calls.wait()
    calls.settle()
    post.unlink()
    assert calls.wait()


def test_a_burst_of_writes_is_at_most_two_reloads(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config, articles_dir: Path
) -> None:
    watch, calls = start_watch(1.0)  # wide enough for a slow disk
    watch.follow(config)
    for n in range(30):  # as a git pull or an rsync would
        write_article(articles_dir, f"p{n}.md", title=f"P{n}", date="2026-11-25")
    assert calls.wait()
    time.sleep(1.5)
    # The first completed write at once, the rest of the burst once it settles.
    assert calls.count <= 2


def test_reading_the_posts_asks_for_nothing(
    watching: tuple[FolderWatch, Calls], articles_dir: Path
) -> None:
    _, calls = watching
    post = write_article(articles_dir, "p.md", title="P", date="2026-11-25")
    assert calls.wait()
    calls.settle()
    post.read_bytes()  # what a reload does: it must not start another one
    assert not calls.wait(0.6)


def test_watch_off_or_no_folder_watches_nothing(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]],
    make_config: Callable[..., Config],
    articles_dir: Path,
) -> None:
    watch, calls = start_watch(0.05)
    watch.follow(make_config(reload={"watch": False}))
    assert watch.folders == set()
    write_article(articles_dir, "p.md", title="P", date="2026-11-25")
    assert not calls.wait(0.5)
    # A config edit that turns it on, and one that points at a missing folder.
    watch.follow(make_config())
    assert watch.folders == {str(articles_dir.resolve())}
    watch.follow(make_config(sources=[{"name": "gone", "path": "nowhere"}]))
    assert watch.folders == set()


def test_the_config_file_counts_and_its_neighbours_do_not(
    watching: tuple[FolderWatch, Calls], config: Config
) -> None:
    _, calls = watching
    folder = Path(config.path).parent
    (folder / "notes.txt").write_text("not a source, not the config", encoding="utf-8")
    assert not calls.wait(0.6)
    # Saved in place, and saved the way many editors do: a new file renamed over it.
    Path(config.path).write_text(Path(config.path).read_text(encoding="utf-8"), "utf-8")
    assert calls.wait()
    calls.settle()
    (folder / "config.yaml.new").write_text(Path(config.path).read_text(encoding="utf-8"))
    assert not calls.wait(0.6)  # a neighbour; only the rename below counts
    (folder / "config.yaml.new").replace(config.path)
    assert calls.wait()


def test_a_completed_write_asks_at_once_not_when_the_burst_settles(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config, articles_dir: Path
) -> None:
    watch, calls = start_watch(30.0)  # a settle time no test waits for
    watch.follow(config)
    write_article(articles_dir, "p.md", title="P", date="2026-11-25")  # written and closed
    assert calls.wait(5)


def test_one_saved_file_is_one_reload(
    start_watch: Callable[[float], tuple[FolderWatch, Calls]], config: Config, articles_dir: Path
) -> None:
    watch, calls = start_watch(0.2)
    watch.follow(config)
    write_article(articles_dir, "a.md", title="A", date="2026-11-25")  # created, modified, closed
    assert calls.wait()
    time.sleep(0.6)  # past the settle time: a second call for the same save would be in
    calls.event.clear()
    write_article(articles_dir, "b.md", title="B", date="2026-11-25")
    assert calls.wait()
    assert calls.count == 2


def test_the_watch_remembers_which_files_changed(
    watching: tuple[FolderWatch, Calls], articles_dir: Path
) -> None:
    watch, calls = watching
    assert watch.drain() is None  # files of a folder just watched are not known
    post = write_article(articles_dir, "p.md", title="P", date="2026-11-25")
    assert calls.wait()
    assert watch.drain() == {os.path.realpath(post)}
    assert watch.drain() == set()
    (articles_dir / "2027").mkdir()  # a folder: any file under it may be new
    write_article(articles_dir / "2027", "q.md", title="Q", date="2026-11-25")
    assert calls.wait()
    assert watch.drain() is None
    watch.forget()  # the scheduled reload: look at everything
    assert watch.drain() is None

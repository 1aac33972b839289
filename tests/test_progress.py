"""Progress bars: on the terminal's standard error only, never among the problem lines."""

from __future__ import annotations

import io
from pathlib import Path

from feedsvc.config import Config
from feedsvc.progress import Progress
from feedsvc.reload.reloader import Reloader
from feedsvc.store import Store

from conftest import write_article
from tests.support.commands import run_cli


def test_bar_draws_on_its_stream_with_rate() -> None:
    stream = io.StringIO()
    with Progress(True, stream, delay=0).bar("objects", 3, "objects") as advance:
        advance(1)
    assert "objects:" in stream.getvalue()
    assert "/3 [" in stream.getvalue()


def test_disabled_progress_draws_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(False, stream)
    with progress.bar("objects", 3, "objects") as advance:
        advance(3)
    with progress.files([]):
        pass
    assert stream.getvalue() == ""


def test_check_off_a_terminal_prints_problems_and_summary_only(
    config: Config, articles_dir: Path
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    (articles_dir / "bad.md").write_text("---\ntitle: x\ndate: 2021-13-45\n---\n")
    done = run_cli("check", "--config", config.path, "--quiet")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "articles/bad.md:3: date: month must be in 1..12",
        "1 articles, 10 documents, 1 errors, 0 warnings",  # site, author Desk, index, OPML
    ]
    assert "%|" not in done.stderr  # no bar off a terminal


def test_files_then_feed_entries_are_followed_with_their_rate(
    config: Config, articles_dir: Path
) -> None:
    for n in range(400):
        write_article(
            articles_dir, f"p{n}.md", f"正文 {n}。" * 50, title=f"稿件 {n}", date="2022-01-01"
        )
    reloader = Reloader(config, Store())
    stream = io.StringIO()
    with Progress(True, stream, delay=0).files(reloader.sources, reloader.renderer):
        reloader.reload()
    drawn = stream.getvalue()
    assert "files read" in drawn and "/400" in drawn
    assert "feed entries rendered" in drawn and "entries/s" in drawn

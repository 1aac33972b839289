import gzip
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from feedsvc.cli import main
from feedsvc.config import Config

from conftest import write_article
from tests.support.commands import run_cli


def test_invalid_config_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "site:\n  base_url: http://127.0.0.1:8080\n"
        "sources: [{name: a, path: a}]\n"
        "feeds:\n  limt: 5\n"
    )
    for command in (["serve"], ["check"], ["build", "--out", str(tmp_path / "out")]):
        result = run_cli(*command, "--config", "config.yaml", cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip() == f"{tmp_path / 'config.yaml'}:5: feeds.limt: unknown key"
        assert "Traceback" not in result.stderr


def test_check_exits_0_when_clean(
    config: Config, articles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    assert main(["check", "--config", config.path]) == 0
    assert capsys.readouterr().out.strip() == "1 articles, 10 documents, 0 errors, 0 warnings"


def test_check_exits_1_and_prints_path_line_for_bad_files(
    config: Config, articles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    (articles_dir / "bad.md").write_text("---\ntitle: x\ndate: 2021-13-45\n---\n")
    assert main(["check", "--config", config.path]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("articles/bad.md:3: date: month must be in 1..12")
    assert lines[-1] == "1 articles, 10 documents, 1 errors, 0 warnings"


def test_build_writes_every_document(
    make_config: Callable[..., Config], articles_dir: Path, tmp_path: Path
) -> None:
    config = make_config()
    write_article(articles_dir, "a.md", title="A", date="2022-01-01", categories=["金融", "银行"])
    out = tmp_path / "site"
    assert main(["build", "--config", config.path, "--out", str(out)]) == 0
    written = sorted(
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.suffix != ".gz"
    )
    packed = sorted(str(p.relative_to(out)) for p in out.rglob("*.gz"))
    assert packed == [f"{path}.gz" for path in written]
    assert gzip.decompress((out / "feed.atom.gz").read_bytes()) == (out / "feed.atom").read_bytes()
    stamp = datetime(2022, 1, 1, tzinfo=UTC).astimezone(UTC)
    assert (out / "feed.atom").stat().st_mtime == (out / "feed.atom.gz").stat().st_mtime
    assert (out / "feed.atom").stat().st_mtime == stamp.timestamp() - 8 * 3600
    feeds = sorted(
        f"{d}{name}"
        for d in ("", "authors/Desk/", "categories/金融/", "categories/金融/银行/")
        for name in ("feed.atom", "feed.html", "feed.json", "feed.rss")
    )
    assert written == [*feeds, "feeds.opml", "index.html"]
    assert feedparser.parse((out / "feed.atom").read_bytes()).entries[0].title == "A"
    first = {p: (out / p).read_bytes() for p in written}
    assert main(["build", "--config", config.path, "--out", str(out)]) == 0
    assert {p: (out / p).read_bytes() for p in written} == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]


def test_a_failed_build_leaves_the_previous_output_intact(
    config: Config, articles_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    out = tmp_path / "site"
    assert main(["build", "--config", config.path, "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_article(articles_dir, "a.md", title="A, edited", date="2022-01-01")
    calls = [0]
    real_write = Path.write_bytes

    def disk_full(self: Path, data: bytes) -> int:
        calls[0] += 1
        if calls[0] > 3:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    assert main(["build", "--config", config.path, "--out", str(out)]) == 1
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site")] == []


SETTLE = r"""
import gc, sys
from pathlib import Path
from feedsvc.processes.follower import settle_garbage
from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.store import Store
reloader = Reloader(load_config(Path(sys.argv[1])), Store())
post = Path(sys.argv[2])
text = post.read_text(encoding="utf-8")
for n in range(8):
    post.write_text(text.replace("Body text.", f"Body text, edit {n}."), encoding="utf-8")
    reloader.reload()
    settle_garbage()
assert "edit 7" in reloader.store.current.documents["feed.atom"].body.decode()
gc.unfreeze()
print(gc.collect())
"""


def test_reloads_leave_no_cyclic_garbage_to_freeze(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    """Workers freeze what survives each reload; cycles frozen there would never be freed."""
    config = make_config()
    post = write_article(tmp_path / "articles", "a.md", title="A", date="2024-01-01")
    write_article(tmp_path / "articles", "b.md", title="B", date="2024-01-02", tags=["x"])
    done = subprocess.run(
        [sys.executable, "-c", SETTLE, config.path, str(post)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "0"

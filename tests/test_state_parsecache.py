"""The parse cache file: a restart parses only what changed; a bad file is ignored, never fatal."""

import datetime
import logging
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from feedsvc.build.gzparts import crc32
from feedsvc.settings import Config
from feedsvc.sources.directory import DirectorySource
from feedsvc.state import parsecache
from feedsvc.state.parsecache import load_parse_cache, matching_files, save_parse_cache

from conftest import write_article

LATER = 1_800_000_000_000_000_000  # an mtime (ns) after anything the tests write


def source_for(config: Config) -> DirectorySource:
    return DirectorySource(config.sources[0], config.site, Path(config.path).parent)


def save(source: DirectorySource, path: Path) -> None:
    save_parse_cache(path, {source.config.name: (source.fingerprint, source.export_cache())})


def restored(config: Config, path: Path) -> DirectorySource:
    """A new source, as a restarted process makes it, seeded from the file."""
    source = source_for(config)
    files = matching_files(load_parse_cache(path), source.config.name, source.fingerprint)
    source.import_cache(files)
    return source


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    (tmp_path / "state").mkdir()
    return tmp_path / "state" / "parsecache.bin"


@pytest.fixture
def saved(config: Config, articles_dir: Path, cache_file: Path) -> DirectorySource:
    """A source that has read three files (one of them broken) and saved its cache."""
    write_article(articles_dir, "a.md", title="A", date="2022-01-01", categories=["金融"])
    write_article(articles_dir, "b.md", title="B", date="2022-01-02", tags=["A股"])
    (articles_dir / "bad.md").write_text("---\ntitle: ok\ndate: [unclosed\n---\nbody\n", "utf-8")
    source = source_for(config)
    source.read()
    save(source, cache_file)
    return source


def by_path(source: DirectorySource) -> dict[str, tuple[object, ...]]:
    result = source.read()
    return {a.path: (a, a.revision) for a in result.articles} | {"problems": result.problems}


@pytest.mark.parametrize("batch", [512, 1], ids=["one pickle", "a pickle per file"])
def test_a_restored_source_parses_nothing_and_gives_the_same_articles(
    config: Config,
    saved: DirectorySource,
    cache_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: int,
) -> None:
    monkeypatch.setattr(parsecache, "BATCH", batch)
    save(saved, cache_file)
    source = restored(config, cache_file)
    found = by_path(source)
    assert source.reads == 0
    assert found == by_path(saved)
    assert sorted(found) == ["a.md", "b.md", "problems"]
    assert found["problems"]  # the broken file's problem is remembered too


@pytest.mark.parametrize("batch", [512, 1], ids=["one pickle", "a pickle per file"])
def test_restored_articles_hold_the_values_they_share_as_one_object(
    config: Config,
    articles_dir: Path,
    cache_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: int,
) -> None:
    """Across batches and with what this process parses later (feedsvc.sources.shared)."""
    monkeypatch.setattr(parsecache, "BATCH", batch)
    for name in ("a", "b", "c"):
        write_article(articles_dir, f"{name}.md", title=name, categories=[["市场", "A股"]])
    source = source_for(config)
    source.read()
    save(source, cache_file)
    restarted = restored(config, cache_file)
    loaded = sorted(restarted.read().articles, key=lambda a: a.path)
    assert len({id(a.categories) for a in loaded}) == 1
    assert len({id(a.authors) for a in loaded}) == 1
    write_article(articles_dir, "d.md", title="d", categories=[["市场", "A股"]])
    parsed = next(a for a in restarted.read().articles if a.path == "d.md")
    assert parsed.categories is loaded[0].categories


def test_files_changed_after_saving_are_parsed_again(
    config: Config, saved: DirectorySource, cache_file: Path, articles_dir: Path
) -> None:
    edited = write_article(articles_dir, "b.md", title="B edited", date="2022-01-02")
    os.utime(edited, ns=(LATER, LATER))
    (articles_dir / "a.md").unlink()
    write_article(articles_dir, "c.md", title="C", date="2022-01-03")
    source = restored(config, cache_file)
    titles = sorted(a.title for a in source.read().articles)
    assert titles == ["B edited", "C"]
    assert source.reads == 2  # b.md and c.md; bad.md comes from the file


def test_a_cache_saved_under_other_settings_is_not_used(
    make_config: Callable[..., Config], saved: DirectorySource, cache_file: Path
) -> None:
    config = make_config(site={"timezone": "UTC"})
    source = restored(config, cache_file)
    assert source.fingerprint != saved.fingerprint
    source.read()
    assert source.reads == 3


def test_a_cache_saved_before_an_edit_of_what_articles_are_not_made_of_is_used(
    make_config: Callable[..., Config], saved: DirectorySource, cache_file: Path
) -> None:
    """The site's description, title (with an author set), language and icon are the
    feeds', not the articles': a restart after an edit of them parses nothing."""
    config = make_config(site={"description": "财经要闻", "title": "Renamed", "language": "zh-CN"})
    source = restored(config, cache_file)
    assert source.fingerprint == saved.fingerprint
    source.read()
    assert source.reads == 0


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[:-1], "truncated"),
        (lambda data: data[:10], "truncated"),
        (lambda data: b"", "truncated"),
        (lambda data: _flip(data, len(data) // 2), "garbled"),
        (lambda data: _flip(data, len(data) - 1), "garbled"),
        (lambda data: data[:8] + struct.pack("<I", 99) + data[12:], "another version"),
        (lambda data: _flip(data, 14), "another version"),  # the stamp: other parser code
        (lambda data: b"<html>not this</html>" + data, "not a parse cache"),
    ],
    ids=[
        "half",
        "last byte",
        "in the header",
        "empty",
        "byte flipped",
        "checksum flipped",
        "version",
        "stamp",
        "foreign",
    ],
)
def test_a_damaged_file_is_ignored_with_a_warning(
    saved: DirectorySource,
    cache_file: Path,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[bytes], bytes],
    reason: str,
) -> None:
    cache_file.write_bytes(damage(cache_file.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="feedsvc.state.parsecache"):
        assert load_parse_cache(cache_file) == {}
    [record] = caplog.records
    assert reason in record.getMessage()
    assert str(cache_file) in record.getMessage()


def test_a_missing_file_is_silent(cache_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_parse_cache(cache_file) == {}
    assert caplog.records == []


class _Planted:
    """Unpickling it would make a folder: what a hostile file would do, harmlessly."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


def test_a_file_naming_other_classes_runs_no_code(
    cache_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    planted = tmp_path / "planted"
    payload = pickle.dumps([_Planted(str(planted))])  # right length and checksum
    head = parsecache.HEADER.pack(parsecache.MAGIC, parsecache.VERSION, parsecache.stamp())
    digest = crc32(payload)
    cache_file.write_bytes(head + payload + parsecache.TRAILER.pack(len(payload), digest))
    with caplog.at_level(logging.WARNING):
        assert load_parse_cache(cache_file) == {}
    assert not planted.exists()
    assert "garbled" in caplog.records[0].getMessage()


class _Rebuilt:
    """Asks the cache's own rebuilder for an object of a class that is not the model's."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (parsecache.rebuild, (datetime.timedelta, (1,)))


def test_the_rebuilder_makes_model_objects_only(
    cache_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = pickle.dumps([_Rebuilt()])
    head = parsecache.HEADER.pack(parsecache.MAGIC, parsecache.VERSION, parsecache.stamp())
    digest = crc32(payload)
    cache_file.write_bytes(head + payload + parsecache.TRAILER.pack(len(payload), digest))
    with caplog.at_level(logging.WARNING):
        assert load_parse_cache(cache_file) == {}
    assert "garbled" in caplog.records[0].getMessage()


def test_a_failed_save_leaves_the_previous_file_whole(
    config: Config, saved: DirectorySource, cache_file: Path
) -> None:
    unpicklable = {"articles": ("f", {"x.md": ((1, 2, 3), None, (lambda: None,))})}
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_parse_cache(cache_file, unpicklable)  # type: ignore[dict-item]
    assert [p.name for p in cache_file.parent.iterdir()] == [cache_file.name]
    assert restored(config, cache_file).read().articles
    assert load_parse_cache(cache_file)["articles"][0] == saved.fingerprint


def test_the_stamp_follows_the_versions_of_the_parsers_libraries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new PyYAML (or markdown-it-pyrs, nh3, tzdata) may parse a file differently: a
    cache written with another version is stale. python-frontmatter, which gives no
    version, is followed by its source."""
    import frontmatter
    import yaml

    before = parsecache.stamp.__wrapped__()
    assert parsecache.stamp.__wrapped__() == before
    monkeypatch.setattr(yaml, "__version__", "99.0")
    assert parsecache.stamp.__wrapped__() != before
    monkeypatch.undo()
    digest = parsecache.sources_digest
    monkeypatch.setattr(
        parsecache,
        "sources_digest",
        lambda names: b"other" if list(names) == ["frontmatter"] else digest(names),
    )
    assert not hasattr(frontmatter, "__version__")
    assert parsecache.stamp.__wrapped__() != before

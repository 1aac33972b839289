"""Snapshot files, in process: what the builder writes is what a worker reads, an
unchanged reload writes nothing, and a damaged state directory is refused, never served."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feedsvc.model import Document
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.state import snapshots
from feedsvc.state.files import StateError, hold, write_atomically, write_together
from feedsvc.state.snapshots import (
    FOOTER,
    ROW,
    SHARDS,
    VERSION,
    BadStateError,
    SnapshotReader,
    Status,
    index_path,
    read_index,
    segment_path,
    validate,
)
from feedsvc.state.snapshotwriter import MAX_SEGMENTS, SnapshotWriter
from feedsvc.store import Store

from conftest import SAMPLE_SHAPED, write_article

STATUS = Status(article_count=3, cache_max_age=120, reload_token="t")


class Site:
    """A folder source, its Reloader (the builder's, serving nothing itself) and a writer."""

    def __init__(self, config: Config, tmp_path: Path) -> None:
        self.articles = tmp_path / "articles"
        self.reloader = Reloader(config, Store(), prepare=False)
        self.folder = tmp_path / "state" / "snapshots"
        self.writer = SnapshotWriter(self.folder)

    def build(self) -> dict[str, Document]:
        self.reloader.reload()
        return dict(self.reloader.store.current.documents)

    def publish(self) -> int:
        return self.writer.write(self.build(), STATUS, self.reloader.renderer.export())


@pytest.fixture
def site(make_config: Callable[..., Config], tmp_path: Path) -> Site:
    articles = tmp_path / "articles"
    articles.mkdir(exist_ok=True)
    (articles / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    for n in range(20):
        write_article(
            articles,
            f"p{n}.md",
            f"第 {n} 篇正文。 " * 40,
            title=f"Post {n}",
            date=f"2022-03-{n + 1:02d}T08:00:00Z",
            categories=[f"C{n % 3}"],
            tags=[f"t{n % 4}", "市场"],
        )
    return Site(make_config(), tmp_path)


def served(documents: dict[str, Document]) -> dict[str, tuple[bytes, bytes, str, str, str]]:
    return {
        path: (d.gzip_body, d.body, d.etag, d.gzip_etag, d.media_type)
        for path, d in documents.items()
    }


def files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file in the folder: name -> (size, mtime in ns)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def table(folder: Path, number: int) -> list[bytes]:
    """The digests a segment's table lists."""
    data = segment_path(folder, number).read_bytes()
    _, version, count, start, _ = FOOTER.unpack_from(data, len(data) - FOOTER.size)
    assert version == VERSION
    return [ROW.unpack_from(data, start + n * ROW.size)[0] for n in range(count)]


def test_a_reader_gets_every_document_byte_for_byte(site: Site) -> None:
    built = site.build()
    exported = site.reloader.renderer.export()
    generation = site.writer.write(built, STATUS, exported)
    assert generation == 1
    documents, status, _ = SnapshotReader(site.folder).read(generation)
    assert sorted(documents) == sorted(built)
    assert served(documents) == served(built)
    assert status == STATUS
    assert {"categories/金融/feed.atom", "tags/市场/feed.rss", "feeds.opml"} <= set(documents)
    assert documents["feed.atom"].view == built["feed.atom"].view
    assert documents["feed.atom"].last_modified == built["feed.atom"].last_modified
    assert b"Post 19" in documents["feed.atom"].body
    builder = read_index(site.folder, generation).builder
    assert builder == json.loads(json.dumps({**exported, "nodes": dict(exported["nodes"])}))
    assert {"tag:tags/市场", "category:categories/金融"} <= builder["nodes"].keys()


def test_an_unchanged_rewrite_keeps_the_generation_and_writes_no_file(site: Site) -> None:
    first = site.publish()
    before = files(site.folder)
    again = site.publish()
    assert again == first
    assert files(site.folder) == before


def test_a_resumed_writer_rewrites_nothing_for_an_unchanged_build(site: Site) -> None:
    """A restart: a new writer carries on from the index on disk."""
    first = site.publish()
    before = files(site.folder)
    restarted = SnapshotWriter(site.folder)
    restarted.resume(read_index(site.folder, first))
    assert restarted.write(site.build(), STATUS, site.reloader.renderer.export()) == first
    assert files(site.folder) == before


def test_a_writer_starting_over_writes_the_whole_next_generation(site: Site) -> None:
    """Its folder removed while the server ran: the next write makes it again and puts
    every document there, one generation on (workers never go back), from views of the
    removed files the builder still holds."""
    first = site.publish()
    site.reloader.renderer.rebase(site.writer.view, everything=True)  # views of seg 1
    shutil.rmtree(site.folder.parent)
    site.writer.start_over()
    second = site.publish()
    assert second == first + 1
    assert validate(site.folder) == second
    documents, _, _ = SnapshotReader(site.folder).read(second)
    assert served(documents) == served(site.build())


def test_a_reader_maps_again_a_segment_number_given_to_another_file(site: Site) -> None:
    """A builder that could not resume after its state directory was removed numbers its
    segments from 1 again; a worker that mapped segment 1 of the generation before reads
    the new generation from the new file, not its old map of that number."""
    first = site.publish()
    reader = SnapshotReader(site.folder)
    reader.read(first)
    shutil.rmtree(site.folder.parent)
    writer = SnapshotWriter(site.folder)
    writer.number_after(first)
    write_article(
        site.articles, "p0.md", "重写的正文。", title="Post 0, rewritten", date="2022-03-01"
    )
    built = site.build()
    second = writer.write(built, STATUS, site.reloader.renderer.export())
    assert (second, sorted(read_index(site.folder, second).segments)) == (first + 1, [1])
    documents, _, _ = reader.read(second)
    assert served(documents) == served(built)


def test_holding_a_state_directory_made_again(tmp_path: Path) -> None:
    """The main process holding the lock is enough; no one holding it, this process takes
    it; another server holding it is refused."""
    taken = hold(tmp_path, {os.getpid() + 1})  # no one held it: taken
    assert taken is not None and taken.holder() == os.getpid()
    taken.release()
    held = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert held.stdout is not None and held.stdout.readline() == "held\n"
        assert hold(tmp_path, {os.getpid(), held.pid}) is None  # an owner holds it
        with pytest.raises(
            StateError, match=f"in use by another feedsvc process \\(pid {held.pid}\\)"
        ):
            hold(tmp_path, {os.getpid()})
    finally:
        held.kill()
        held.communicate()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from feedsvc.state.files import StateLock
StateLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_an_edit_writes_a_small_segment_of_new_pieces_only(site: Site) -> None:
    first = site.publish()
    assert sorted(p.name for p in site.folder.glob("seg-*")) == ["seg-00000001.bin"]
    write_article(
        site.articles,
        "p7.md",
        "改稿。",
        title="Post 7, edited",
        date="2022-03-08T08:00:00Z",
        categories=["C1"],
        tags=["t3", "市场"],
    )
    second = site.publish()
    assert second == first + 1
    segments = sorted(p.name for p in site.folder.glob("seg-*"))
    assert segments == ["seg-00000001.bin", "seg-00000002.bin"]
    old, new = (segment_path(site.folder, n).stat().st_size for n in (1, 2))
    assert new * 4 < old, (new, old)
    old_digests, new_digests = set(table(site.folder, 1)), table(site.folder, 2)
    assert new_digests and not old_digests & set(new_digests)
    assert len(new_digests) == len(set(new_digests))  # each piece once
    documents, _, _ = SnapshotReader(site.folder).read(second)
    assert served(documents) == served(dict(site.reloader.store.current.documents))
    assert b"Post 7, edited" in documents["feed.atom"].body
    # The older generation is still readable as it was, for a worker still serving it.
    older, _, _ = SnapshotReader(site.folder).read(first)
    assert b"Post 7, edited" not in older["feed.atom"].body


def test_a_reader_reuses_documents_a_new_generation_repeats(site: Site) -> None:
    first = site.publish()
    reader = SnapshotReader(site.folder)
    documents, _, _ = reader.read(first)
    write_article(site.articles, "new.md", title="New", date="2022-04-01T00:00:00Z")
    second = site.publish()
    again, _, _ = reader.read(second)
    assert again["feed.atom"] is not documents["feed.atom"]
    assert again["tags/t0/feed.atom"] is documents["tags/t0/feed.atom"]


def changed_shards(folder: Path, older: int, newer: int) -> int:
    """How many record shards of generation `newer` are not those of `older`."""
    before, after = (read_index(folder, g).records for g in (older, newer))
    return sum(old[0] != new[0] for old, new in zip(before, after, strict=True))


def test_an_edit_rewrites_only_the_shards_of_the_feeds_it_changes(site: Site) -> None:
    first = site.publish()
    size = index_path(site.folder, first).stat().st_size
    write_article(site.articles, "p5.md", "改稿。", title="Post 5, edited", date="2022-03-06")
    second = site.publish()
    # Those of five folders: the site's feeds and pages, the post's author, its category
    # and its two tags.
    assert 1 <= changed_shards(site.folder, first, second) <= 5
    assert index_path(site.folder, second).stat().st_size < size + 100  # a table, not records
    shards = read_index(site.folder, second).records
    assert len(shards) == SHARDS and len({shard[0] for shard in shards}) > 8


def test_a_reader_parses_only_new_shards_and_names_every_changed_path(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paths new, gone or different: the worker prepares resources for these alone."""
    reader = SnapshotReader(site.folder)
    first = site.publish()
    documents, _, changed = reader.read(first)
    assert changed == set(documents)
    write_article(site.articles, "new.md", title="New", date="2022-04-01", tags=["新"])
    loads = [site.publish()]
    write_article(site.articles, "p5.md", "改稿。", title="Post 5, edited", date="2022-03-06")
    loads.append(site.publish())
    built = {p: d for p, d in site.build().items() if not p.startswith("tags/新/")}
    loads.append(site.writer.write(built, STATUS, site.reloader.renderer.export()))
    real, read_shards = snapshots.shard_bytes, []

    def counting(maps: object, shard: tuple[bytes, int, int, int]) -> bytes:
        read_shards.append(shard[0])
        return real(maps, shard)  # type: ignore[arg-type]

    monkeypatch.setattr(snapshots, "shard_bytes", counting)
    for older, generation in zip([first, *loads], loads, strict=False):
        read_shards.clear()
        before = documents
        documents, _, changed = reader.read(generation)
        gone = before.keys() - documents.keys()
        different = {p for p, d in documents.items() if p not in before or d.etag != before[p].etag}
        assert changed == gone | different
        before_shards, shards = (read_index(site.folder, g).records for g in (older, generation))
        assert set(read_shards) == {s[0] for s in shards} - {s[0] for s in before_shards}
    assert served(documents) == served(built)
    assert gone and all(path.startswith("tags/新/") for path in gone)


def test_a_garbled_shard_is_refused_by_a_reader(site: Site) -> None:
    """A worker reads the shards it does not hold yet from segments checked only at the
    start: each is checked against the digest the index holds."""
    generation = site.publish()
    _, number, offset, length = max(read_index(site.folder, generation).records, key=lambda s: s[3])
    path = segment_path(site.folder, number)
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BadStateError, match="shard checksum mismatch"):
        SnapshotReader(site.folder).read(generation)
    assert validate(site.folder) is None


def test_validate_accepts_a_whole_generation(site: Site) -> None:
    generation = site.publish()
    assert validate(site.folder) == generation


def damage_truncated_index(folder: Path, generation: int) -> None:
    path = index_path(folder, generation)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def damage_index_cut_short_by_one(folder: Path, generation: int) -> None:
    path = index_path(folder, generation)
    path.write_bytes(path.read_bytes()[:-1])


def damage_flipped_segment_byte(folder: Path, generation: int) -> None:
    path = segment_path(folder, 1)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))


def damage_foreign_version(folder: Path, generation: int) -> None:
    path = index_path(folder, generation)
    data = bytearray(path.read_bytes())
    data[8:12] = struct.pack("<I", 99)
    path.write_bytes(bytes(data))


def damage_missing_segment(folder: Path, generation: int) -> None:
    segment_path(folder, 1).unlink()


def damage_truncated_segment(folder: Path, generation: int) -> None:
    path = segment_path(folder, 1)
    path.write_bytes(path.read_bytes()[:-10])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (damage_truncated_index, "truncated"),
        (damage_index_cut_short_by_one, "gen-00000001.idx"),
        (damage_flipped_segment_byte, "checksum mismatch"),
        (damage_foreign_version, "another version of feedsvc (99)"),
        (damage_missing_segment, "seg-00000001.bin: cannot read"),
        (damage_truncated_segment, "truncated"),
    ],
)
def test_validate_refuses_a_damaged_generation_and_says_why(
    site: Site,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path, int], None],
    reason: str,
) -> None:
    generation = site.publish()
    damage(site.folder, generation)
    with caplog.at_level(logging.WARNING, logger="feedsvc.state.snapshots"):
        assert validate(site.folder) is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("cannot be served" in m and reason in m for m in messages), messages


def test_read_index_refuses_a_flipped_byte_in_an_index(site: Site) -> None:
    generation = site.publish()
    path = index_path(site.folder, generation)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(BadStateError, match="checksum mismatch"):
        read_index(site.folder, generation)
    assert validate(site.folder) is None


def test_validate_of_an_empty_or_absent_folder_is_none(tmp_path: Path) -> None:
    assert validate(tmp_path / "nowhere") is None
    (tmp_path / "empty").mkdir()
    assert validate(tmp_path / "empty") is None


def test_the_newest_index_is_the_one_validated(site: Site) -> None:
    first = site.publish()
    write_article(site.articles, "new.md", title="New", date="2022-04-01T00:00:00Z")
    second = site.publish()
    assert validate(site.folder) == second
    damage_truncated_index(site.folder, second)
    assert validate(site.folder) is None  # not silently the older one: the caller rebuilds
    assert read_index(site.folder, first).generation == first


def test_write_atomically_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "gen-00000001.idx"
    write_atomically(target, [b"abc", memoryview(b"def")])
    assert target.read_bytes() == b"abcdef"
    assert sorted(os.listdir(tmp_path)) == ["gen-00000001.idx"]


def test_write_atomically_keeps_the_old_file_when_the_writer_fails_midway(tmp_path: Path) -> None:
    target = tmp_path / "gen-00000001.idx"
    target.write_bytes(b"the old, whole file")

    def chunks() -> Iterator[bytes]:
        yield b"half of a new "
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, chunks())
    assert target.read_bytes() == b"the old, whole file"
    assert sorted(os.listdir(tmp_path)) == ["gen-00000001.idx"]


def test_files_written_together_stay_as_they_were_when_the_last_one_fails(tmp_path: Path) -> None:
    """The parse cache and the builder's memory: a stop while the second is written must
    not leave the first newer than it."""
    cache, memory = tmp_path / "parse-cache", tmp_path / "builder-memory"
    cache.write_bytes(b"old cache")
    memory.write_bytes(b"old memory")

    def chunks() -> Iterator[bytes]:
        yield b"half of a new memory"
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_together([(cache, [b"new cache"]), (memory, chunks())])
    assert (cache.read_bytes(), memory.read_bytes()) == (b"old cache", b"old memory")
    assert sorted(os.listdir(tmp_path)) == ["builder-memory", "parse-cache"]
    write_together([(cache, [b"new cache"]), (memory, [b"new memory"])])
    assert (cache.read_bytes(), memory.read_bytes()) == (b"new cache", b"new memory")


def test_files_written_together_stay_as_they_were_when_the_writer_is_killed(
    tmp_path: Path,
) -> None:
    cache, memory = tmp_path / "parse-cache", tmp_path / "builder-memory"
    cache.write_bytes(b"old cache")
    memory.write_bytes(b"old memory")
    script = f"""
import sys, time
from pathlib import Path
from feedsvc.state.files import write_together
def memory():
    yield b"half of a new memory"
    print("writing", flush=True)
    time.sleep(60)
write_together([(Path({str(cache)!r}), [b"new cache"]), (Path({str(memory)!r}), memory())])
"""
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"writing\n"  # the first is written, not renamed
        writer.kill()
    assert (cache.read_bytes(), memory.read_bytes()) == (b"old cache", b"old memory")


def test_a_writer_starting_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    folder = tmp_path / "snapshots"
    folder.mkdir()
    (folder / f".seg-00000003.bin.{os.getpid() + 1}.tmp").write_bytes(b"partial")
    SnapshotWriter(folder)
    assert os.listdir(folder) == []


@pytest.mark.parametrize("failing", ["seg-00000002.bin", "gen-00000002.idx"])
@pytest.mark.parametrize("edit_meanwhile", [False, True], ids=["same build", "another edit"])
def test_a_write_that_fails_leaves_the_writer_able_to_publish(
    site: Site, monkeypatch: pytest.MonkeyPatch, edit_meanwhile: bool, failing: str
) -> None:
    """A full disk while a segment or the index is written: that reload fails (OSError),
    and once there is space again the next write publishes a generation that reads back
    as built.

    (A writer that noted the new pieces before their segment was on disk failed here:
    the next write raised KeyError, or with another edit meanwhile published documents
    whose refs pointed at other bytes, which inflated to garbage. One that took the new
    shards as written before the index was found the same build unchanged and published
    nothing.)
    """
    first = site.publish()
    # Its text alone: the site's pages stay as they are.
    write_article(
        site.articles,
        "p3.md",
        "新稿。",
        title="Post 3",
        date="2022-03-04T08:00:00Z",
        categories=["C0"],
        tags=["t3", "市场"],
    )
    real = write_atomically
    failures: list[str] = []

    def full_disk(path: Path, chunks: object) -> int:
        if path.name == failing and not failures:
            failures.append(path.name)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, chunks)  # type: ignore[arg-type]

    monkeypatch.setattr("feedsvc.state.snapshotwriter.write_atomically", full_disk)
    with pytest.raises(OSError, match="No space left"):
        site.publish()
    assert failures == [failing]
    assert validate(site.folder) == first  # the last generation is intact
    if edit_meanwhile:
        write_article(site.articles, "p9.md", "又一稿。", title="Post 9, edited", date="2022-03-10")
    # Space again: the next reload's documents are written.
    second = site.publish()
    assert second == first + 1
    assert validate(site.folder) == second
    documents, _, _ = SnapshotReader(site.folder).read(second)
    assert served(documents) == served(dict(site.reloader.store.current.documents))
    assert "新稿。".encode() in documents["feed.atom"].body
    assert (b"Post 9, edited" in documents["feed.atom"].body) is edit_meanwhile


@pytest.mark.parametrize("lag", [0, 1], ids=["workers keep up", "workers one behind"])
def test_many_edits_keep_the_segments_few_and_every_generation_whole(site: Site, lag: int) -> None:
    """Each new post adds a small segment whose entry stays listed; past MAX_SEGMENTS the
    small ones' live pieces are written again, so the folder stays bounded while every
    generation reads back whole."""
    site.publish()
    for n in range(MAX_SEGMENTS + 12):
        write_article(
            site.articles,
            f"new{n}.md",
            f"New post {n}.",
            title=f"New {n}",
            date=f"2022-05-01T08:{n:02d}:00Z",
            categories=["C0"],
        )
        generation = site.publish()
        site.writer.collect(generation - lag)
        assert validate(site.folder) == generation
        documents, _, _ = SnapshotReader(site.folder).read(generation)
        assert served(documents) == served(dict(site.reloader.store.current.documents))
    segments = list(site.folder.glob("seg-*.bin"))
    assert len(segments) <= MAX_SEGMENTS + 2, len(segments)
    assert len(list(site.folder.glob("gen-*.idx"))) == lag + 1

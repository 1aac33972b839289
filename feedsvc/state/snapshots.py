"""Snapshots as files: content-addressed pieces in segment files, one small index per generation.

The builder process writes (feedsvc.state.snapshotwriter), every serving worker maps
(SnapshotReader, here), so the pieces exist once per machine, in the page cache, however
many workers serve them. This module holds the format both share: file names, the index,
the checks a start runs, and the status workers are told.

    <state.path>/snapshots/seg-00000007.bin   pieces, then a table of them, then a footer
    <state.path>/snapshots/gen-00000012.idx   one generation: its shards, meta and status

A piece (a deflated entry, a feed head, a page) is written once, into the segment of
the reload that first made it, and named by its digest; every document that lists it
refers to the same bytes. A document's list of pieces is itself a piece. So are the
shards: a document's record (path, media type, validators, the trailer, where its list
of pieces is) is a line in one of SHARDS shards, chosen by a stable hash of the
document's folder, so a feed's documents, its HTML view and its archives share one; the
builder's notes on each feed node (what a restarted builder reuses) are sharded the same
way. A reload writes again only the shards in which a line changed, and a worker parses
only the shards it does not hold yet. A generation's index holds the meta and status,
then a table of shards (digest and place of each), and ends with a SHA-256 of everything
before it; a segment ends with a footer holding a CRC-32 of everything before it; a
shard read is checked against its digest. Both files are written whole under a temporary
name, fsynced and renamed (feedsvc.state.files), the segments before the index that
refers to them, so the newest index is always a complete generation.
Over 300 lines: the reader (SnapshotReader) lives with the format it reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import mmap
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from feedsvc.build.gzparts import crc32, piece_digest
from feedsvc.dates import parse_stored_date
from feedsvc.errors import FeedsvcError
from feedsvc.model import Document

logger = logging.getLogger(__name__)

VERSION = 3  # 2: records list the segments they use; 3: records and nodes in shards
SEGMENT_MAGIC = b"FSVCSEG\n"
INDEX_MAGIC = b"FSVCIDX\n"
FOOTER = struct.Struct("<8sIIQI")  # magic, version, piece count, table offset, CRC-32 before
ROW = struct.Struct("<16sQI")  # a segment's table: digest, offset, length
REF = struct.Struct("<IQI")  # a document's list of pieces: segment, offset, length
SHARD = struct.Struct("<16sIQI")  # an index's table: digest, segment, offset, length
HEADER = struct.Struct("<8sIIQII")  # magic, version, generation, meta length, shards (2)
CHECKSUM = 32  # SHA-256 at the end of an index
SHARDS = 256  # per table: an edit of a few feeds rewrites a few percent of the records
Ref = tuple[int, int, int]  # segment, offset, length
Shard = tuple[bytes, int, int, int]  # digest, segment, offset, length
INDEX_NAME = re.compile(r"gen-(\d{8})\.idx")
SEGMENT_NAME = re.compile(r"seg-(\d{8})\.bin")


class BadStateError(FeedsvcError):
    """A snapshot file is truncated, garbled, missing or of another version."""


def index_path(folder: Path, generation: int) -> Path:
    """Where a generation's index lives."""
    return folder / f"gen-{generation:08d}.idx"


def segment_path(folder: Path, number: int) -> Path:
    """Where a segment lives."""
    return folder / f"seg-{number:08d}.bin"


def newest_generation(folder: Path) -> int | None:
    """The number of the newest index in `folder` (complete by construction), if any."""
    numbers = [int(m.group(1)) for m in map(INDEX_NAME.fullmatch, file_names(folder)) if m]
    return max(numbers, default=None)


def file_names(folder: Path) -> list[str]:
    """The names in `folder`; none when it does not exist (yet)."""
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def shard_of(folder: str) -> int:
    """The shard of the lines about the documents in URL folder `folder`: a stable hash,
    the same in every process and after a restart."""
    return zlib.crc32(folder.encode()) % SHARDS


@dataclass(frozen=True, slots=True)
class Index:
    """One generation's index, parsed: its meta and its two tables of shards."""

    folder: Path
    generation: int
    meta: dict[str, Any]  # segments, status, served settings, the builder's section but nodes
    records: list[Shard]  # a line per document: what workers load
    nodes: list[Shard]  # a line per feed node: what a restarted builder reuses

    @property
    def builder(self) -> dict[str, Any]:
        """The builder's section (SiteRenderer.export), read from the node shards."""
        nodes: dict[str, Any] = {}
        for text in self.read_shards(self.nodes):
            for name, *entry in parse_lines(text.splitlines()):
                nodes[name] = entry
        return {**self.meta["builder"], "nodes": nodes}

    @property
    def segments(self) -> dict[int, tuple[int, int]]:
        """Segment number -> (size, CRC-32) of every segment the generation refers to."""
        return {int(k): (v[0], v[1]) for k, v in self.meta["segments"].items()}

    def read_shards(self, shards: Sequence[Shard]) -> list[bytes]:
        """The bytes of each shard, checked (BadStateError when one is not what the index says)."""
        maps = {n: map_file(segment_path(self.folder, n)) for n in {s[1] for s in shards}}
        try:
            return [shard_bytes(maps, shard) for shard in shards]
        finally:
            for data in maps.values():
                data.close()


def shard_bytes(maps: Mapping[int, mmap.mmap], shard: Shard) -> bytes:
    """A shard's lines, checked against the digest the index holds."""
    digest, segment, offset, length = shard
    if segment not in maps:
        raise BadStateError(f"a shard in {segment_path(Path(), segment).name}, not listed")
    data = maps[segment][offset : offset + length]
    if piece_digest(data) != digest:
        raise BadStateError(f"{segment_path(Path(), segment).name}: shard checksum mismatch")
    return data


def parse_lines(lines: Sequence[bytes]) -> list[Any]:
    """JSON lines, parsed in one call (not one per line)."""
    parsed: list[Any] = json.loads(b"[" + b",".join(lines) + b"]") if lines else []
    return parsed


def read_index(folder: Path, generation: int) -> Index:
    """Parse and check one index (BadStateError when it is not whole and ours)."""
    path = index_path(folder, generation)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadStateError(f"generation {generation}: cannot read: {exc}") from exc
    name = path.name
    if len(data) < HEADER.size + CHECKSUM:
        raise BadStateError(f"{name}: truncated")
    magic, version, number, meta_len, records, nodes = HEADER.unpack_from(data)
    if magic != INDEX_MAGIC:
        raise BadStateError(f"{name}: not a feedsvc snapshot index")
    if version != VERSION:
        raise BadStateError(f"{name}: written by another version of feedsvc ({version})")
    body, checksum = data[:-CHECKSUM], data[-CHECKSUM:]
    if len(body) != HEADER.size + meta_len + (records + nodes) * SHARD.size:
        raise BadStateError(f"{name}: truncated")
    if hashlib.sha256(body).digest() != checksum or number != generation:
        raise BadStateError(f"{name}: checksum mismatch")
    start = HEADER.size + meta_len
    shards = list(SHARD.iter_unpack(body[start:]))
    meta = json.loads(body[HEADER.size : start])
    return Index(folder, generation, meta, shards[:records], shards[records:])


def check_segment(folder: Path, number: int, size: int, crc: int) -> None:
    """Check a segment is whole and unchanged (BadStateError otherwise)."""
    path = segment_path(folder, number)
    data = map_file(path)  # mapped, not read: the page cache it fills is what workers map next
    try:
        if len(data) != size or len(data) < FOOTER.size:
            raise BadStateError(f"{path.name}: truncated ({len(data)} of {size} bytes)")
        magic, version, _, _, stored = FOOTER.unpack_from(data, len(data) - FOOTER.size)
        if magic != SEGMENT_MAGIC or version != VERSION:
            raise BadStateError(f"{path.name}: not a feedsvc segment of this version")
        with memoryview(data) as view:
            if crc32(view[:-4]) != crc or stored != crc:
                raise BadStateError(f"{path.name}: checksum mismatch")
    finally:
        data.close()


def validate(folder: Path) -> int | None:
    """The newest generation, when its index and every segment it names check out.

    Anything else is logged with its reason and None returned: the caller builds from
    the sources instead, as after a first start.
    """
    generation = newest_generation(folder)
    if generation is None:
        return None
    try:
        index = read_index(folder, generation)
        for number, (size, crc) in index.segments.items():
            check_segment(folder, number, size, crc)
    except (BadStateError, ValueError, KeyError) as exc:
        logger.warning("the saved snapshot cannot be served (%s); building from the sources", exc)
        return None
    return generation


def discard(folder: Path) -> None:
    """Remove every snapshot file (after `validate` refused them)."""
    for name in file_names(folder):
        if INDEX_NAME.fullmatch(name) or SEGMENT_NAME.fullmatch(name):
            with contextlib.suppress(OSError):
                (folder / name).unlink()


@dataclass(frozen=True, slots=True)
class Status:
    """What a snapshot says besides its documents (healthz), and the served settings."""

    article_count: int = 0
    problems: tuple[tuple[str, int | None, str, str], ...] = ()
    loaded_at: str | None = None  # ISO 8601
    cache_max_age: int = 300
    reload_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Status:
        """The inverse of to_json."""
        return cls(**{**data, "problems": tuple(map(tuple, data["problems"]))})


def map_file(path: Path) -> mmap.mmap:
    """A segment file mapped read-only (BadStateError when it cannot be)."""
    try:
        with open(path, "rb") as handle:
            return mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
    except (OSError, ValueError) as exc:
        raise BadStateError(f"{path.name}: cannot read: {exc}") from exc


class MappedPieces(Sequence[memoryview]):
    """A document's pieces as views of mapped segments, resolved when first needed."""

    __slots__ = ("_maps", "_ref")

    def __init__(self, maps: Mapping[int, mmap.mmap], ref: Ref) -> None:
        self._maps = maps
        self._ref = ref

    def _views(self) -> list[memoryview]:
        maps, (segment, offset, length) = self._maps, self._ref
        listing = REF.iter_unpack(maps[segment][offset : offset + length])  # the pieces' refs
        return [memoryview(maps[n])[at : at + size] for n, at, size in listing]

    def __iter__(self) -> Iterator[memoryview]:
        return iter(self._views())

    def __len__(self) -> int:
        return self._ref[2] // REF.size

    def __getitem__(self, index: Any) -> Any:
        return self._views()[index]


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A record shard as a worker holds it: its Documents by record line and by path."""

    by_line: dict[bytes, Document]
    by_path: dict[str, Document]


class SnapshotReader:
    """A worker's view of the state directory: maps segments, turns records into Documents.

    Shards are kept by their digest, so loading a generation parses only the shards the
    last one did not have; within those, a record line the last generation had gives the
    very Document of the last one (and the worker keeps its prepared headers).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        # Segment number -> (its size and CRC-32 as the index said, its map).
        self._maps: dict[int, tuple[tuple[int, int], mmap.mmap]] = {}
        self._shards: dict[bytes, _Loaded] = {}
        self._documents: dict[str, Document] = {}  # of the last load, by path

    def read(
        self, generation: int, pause: Callable[[], None] | None = None
    ) -> tuple[dict[str, Document], Status, set[str]]:
        """The documents and status of one generation (a dict the next read copies: not to
        be changed), and the paths of documents new, gone or different since the last read
        (BadStateError when unreadable)."""
        return self.load(read_index(self.folder, generation), pause)

    def load(
        self, index: Index, pause: Callable[[], None] | None = None
    ) -> tuple[dict[str, Document], Status, set[str]]:
        """`read`, of an index read already."""
        sealed = {n: (seal, self._mapped(n, seal)) for n, seal in index.segments.items()}
        maps = {n: mapped for n, (_, mapped) in sealed.items()}
        known = self._shards
        fresh = {s[0]: shard_bytes(maps, s) for s in index.records if s[0] not in known}
        wanted = {s[0] for s in index.records}
        # The lines of the shards gone: those a new shard repeats keep their Document.
        old = {line: doc for d in known.keys() - wanted for line, doc in known[d].by_line.items()}
        lines = {digest: text.splitlines() for digest, text in fresh.items()}
        new = [line for group in lines.values() for line in group if line not in old]
        made = dict(zip(new, self._parse(new, maps, pause), strict=True))
        shards = {digest: known[digest] for digest in wanted & known.keys()}
        for digest, group in lines.items():
            by_line = {line: old.pop(line) if line in old else made[line] for line in group}
            shards[digest] = _Loaded(by_line, {doc.path: doc for doc in by_line.values()})
        # The last load's documents, less those of the shards gone, plus those of the new.
        documents = self._documents.copy()
        for doc in old.values():
            documents.pop(doc.path, None)
        for digest in lines:
            documents.update(shards[digest].by_path)
        # Documents still being sent hold the old maps; new ones see the new maps.
        self._maps, self._shards, self._documents = sealed, shards, documents
        changed = {doc.path for doc in made.values()} | {doc.path for doc in old.values()}
        return documents, Status.from_json(index.meta["status"]), changed

    def _mapped(self, number: int, seal: tuple[int, int]) -> mmap.mmap:
        """Segment `number` as the index describes it (`seal`: its size and CRC-32): the
        map of the last load, unless the file is another one of that number (a builder
        that started over after its state directory was removed numbers from where the
        files on disk let it)."""
        kept = self._maps.get(number)
        if kept is not None and kept[0] == seal:
            return kept[1]
        return map_file(segment_path(self.folder, number))

    @staticmethod
    def _parse(
        lines: list[bytes], maps: Mapping[int, mmap.mmap], pause: Callable[[], None] | None
    ) -> Iterator[Document]:
        for count, record in enumerate(parse_lines(lines), 1):
            yield _document(record, maps)
            if pause is not None and not count % 2048:
                pause()


def _document(record: list[Any], maps: Mapping[int, mmap.mmap]) -> Document:
    path, media_type, size, gzip_size, tail, etag, gzip_etag, modified, view = record[:9]
    pieces = MappedPieces(maps, (record[9], record[10], record[11]))
    return Document(
        path,
        media_type,
        pieces,
        bytes.fromhex(tail),
        size,
        gzip_size,
        etag,
        gzip_etag,
        parse_stored_date(modified),
        view,
    )

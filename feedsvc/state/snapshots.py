"""Snapshots as files: content-addressed pieces in segment files, one small index per generation.

The builder writes (SnapshotWriter), every serving worker maps (SnapshotReader), so the
pieces exist once per machine, in the page cache, however many workers serve them.

    <state.path>/snapshots/seg-00000007.bin   pieces, then a table of them, then a footer
    <state.path>/snapshots/gen-00000012.idx   one generation: every document and its pieces

A piece (a deflated entry, a feed head, a page) is written once, into the segment of
the reload that first made it, and named by its digest; every document that lists it
refers to the same bytes. A document's list of pieces is itself a piece. A generation's
index holds a record per document (path, media type, validators, the trailer, where its
list of pieces is) and ends with a SHA-256 of everything before it; a segment ends with
a footer holding a CRC-32 of everything before it. Both are written whole under a
temporary name, fsynced and renamed (feedsvc.state.files), the segments before the index
that refers to them, so the newest index is always a complete generation.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedsvc.build.gzparts import piece_digest
from feedsvc.dates import parse_stored_date
from feedsvc.errors import FeedsvcError
from feedsvc.model import Document
from feedsvc.state.files import remove_leftovers, write_atomically

logger = logging.getLogger(__name__)

VERSION = 2  # 2: records list the segments they use
SEGMENT_MAGIC = b"FSVCSEG\n"
INDEX_MAGIC = b"FSVCIDX\n"
FOOTER = struct.Struct("<8sIIQI")  # magic, version, piece count, table offset, CRC-32 before
ROW = struct.Struct("<16sQI")  # a segment's table: digest, offset, length
REF = struct.Struct("<IQI")  # a document's list of pieces: segment, offset, length
HEADER = struct.Struct("<8sIIQQQ")  # magic, version, generation, section lengths (3)
CHECKSUM = 32  # SHA-256 at the end of an index
MAX_SEGMENTS = 32  # more, and the small ones are merged into the next (SnapshotWriter._compact)
Ref = tuple[int, int, int]  # segment, offset, length
_INDEX_NAME = re.compile(r"gen-(\d{8})\.idx")
_SEGMENT_NAME = re.compile(r"seg-(\d{8})\.bin")


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
    numbers = [int(m.group(1)) for m in map(_INDEX_NAME.fullmatch, _names(folder)) if m]
    return max(numbers, default=None)


def _names(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


@dataclass(frozen=True, slots=True)
class Index:
    """One generation's index, parsed: its header fields and raw sections."""

    generation: int
    meta: dict[str, Any]  # segments, status, served settings
    records: bytes  # one JSON array per line, one line per document
    builder_json: bytes  # what a restarted builder reuses (node signatures); workers skip it

    @property
    def builder(self) -> dict[str, Any]:
        """The builder's section, parsed."""
        parsed: dict[str, Any] = json.loads(self.builder_json)
        return parsed

    @property
    def segments(self) -> dict[int, tuple[int, int]]:
        """Segment number -> (size, CRC-32) of every segment the generation refers to."""
        return {int(k): (v[0], v[1]) for k, v in self.meta["segments"].items()}


def read_index(folder: Path, generation: int) -> Index:
    """Parse and check one index (BadStateError when it is not whole and ours)."""
    try:
        data = index_path(folder, generation).read_bytes()
    except OSError as exc:
        raise BadStateError(f"generation {generation}: cannot read: {exc}") from exc
    name = f"gen-{generation:08d}.idx"
    if len(data) < HEADER.size + CHECKSUM:
        raise BadStateError(f"{name}: truncated")
    magic, version, number, meta_len, records_len, builder_len = HEADER.unpack_from(data)
    if magic != INDEX_MAGIC:
        raise BadStateError(f"{name}: not a feedsvc snapshot index")
    if version != VERSION:
        raise BadStateError(f"{name}: written by another version of feedsvc ({version})")
    body, checksum = data[:-CHECKSUM], data[-CHECKSUM:]
    if len(body) != HEADER.size + meta_len + records_len + builder_len:
        raise BadStateError(f"{name}: truncated")
    if hashlib.sha256(body).digest() != checksum or number != generation:
        raise BadStateError(f"{name}: checksum mismatch")
    start = HEADER.size
    meta = json.loads(body[start : start + meta_len])
    records = body[start + meta_len : start + meta_len + records_len]
    return Index(generation, meta, records, body[start + meta_len + records_len :])


def check_segment(folder: Path, number: int, size: int, crc: int) -> None:
    """Check a segment is whole and unchanged (BadStateError otherwise)."""
    path = segment_path(folder, number)
    data = _map(path)  # mapped, not read: the page cache it fills is what workers map next
    try:
        if len(data) != size or len(data) < FOOTER.size:
            raise BadStateError(f"{path.name}: truncated ({len(data)} of {size} bytes)")
        magic, version, _, _, stored = FOOTER.unpack_from(data, len(data) - FOOTER.size)
        if magic != SEGMENT_MAGIC or version != VERSION:
            raise BadStateError(f"{path.name}: not a feedsvc segment of this version")
        with memoryview(data) as view:
            if zlib.crc32(view[:-4]) != crc or stored != crc:
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
    for name in _names(folder):
        if _INDEX_NAME.fullmatch(name) or _SEGMENT_NAME.fullmatch(name):
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
        return {
            "article_count": self.article_count,
            "problems": [list(p) for p in self.problems],
            "loaded_at": self.loaded_at,
            "cache_max_age": self.cache_max_age,
            "reload_token": self.reload_token,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Status:
        """The inverse of to_json."""
        return cls(
            data["article_count"],
            tuple((p[0], p[1], p[2], p[3]) for p in data["problems"]),
            data["loaded_at"],
            data["cache_max_age"],
            data["reload_token"],
        )


@dataclass(slots=True)
class _Record:
    etag: str  # the gzip ETag: a digest of the bytes, so equal tags are equal documents
    line: bytes
    segments: frozenset[int]


@dataclass(slots=True)
class SnapshotWriter:
    """Writes generations; the builder process is the only writer of a state directory."""

    folder: Path
    generation: int = 0
    _pieces: dict[bytes, Ref] = field(default_factory=dict)  # digest -> where on disk
    _segments: dict[int, tuple[int, int]] = field(default_factory=dict)  # number -> size, crc
    _contents: dict[int, list[bytes]] = field(default_factory=dict)  # number -> digests
    _records: dict[str, _Record] = field(default_factory=dict)  # by document path
    _kept: dict[int, frozenset[int]] = field(default_factory=dict)  # generation -> segments
    _next_segment: int = 1
    _builder_meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        remove_leftovers(self.folder)

    def resume(self, index: Index) -> None:
        """Carry on from a generation on disk (a restart): its pieces and records are
        known, so an unchanged rebuild writes nothing."""
        self.generation = index.generation
        self._segments.update(index.segments)
        for number in self._segments:
            self._contents[number] = self._read_table(number)
        self._next_segment = max(self._segments, default=0) + 1
        lines = index.records.splitlines()
        for line, record in zip(lines, json.loads(b"[" + b",".join(lines) + b"]"), strict=True):
            self._records[record[0]] = _Record(record[6], line, frozenset(record[12]))
        self._kept[index.generation] = frozenset(self._segments)
        self._builder_meta = dict(index.builder)

    def _read_table(self, number: int) -> list[bytes]:
        with open(segment_path(self.folder, number), "rb") as handle:
            handle.seek(-FOOTER.size, os.SEEK_END)
            _, _, count, table, _ = FOOTER.unpack(handle.read(FOOTER.size))
            handle.seek(table)
            rows = handle.read(count * ROW.size)
        digests = []
        for digest, offset, length in ROW.iter_unpack(rows):
            self._pieces.setdefault(digest, (number, offset, length))
            digests.append(digest)
        return digests

    def write(
        self, documents: Mapping[str, Document], status: Status, builder: Mapping[str, Any]
    ) -> int:
        """Write the documents as the next generation (or nothing, when every document is
        the one on disk); returns the generation that holds them."""
        self._compact()
        new = _Segment(self._next_segment)
        records: dict[str, _Record] = {}
        known, made = self._records, 0
        for path, document in documents.items():
            kept = known.get(path)
            if kept is not None and kept.etag == document.gzip_etag:
                records[path] = kept
            else:
                records[path] = self._record(document, new)
                made += 1
        unchanged = not made and len(records) == len(known)
        if unchanged and self.generation and self._builder_meta == builder:
            return self.generation
        if new.digests:
            self._segments[new.number] = new.save(self.folder)
            self._contents[new.number] = new.digests
            self._pieces.update(new.refs)  # only now: a failed write leaves no trace
            self._next_segment += 1
        used = frozenset(s for record in records.values() for s in record.segments)
        generation = self.generation + 1
        meta = {
            "generation": generation,
            "segments": {str(n): list(self._segments[n]) for n in sorted(used)},
            "status": status.to_json(),
        }
        lines = b"".join([record.line + b"\n" for record in records.values()])
        _write_index(self.folder, generation, meta, lines, builder)
        self.generation = generation
        self._records = records
        self._kept[self.generation] = used
        self._builder_meta = dict(builder)
        return self.generation

    def _where(self, digest: bytes, piece: bytes | memoryview, new: _Segment) -> Ref:
        """Where a piece is on disk, or will be once `new` is written."""
        return self._pieces.get(digest) or new.refs.get(digest) or new.add(digest, piece)

    def _compact(self) -> None:
        """Keep the segments few: past MAX_SEGMENTS, the live pieces of all but the largest
        are written again into the next one (each edit leaves a segment of which a few
        entries may stay listed for long), and the old ones go once no worker maps them."""
        if len(self._segments) <= MAX_SEGMENTS:
            return
        largest = max(self._segments, key=lambda number: self._segments[number][0])
        moved = frozenset(self._segments) - {largest}
        for number in moved:
            for digest in self._contents[number]:
                if self._pieces.get(digest, (0,))[0] == number:
                    del self._pieces[digest]
        self._records = {p: r for p, r in self._records.items() if not r.segments & moved}

    def _record(self, document: Document, new: _Segment) -> _Record:
        refs = bytearray()
        # A document read back from disk (a restart) names its pieces by their bytes.
        digests = document.digests or tuple(map(piece_digest, document.pieces))
        for digest, piece in zip(digests, document.pieces, strict=True):
            refs += REF.pack(*self._where(digest, piece, new))
        listing = bytes(refs)
        where = self._where(piece_digest(listing), listing, new)
        segments = _segments_of(refs)
        line = json.dumps(
            [
                document.path,
                document.media_type,
                document.size,
                document.gzip_size,
                document.trailer.hex(),
                document.etag,
                document.gzip_etag,
                document.last_modified.isoformat(),
                document.view,
                *where,
                sorted(segments | {where[0]}),  # for a restarted writer (resume)
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        return _Record(document.gzip_etag, line, segments | {where[0]})

    def collect(self, floor: int) -> None:
        """Remove the indexes older than `floor` (no worker serves them any more) and the
        segments no remaining generation refers to."""
        for generation in [g for g in self._kept if g < floor and g != self.generation]:
            del self._kept[generation]
            with contextlib.suppress(OSError):
                index_path(self.folder, generation).unlink()
        live = frozenset().union(*self._kept.values())
        for number in [n for n in self._segments if n not in live]:
            del self._segments[number]
            for digest in self._contents.pop(number, ()):
                if self._pieces.get(digest, (0,))[0] == number:
                    del self._pieces[digest]
            with contextlib.suppress(OSError):
                segment_path(self.folder, number).unlink()
        for name in _names(self.folder):  # a crashed writer's files no index refers to
            match = _SEGMENT_NAME.fullmatch(name) or _INDEX_NAME.fullmatch(name)
            if match and int(match.group(1)) not in (
                live if name.startswith("seg") else self._kept
            ):
                if name.startswith("seg") and int(match.group(1)) >= self._next_segment:
                    continue
                with contextlib.suppress(OSError):
                    (self.folder / name).unlink()

    @property
    def kept(self) -> list[int]:
        """The generations whose files are still on disk."""
        return sorted(self._kept)


class _Segment:
    """The pieces one write adds, laid out as they will be on disk."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.chunks: list[bytes | memoryview] = []
        self.digests: list[bytes] = []
        self.refs: dict[bytes, Ref] = {}
        self.rows = bytearray()
        self.size = 0

    def add(self, digest: bytes, piece: bytes | memoryview) -> Ref:
        ref = self.refs[digest] = (self.number, self.size, len(piece))
        self.chunks.append(piece)
        self.digests.append(digest)
        self.rows += ROW.pack(digest, self.size, len(piece))
        self.size += len(piece)
        return ref

    def save(self, folder: Path) -> tuple[int, int]:
        """Write the segment; returns its (size, CRC-32)."""
        # The footer's last field is the CRC-32 of everything before it.
        head = FOOTER.pack(SEGMENT_MAGIC, VERSION, len(self.digests), self.size, 0)[:-4]
        crc = 0
        for chunk in (*self.chunks, self.rows, head):
            crc = zlib.crc32(chunk, crc)
        footer = head + struct.pack("<I", crc)
        write_atomically(
            segment_path(folder, self.number), [*self.chunks, bytes(self.rows), footer]
        )
        return self.size + len(self.rows) + len(footer), crc


def _write_index(
    folder: Path, generation: int, meta: dict[str, Any], records: bytes, builder: Mapping[str, Any]
) -> None:
    meta_bytes = json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode()
    builder_bytes = json.dumps(builder, ensure_ascii=False, separators=(",", ":")).encode()
    header = HEADER.pack(
        INDEX_MAGIC, VERSION, generation, len(meta_bytes), len(records), len(builder_bytes)
    )
    checksum = hashlib.sha256()
    for part in (header, meta_bytes, records, builder_bytes):
        checksum.update(part)
    write_atomically(
        index_path(folder, generation),
        [header, meta_bytes, records, builder_bytes, checksum.digest()],
    )


def _segments_of(listing: bytes | bytearray) -> frozenset[int]:
    """The segments a list of pieces refers to: the first of every REF's four words."""
    return frozenset(memoryview(listing).cast("I")[:: REF.size // 4])


def _listing(maps: Mapping[int, mmap.mmap], ref: Ref) -> list[Ref]:
    """The refs a document's list of pieces holds."""
    segment, offset, length = ref
    data = maps[segment][offset : offset + length]
    return [REF.unpack_from(data, start) for start in range(0, length, REF.size)]


class MappedPieces(Sequence[memoryview]):
    """A document's pieces as views of mapped segments, resolved when first needed."""

    __slots__ = ("_maps", "_ref")

    def __init__(self, maps: Mapping[int, mmap.mmap], ref: tuple[int, int, int]) -> None:
        self._maps = maps
        self._ref = ref

    def _views(self) -> list[memoryview]:
        maps = self._maps
        return [memoryview(maps[n])[at : at + size] for n, at, size in _listing(maps, self._ref)]

    def __iter__(self) -> Iterator[memoryview]:
        return iter(self._views())

    def __len__(self) -> int:
        return self._ref[2] // REF.size

    def __getitem__(self, index: Any) -> Any:
        return self._views()[index]


class SnapshotReader:
    """A worker's view of the state directory: maps segments, turns records into Documents.

    Records are kept by their bytes, so a generation that repeats a record gives the
    very Document of the last one (and the worker keeps its prepared headers).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._maps: dict[int, mmap.mmap] = {}
        self._documents: dict[bytes, Document] = {}

    def read(
        self, generation: int, pause: Callable[[], None] | None = None
    ) -> tuple[dict[str, Document], Status, set[str]]:
        """The documents and status of one generation, and the paths of documents new,
        gone or different since the last read (BadStateError when unreadable)."""
        return self.load(read_index(self.folder, generation), pause)

    def load(
        self, index: Index, pause: Callable[[], None] | None = None
    ) -> tuple[dict[str, Document], Status, set[str]]:
        """`read`, of an index read already."""
        wanted = index.segments
        maps = {n: m for n, m in self._maps.items() if n in wanted}
        for number in wanted:
            if number not in maps:
                maps[number] = _map(segment_path(self.folder, number))
        # Documents still being sent hold the old dict; new ones see the new maps.
        self._maps = maps
        documents: dict[str, Document] = {}
        known, seen = self._documents, {}
        lines = index.records.splitlines()
        # New records are parsed in one go: one JSON call, not one per line.
        new = [line for line in lines if line not in known]
        parsed = iter(json.loads(b"[" + b",".join(new) + b"]") if new else ())
        for count, line in enumerate(lines, 1):
            document = known.get(line)
            if document is None:
                document = _document(next(parsed), maps)
            seen[line] = document
            documents[document.path] = document
            if pause is not None and not count % 2048:
                pause()
        changed = {known[line].path for line in known.keys() - seen.keys()}
        changed.update(document.path for document in map(seen.get, new) if document)
        self._documents = seen
        return documents, Status.from_json(index.meta["status"]), changed


def _map(path: Path) -> mmap.mmap:
    try:
        with open(path, "rb") as handle:
            return mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
    except (OSError, ValueError) as exc:
        raise BadStateError(f"{path.name}: cannot read: {exc}") from exc


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

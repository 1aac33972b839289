"""Snapshots as files: content-addressed pieces in segment files, one small index per generation.

The builder process writes (feedsvc.state.snapshotwriter), every serving worker maps
(SnapshotReader, here), so the pieces exist once per machine, in the page cache, however
many workers serve them. This module holds the format both share: file names, the index,
the checks a start runs, and the status workers are told.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from feedsvc.dates import parse_stored_date
from feedsvc.errors import FeedsvcError
from feedsvc.model import Document

logger = logging.getLogger(__name__)

VERSION = 2  # 2: records list the segments they use
SEGMENT_MAGIC = b"FSVCSEG\n"
INDEX_MAGIC = b"FSVCIDX\n"
FOOTER = struct.Struct("<8sIIQI")  # magic, version, piece count, table offset, CRC-32 before
ROW = struct.Struct("<16sQI")  # a segment's table: digest, offset, length
REF = struct.Struct("<IQI")  # a document's list of pieces: segment, offset, length
HEADER = struct.Struct("<8sIIQQQ")  # magic, version, generation, section lengths (3)
CHECKSUM = 32  # SHA-256 at the end of an index
Ref = tuple[int, int, int]  # segment, offset, length
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
    path = index_path(folder, generation)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadStateError(f"generation {generation}: cannot read: {exc}") from exc
    name = path.name
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
    data = _map_file(path)  # mapped, not read: the page cache it fills is what workers map next
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


def _map_file(path: Path) -> mmap.mmap:
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
        maps = {
            n: self._maps[n] if n in self._maps else _map_file(segment_path(self.folder, n))
            for n in index.segments
        }
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

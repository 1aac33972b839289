"""A serving worker's view of the snapshot files (the format: feedsvc.state.snapshots):
segments mapped, records turned into Documents whose pieces are views of the maps."""

from __future__ import annotations

import json
import mmap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from feedsvc.dates import parse_stored_date
from feedsvc.model import Document
from feedsvc.state.snapshots import REF, Index, Ref, Status, map_file, read_index, segment_path


def _listing(maps: Mapping[int, mmap.mmap], ref: Ref) -> list[Ref]:
    """The refs a document's list of pieces holds."""
    segment, offset, length = ref
    return list(REF.iter_unpack(maps[segment][offset : offset + length]))


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
        maps = {
            n: self._maps[n] if n in self._maps else map_file(segment_path(self.folder, n))
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

"""Writes generations of snapshot files (the format: feedsvc.state.snapshots); the builder
process is the only writer of a state directory. Over 300 lines: where each piece is on
disk (writing, compacting, collecting, and the views the builder reads them by) is one
table, kept here."""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

from feedsvc.build.gzparts import crc32, piece_digest
from feedsvc.model import Document
from feedsvc.state.files import remove_leftovers, write_atomically
from feedsvc.state.shards import Line, Table
from feedsvc.state.snapshots import (
    FOOTER,
    HEADER,
    INDEX_MAGIC,
    INDEX_NAME,
    REF,
    ROW,
    SEGMENT_MAGIC,
    SEGMENT_NAME,
    SHARD,
    VERSION,
    Index,
    Ref,
    Shard,
    Status,
    file_names,
    index_path,
    map_file,
    segment_path,
)

MAX_SEGMENTS = 32  # more, and the small ones are merged into the next (SnapshotWriter._compact)


@dataclass(slots=True)
class SnapshotWriter:
    """Writes generations; the builder process is the only writer of a state directory."""

    folder: Path
    generation: int = 0
    _pieces: dict[bytes, Ref] = field(default_factory=dict)  # digest -> where on disk
    _segments: dict[int, tuple[int, int]] = field(default_factory=dict)  # number -> size, crc
    _contents: dict[int, list[bytes]] = field(default_factory=dict)  # number -> digests
    _records: Table = field(default_factory=lambda: Table(_document_folder))  # by path
    _nodes: Table = field(default_factory=lambda: Table(_node_folder))  # by node name
    _kept: dict[int, frozenset[int]] = field(default_factory=dict)  # generation -> segments
    _next_segment: int = 1
    _builder_meta: dict[str, Any] = field(default_factory=dict)  # the builder's but nodes
    _maps: dict[int, mmap.mmap] = field(default_factory=dict)  # segments mapped by `view`
    compacted: bool = False  # whether a write moved pieces since views were last taken

    def __post_init__(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        remove_leftovers(self.folder)

    def resume(self, index: Index) -> None:
        """Carry on from a generation on disk (a restart): its pieces and lines are
        known, so an unchanged rebuild writes nothing."""
        self.generation = index.generation
        self._segments.update(index.segments)
        for number in self._segments:
            self._contents[number] = self._read_table(number)
        self._next_segment = max(self._segments, default=0) + 1
        self._records.resume(index.records, index.read_shards(index.records), _read_record)
        self._nodes.resume(index.nodes, index.read_shards(index.nodes), _read_node)
        self._kept[index.generation] = frozenset(self._segments)
        self._builder_meta = dict(index.meta["builder"])

    def number_after(self, generation: int) -> None:
        """Number what is written next after `generation`, one workers may serve that this
        writer could not resume from (its files damaged or removed meanwhile), and after
        every segment file there is: workers never go back, and no file is written over."""
        self.generation = max(self.generation, generation)
        found = (SEGMENT_NAME.fullmatch(name) for name in file_names(self.folder))
        self._next_segment = max([self._next_segment, *(int(m[1]) + 1 for m in found if m)])

    def start_over(self) -> None:
        """Forget the files on disk (their folder was removed while the server ran): the
        next write makes the folder again and writes every piece and line into it, the
        generations counting on, so workers never go back. Views taken keep their maps."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for table in (self._pieces, self._segments, self._contents, self._kept, self._maps):
            table.clear()
        self._records, self._nodes = Table(_document_folder), Table(_node_folder)
        self._builder_meta = {}
        self.compacted = True  # the builder's views are to be taken of the new files

    def view(self, digest: bytes) -> memoryview | None:
        """The bytes of a piece on disk, as a view of its mapped segment (None when no
        segment holds it): the builder keeps these rather than copies of its own, so the
        page cache holds the one copy every process reads."""
        ref = self._pieces.get(digest)
        if ref is None:
            return None
        number, offset, length = ref
        mapped = self._maps.get(number)
        if mapped is None:
            mapped = self._maps[number] = map_file(segment_path(self.folder, number))
        return memoryview(mapped)[offset : offset + length]

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
        """Write the documents and the builder's section (SiteRenderer.export) as the next
        generation (or nothing, when every line is the one on disk); returns the generation
        that holds them."""
        self._compact()
        new = _Segment(self._next_segment)
        records = self._records.changes(
            documents, attrgetter("gzip_etag"), lambda path: self._record(documents[path], new)
        )
        exported = builder["nodes"]
        # An entry is a tuple: tuple() of it is itself, compared by value (cheap while its
        # items are those of the last export).
        nodes = self._nodes.changes(exported, tuple, lambda name: _node(name, exported[name]))
        meta = {key: value for key, value in builder.items() if key != "nodes"}
        if not records and not nodes and self.generation and meta == self._builder_meta:
            return self.generation

        def where(text: bytes) -> Ref:
            return self._where(piece_digest(text), text, new)

        staged = self._records.stage(records, where), self._nodes.stage(nodes, where)
        if new.digests:
            self._segments[new.number] = new.save(self.folder)
            self._contents[new.number] = new.digests
            self._pieces.update(new.refs)  # only now: a failed write leaves no trace
            self._next_segment += 1
        (records_refs, records_used), (nodes_refs, nodes_used) = (
            self._records.after(staged[0]),
            self._nodes.after(staged[1]),
        )
        used = frozenset().union(*records_used, *nodes_used)
        generation = self.generation + 1
        index_meta = {
            "generation": generation,
            "segments": {str(n): list(self._segments[n]) for n in sorted(used)},
            "status": status.to_json(),
            "builder": meta,
        }
        _write_index(self.folder, generation, index_meta, records_refs, nodes_refs)
        # Only now: after a failed write, the next one compares with what is on disk.
        self._records.commit(staged[0])
        self._nodes.commit(staged[1])
        self.generation = generation
        self._kept[self.generation] = used
        self._builder_meta = meta
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
        self.compacted = True
        for number in moved:
            self._forget_pieces(number)
        self._records.forget(moved)
        self._nodes.forget(moved)

    def _forget_pieces(self, number: int) -> None:
        """Forget where the pieces of segment `number` are, unless another segment has them."""
        for digest in self._contents[number]:
            if self._pieces.get(digest, (0,))[0] == number:
                del self._pieces[digest]

    def _record(self, document: Document, new: _Segment) -> Line:
        refs = bytearray()
        # A document read back from disk (a restart) names its pieces by their bytes.
        digests = document.digests or tuple(map(piece_digest, document.pieces))
        for digest, piece in zip(digests, document.pieces, strict=True):
            refs += REF.pack(*self._where(digest, piece, new))
        listing = bytes(refs)
        where = self._where(piece_digest(listing), listing, new)
        segments = _segments_of(refs)
        line = _json(
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
            ]
        )
        return Line(document.gzip_etag, line, segments | {where[0]})

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
            self._forget_pieces(number)
            del self._contents[number]
            self._maps.pop(number, None)  # views still taken keep their mapping
            with contextlib.suppress(OSError):
                segment_path(self.folder, number).unlink()
        for name in file_names(self.folder):  # a crashed writer's files no index refers to
            match = SEGMENT_NAME.fullmatch(name) or INDEX_NAME.fullmatch(name)
            if match and int(match.group(1)) not in (
                live if name.startswith("seg") else self._kept
            ):
                if name.startswith("seg") and int(match.group(1)) >= self._next_segment:
                    continue
                with contextlib.suppress(OSError):
                    (self.folder / name).unlink()


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
            crc = crc32(chunk, crc)
        footer = head + struct.pack("<I", crc)
        write_atomically(
            segment_path(folder, self.number), [*self.chunks, bytes(self.rows), footer]
        )
        return self.size + len(self.rows) + len(footer), crc


def _write_index(
    folder: Path, generation: int, meta: dict[str, Any], records: list[Shard], nodes: list[Shard]
) -> None:
    meta_bytes = _json(meta)
    header = HEADER.pack(
        INDEX_MAGIC, VERSION, generation, len(meta_bytes), len(records), len(nodes)
    )
    table = b"".join([SHARD.pack(*shard) for shard in (*records, *nodes)])
    parts = [header, meta_bytes, table]
    checksum = hashlib.sha256()
    for part in parts:
        checksum.update(part)
    write_atomically(index_path(folder, generation), [*parts, checksum.digest()])


def _document_folder(path: str) -> str:
    return path.rpartition("/")[0]


def _node_folder(name: str) -> str:
    return name.partition(":")[2]  # `kind:directory`: its documents' folder


def _node(name: str, entry: tuple[Any, ...]) -> Line:
    return Line(entry, _json([name, *entry]), frozenset())


def _read_record(record: list[Any]) -> tuple[object, frozenset[int]]:
    return record[6], frozenset(record[12])


def _read_node(node: list[Any]) -> tuple[object, frozenset[int]]:
    return tuple(node[1:]), frozenset()


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _segments_of(listing: bytes | bytearray) -> frozenset[int]:
    """The segments a list of pieces refers to: the first of every REF's four words."""
    return frozenset(memoryview(listing).cast("I")[:: REF.size // 4])

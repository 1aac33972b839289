"""The index's two tables on the writer's side (the format: feedsvc.state.snapshots): a
line per key, in SHARDS shards by a stable hash of the key's folder, each shard written
again, as a piece, only when a line in it changed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import ne
from typing import Any

from feedsvc.build.gzparts import piece_digest
from feedsvc.state.snapshots import SHARDS, Ref, Shard, parse_lines, shard_of

UNWRITTEN: Shard = (b"", 0, 0, 0)  # a shard to write in the next generation
MOVED = object()  # the `same` of a line to write again (its pieces are being moved)


@dataclass(slots=True)
class Line:
    """One line of a table: a document's record, or the builder's notes on a feed node."""

    same: object  # equal while the line is (a document's gzip ETag: a digest of its bytes)
    line: bytes
    segments: frozenset[int]  # the segments the line refers to


# A shard about to be written, by number: its lines, where it is, the segments it refers to.
Staged = dict[int, tuple[dict[str, Line], Shard, frozenset[int]]]


@dataclass(slots=True)
class Table:
    """One table of the index: a line per key, in SHARDS shards by a stable hash of the
    key's folder, each shard written as a piece only when a line in it changed."""

    folder_of: Callable[[str], str]
    same: dict[str, object] = field(default_factory=dict)  # the lines' `same`, by key
    shards: list[dict[str, Line]] = field(default_factory=lambda: [{} for _ in range(SHARDS)])
    refs: list[Shard] = field(default_factory=lambda: [UNWRITTEN] * SHARDS)
    segments: list[frozenset[int]] = field(default_factory=lambda: [frozenset()] * SHARDS)

    def changes(
        self, items: Mapping[str, Any], same: Callable[[Any], object], make: Callable[[str], Line]
    ) -> dict[int, dict[str, Line | None]]:
        """The lines new, different or gone (None) by shard; `same` of an item is compared
        with the line's, `make` makes the line of a key of `items`."""
        # Iterators of C functions: this runs over every document of the site each reload.
        keys, known = items.keys(), self.same
        differ = map(ne, map(same, items.values()), map(known.get, keys))
        changed: dict[str, Line | None] = {key: make(key) for key in compress(keys, differ)}
        if len(items) != len(known) + sum(key not in known for key in changed):
            changed.update(dict.fromkeys(known.keys() - items.keys()))
        by_shard: dict[int, dict[str, Line | None]] = {
            n: {} for n, ref in enumerate(self.refs) if not ref[0]
        }
        for key, line in changed.items():
            by_shard.setdefault(shard_of(self.folder_of(key)), {})[key] = line
        return by_shard

    def stage(
        self, changes: dict[int, dict[str, Line | None]], where: Callable[[bytes], Ref]
    ) -> Staged:
        """Each changed shard's lines, where its bytes are (`where` puts them in place),
        and the segments it refers to."""
        staged: Staged = {}
        for number, changed in changes.items():
            merged = {**self.shards[number], **changed}
            lines = {key: line for key in sorted(merged) if (line := merged[key]) is not None}
            text = b"".join([line.line + b"\n" for line in lines.values()])
            ref = where(text)
            segments = frozenset().union(*(line.segments for line in lines.values()))
            staged[number] = (lines, (piece_digest(text), *ref), segments | {ref[0]})
        return staged

    def after(self, staged: Staged) -> tuple[list[Shard], list[frozenset[int]]]:
        """The table of shards, and the segments each refers to, once `staged` is written."""
        refs, segments = list(self.refs), list(self.segments)
        for number, (_, ref, used) in staged.items():
            refs[number], segments[number] = ref, used
        return refs, segments

    def commit(self, staged: Staged) -> None:
        """Take the staged shards as written."""
        for number, (lines, ref, segments) in staged.items():
            for key in self.shards[number].keys() - lines.keys():
                del self.same[key]
            self.same.update((key, line.same) for key, line in lines.items())
            self.shards[number], self.refs[number], self.segments[number] = lines, ref, segments

    def resume(
        self,
        shards: list[Shard],
        texts: list[bytes],
        read: Callable[[list[Any]], tuple[object, frozenset[int]]],
    ) -> None:
        """Take the shards of a generation on disk; `read` gives a parsed line's `same`
        and segments."""
        for number, (ref, text) in enumerate(zip(shards, texts, strict=True)):
            lines, kept = text.splitlines(), {}
            for line, parsed in zip(lines, parse_lines(lines), strict=True):
                same, segments = read(parsed)
                kept[parsed[0]] = Line(same, line, segments)
            self.same.update((key, line.same) for key, line in kept.items())
            self.shards[number], self.refs[number] = kept, ref
            used = frozenset().union(*(line.segments for line in kept.values()))
            self.segments[number] = used | {ref[1]}

    def forget(self, moved: frozenset[int]) -> None:
        """Write again every line and shard that refers to a segment in `moved`."""
        for shard in self.shards:
            self.same.update((key, MOVED) for key, line in shard.items() if line.segments & moved)
        for number, ref in enumerate(self.refs):
            if ref[1] in moved:
                self.refs[number] = UNWRITTEN

"""Snapshot messages (feedsvc.wire) in a file, for the benchmark's stand-in worker."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

HEADER = struct.Struct(">cQ")


def write_messages(path: Path, messages: Iterable[tuple[bytes, bytes]]) -> None:
    with path.open("wb") as out:
        for kind, data in messages:
            out.write(HEADER.pack(kind, len(data)))
            out.write(data)


def read_messages(path: Path) -> Iterator[tuple[bytes, bytes]]:
    with path.open("rb") as source:
        while header := source.read(HEADER.size):
            kind, length = HEADER.unpack(header)
            yield kind, source.read(length)

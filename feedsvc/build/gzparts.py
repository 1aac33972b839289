"""Gzip members assembled from parts compressed once, the way pigz joins its blocks.

A feed is a head, its entries and a tail, and the same entry appears in many feeds
(the site, each category level, each tag). Each part is deflated on its own and ends
on a byte boundary with no reference to earlier data (a full flush), so parts can be
concatenated in any order into one valid deflate stream (RFC 1951 §3.2.3). The gzip
trailer needs the CRC-32 of the whole, which is combined from the parts' CRCs
(python-isal's crc32_combine, zlib's algorithm: a few operations per part, whatever
its length; the standard library does not expose it).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from isal import isal_zlib

# RFC 1952 §2.3: deflate, no flags, mtime 0 (no clock in the bytes), no extra flags,
# OS "unknown" (so the bytes do not depend on where they were built).
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final block (fixed Huffman, end-of-block): closes the stream after the parts.
_LAST_BLOCK = b"\x03\x00"
# ISA-L (Intel's deflate, as python-isal) at its best level: far less CPU than zlib's
# level 6 for a few percent more bytes (docs/performance.md, "Gzip from pieces").
LEVEL = isal_zlib.ISAL_BEST_COMPRESSION


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a document: its deflated bytes and what the gzip trailer needs."""

    deflated: bytes | memoryview  # non-final deflate blocks, ending on a byte boundary
    size: int  # length of the uncompressed bytes
    crc: int  # CRC-32 of the uncompressed bytes
    digest: bytes  # of `deflated`: the piece's name in the state directory, and in ETags


class Compressor:
    """Makes Parts. One zlib stream, fully flushed after each part: after a full flush
    zlib forgets all history, so a part's bytes depend on that part alone (a test
    checks it) and nothing is reallocated per part. Not thread-safe; one per site build.
    """

    def __init__(self) -> None:
        self._stream = isal_zlib.compressobj(LEVEL, isal_zlib.DEFLATED, -15)

    def part(self, data: bytes) -> Part:
        deflated = self._stream.compress(data) + self._stream.flush(isal_zlib.Z_FULL_FLUSH)
        return Part(deflated, len(data), isal_zlib.crc32(data), piece_digest(deflated))


View = Callable[[bytes], memoryview | None]
"""A piece's bytes on disk by its digest (SnapshotWriter.view), None where there are none."""


def rebased(part: Part, view: View) -> Part:
    """The part with its bytes read from where `view` has them, if it has them."""
    found = view(part.digest)
    return part if found is None else Part(found, part.size, part.crc, part.digest)


def crc32(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """zlib's CRC-32 of `data` (carried on from `value`), by ISA-L: several times zlib's
    speed, which is what a start's check of every snapshot segment waits for."""
    return int(isal_zlib.crc32(data, value))


def piece_digest(deflated: bytes | memoryview) -> bytes:
    """The content address of a piece (16 bytes of SHA-256)."""
    return hashlib.sha256(deflated).digest()[:16]


def trailer(parts: Iterable[Part]) -> tuple[bytes, int]:
    """The gzip trailer of a member holding the parts in order (CRC-32 combined from
    the parts', RFC 1952 §2.3.1), and the uncompressed length."""
    crc = size = 0
    for part in parts:
        crc = isal_zlib.crc32_combine(crc, part.crc, part.size)
        size += part.size
    return struct.pack("<II", crc, size & 0xFFFFFFFF), size


def gzip_chunks(
    pieces: Iterable[bytes | memoryview], trailer_bytes: bytes
) -> Iterable[bytes | memoryview]:
    """One gzip member: the header, the pieces (shared, not copied), the last block, the trailer."""
    yield HEADER
    yield from pieces
    yield _LAST_BLOCK
    yield trailer_bytes


# Bytes a member adds around its pieces: header, last block, trailer.
FRAME_BYTES = len(HEADER) + len(_LAST_BLOCK) + 8

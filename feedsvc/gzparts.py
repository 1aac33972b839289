"""Gzip members assembled from parts compressed once, the way pigz joins its blocks.

A feed is a head, its entries and a tail, and the same entry appears in many feeds
(the site, each category level, each tag). Each part is deflated on its own and ends
on a byte boundary with no reference to earlier data (a full flush), so parts can be
concatenated in any order into one valid deflate stream (RFC 1951 §3.2.3). The gzip
trailer needs the CRC-32 of the whole, which is combined from the parts' CRCs
(zlib's crc32_combine, in Python: the standard library does not expose it).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# RFC 1952 §2.3: deflate, no flags, mtime 0 (no clock in the bytes), no extra flags,
# OS "unknown" (so the bytes do not depend on where they were built).
HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final block (fixed Huffman, end-of-block): closes the stream after the parts.
_LAST_BLOCK = b"\x03\x00"
LEVEL = 6  # zlib's default: a third of level 9's CPU here for about 1% more bytes

_POLY = 0xEDB88320  # CRC-32 (reflected), as in zlib and RFC 1952


def _multiply(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial (zlib's multmodp); `a` is never zero."""
    mask = 1 << 31
    product = 0
    while True:
        if a & mask:
            product ^= b
            if a & (mask - 1) == 0:
                return product
        mask >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _powers() -> list[int]:
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multiply(table[-1], table[-1]))
    return table


_X2N = _powers()  # x^(2^k) modulo the polynomial


def crc_shift(length: int) -> int:
    """The operator x^(8*length) that moves a CRC past `length` bytes (zlib's x2nmodp)."""
    product = 1 << 31  # x^0
    k = 3  # 8 bits a byte: start at x^(2^3)
    while length:
        if length & 1:
            product = _multiply(_X2N[k & 31], product)
        length >>= 1
        k += 1
    return product


def crc_combine(first: int, second: int, shift: int) -> int:
    """CRC-32 of A+B from CRC(A), CRC(B) and crc_shift(len(B))."""
    return _multiply(shift, first) ^ second


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a document: its deflated bytes and what the gzip trailer needs."""

    deflated: bytes  # non-final deflate blocks, ending on a byte boundary
    size: int  # length of the uncompressed bytes
    crc: int
    shift: int  # crc_shift(size)


class Compressor:
    """Makes Parts. One zlib stream, fully flushed after each part: after a full flush
    zlib forgets all history, so a part's bytes depend on that part alone (a test
    checks it) and nothing is reallocated per part. Not thread-safe; one per builder.
    """

    def __init__(self, level: int = LEVEL) -> None:
        self._stream = zlib.compressobj(level, zlib.DEFLATED, -15)

    def part(self, data: bytes) -> Part:
        deflated = self._stream.compress(data) + self._stream.flush(zlib.Z_FULL_FLUSH)
        return Part(deflated, len(data), zlib.crc32(data), crc_shift(len(data)))


def assemble(parts: Iterable[Part]) -> tuple[bytes, int]:
    """One gzip member holding the parts in order, and the uncompressed length."""
    chunks = [HEADER]
    crc = size = 0
    for part in parts:
        chunks.append(part.deflated)
        crc = crc_combine(crc, part.crc, part.shift)
        size += part.size
    chunks.append(_LAST_BLOCK)
    chunks.append(struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(chunks), size

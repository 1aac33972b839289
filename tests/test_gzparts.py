import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from feedsvc.build.gzparts import Compressor, Part, crc32, gzip_chunks, trailer


def assemble(parts: list[Part]) -> tuple[list[bytes | memoryview], int]:
    tail, size = trailer(parts)
    return list(gzip_chunks([p.deflated for p in parts], tail)), size


# Text, random bytes, and now and then a part of more than 64 KiB.
chunks = st.lists(
    st.binary(max_size=3000) | st.text(max_size=800).map(str.encode) | st.just(b"\x07" * 150_000),
    max_size=12,
)


@given(chunks)
def test_assembled_parts_are_one_gzip_member_of_their_concatenation(datas: list[bytes]) -> None:
    compressor = Compressor()
    chunks, size = assemble([compressor.part(data) for data in datas])
    body = b"".join(chunks)
    whole = b"".join(datas)
    assert size == len(whole)
    assert gzip.decompress(body) == whole
    # One member, nothing after it: zlib stops exactly at the trailer.
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(body) == whole and inflater.eof and inflater.unused_data == b""


@given(chunks, st.binary(max_size=4000))
def test_a_part_depends_on_its_bytes_alone(before: list[bytes], data: bytes) -> None:
    """Parts are cached and shared by documents, and replicas must agree on the bytes."""
    used = Compressor()
    for earlier in before:
        used.part(earlier)
    assert used.part(data) == Compressor().part(data)


def test_gzip_header_is_free_of_the_clock() -> None:
    body = b"".join(assemble([Compressor().part(b"feed")])[0])
    assert body[:4] == b"\x1f\x8b\x08\x00" and body[4:8] == bytes(4)  # deflate, mtime 0


def test_crc32_is_zlibs_whole_and_carried_on() -> None:
    """Segments written with zlib's CRC-32 check out with this one, and the reverse."""
    data = "新闻 headline 正文 body ".encode() * 5000
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data[1000:], crc32(data[:1000])) == zlib.crc32(data)
    assert crc32(memoryview(data)[:-4]) == zlib.crc32(data[:-4])

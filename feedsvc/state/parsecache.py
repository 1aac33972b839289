"""The parse cache: what each folder source parsed, kept so a restart parses only the
files changed since.

    header   magic, version, stamp (the model's shape, the parser's code and libraries)
    payload  a run of pickles: the sources (name, fingerprint, number of files), the
             values articles share (their authors, categories and tags), then each
             source's files in batches of (relpath, key, article row, problems)
    trailer  the payload's length and its CRC-32 (ISA-L's: a 100 MB file checks in 10 ms)

An article row is its field values, with the shared ones as places in that list and its
Identity as its own values: what loads fastest (a third of the time of model objects
pickled whole at 50,000 posts) and comes back holding the very objects that equal
values in other articles of this process hold (feedsvc.sources.shared).

Written whole under a temporary name, fsynced and renamed (feedsvc.state.files). The
file only saves time: one that is missing, truncated, garbled or of another version is
ignored (with a warning unless missing) and every file is parsed again. Unpickling
admits the model's classes and datetime's only, so even a stray file runs no code.
Over 300 lines: that checked framing (header, checksum, restricted unpickling) is the
builder memory's too (feedsvc.state.catchup), and lives here with its first user.
"""

from __future__ import annotations

import copyreg
import functools
import hashlib
import importlib
import io
import logging
import os
import pickle
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import fields
from itertools import islice
from pathlib import Path
from typing import IO, Any, TypeVar

import feedsvc
from feedsvc.build.gzparts import crc32
from feedsvc.errors import FeedsvcError
from feedsvc.model import (
    Article,
    Author,
    Identity,
    Origin,
    Problem,
    assemble,
    assembler,
    field_names,
)
from feedsvc.sources.directory import CachedFile, ExportedCache
from feedsvc.sources.shared import SHARED_FIELDS, share
from feedsvc.state.files import write_atomically

logger = logging.getLogger(__name__)
T = TypeVar("T")

ParseCache = dict[str, tuple[str, ExportedCache]]
"""Source name -> (its fingerprint, its files), as DirectorySource exports them."""

VERSION = 4  # 2: model objects as their values (_reduce); 3: article rows; 4: CRC-32
MAGIC = b"FSVCPRS\n"
HEADER = struct.Struct("<8sI16s")  # magic, version, stamp
TRAILER = struct.Struct("<QI")  # payload length, CRC-32 of the payload
PROTOCOL = 5
BATCH = 512  # files per pickle: the file is written and read without a whole copy in memory
_READ = 1 << 20
# What a parse runs besides the settings: a change to any of it makes the file stale.
_PARSER_MODULES = (
    "feedsvc.model",
    "feedsvc.dates",
    "feedsvc.urls",
    "feedsvc.content",
    "feedsvc.sources.header",
    "feedsvc.sources.shared",
    "feedsvc.sources.fields",
    "feedsvc.sources.post",
    "feedsvc.sources.reading",
    "feedsvc.sources.directory",
)
# The parser's libraries, by the names they are imported as.
_PARSER_LIBRARIES = ("yaml", "frontmatter", "markdown_it_pyrs", "nh3", "tzdata")
_MODEL = (Article, Author, Identity, Origin, Problem)
_ARTICLE = field_names(Article)
_SHARED_AT = [_ARTICLE.index(name) for name in SHARED_FIELDS]
_IDENTITY_AT = _ARTICLE.index("identity")
_make_article, _make_identity = assembler(Article), assembler(Identity)
_ALLOWED = {  # module -> the names a parse cache may hold from it
    "feedsvc.model": frozenset(cls.__name__ for cls in _MODEL),
    "feedsvc.state.parsecache": frozenset({"rebuild"}),
    "datetime": frozenset({"datetime", "timezone", "timedelta"}),
}


# What unpickling raises on bytes it cannot make sense of (pickle names the first five).
_UNPICKLING_ERRORS = (
    pickle.UnpicklingError,
    AttributeError,
    EOFError,
    ImportError,
    IndexError,
    KeyError,
    TypeError,
    ValueError,
)


class _BadFileError(FeedsvcError):
    """Why a parse cache file cannot be used (internal: load turns it into a warning)."""


def save_parse_cache(path: Path, cache: Mapping[str, tuple[str, Mapping[str, CachedFile]]]) -> None:
    """Write every source's fingerprint and files to `path`, whole or not at all; OSError
    when it cannot be written."""
    write_atomically(path, parse_cache_chunks(cache))


def parse_cache_chunks(
    cache: Mapping[str, tuple[str, Mapping[str, CachedFile]]],
) -> Iterator[bytes]:
    """The file `save_parse_cache` writes, for writing along with another one."""
    return checked_chunks(MAGIC, stamp(), _payload(cache))


def load_parse_cache(path: Path) -> ParseCache:
    """The cache saved at `path`, or {} when there is none or it cannot be used. Never
    raises: a bad file is logged as a warning with the reason."""
    return load_checked(path, "parse cache", (MAGIC, stamp()), _ALLOWED, _unpickle) or {}


def load_checked(
    path: Path,
    what: str,
    header: tuple[bytes, bytes],
    allowed: Mapping[str, frozenset[str]],
    read: Callable[[Callable[[], Any]], T],
) -> T | None:
    """What `read` makes of the pickles of a file `checked_chunks` wrote with `header`
    (magic, stamp); `read` is given a function that loads the next pickle, admitting only
    the classes `allowed` names. None when there is no file or it cannot be used: a bad
    file is logged as a warning with the reason, never trusted."""
    try:
        with open(path, "rb") as handle:
            _check(handle, os.fstat(handle.fileno()).st_size, what, header)
            try:
                return read(lambda: _Unpickler(handle, allowed).load())
            except _UNPICKLING_ERRORS as exc:
                raise _BadFileError(f"garbled ({exc.__class__.__name__}: {exc})") from None
    except FileNotFoundError:
        logger.debug("%s %s: none yet", what, path)
        return None
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or exc}"
    except _BadFileError as exc:
        reason = str(exc)
    logger.warning("%s %s: %s; not used, made anew", what, path, reason)
    return None


def matching_files(cache: ParseCache, name: str, fingerprint: str) -> ExportedCache:
    """The files saved for source `name`, if its settings are still `fingerprint`, else {}."""
    saved = cache.get(name)
    if saved is None:
        return {}
    if saved[0] != fingerprint:
        logger.info("parse cache: source %s has other settings now; parsing every file", name)
        return {}
    return saved[1]


@functools.cache
def stamp() -> bytes:
    """What decides a parse besides the settings and the file: the model's shape, the
    parser's code, the versions of its libraries."""
    digest = hashlib.sha256(feedsvc.__version__.encode("utf-8"))
    for cls in (Article, Author, Problem):
        digest.update(repr([(f.name, str(f.type)) for f in fields(cls)]).encode("utf-8"))
    digest.update(sources_digest(_PARSER_MODULES))
    for library in _PARSER_LIBRARIES:
        # Each one's __version__, or its source where it has none (python-frontmatter):
        # importlib.metadata would cost a restart 15 ms to import and ask.
        try:
            module = importlib.import_module(library)
        except ImportError:
            digest.update(f"{library} absent".encode())
            continue
        version = getattr(module, "__version__", None)
        digest.update(f"{library} {version}".encode() if version else sources_digest([library]))
    return digest.digest()[:16]


def sources_digest(modules: Iterable[str]) -> bytes:
    """SHA-256 of these (imported) modules' source files: a change to their code makes
    a file stamped with it stale."""
    digest = hashlib.sha256()
    for name in modules:
        source = sys.modules[name].__file__
        try:
            digest.update(Path(source).read_bytes() if source else name.encode("utf-8"))
        except OSError:  # no source beside the code: the version has to do
            digest.update(name.encode("utf-8"))
    return digest.digest()


def checked_chunks(magic: bytes, file_stamp: bytes, values: Iterable[object]) -> Iterator[bytes]:
    """A file of pickles: the header (magic, version, stamp), one pickle per value, and
    the trailer (their length and CRC-32) that `load_checked` checks them by."""
    yield HEADER.pack(magic, VERSION, file_stamp)
    crc = length = 0
    for value in values:
        data = _dumps(value)
        crc = crc32(data, crc)
        length += len(data)
        yield data
    yield TRAILER.pack(length, crc)


def _dumps(value: object) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, **dict.fromkeys(_MODEL, _reduce)}
    pickler.dump(value)
    return buffer.getvalue()


def _reduce(obj: object) -> tuple[Callable[..., object], tuple[type, tuple[object, ...]]]:
    """A model object as its class and field values: unpickled by `rebuild`, several times
    faster than dataclasses' own __getstate__ and __setstate__ (most of a restart's load)."""
    cls = type(obj)
    return rebuild, (cls, tuple(getattr(obj, name) for name in field_names(cls)))


def rebuild(cls: type[T], values: tuple[object, ...]) -> T:
    """A model object from what `_reduce` gave (Article's revision comes along); a class
    that is not the model's, or values of another shape, raise."""
    if cls not in _MODEL:
        raise pickle.UnpicklingError(f"{cls!r} is not a model class")
    return assemble(cls, values)


def _payload(cache: Mapping[str, tuple[str, Mapping[str, CachedFile]]]) -> Iterator[object]:
    yield [(name, fingerprint, len(files)) for name, (fingerprint, files) in cache.items()]
    places: dict[object, int] = {}
    for _, files in cache.values():
        for _, article, _ in files.values():
            for name in SHARED_FIELDS if article is not None else ():
                places.setdefault(getattr(article, name), len(places))
    yield list(places)
    for _, files in cache.values():
        entries = iter(files.items())
        while batch := [
            (relpath, key, article and _row(article, places), problems)
            for relpath, (key, article, problems) in islice(entries, BATCH)
        ]:
            yield batch


def _row(article: Article, places: Mapping[object, int]) -> list[object]:
    """`article`'s field values, those it shares with others as their place in `places`."""
    row = [getattr(article, name) for name in _ARTICLE]
    for at in _SHARED_AT:
        row[at] = places[row[at]]
    identity = article.identity
    row[_IDENTITY_AT] = [getattr(identity, name) for name in field_names(Identity)]
    return row


def _article(row: list[Any], shared: list[Any]) -> Article:
    """The article `_row` gave, holding the values of `shared`."""
    for at in _SHARED_AT:
        row[at] = shared[row[at]]
    row[_IDENTITY_AT] = _make_identity(row[_IDENTITY_AT])
    return _make_article(row)


def _check(handle: IO[bytes], size: int, what: str, expected: tuple[bytes, bytes]) -> None:
    """Check the header (`expected` magic and stamp) and the payload, and leave `handle`
    at the first pickle."""
    _check_header(handle.read(HEADER.size), what, *expected)
    _check_payload(handle, size - HEADER.size - TRAILER.size)
    handle.seek(HEADER.size)


def _check_header(header: bytes, what: str, magic: bytes, file_stamp: bytes) -> None:
    if len(header) < HEADER.size:
        raise _BadFileError("truncated (no complete header)")
    found, version, found_stamp = HEADER.unpack(header)
    if found != magic:
        raise _BadFileError(f"not a {what} file")
    if version != VERSION or found_stamp != file_stamp:
        raise _BadFileError(
            f"written by another version of feedsvc or its parser (format {version})"
        )


def _check_payload(handle: IO[bytes], length: int) -> None:
    """Compare the payload with the trailer: the length first, so truncation says so."""
    if length < 0:
        raise _BadFileError("truncated (no trailer)")
    crc = 0
    remaining = length
    while remaining:
        chunk = handle.read(min(remaining, _READ))
        if not chunk:
            raise _BadFileError("truncated while reading")
        crc = crc32(chunk, crc)
        remaining -= len(chunk)
    recorded, checksum = TRAILER.unpack(handle.read(TRAILER.size))
    if recorded != length:
        raise _BadFileError("truncated (its length is not the one written)")
    if checksum != crc:
        raise _BadFileError("garbled (checksum mismatch)")


def _unpickle(load: Callable[[], Any]) -> ParseCache:
    # One unpickler per pickle: each was written with a memo of its own. The contents are
    # not checked: past the stamp and the checksum, only this module's writer made them.
    cache: ParseCache = {}
    sources = load()
    shared = [share(value) for value in load()]
    for name, fingerprint, count in sources:
        files: ExportedCache = {}
        while len(files) < count:
            files.update(
                (relpath, (key, row and _article(row, shared), problems))
                for relpath, key, row, problems in load()
            )
        cache[name] = (fingerprint, files)
    return cache


class _Unpickler(pickle.Unpickler):
    """Admits only the classes a file of this kind holds: a stray file cannot run code."""

    def __init__(self, handle: IO[bytes], allowed: Mapping[str, frozenset[str]]) -> None:
        super().__init__(handle)
        self.allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if name not in self.allowed.get(module, ()):
            raise pickle.UnpicklingError(f"{module}.{name} has no place in this file")
        return super().find_class(module, name)

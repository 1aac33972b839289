"""Reading one file of a folder source: its bytes (within the size cap) and what
feedsvc.sources.post parses them to, with what a failed read keeps. What it needs
pickles, so that a cold start can read on every core (feedsvc.processes.cpus)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import NamedTuple

from feedsvc.content import is_rust_panic
from feedsvc.errors import ArticleError
from feedsvc.model import Article, Problem
from feedsvc.settings import SiteConfig, SourceConfig
from feedsvc.sources.fields import PostContext
from feedsvc.sources.post import parse_post_bytes


@dataclass(slots=True)
class Cached:
    """One file as a source holds it: its (size, mtime_ns, inode), article, problems."""

    key: tuple[int, int, int]
    article: Article | None
    problems: tuple[Problem, ...]
    seen: int = 0  # the last read whose walk found the file


class Listed(NamedTuple):
    """What a listing made ahead keeps of a changed file's stat, for reading it."""

    st_size: int
    st_mtime_ns: int
    st_ino: int

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9


Stale = tuple[str, "os.stat_result | Listed", Cached | None]  # (path, stat, cached before)


class _UnreadableError(ArticleError):
    """The file could not be read at all (as opposed to read and found wrong)."""


@dataclass(frozen=True, slots=True)
class FileReader:
    """Reads and parses one file of a source; what it needs pickles, so that a cold start
    can parse on every core (feedsvc.processes.cpus). Logs nothing: the source logs the problems."""

    config: SourceConfig
    site: SiteConfig
    root: Path
    base_dir: Path
    tz: tzinfo

    def read(self, relpath: str, info: os.stat_result | Listed, previous: Cached | None) -> Cached:
        """Read and parse one file; a failed read keeps `previous`'s article to try again."""
        key = (info.st_size, info.st_mtime_ns, info.st_ino)
        display = self._display(relpath)
        mtime = datetime.fromtimestamp(info.st_mtime, tz=UTC).replace(microsecond=0)
        ctx = PostContext(self.config.name, relpath, display, self.site, self.tz, mtime)
        try:
            data = self._read_bytes(relpath, info, display)
        except _UnreadableError as exc:
            # A read error (permission, disk) says nothing about the article: keep the last
            # good one, and keep the old key so that the next reload tries again.
            if previous is not None and previous.article is not None:
                return Cached(previous.key, previous.article, (exc.problem,))
            return Cached(key, None, (exc.problem,))
        except ArticleError as exc:
            return Cached(key, None, (exc.problem,))
        try:
            article, problems = parse_post_bytes(data, ctx)
        except BaseException as exc:
            # A panic in a Rust extension (markdown, sanitizer) on this file's text:
            # one bad file must not stop the reload, nor the builder process.
            if not is_rust_panic(exc):
                raise
            return Cached(key, None, (Problem(display, 1, f"could not be parsed: {exc}"),))
        return Cached(key, article, problems)

    def _read_bytes(self, relpath: str, info: os.stat_result | Listed, display: str) -> bytes:
        limit = self.config.byte_limit
        if info.st_size > limit:
            raise ArticleError(display, 1, f"file is {info.st_size} bytes, over max_bytes {limit}")
        try:
            with open(self.root / relpath, "rb") as handle:
                data = handle.read(limit + 1)  # never more than the cap, even if it grew
        except OSError as exc:
            raise _UnreadableError(display, 1, f"cannot read: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise ArticleError(display, 1, f"file grew over max_bytes {limit}")
        return data

    def _display(self, relpath: str) -> str:
        full = os.path.join(self.root, relpath)
        shown = os.path.relpath(full, self.base_dir)
        return full if shown.startswith("..") else shown


def read_files(reader: FileReader, batch: Sequence[Stale]) -> list[Cached]:
    """Read each (relative path, stat, cached before) of `batch` (Cores.map's shape)."""
    return [reader.read(relpath, info, previous) for relpath, info, previous in batch]

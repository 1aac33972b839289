"""A folder of front-matter files: walk (ignore rules, symlinks), stat, read each changed
file, and keep the parsed posts between reloads by (size, mtime_ns, inode).

Reading one file is feedsvc.sources.reading's; parsing one post, feedsvc.sources.post's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from feedsvc.dates import load_timezone
from feedsvc.errors import SourceError
from feedsvc.model import Article, Problem, SourceResult
from feedsvc.processes.cpus import Cores
from feedsvc.settings import SiteConfig, SourceConfig
from feedsvc.sources.globs import compile_globs
from feedsvc.sources.reading import Cached, FileReader, Listed, Stale, read_files
from feedsvc.sources.shared import with_shared_values

logger = logging.getLogger(__name__)

# Editor leftovers and unpublished folders that Hexo and Jekyll never publish.
_BACKUP = re.compile(r"(~|\.swp|\.swo|\.bak|\.tmp)$|^#.*#$")
_SKIPPED_DIRS = frozenset({"_drafts", "node_modules"})
CachedFile = tuple[tuple[int, int, int], Article | None, tuple[Problem, ...]]
"""One file as a source remembers it: (size, mtime_ns, inode), its article or None, problems."""
ExportedCache = dict[str, CachedFile]
"""A source's files by path relative to its folder (DirectorySource.export_cache)."""


class Listing(NamedTuple):
    """A folder's files to read, as `DirectorySource.listing` makes them: their paths
    relative to it, and their sizes, mtime_ns and inodes as arrays, which another process
    hands over in a few milliseconds for 50,000 files (as objects, 0.1-0.2 s)."""

    paths: list[str]
    sizes: array[int]  # 'q'
    mtimes: array[int]  # 'q'
    inodes: array[int]  # 'Q'


class DirectorySource:
    """Reads a folder of posts; re-reads only files whose (size, mtime_ns, inode) changed."""

    def __init__(
        self, config: SourceConfig, site: SiteConfig, base_dir: Path, cores: Cores | None = None
    ) -> None:
        self.config = config
        self.site = site  # kept through edits of the site but its `for_articles`
        assert config.path is not None  # config validation requires it for directories
        self.root = Path(config.path)
        self.include = compile_globs(config.include)
        self.exclude = compile_globs(config.exclude)
        self.reader = FileReader(config, site, self.root, base_dir, load_timezone(site.timezone))
        self.cores = cores or Cores(processes=1)
        self._cache: dict[str, Cached] = {}
        self._reading = 0  # reads so far: what Cached.seen is compared with
        self._walked = False  # whether a read has scanned the whole folder
        self._listed: Listing | None = None  # a listing made ahead, for the first read
        self.reads = 0  # files parsed since creation: incremental reloads keep this low
        self.parsed = 0  # of those, the ones done (a progress bar follows both)

    def read(self, changed: Collection[str] | None = None) -> SourceResult:
        """Scan the folder, or, given `changed` (the absolute paths a watch saw change since
        the last read), look at those files alone; SourceError when the folder itself
        cannot be read. The first read scans, or takes the listing made ahead (`expect`)
        with `changed` as what changed since it was made."""
        if not self.root.is_dir():
            raise SourceError("folder is missing or not a folder")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise SourceError("permission denied")
        self._reading += 1
        listed, self._listed = self._listed, None
        looked: list[str] | None = None if changed is None or not self._walked else []
        if looked is not None:
            stale = self._stale(self._look_at(changed or (), looked))
        elif changed is not None and listed is not None:
            stale = self._stale_since(listed, changed)
        else:
            stale = self._stale(self._walk())
        self._parse(stale)
        # Updated in place: a tick that finds nothing new allocates nothing per file (a
        # new dict of 50,000 paths per tick was most of a tick's peak memory).
        cache = self._cache
        candidates = cache if looked is None else [p for p in looked if p in cache]
        for gone in [path for path in candidates if cache[path].seen != self._reading]:
            del cache[gone]
        self._walked = True
        articles = tuple(c.article for c in cache.values() if c.article is not None)
        failing = sorted(path for path, cached in cache.items() if cached.problems)
        return SourceResult(articles, tuple(p for path in failing for p in cache[path].problems))

    def _stale(self, found: Iterable[tuple[str, os.stat_result]]) -> list[Stale]:
        """The files found whose revision (size, mtime_ns, inode) is not the cached one;
        the others are marked seen by this read."""
        stale: list[Stale] = []
        for relpath, info in found:
            cached = self._cache.get(relpath)
            if (
                cached is None
                or cached.key[0] != info.st_size
                or cached.key[1] != info.st_mtime_ns
                or cached.key[2] != info.st_ino
            ):
                stale.append((relpath, info, cached))
            else:
                cached.seen = self._reading
        return stale

    def _parse(self, stale: list[Stale]) -> None:
        """Read and parse the stale files (on every core when there are many), and cache them."""
        self.reads += len(stale)
        parsed = self.cores.map(read_files, self.reader, stale)
        for (relpath, _, _), cached in zip(stale, parsed, strict=True):
            for problem in cached.problems:
                logger.warning("%s", problem)
            if cached.article is not None:
                cached.article = with_shared_values(cached.article)
            self._cache[relpath] = cached
            cached.seen = self._reading
            self.parsed += 1

    def listing(self) -> Listing:
        """Every file a read would look at now, and its stat: made by another process
        while this one does other work (feedsvc.processes.resume), and handed back
        with `expect`."""
        listed = Listing([], array("q"), array("q"), array("Q"))
        for relpath, info in self._walk():
            listed.paths.append(relpath)
            listed.sizes.append(info.st_size)
            listed.mtimes.append(info.st_mtime_ns)
            listed.inodes.append(info.st_ino)
        return listed

    def expect(self, listed: Listing) -> None:
        """Let the next read, if it is the first and is told what changed since `listed`
        was made (the watch was on before), take `listed` for its scan."""
        self._listed = listed

    def _stale_since(self, listed: Listing, changed: Collection[str]) -> list[Stale]:
        """`_stale` of the files of `listed`, those in `changed` looked at again."""
        again: list[str] = []
        stale = self._stale(self._look_at(changed, again))
        skip, cached_at, reading = set(again), self._cache.get, self._reading
        keys = zip(listed.sizes, listed.mtimes, listed.inodes, strict=True)
        for relpath, key in zip(listed.paths, keys, strict=True):
            if relpath in skip:
                continue
            cached = cached_at(relpath)
            if cached is not None and cached.key == key:
                cached.seen = reading
            else:
                stale.append((relpath, Listed(*key), cached))
        return stale

    def _look_at(
        self, paths: Collection[str], looked: list[str]
    ) -> Iterator[tuple[str, os.stat_result]]:
        """(relative path, stat) of those of `paths` that are files to read, by the rules
        of `_walk`; every path under the folder is added to `looked`."""
        root = os.path.realpath(self.root)
        for path in paths:
            if not _is_within(path, root) or path == root:
                continue
            relpath = os.path.relpath(path, root).replace(os.sep, "/")
            looked.append(relpath)
            *folders, name = relpath.split("/")
            if name[0] == "." or any(f[0] == "." or f in _SKIPPED_DIRS for f in folders):
                continue
            if relpath not in self._cache and (
                not self.include.match(relpath)
                or _BACKUP.search(name)
                or self.exclude.match(relpath)
            ):
                continue
            if os.path.islink(path) and not self._is_safe_link(path, root):
                continue
            try:
                info = os.stat(path)
            except OSError:
                continue  # gone: dropped from the cache by the caller
            if stat.S_ISREG(info.st_mode):
                yield relpath, info

    def _walk(self) -> Iterator[tuple[str, os.stat_result]]:
        """(relative path, stat) of every file to read; one stat per file.

        The order is the file system's; nothing downstream depends on it.
        """
        root = os.path.realpath(self.root)
        seen = {root}
        pending = [(root, "")]
        include, exclude, backup = self.include.match, self.exclude.match, _BACKUP.search
        known = self._cache  # paths that passed the filters before need no second look
        while pending:
            directory, prefix = pending.pop()
            for entry in _entries(directory):
                name = entry.name
                if name[0] == ".":  # hidden files and folders are never published
                    continue
                if entry.is_symlink() and not self._is_safe_link(entry.path, root):
                    continue
                if entry.is_dir():
                    real = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
                    # Prune draft folders and loops through links to folders already seen.
                    if name not in _SKIPPED_DIRS and real not in seen:
                        seen.add(real)
                        pending.append((entry.path, prefix + name + "/"))
                    continue
                relpath = prefix + name
                if relpath not in known and (
                    not include(relpath) or backup(name) or exclude(relpath)
                ):
                    continue
                try:
                    info = entry.stat()
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    yield relpath, info

    @property
    def fingerprint(self) -> str:
        """A digest of the settings a parse depends on: the source's, the site's and the
        folder paths in problems are relative to. The parser's code and libraries are
        stamped on the whole file instead (feedsvc.state.parsecache)."""
        settings = repr((self.config, self.site.for_articles, str(self.reader.base_dir)))
        return hashlib.sha256(settings.encode("utf-8")).hexdigest()

    def export_cache(self) -> ExportedCache:
        """Every file read so far, for a later process (feedsvc.state.parsecache)."""
        return {path: (c.key, c.article, c.problems) for path, c in self._cache.items()}

    def import_cache(self, files: Mapping[str, CachedFile]) -> list[Article]:
        """Take files exported by a source of the same `fingerprint` as read already: the
        next read parses only those whose (size, mtime_ns, inode) changed since. Returns
        their articles. They should hold shared values (feedsvc.sources.shared), as
        the parse cache gives them."""
        articles: list[Article] = []
        for relpath, (key, article, problems) in files.items():
            if article is not None:
                articles.append(article)
            self._cache[relpath] = Cached(key, article, problems)
        return articles

    @staticmethod
    def _is_safe_link(path: str, root: str) -> bool:
        """A symlink may be followed only when it resolves inside the source root."""
        if _is_within(os.path.realpath(path), root):
            return True
        logger.warning("%s: symlink leads outside the source folder; not read", path)
        return False


def _entries(directory: str) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except OSError as exc:
        logger.warning("%s: cannot list: %s", directory, exc.strerror or exc)
        return []


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

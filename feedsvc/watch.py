"""Notice changes: to config.yaml (ConfigWatcher, the one place that compares and loads
it) and to the files of directory sources; both through inotify (watchdog) to reload
soon after a change.

Every reload, whichever trigger asked for it (the schedule, an inotify event on the
config file or a source folder, an operator), starts with `ConfigWatcher.check`: the
file is re-read when its (mtime, size, inode) changed, a valid edit is applied, an
invalid one keeps the last good config with its problems reported.

The scheduled reload stays the safety net: file systems without change events (NFS,
some container mounts) and dropped events (a full inotify queue) are still caught on
the next tick. An event only asks for a reload; the reload itself finds what changed by
(size, mtime, inode), as a tick does, so a missed or extra event costs nothing but time.

`POST /-/reload` must see a file saved just before it, whose event may not have been
read yet. Rather than stat every file, `FolderWatch.sync` makes and removes a
cookie file in each watched folder and waits for its event, as watchman does: inotify
reports a folder's events in order, so once the cookie's is in, so is every earlier one.
The only user of watchdog; over 300 lines, since every watch shares its observer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from operator import attrgetter

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from feedsvc.config import load_config
from feedsvc.errors import ConfigError
from feedsvc.model import Problem
from feedsvc.settings import Config

logger = logging.getLogger(__name__)

# Events that say a file's bytes or presence changed. Opening and closing a file without
# writing are left out: they are what a reload's own reads cause.
_CHANGES = frozenset({"created", "modified", "closed", "deleted", "moved"})
# Events after which a file is whole: a reload may start at once.
_COMPLETE = frozenset({"closed", "deleted", "moved"})
# An editor's save or a `git pull` is a burst of events: a reload at its first completed
# write, and one more once it settles if anything changed after that.
SETTLE_SECONDS = 0.05
MAX_DIRTY = 10_000  # changed files remembered between reloads; past it, look at all
# A cookie file: made and removed at once by `FolderWatch.sync`; the walker skips it (a dot
# file), the watch counts it as no change.
COOKIE_PREFIX = ".feedsvc-cookie-"
SYNC_SECONDS = 1.0  # a cookie not seen by then: the reload looks at every file instead
# Read once when the server starts; a change needs a restart to take effect.
RESTART_KEYS = (
    "server.host",
    "server.port",
    "server.workers",
    "server.threads",
    "server.access_log",
    "state.path",
)


class ConfigWatcher:
    """Re-reads the config file when its (mtime, size, inode) change."""

    def __init__(self, running: Config, *, check_now: bool = False) -> None:
        self.path = running.path
        self.current = running
        self.started = running
        self.problems: list[Problem] = []
        # check_now: the running config did not come from the file as it is now.
        self._signature = None if check_now else _signature(self.path)

    def check(self) -> Config | None:
        """The new config when the file changed to a valid one, else None; see `problems`."""
        signature = _signature(self.path)
        if signature == self._signature and signature is not None:
            return None
        self._signature = signature
        try:
            candidate = load_config(self.path)  # a vanished file is a ConfigError too
        except ConfigError as exc:
            problems = exc.problems
            if problems != self.problems:
                for problem in problems:
                    logger.warning(
                        "config not applied; the last good one keeps serving: %s", problem
                    )
            self.problems = problems
            return None
        self.problems = self._restart_needed(candidate)
        if candidate == self.current:
            return None
        self.current = candidate
        logger.info("config reloaded from %s", self.path)
        return candidate

    def _restart_needed(self, candidate: Config) -> list[Problem]:
        problems = []
        for key in RESTART_KEYS:
            value = attrgetter(key)  # a dotted path: section, then key
            if value(candidate) != value(self.started):
                message = f"{key} changed; it takes effect after a restart"
                logger.warning("%s: %s", self.path, message)
                problems.append(Problem(self.path, None, message, "warning"))
        return problems


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class FolderWatch:
    """Calls `on_change` when a file under a watched folder, or the config file, changes:
    at once for a completed write, and at most once more per burst."""

    def __init__(self, on_change: Callable[[], None], settle_seconds: float = SETTLE_SECONDS):
        self.on_change = on_change
        self.settle_seconds = settle_seconds
        self._observer: BaseObserver | None = None
        # (folder, the one file in it that counts, or None for the whole tree)
        self._watches: dict[tuple[str, str | None], ObservedWatch] = {}
        self._timer: threading.Timer | None = None
        self._fired = False  # the burst's first completed write was reported at once
        self._pending = False  # something changed since then: report when it settles
        # Files changed since the last `drain`; None: unknown (a folder changed, a watch
        # could not be set, too many), so the next reload looks at every file.
        self._dirty: set[str] | None = None
        self._wanted = 1 << 30  # watches `follow` wants: fewer set, and drain says None
        self._lock = threading.Lock()
        self._awaiting: list[ObservedWatch] = []  # ancestors of missing source folders
        self._followed = False
        self._cookies: dict[str, threading.Event] = {}  # cookie path -> its event was seen
        self._made = 0  # cookies made so far: each has a name of its own

    def drain(self) -> set[str] | None:
        """The files that changed since the last call (None: look at every file)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            if not self._whole():
                return None
        return dirty

    def restart(self) -> bool:
        """Start collecting afresh: the next `drain` holds the changes made from now on;
        False when it cannot (a folder is not watched: it says None)."""
        with self._lock:
            self._dirty = set()
            return self._whole()

    def _whole(self) -> bool:
        """Whether every folder `follow` wants is watched (held under the lock)."""
        return len(self._watches) >= self._wanted

    def forget(self) -> None:
        """Make the next `drain` say "every file" (the scheduled safety-net reload)."""
        with self._lock:
            self._dirty = None

    def sync(self, timeout: float = SYNC_SECONDS) -> None:
        """Make the next `drain` hold every change made before this call: a cookie file is
        made and removed in every watched folder, and its event waited for. Where that
        cannot be done (a folder not watched or not writable, a cookie not seen in
        `timeout`), `forget`: the next reload looks at every file."""
        with self._lock:
            folders = [folder for folder, only in self._watches if only is None]
            whole = self._whole()
        seen = [self._make_cookie(folder) for folder in folders] if whole else [None]
        deadline = time.monotonic() + timeout
        synced = all(e is not None and e.wait(deadline - time.monotonic()) for e in seen)
        with self._lock:
            self._cookies = {p: e for p, e in self._cookies.items() if e not in seen}
        if not synced:
            self.forget()

    def _make_cookie(self, folder: str) -> threading.Event | None:
        """Make and remove a cookie in `folder`; the event set when the watch sees it."""
        with self._lock:
            self._made += 1
            path = os.path.join(folder, f"{COOKIE_PREFIX}{os.getpid()}-{self._made}")
            seen = self._cookies[path] = threading.Event()
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(path)
        except OSError as exc:  # a read-only folder, say
            logger.debug("%s: cannot sync with the watch (%s); looking at every file", folder, exc)
            return None
        return seen

    def _cookie_seen(self, path: str) -> None:
        with self._lock:
            seen = self._cookies.get(path)
        if seen is not None:
            seen.set()

    @property
    def folders(self) -> set[str]:
        """The source folders being watched (the config file's folder aside)."""
        return {folder for folder, only in self._watches if only is None}

    def follow(self, config: Config) -> None:
        """Watch the folders of `config`'s directory sources and its file (nothing with
        `reload.watch` off); called after every reload, since a config edit may change
        them."""
        wanted = _watches_of(config)
        count = len(wanted) if config.reload.watch else 1 << 30
        if wanted == set(self._watches) and count == self._wanted:
            return
        self.forget()  # files in folders newly watched are not known yet
        self._wanted = count
        if not wanted and not self._watches:
            return
        observer = self._started()
        for awaiting in self._awaiting:
            observer.unschedule(awaiting)
        self._awaiting.clear()
        added = False
        for key in set(self._watches) - wanted:
            observer.unschedule(self._watches.pop(key))
        for key in wanted - set(self._watches):
            folder, only = key
            handler = _Handler(self._changed, only, self._cookie_seen)
            try:
                self._watches[key] = observer.schedule(handler, folder, recursive=only is None)
                added = True
            except FileNotFoundError:
                self._await(observer, folder)
            except OSError as exc:  # missing, unreadable, or out of inotify watches
                logger.warning(
                    "%s: cannot watch for changes (%s); the scheduled reload picks them up",
                    folder,
                    exc.strerror or exc,
                )
        if added and self._followed:
            # A file saved between the last reload's scan and this watch: reload once more.
            self._changed(True, None)
        self._followed = True

    def _await(self, observer: BaseObserver, folder: str) -> None:
        """Watch the nearest existing ancestor of a missing folder for it to appear."""
        parent = os.path.dirname(folder)
        while not os.path.isdir(parent) and parent != os.path.dirname(parent):
            parent = os.path.dirname(parent)
        appears = _Appears(lambda: self._changed(True, None), folder)
        try:
            self._awaiting.append(observer.schedule(appears, parent, recursive=False))
        except OSError:
            logger.warning("%s: missing; the scheduled reload picks it up", folder)

    def stop(self) -> None:
        """Stop watching."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
            self._watches.clear()

    def _started(self) -> BaseObserver:
        if self._observer is None:
            # watchdog 7 warns when a folder made in a burst gets its watch twice (it
            # keeps one): bookkeeping, not a lost event, and not an operator's concern.
            warnings.filterwarnings(
                "ignore", "Callback with id .* already exists for watch", RuntimeWarning
            )
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        return self._observer

    def _changed(self, complete: bool, paths: tuple[str, ...] | None) -> None:
        """Files changed (`paths`; None: a folder, so any file may have); `complete`: the
        writer is done (closed, renamed or deleted), so the reload may start at once
        rather than when the burst settles."""
        with self._lock:
            if paths is None or self._dirty is None or len(self._dirty) > MAX_DIRTY:
                self._dirty = None
            else:
                self._dirty.update(paths)
            now = complete and not self._fired
            if now:  # the reload this starts reads whatever the burst changed so far
                self._fired, self._pending = True, False
            else:
                self._pending = True
            if self._timer is None:
                self._timer = threading.Timer(self.settle_seconds, self._settled)
                self._timer.daemon = True
                self._timer.start()
        if now:
            self.on_change()

    def _settled(self) -> None:
        with self._lock:
            self._timer = None
            pending, self._pending, self._fired = self._pending, False, False
        if pending:  # what changed after the first call, or without a completed write
            self.on_change()


def _watches_of(config: Config) -> set[tuple[str, str | None]]:
    """What `config` wants watched: (folder, the one file in it that counts, or None for
    the whole tree), the config file's folder and every directory source's."""
    if not config.reload.watch:
        return set()
    path = os.path.realpath(config.path)
    wanted: set[tuple[str, str | None]] = {(os.path.dirname(path), path)}
    for source in config.sources:
        if source.type == "directory" and source.path is not None:
            folder = os.path.join(os.path.dirname(config.path), source.path)
            wanted.add((os.path.realpath(folder), None))
    return wanted


class _Handler(FileSystemEventHandler):
    def __init__(
        self,
        changed: Callable[[bool, tuple[str, ...] | None], None],
        only: str | None,
        cookie: Callable[[str], None],
    ) -> None:
        self._changed = changed
        self._only = only  # None: any file; else this file (an editor may save by rename)
        self._cookie = cookie

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _CHANGES:
            return
        path = os.fsdecode(event.src_path)
        if os.path.basename(path).startswith(COOKIE_PREFIX):
            self._cookie(path)
            return
        complete = event.event_type in _COMPLETE
        if self._only is None:
            if not event.is_directory:
                paths = tuple(os.fsdecode(p) for p in (event.src_path, event.dest_path) if p)
                self._changed(complete, paths)
            elif event.event_type != "modified":  # a folder made, moved or removed
                self._changed(complete, None)
        elif self._only in (event.src_path, event.dest_path):
            self._changed(complete, ())


class _Appears(FileSystemEventHandler):
    """Calls `appeared` when a missing folder, or a folder on its way, is made."""

    def __init__(self, appeared: Callable[[], None], folder: str) -> None:
        self._appeared = appeared
        self._folder = folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        for raw in (event.src_path, event.dest_path):
            path = os.fsdecode(raw) if raw else ""
            if path and (self._folder == path or self._folder.startswith(path + os.sep)):
                self._appeared()
                return

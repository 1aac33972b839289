"""Reload soon after a file changes in a directory source: inotify, through watchdog.

The scheduled reload stays the safety net: file systems without change events (NFS,
some container mounts) and dropped events (a full inotify queue) are still caught on
the next tick. An event only asks for a reload; the reload itself finds what changed by
(size, mtime, inode), as a tick does, so a missed or extra event costs nothing but time.
The only user of watchdog.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from feedsvc.config import Config

logger = logging.getLogger(__name__)

# Events that say a file's bytes or presence changed. Opening and closing a file without
# writing are left out: they are what a reload's own reads cause.
_CHANGES = frozenset({"created", "modified", "closed", "deleted", "moved"})
# An editor's save or a `git pull` is a burst of events: one reload after it settles.
SETTLE_SECONDS = 0.05


class FolderWatch:
    """Calls `on_change` (once per burst) when a file under a watched folder changes."""

    def __init__(self, on_change: Callable[[], None], settle_seconds: float = SETTLE_SECONDS):
        self.on_change = on_change
        self.settle_seconds = settle_seconds
        self._observer: BaseObserver | None = None
        self._watches: dict[str, ObservedWatch] = {}
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._handler = _Handler(self._changed)

    @property
    def folders(self) -> set[str]:
        """The folders being watched."""
        return set(self._watches)

    def follow(self, config: Config) -> None:
        """Watch the folders of `config`'s directory sources (none with `reload.watch`
        off); called after every reload, since a config edit may change them."""
        wanted = set()
        if config.reload.watch:
            base = os.path.dirname(config.path)
            for source in config.sources:
                if source.type == "directory" and source.path is not None:
                    wanted.add(os.path.realpath(os.path.join(base, source.path)))
        if wanted == set(self._watches):
            return
        observer = self._started()
        for folder in set(self._watches) - wanted:
            observer.unschedule(self._watches.pop(folder))
        for folder in wanted - set(self._watches):
            try:
                self._watches[folder] = observer.schedule(self._handler, folder, recursive=True)
            except OSError as exc:  # missing, unreadable, or out of inotify watches
                logger.warning(
                    "%s: cannot watch for changes (%s); the scheduled reload picks them up",
                    folder,
                    exc.strerror or exc,
                )

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
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        return self._observer

    def _changed(self) -> None:
        with self._lock:
            if self._timer is not None:  # this burst already has its reload coming
                return
            self._timer = threading.Timer(self.settle_seconds, self._settled)
            self._timer.daemon = True
            self._timer.start()

    def _settled(self) -> None:
        with self._lock:
            self._timer = None
        self.on_change()


class _Handler(FileSystemEventHandler):
    def __init__(self, changed: Callable[[], None]) -> None:
        self._changed = changed

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _CHANGES and not (
            event.is_directory and event.event_type == "modified"
        ):
            self._changed()

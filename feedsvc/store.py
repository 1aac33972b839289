"""The current Snapshot: readers take it whole, the reloader swaps it whole."""

from __future__ import annotations

import threading

from feedsvc.model import Snapshot


class Store:
    """Holds one immutable Snapshot; `current` never shows a half-built state.

    Reading is a single attribute load, atomic in CPython, so requests take no
    lock; the lock only orders concurrent writers.
    """

    def __init__(self) -> None:
        self._snapshot = Snapshot()
        self._lock = threading.Lock()

    @property
    def current(self) -> Snapshot:
        """The snapshot to answer a request from."""
        return self._snapshot

    def swap(self, snapshot: Snapshot) -> None:
        """Replace the whole snapshot at once."""
        with self._lock:
            self._snapshot = snapshot

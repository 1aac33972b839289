"""The current Snapshot: readers take it whole, the reloader swaps it whole."""

from __future__ import annotations

from feedsvc.model import Snapshot


class Store:
    """Holds one immutable Snapshot; `current` never shows a half-built state.

    Reading and swapping are each a single attribute load or store, atomic in CPython,
    so neither takes a lock (a lock around the store would order nothing more).
    """

    def __init__(self) -> None:
        self._snapshot = Snapshot()

    @property
    def current(self) -> Snapshot:
        """The snapshot to answer a request from."""
        return self._snapshot

    def swap(self, snapshot: Snapshot) -> None:
        """Replace the whole snapshot at once."""
        self._snapshot = snapshot

"""The one reload loop: every trigger asks it, one thread runs reloads, the same steps follow.

The schedule, SIGHUP, `POST /-/reload`, a file watch, a config save and a remote fetch
that brought news all call `ask` (or `poke`). Asks that arrive while a reload runs are
answered by one more reload after it (none is lost, none runs twice for nothing). After
every reload `after` runs once, in one place (publish the generation, apply the config,
ping the hub), and only then is every asker answered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from feedsvc.model import ReloadSummary
from feedsvc.reload.reloader import Reloader

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What an asker is told: the reload's summary and the generation that serves it."""

    summary: ReloadSummary
    generation: int


class ReloadLoop:
    """Runs `reloader.reload()` then `after(summary)` (which returns the generation)."""

    def __init__(self, reloader: Reloader, after: Callable[[ReloadSummary], int]) -> None:
        self.reloader = reloader
        self.after = after
        # Called before a reload that must look at every file (FolderWatch.forget), and
        # before one that must see every change made before it was asked for
        # (FolderWatch.sync).
        self.scan: Callable[[], None] = lambda: None
        self.sync: Callable[[], None] = lambda: None
        self._everything = False
        self._sync = False
        self._waiting: list[Future[Reloaded]] = []
        self._lock = threading.Lock()
        self._wanted = threading.Event()

    def ask(self, *, everything: bool = False, sync: bool = True) -> Future[Reloaded]:
        """Ask for a reload that starts after this call; the future is its result.

        `POST /-/reload` must have in its result a file saved just before it, whether or
        not the watch has read its event yet (`sync`); the schedule and SIGHUP look at
        every file (`everything`), the safety net for changes no event reported.
        """
        future: Future[Reloaded] = Future()
        with self._lock:
            self._waiting.append(future)
            self._everything |= everything
            self._sync |= sync
        self._wanted.set()
        return future

    def poke(self) -> None:
        """Ask for a reload of what changed, without waiting (a watch, a remote fetch)."""
        self.ask(sync=False)

    def start(self) -> None:
        """Run reloads on a thread of their own, for as long as the process lives."""
        threading.Thread(target=self._run, name="reload-loop", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            with self._lock:
                waiting, self._waiting = self._waiting, []
                everything, self._everything = self._everything, False
                sync, self._sync = self._sync, False
                self._wanted.clear()
            if everything:
                self.scan()
            elif sync:
                self.sync()
            try:
                summary = self.reloader.reload()  # never raises: its failures are problems
                result = Reloaded(summary, self.after(summary))
            except Exception as exc:
                # Logged, and every asker has it; the loop goes on.
                logger.exception("publishing a reload failed")
                for future in waiting:
                    future.set_exception(exc)
                continue
            for future in waiting:
                future.set_result(result)

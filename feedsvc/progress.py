"""Progress bars for the commands that run once (check, build, publish); the only user of tqdm.

Bars go to standard error and only when it is a terminal: standard output keeps the
`path:line: message` problems and the summary line that scripts parse.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from tqdm import tqdm

POLL_SECONDS = 0.1


class Counted(Protocol):
    """A source that counts the files it has to parse (`reads`) and has parsed (`parsed`)."""

    reads: int
    parsed: int


class Rendering(Protocol):
    """A builder that counts the feed entries it renders (`entries`: done, wanted)."""

    @property
    def entries(self) -> tuple[int, int]:
        """Entries rendered, and asked for."""


class Progress:
    """Makes bars when `enabled`, otherwise callables that do nothing."""

    def __init__(self, enabled: bool, stream: TextIO | None = None, delay: float = 0.2) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.delay = delay  # a run shorter than this shows no bar at all

    @classmethod
    def for_terminal(cls, quiet: bool) -> Progress:
        """Bars unless `quiet` or standard error is not a terminal."""
        return cls(not quiet and sys.stderr.isatty())

    @contextmanager
    def bar(self, label: str, total: int | None, unit: str) -> Iterator[Callable[[int], None]]:
        """A bar of `total` `unit`s (rate and time left); yields `advance(n)`."""
        if not self.enabled:
            yield lambda n: None
            return
        with tqdm(
            total=total,
            desc=label,
            unit=f" {unit}",
            file=self.stream,
            leave=False,
            delay=self.delay,
        ) as shown:
            lock = threading.Lock()

            def advance(n: int) -> None:
                with lock:  # uploads report from several threads
                    shown.update(n)

            yield advance

    @contextmanager
    def files(self, sources: Iterable[object], builder: Rendering | None = None) -> Iterator[None]:
        """While the body runs, a bar of the files the directory sources parse, then of
        the feed entries the builder renders."""
        counted = [s for s in sources if hasattr(s, "reads") and hasattr(s, "parsed")]
        if not self.enabled or not (counted or builder):
            yield
            return
        done = threading.Event()
        with tqdm(desc="files read", unit=" files", file=self.stream, leave=False) as shown:
            thread = threading.Thread(
                target=_follow, args=(counted, builder, shown, done), daemon=True
            )
            thread.start()
            try:
                yield
            finally:
                done.set()
                thread.join()


def _follow(
    sources: list[Counted], builder: Rendering | None, shown: tqdm[None], done: threading.Event
) -> None:
    started = builder.entries if builder is not None else (0, 0)
    finished = False
    while not finished:  # a last look once the body is done: its last stage is drawn
        finished = done.wait(POLL_SECONDS)
        total = sum(s.reads for s in sources)
        parsed = sum(s.parsed for s in sources)
        if builder is not None and parsed == total:  # every file read: entries render
            rendered, wanted = (
                now - then for now, then in zip(builder.entries, started, strict=True)
            )
            if wanted:
                if shown.unit != " entries":
                    shown.reset(total=wanted)
                    shown.unit = " entries"
                    shown.set_description("feed entries rendered", refresh=False)
                shown.n = rendered
                shown.refresh()
                continue
        if total:
            shown.total, shown.n = total, parsed
            shown.refresh()

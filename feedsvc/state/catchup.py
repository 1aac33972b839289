"""The builder's memory beside the parse cache: the last placing of ids
(feedsvc.state.placing), the node index (feedsvc.build.membership) and the entries
rendered (feedsvc.build.entries), so that a restart carries on from them instead of
placing, grouping and rendering every article again.

One pickle (the config digest, the generation, the placing, the index, the entries and
what of the config they were made for) in
the parse cache's framing: a version and stamp header and a checksummed payload, written
with the parse cache (feedsvc.state.files.write_together). Every part names articles by
revision, so a memory older than the last generation is still a sound start: what
changed since is placed, regrouped and rendered as in any reload. A missing, damaged or
foreign file, or one of another config, is ignored (logged) and the start does that
work anew.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feedsvc.build.entries import SavedEntry
from feedsvc.build.gzparts import View
from feedsvc.build.membership import IndexState
from feedsvc.build.site import SiteRenderer
from feedsvc.model import Article
from feedsvc.state.parsecache import checked_chunks, load_checked, sources_digest
from feedsvc.state.parsecache import stamp as parse_stamp
from feedsvc.state.placing import Placer, SavedPlacing

logger = logging.getLogger(__name__)

MAGIC = b"FSVCMEM\n"
_ALLOWED = {
    "feedsvc.model": frozenset({"Problem"}),
    "feedsvc.state.parsecache": frozenset({"rebuild"}),
    "datetime": frozenset({"datetime", "timezone", "timedelta"}),
}
# The code the saved shapes come from, besides the model's (the parse cache's stamp).
_MODULES = (
    "feedsvc.build.entries",
    "feedsvc.build.membership",
    "feedsvc.state.placing",
    __name__,
)


@dataclass(frozen=True, slots=True)
class Memory:
    """What a builder remembers: for which config and generation, its placing, its index."""

    config: str  # SiteRenderer.config_digest
    generation: int
    placing: SavedPlacing | None  # None: no ledger, nothing placed
    index: IndexState
    entries: list[SavedEntry]  # restored once the pieces they name are mapped
    entries_for: tuple[tuple[str, ...], bool]  # Entries.made_for


def memory_chunks(
    renderer: SiteRenderer, placer: Placer | None, generation: int
) -> Iterator[bytes]:
    """The file of what `renderer`'s index and entries and `placer` hold, to be written
    with the parse cache it speaks of (feedsvc.state.files.write_together)."""
    placing = placer.export() if placer is not None else None
    entries = renderer.entries_cache.export()
    made_for = renderer.entries_cache.made_for
    value = (
        renderer.config_digest,
        generation,
        placing,
        renderer.index.export(),
        entries,
        made_for,
    )
    return checked_chunks(MAGIC, stamp(), [value])


def load_memory(path: Path) -> Memory | None:
    """The memory saved at `path`, or None (a bad file is logged, never trusted)."""
    loaded = load_checked(path, "builder memory", (MAGIC, stamp()), _ALLOWED, _one)
    return None if loaded is None else Memory(*loaded)


def restore_memory(
    memory: Memory, renderer: SiteRenderer, placer: Placer | None, articles: Iterable[Article]
) -> bool:
    """Carry `renderer`'s index and `placer` on from `memory`, for `articles` as read
    again (unplaced); False when the memory is not theirs (another config, articles
    gone from it) and nothing was restored."""
    if memory.config != renderer.config_digest or (placer is None) != (memory.placing is None):
        logger.info("builder memory: of another config; the first reload groups every article")
        return False
    placed = (
        {a.revision: a for a in articles}
        if placer is None or memory.placing is None
        else placer.restore(memory.placing, articles)
    )
    if not renderer.index.restore(memory.index, placed):
        logger.info("builder memory: articles changed since; the node index is made anew")
        return False
    return True


def restore_entries(memory: Memory, renderer: SiteRenderer, view: View) -> None:
    """Carry `renderer`'s entries on from `memory`, those whose pieces `view` finds on
    disk (SnapshotWriter.view, once the writer has resumed): after a config edit too,
    unless it changed what entries are made of (Entries.made_for)."""
    if memory.entries_for == renderer.entries_cache.made_for:
        renderer.entries_cache.restore(memory.entries, view)


def _one(load: Any) -> tuple[Any, ...]:
    value = load()
    if not isinstance(value, tuple) or len(value) != 6:
        raise TypeError("not a builder memory")
    return value


@functools.cache
def stamp() -> bytes:
    """The parse cache's stamp and this file's shapes' code: a change to either makes it stale."""
    return hashlib.sha256(parse_stamp() + sources_digest(_MODULES)).digest()[:16]

"""How a builder process carries on from the state directory after a restart: the last
generation and the parse cache, so its first reload costs about a no-change one."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from feedsvc.model import Snapshot, read_only
from feedsvc.reload.reloader import Reloader
from feedsvc.sources.directory import DirectorySource
from feedsvc.state.parsecache import load_parse_cache, matching_files
from feedsvc.state.snapshots import BadStateError, SnapshotReader, read_index, validate
from feedsvc.state.snapshotwriter import SnapshotWriter

logger = logging.getLogger(__name__)


def warm_start(
    reloader: Reloader, writer: SnapshotWriter, folder: Path, checked: int | None = None
) -> None:
    """Carry on from the state on disk: the last generation (its documents are reused
    while their feeds' signatures hold) and the parse cache (files unchanged since are
    not parsed), so the first reload after a restart costs about a no-change one."""
    started = time.perf_counter()
    parsed = 0
    cache = load_parse_cache(parse_cache_path(folder))
    for source in reloader.sources:
        if isinstance(source, DirectorySource):
            files = matching_files(cache, source.config.name, source.fingerprint)
            source.import_cache(files)
            parsed += len(files)
    # `checked`: the generation the main process has just validated.
    generation = checked if checked is not None else validate(folder)
    if generation is None:
        return
    try:
        index = read_index(folder, generation)
        writer.resume(index)
        documents, _, _ = SnapshotReader(folder).load(index)
    except (BadStateError, OSError, ValueError) as exc:
        logger.warning("cannot resume from generation %d (%s); building anew", generation, exc)
        return
    reloader.renderer.seed(index.builder, documents)
    # What the catch-up compares with: only what changed since counts as changed (for the
    # log, the summary and the hub's pings).
    reloader.store.swap(Snapshot(documents=read_only(documents), generation=generation))
    logger.info(
        "resumed from generation %d and %d parsed files in %.3fs",
        generation,
        parsed,
        time.perf_counter() - started,
    )


def parse_cache_path(folder: Path) -> Path:
    """Where the parse cache lives: beside the snapshots folder."""
    return folder.parent / "parse-cache"

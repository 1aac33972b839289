"""How a builder process carries on from the state directory after a restart: the last
generation, the parse cache and the builder's memory (ids placed, the node index), so its
first reload costs about a no-change one."""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from pathlib import Path

from feedsvc.model import Article, Snapshot, read_only
from feedsvc.processes.cpus import end_with_parent, run_on_idle_cpu
from feedsvc.reload.reloader import Reloader
from feedsvc.sources.directory import DirectorySource
from feedsvc.state.catchup import load_memory, restore_entries, restore_memory
from feedsvc.state.parsecache import load_parse_cache, matching_files
from feedsvc.state.snapshots import BadStateError, SnapshotReader, read_index, validate
from feedsvc.state.snapshotwriter import SnapshotWriter

logger = logging.getLogger(__name__)


def warm_start(
    reloader: Reloader,
    writer: SnapshotWriter,
    folder: Path,
    checked: int | None = None,
    *,
    watched: bool = False,
) -> None:
    """Carry on from the state on disk: the last generation (its documents are reused
    while their feeds' signatures hold), the parse cache (files unchanged since are
    not parsed) and the memory saved with it (articles unchanged since are not placed,
    grouped or rendered again), so the first reload after a restart costs about a
    no-change one.

    The collector is paused meanwhile and what was loaded is frozen out of its reach
    (gc.freeze): a resume makes millions of objects and frees almost none, and the
    collections their count set off, each over more of them, were a third of a
    50,000-post resume (0.6 s). Objects that go later are still freed when their last
    reference goes; only cycles among them would stay.

    `watched`: a watch reports every change to the folders from now on. Then another
    process lists them meanwhile (ListingAhead), and the first reload takes its listing
    for the scan of every file: a third of a second at 50,000 posts, off the path to
    serving what changed while the server was down.
    """
    folders = [s for s in reloader.sources if isinstance(s, DirectorySource)]
    listing = ListingAhead(folders) if watched and folders else None
    gc.disable()
    try:
        _resume(reloader, writer, folder, checked)
    finally:
        gc.freeze()
        gc.enable()
        if listing is not None:
            listing.hand_over()


def _resume(reloader: Reloader, writer: SnapshotWriter, folder: Path, checked: int | None) -> None:
    started = time.perf_counter()
    articles: list[Article] = []
    cache = load_parse_cache(parse_cache_path(folder))
    for source in reloader.sources:
        if isinstance(source, DirectorySource):
            files = matching_files(cache, source.config.name, source.fingerprint)
            articles.extend(source.import_cache(files))
    memory = load_memory(memory_path(folder))
    # The articles the memory speaks of are those of the parse cache saved with it.
    remembered = memory is not None and restore_memory(
        memory, reloader.renderer, reloader.placer, articles
    )
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
        writer.number_after(generation)  # workers may serve it already
        return
    reloader.renderer.seed(index.builder, documents)
    if memory is not None:  # entries as views of the pieces the writer now knows
        restore_entries(memory, reloader.renderer, writer.view)
    # What the catch-up compares with: only what changed since counts as changed (for the
    # log, the summary and the hub's pings).
    reloader.store.swap(Snapshot(documents=read_only(documents), generation=generation))
    logger.info(
        "resumed from generation %d, %d parsed files and %s in %.3fs",
        generation,
        len(articles),
        f"the ids and nodes of generation {memory.generation}"
        if memory and remembered
        else "no ids or nodes",
        time.perf_counter() - started,
    )


def parse_cache_path(folder: Path) -> Path:
    """Where the parse cache lives: beside the snapshots folder."""
    return folder.parent / "parse-cache"


def memory_path(folder: Path) -> Path:
    """Where the builder's memory (feedsvc.state.catchup) lives: beside the parse cache."""
    return folder.parent / "builder-memory"


class ListingAhead:
    """Each folder source's listing (DirectorySource.listing), made by a process forked
    for it, on a core of its own; `hand_over` gives them to the sources."""

    def __init__(self, sources: list[DirectorySource]) -> None:
        self.sources = sources
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_list,
            args=(sources, self._receive, send, os.getpid()),
            name="feedsvc-listing",
            daemon=True,
        )
        try:
            self._process.start()
        except OSError as exc:  # out of processes or memory: the first reload scans
            logger.warning("cannot list the folders ahead: %s", exc)
        finally:
            send.close()

    def hand_over(self) -> None:
        """Give each source its listing, once made; if the process failed, they scan."""
        try:
            listings = self._receive.recv()
        except (EOFError, OSError):
            return
        finally:
            self._receive.close()
            if self._process.pid is not None:
                self._process.join()
        for source, listed in zip(self.sources, listings, strict=True):
            source.expect(listed)


def _list(
    sources: list[DirectorySource], receive: Connection, send: Connection, builder: int
) -> None:
    """In the listing process, which holds the state directory's lock it inherited: with
    the builder gone (stopped while it resumed) it must end, or the next start would be
    refused. Its copy of the pipe's reading end is closed first, so that the send fails
    instead of waiting forever for a reader; and it ends at once, mid-listing too, when
    the builder is gone (a listing on idle CPU of a busy machine may take long)."""
    receive.close()
    end_with_parent(builder)
    # Off the path of the builder's resume and of the workers' start, which this would
    # slow on a machine of two cores: it has the builder's whole resume to finish in.
    run_on_idle_cpu()
    listings = [source.listing() for source in sources]
    with contextlib.suppress(OSError):  # the builder is gone: nobody to hand them to
        send.send(listings)
    send.close()

"""The builder process: the one reader of sources and the one writer of the state directory.

`feedsvc serve` runs one builder beside the serving workers, on CPU time the workers
leave idle. It runs the reload loop (feedsvc.reload.loop), writes each generation into the
state directory (feedsvc.state.snapshots) and tells every worker over a Unix socket
which generation is the newest (feedsvc.processes.follower has the worker's side).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from feedsvc.metrics import Metrics
from feedsvc.model import Problem, ReloadSummary, Snapshot
from feedsvc.processes.announcer import Announcer
from feedsvc.processes.cpus import run_on_idle_cpu
from feedsvc.processes.follower import settle_garbage
from feedsvc.processes.resume import memory_path, parse_cache_path, warm_start
from feedsvc.publish.mirror import Mirror
from feedsvc.reload.loop import ReloadLoop
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.sources.directory import DirectorySource
from feedsvc.state.catchup import memory_chunks
from feedsvc.state.files import (
    StateError,
    StateLock,
    hold,
    prepare_folder,
    remove_leftovers,
    write_together,
)
from feedsvc.state.ledger import Ledger
from feedsvc.state.parsecache import parse_cache_chunks
from feedsvc.state.snapshots import Status
from feedsvc.state.snapshotwriter import SnapshotWriter
from feedsvc.store import Store
from feedsvc.watch import ConfigWatcher, FolderWatch
from feedsvc.websub import Relay

logger = logging.getLogger(__name__)

SAVE_SECONDS = 30.0  # the parse cache is saved at most this often


def status_of(snapshot: Snapshot, config: Config, extra: tuple[Problem, ...] = ()) -> Status:
    """What workers are told of a reload besides its documents."""
    problems = (*snapshot.problems, *extra)
    return Status(
        snapshot.article_count,
        tuple((p.path, p.line, p.message, p.severity) for p in problems),
        snapshot.loaded_at.isoformat() if snapshot.loaded_at else None,
        config.server.cache_max_age,
        config.server.reload_token,
    )


class AfterReload:
    """The steps after every reload, in one place: write and announce the generation,
    apply the config, ping the hub, publish to object storage, remove what no worker
    serves."""

    def __init__(
        self,
        reloader: Reloader,
        writer: SnapshotWriter,
        on_config: Callable[[Config], None],
        relay: Callable[[list[str]], None],
    ) -> None:
        self.reloader = reloader
        self.writer = writer
        self.on_config = on_config
        self.relay = relay
        self.announcer: Announcer | None = None
        self.mirror: Mirror | None = None  # announces in the announcer's stead when set
        self._changed: list[str] = []
        self._written = False  # whether the writer holds the store's documents
        self._saved_reads, self._saved_at = 0, -SAVE_SECONDS
        self._saving: threading.Thread | None = None  # the save being written, if any
        self._lock: StateLock | None = None  # taken by this process (_hold_state)
        reloader.on_change = self._changed.extend

    def __call__(self, summary: ReloadSummary) -> int:
        started = time.perf_counter()
        config = self.reloader.config
        snapshot = self.reloader.store.current
        try:
            generation, status, published = self._write(snapshot, config)
            if self.announcer is not None and generation:
                (self.mirror or self.announcer).announce(generation, status)
        finally:
            # Once the workers have the generation, and whatever became of it: what the
            # config moves in this process (the folders watched, the schedule) needs
            # none of it.
            self.on_config(config)
        if self.mirror is not None and published:
            self.mirror.offer(snapshot.documents, config, generation)
        logger.debug(
            "generation %d announced after %.3fs", generation, time.perf_counter() - started
        )
        # URLs a failed write changed are pinged once a generation holds them.
        if published and self._changed:
            self.relay(self._changed.copy())
            self._changed.clear()
        floor = self.announcer.floor(generation) if self.announcer else generation
        self.writer.collect(floor)
        if published:  # what was just written is read from the files from now on
            self.reloader.renderer.rebase(self.writer.view, everything=self.writer.compacted)
            self.writer.compacted = False
        self._save_parse_cache()
        # Freeze what the reload left alive: full collections would otherwise traverse
        # every article and piece the builder holds, in the middle of the next reload.
        settle_garbage()
        return generation

    def _write(self, snapshot: Snapshot, config: Config) -> tuple[int, Status, bool]:
        """Write the generation: its number, what workers are told, whether it was written.
        A reload that kept the last build keeps the generation on disk (its new status
        reaches the workers with the announcement)."""
        try:
            self._hold_state()
            if self.reloader.same_build and self._written:
                return self.writer.generation, status_of(snapshot, config), True
            self._written = False
            meta = self.reloader.renderer.export()
            generation = self.writer.write(snapshot.documents, status_of(snapshot, config), meta)
            self._written = True
        except (OSError, StateError) as exc:
            # A full disk or a state directory gone read-only: a failed reload like any
            # other; the last generation keeps serving.
            logger.error(
                "cannot write the state directory: %s; the last snapshot keeps serving", exc
            )
            failure = Problem(str(self.writer.folder), None, f"cannot write the snapshot: {exc}")
            return self.writer.generation, status_of(snapshot, config, (failure,)), False
        return generation, status_of(snapshot, config), True

    def _hold_state(self) -> None:
        """Before every write: the state directory is there and this server's.

        Removed while the server ran (an operator resetting it, a cleaner of old files),
        it is made again: locked, the id ledger written into it from memory, the next
        write putting the whole snapshot there, the parse cache and memory saved after
        it. Its lock is taken whenever no one holds it (a builder started again after
        that, a lock file removed); StateError, nothing written, when another server
        holds it."""
        state, ledger = self.writer.folder.parent, self.reloader.ledger
        whole = self.writer.folder.is_dir() and (ledger is None or ledger.path.exists())
        if not whole:
            logger.warning(
                "state directory %s was removed while the server ran; making it again", state
            )
            prepare_folder(state)
            if self._lock is not None:  # of the files removed
                self._lock.release()
                self._lock = None
        if self._lock is None:
            self._lock = hold(state, {os.getppid(), os.getpid()})
        if not whole:
            self.writer.start_over()
            if ledger is not None:
                ledger.keep_file()
            self._written = False
            self._saved_reads, self._saved_at = -1, -SAVE_SECONDS  # saved after this reload

    def _save_parse_cache(self) -> None:
        """Save what was parsed and the builder's memory (feedsvc.state.catchup), at most
        every SAVE_SECONDS (the scheduled reload saves what an edit left unsaved); a stale
        cache only costs parsing, placing and grouping a few files again.

        What they hold is copied here (0.2 s at 50,000 posts); pickling and writing it
        (0.9 s) runs in a thread of its own, one save at a time, so that the next reload
        does not wait for it."""
        sources = [s for s in self.reloader.sources if isinstance(s, DirectorySource)]
        reads = sum(source.reads for source in sources)
        now = time.monotonic()
        if reads == self._saved_reads or now - self._saved_at < SAVE_SECONDS:
            return
        if self._saving is not None and self._saving.is_alive():
            return  # the reload after it saves what this one changed
        cache = {s.config.name: (s.fingerprint, s.export_cache()) for s in sources}
        folder, reloader = self.writer.folder, self.reloader
        memory = memory_chunks(reloader.renderer, reloader.placer, self.writer.generation)
        # With the articles the memory names by revision: a restart carries on from both,
        # and a stop while they are written must not leave one newer than the other.
        files = [
            (parse_cache_path(folder), parse_cache_chunks(cache)),
            (memory_path(folder), memory),
        ]
        self._saving = threading.Thread(target=_write_caches, args=(files,), name="save-caches")
        self._saving.daemon = True
        self._saving.start()
        self._saved_reads, self._saved_at = reads, now

    def saved(self) -> None:
        """Wait for the save being written, if any (what tests wait for)."""
        if self._saving is not None:
            self._saving.join()


def _write_caches(files: list[tuple[Path, Iterator[bytes]]]) -> None:
    try:
        write_together(files)
    except OSError as exc:
        logger.warning("cannot save the parse cache: %s", exc)


def run_builder(
    config: Config,
    socket_path: str,
    folder: Path,
    parent: int,
    *,
    restarted: bool,
    checked: int | None = None,
) -> None:
    """The builder process: listen on `socket_path`, build into `folder` (carrying on from
    generation `checked` when the main process has validated one), and reload on
    schedule, on SIGUSR1 and when a file in a source folder changes."""
    _become_builder()
    metrics = Metrics()
    reloader = _make_reloader(config, folder, metrics, restarted=restarted)
    # Workers connect from their start; they serve the saved generation meanwhile.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen()
    # A builder killed while it saved the parse cache and memory, their one writer, left
    # their temporary files (a hundred MB at 50,000 posts); the writer removes its own.
    remove_leftovers(folder.parent)
    writer = SnapshotWriter(folder)
    triggers = Triggers(reloader, config)
    warm_start(reloader, writer, folder, checked, watched=triggers.watch_folders(config))
    # At full priority until now: the warm start is what the first reload waits for.
    run_on_idle_cpu()
    loop = _make_loop(reloader, writer, listener, metrics, triggers)
    triggers.start(loop, config)
    loop.start()
    loop.poke()
    while os.getppid() == parent:  # the main process is gone: so is its server
        time.sleep(1.0)


def _become_builder() -> None:
    """What sets the builder process apart from the main process it was forked from."""
    # The main process stops the builder after the workers; Ctrl-C and a terminal's
    # hang-up are for the main process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A big reload runs on every core in processes of the builder's own
    # (feedsvc.processes.cpus), which multiprocessing refuses to a daemon.
    multiprocessing.current_process().daemon = False


def _make_reloader(config: Config, folder: Path, metrics: Metrics, *, restarted: bool) -> Reloader:
    ledger, damaged = Ledger.open(folder.parent)
    reloader = Reloader(
        config,
        Store(),
        # The config may have changed since the main process read it: before the builder
        # was forked, or while it imported and loaded its state, or the builder is a
        # restarted one. Its first reload reads the file as it is then.
        watcher=ConfigWatcher(config, check_now=True),
        metrics=metrics,
        # A restarted builder replaces snapshots the workers already serve: it fetches
        # remote sources before its first build rather than publish them empty.
        fetch_in_background=not restarted,
        prepare=False,
        ledger=ledger,
    )
    reloader.state_problems = (damaged,) if damaged else ()
    return reloader


def _make_loop(
    reloader: Reloader,
    writer: SnapshotWriter,
    listener: socket.socket,
    metrics: Metrics,
    triggers: Triggers,
) -> ReloadLoop:
    """The reload loop, its follow-up steps, and the socket workers ask it through."""
    relay = Relay(
        lambda: reloader.config.feeds.websub_hub,
        lambda: reloader.config.site.base_url,
        on_result=metrics.count_websub,
    )
    publisher = AfterReload(reloader, writer, triggers.apply_config, relay)
    loop = ReloadLoop(reloader, publisher)
    announcer = publisher.announcer = Announcer(listener, loop)
    announcer.start()
    publisher.mirror = Mirror(
        announcer.announce,
        metrics,
        wait_served=announcer.wait_served,
    )
    return loop


class Triggers:
    """What asks the loop for reloads in the builder besides the workers: the schedule,
    SIGUSR1, the folder watch and remote fetches; a config edit may move the first and
    the third."""

    def __init__(self, reloader: Reloader, config: Config) -> None:
        self.reloader = reloader
        self.interval = config.reload.interval_seconds
        # Until the loop runs, what the watch sees waits for the first reload's drain.
        self.watch = FolderWatch(lambda: None)
        self.reschedule: Callable[[int], None] | None = None  # once the schedule runs
        self._everything: Callable[[], object] = lambda: None

    def watch_folders(self, config: Config) -> bool:
        """Watch the folders of `config` from now on, before the loop runs; whether every
        change to them from now on is reported (the first reload may then take a listing
        made now for its scan)."""
        self.watch.follow(config)
        return self.watch.restart()

    def start(self, loop: ReloadLoop, config: Config) -> None:
        """Start every trigger, before the first build."""
        watch = self.watch
        watch.on_change = loop.poke
        loop.scan, loop.sync = watch.forget, watch.sync
        # SIGHUP (forwarded as SIGUSR1) is the operator's way to have every file looked at.
        everything = self._everything = partial(loop.ask, everything=True)
        signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=everything).start())
        # A reload the watch asks for looks only at the files it saw change, and so does
        # `POST /-/reload`, once the watch has caught up with it (FolderWatch.sync); the
        # schedule looks at every file (the safety net for changes no event reported).
        self.reloader.changed_files = watch.drain
        # A remote fetch that finishes during the first build asks for the reload that
        # publishes its items.
        self.reloader.source_set.on_fetched = loop.poke
        watch.follow(config)  # already during the first build: a file saved meanwhile counts

    def apply_config(self, current: Config) -> None:
        """After every reload: follow the config it ran with. The schedule starts after
        the first: apscheduler is imported then, not on the way to the catch-up after a
        restart (40 ms of it, asyncio's import included)."""
        self.reloader.source_set.fetch_in_background = True
        self.watch.follow(current)  # the folders may have changed with the config
        if self.reschedule is None:
            from feedsvc.scheduler import make_scheduler, reschedule  # noqa: PLC0415

            self.interval = current.reload.interval_seconds
            scheduler = make_scheduler(self._everything, self.interval)
            scheduler.start()
            self.reschedule = partial(reschedule, scheduler)
        elif current.reload.interval_seconds != self.interval:
            self.interval = current.reload.interval_seconds
            self.reschedule(self.interval)

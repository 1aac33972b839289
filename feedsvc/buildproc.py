"""The builder process: the one reader of sources and the one writer of the state directory.

`feedsvc serve` runs one builder beside the serving workers, on CPU time the workers
leave idle. It runs the reload loop (feedsvc.reload), writes each generation into the
state directory (feedsvc.state.snapshots) and tells every worker over a Unix socket
which generation is the newest (feedsvc.follower has the worker's side).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from feedsvc.config import Config
from feedsvc.configwatch import ConfigWatcher
from feedsvc.follower import send_line, settle_garbage
from feedsvc.metrics import Metrics
from feedsvc.model import Problem, Snapshot
from feedsvc.publish.mirror import Mirror
from feedsvc.refresh import Refresher, ReloadSummary
from feedsvc.reload import Reloaded, ReloadLoop
from feedsvc.scheduler import make_scheduler, reschedule
from feedsvc.sources.directory import DirectorySource
from feedsvc.state.ledger import open_ledger
from feedsvc.state.parsecache import load_parse_cache, matching_files, save_parse_cache
from feedsvc.state.snapshots import (
    BadStateError,
    SnapshotReader,
    SnapshotWriter,
    Status,
    read_index,
    validate,
)
from feedsvc.store import Store
from feedsvc.watch import FolderWatch
from feedsvc.websub import Relay

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 30  # seconds: a worker that reads nothing for this long is dropped
SAVE_SECONDS = 30.0  # the parse cache is saved at most this often


@dataclass(eq=False)
class _Worker:
    sock: socket.socket
    serving: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Announcer:
    """The builder's socket: tells every worker of each reload, takes their reload requests."""

    def __init__(self, listener: socket.socket, loop: ReloadLoop) -> None:
        self.listener = listener
        self.loop = loop
        self.last: dict[str, Any] | None = None  # the newest announcement
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Take workers as they connect, for as long as the process lives."""
        threading.Thread(target=self._accept, name="announcer", daemon=True).start()

    def announce(self, generation: int, status: Status) -> None:
        """Tell every worker (and every worker that connects later) of a reload."""
        message = {"generation": generation, "status": status.to_json()}
        with self._lock:
            self.last = message
            workers = list(self._workers)
        for worker in workers:
            self._send(worker, message)

    def floor(self, newest: int) -> int:
        """The oldest generation a connected worker may still serve."""
        with self._lock:
            return min((w.serving for w in self._workers), default=newest)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError as exc:  # out of descriptors, say: try again shortly
                logger.error("cannot take a worker's connection: %s", exc)
                time.sleep(1.0)
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _seconds(SEND_TIMEOUT))
            worker = _Worker(sock)
            with self._lock:
                self._workers.append(worker)
                last = self.last
            if last is not None:
                self._send(worker, last)
            threading.Thread(target=self._serve, args=(worker,), daemon=True).start()

    def _serve(self, worker: _Worker) -> None:
        try:
            for line in worker.sock.makefile("rb"):
                message = json.loads(line)
                if "serving" in message:
                    worker.serving = int(message["serving"])
                elif "reload" in message:
                    asked: str = message["reload"]
                    self.loop.ask().add_done_callback(partial(self._reply, worker, asked))
        except (OSError, ValueError) as exc:
            logger.warning("a worker's link broke: %s", exc)
        self._drop(worker)

    def _reply(self, worker: _Worker, asked: str, done: Future[Reloaded]) -> None:
        if done.exception() is not None:
            return  # the worker's request times out; the reload's failure is logged
        result: Reloaded = done.result()
        reply = {"reply": asked, "generation": result.generation}
        self._send(worker, {**reply, "summary": asdict(result.summary)})

    def _send(self, worker: _Worker, message: dict[str, Any]) -> None:
        try:
            with worker.lock:
                send_line(worker.sock, message)
        except OSError as exc:
            logger.warning("dropping a worker that stopped reading: %s", exc)
            self._drop(worker)

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._workers:
                self._workers.remove(worker)
        # Shut down rather than close: this wakes the thread reading from it.
        with contextlib.suppress(OSError):
            worker.sock.shutdown(socket.SHUT_RDWR)


def _seconds(seconds: int) -> bytes:
    return struct.pack("ll", seconds, 0)


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
    """The steps after every reload, in one place: apply the config, write and announce
    the generation, ping the hub, publish to object storage, remove what no worker serves."""

    def __init__(
        self,
        refresher: Refresher,
        writer: SnapshotWriter,
        on_config: Callable[[Config], None],
        relay: Callable[[list[str]], None],
    ) -> None:
        self.refresher = refresher
        self.writer = writer
        self.on_config = on_config
        self.relay = relay
        self.announcer: Announcer | None = None
        self.mirror: Mirror | None = None  # announces in the announcer's stead when set
        self._changed: list[str] = []
        self._saved_reads, self._saved_at = 0, -SAVE_SECONDS
        refresher.on_change = self._changed.extend

    def __call__(self, summary: ReloadSummary) -> int:
        started = time.perf_counter()
        config = self.refresher.config
        self.on_config(config)
        snapshot = self.refresher.store.current
        try:
            meta = self.refresher.builder.export()
            generation = self.writer.write(snapshot.documents, status_of(snapshot, config), meta)
        except OSError as exc:
            # A full disk or a state directory gone read-only: a failed reload like any
            # other; the last generation keeps serving.
            logger.error(
                "cannot write the state directory: %s; the last snapshot keeps serving", exc
            )
            failure = Problem(str(self.writer.folder), None, f"cannot write the snapshot: {exc}")
            generation = self.writer.generation
            status = status_of(snapshot, config, (failure,))
            published = False
        else:
            status = status_of(snapshot, config)
            published = True
        if self.announcer is not None and generation:
            (self.mirror or self.announcer).announce(generation, status)
        if self.mirror is not None and published:
            self.mirror.offer(snapshot.documents, config, generation)
        logger.debug(
            "generation %d announced after %.3fs", generation, time.perf_counter() - started
        )
        # URLs a failed write changed are pinged once a generation holds them.
        changed = self._changed.copy() if published else []
        if published:
            self._changed.clear()
        if changed:
            self.relay(changed)
        floor = self.announcer.floor(generation) if self.announcer else generation
        self.writer.collect(floor)
        self._save_parse_cache()
        # Freeze what the reload left alive: full collections would otherwise traverse
        # every article and piece the builder holds, in the middle of the next reload.
        settle_garbage()
        return generation

    def _save_parse_cache(self) -> None:
        """Save what was parsed, at most every SAVE_SECONDS (the scheduled reload saves
        what an edit left unsaved); a stale cache only costs parsing a few files again."""
        sources = [s for s in self.refresher.sources if isinstance(s, DirectorySource)]
        reads = sum(source.reads for source in sources)
        now = time.monotonic()
        if reads == self._saved_reads or now - self._saved_at < SAVE_SECONDS:
            return
        cache = {s.config.name: (s.fingerprint, s.export_cache()) for s in sources}
        try:
            save_parse_cache(parse_cache_path(self.writer.folder), cache)
        except OSError as exc:
            logger.warning("cannot save the parse cache: %s", exc)
        self._saved_reads, self._saved_at = reads, now


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
    _yield_to_workers()
    # The main process stops the builder after the workers; Ctrl-C and a terminal's
    # hang-up are for the main process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A big reload runs on every core in processes of the builder's own (feedsvc.cores),
    # which multiprocessing refuses to a daemon.
    multiprocessing.current_process().daemon = False
    metrics = Metrics()
    ledger, damaged = open_ledger(folder.parent)
    refresher = Refresher(
        config,
        Store(),
        # After a restart the config may have changed since the main process read it.
        watcher=ConfigWatcher(config, check_now=restarted),
        metrics=metrics,
        # A restarted builder replaces snapshots the workers already serve: it fetches
        # remote sources before its first build rather than publish them empty.
        fetch_in_background=not restarted,
        prepare=False,
        ledger=ledger,
    )
    refresher.state_problems = (damaged,) if damaged else ()
    # Workers connect from their start; they serve the saved generation meanwhile.
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen()
    writer = SnapshotWriter(folder)
    warm_start(refresher, writer, folder, checked)
    relay = Relay(
        lambda: refresher.config.feeds.websub_hub,
        lambda: refresher.config.site.base_url,
        on_result=metrics.count_websub,
    )
    interval = [config.reload.interval_seconds]
    watch: FolderWatch | None = None

    def apply_config(current: Config) -> None:
        refresher.fetch_in_background = True
        if watch is not None:
            watch.follow(current)  # the folders may have changed with the config
        if current.reload.interval_seconds != interval[0]:
            interval[0] = current.reload.interval_seconds
            reschedule(scheduler, interval[0])

    publisher = AfterReload(refresher, writer, apply_config, relay)
    loop = ReloadLoop(refresher, publisher)
    publisher.announcer = Announcer(listener, loop)
    publisher.announcer.start()
    announcer = publisher.announcer
    publisher.mirror = Mirror(
        announcer.announce,
        metrics,
        served=lambda generation: announcer.floor(generation) >= generation,
    )
    watch = FolderWatch(loop.poke)
    loop.scan = watch.forget
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=loop.ask).start())
    # The schedule runs before the first build, so that a remote fetch that finishes
    # during it can already ask for the reload that publishes its items.
    # A reload the watch asks for looks only at the files it saw change; the schedule
    # and an operator's request look at every file (the safety net for changes no event
    # reported, and for a file saved just before the request).
    refresher.changed_files = watch.drain

    scheduler = make_scheduler(loop.ask, config.reload.interval_seconds)
    scheduler.start()
    refresher.on_fetched = loop.poke
    watch.follow(config)  # already during the first build: a file saved meanwhile counts
    loop.start()
    loop.poke()
    while os.getppid() == parent:  # the main process is gone: so is its server
        time.sleep(1.0)


def warm_start(
    refresher: Refresher, writer: SnapshotWriter, folder: Path, checked: int | None = None
) -> None:
    """Carry on from the state on disk: the last generation (its documents are reused
    while their feeds' signatures hold) and the parse cache (files unchanged since are
    not parsed), so the first reload after a restart costs about a no-change one."""
    started = time.perf_counter()
    parsed = 0
    cache = load_parse_cache(parse_cache_path(folder))
    for source in refresher.sources:
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
    exported = index.builder
    refresher.builder.seed(exported, documents)
    # What the catch-up compares with: only what changed since counts as changed (for the
    # log, the summary and the hub's pings).
    refresher.store.swap(Snapshot(documents=MappingProxyType(documents), generation=generation))
    logger.info(
        "resumed from generation %d and %d parsed files in %.3fs",
        generation,
        parsed,
        time.perf_counter() - started,
    )


def parse_cache_path(folder: Path) -> Path:
    """Where the parse cache lives: beside the snapshots folder."""
    return folder.parent / "parse-cache"


def _yield_to_workers() -> None:
    """Run the builder only on CPU time the workers leave idle (Linux SCHED_IDLE).

    A waking worker preempts it at once, so requests see the latency they see when
    nothing reloads (measured: bench/latency.py). Even at nice 19 a busy process beside
    a worker stretched its p99 more than twofold. The cost: while the workers keep
    every core busy, a reload waits (SCHED_IDLE still gets a sliver, about 0.3%).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux: the lowest priority is the next best
        os.nice(19)

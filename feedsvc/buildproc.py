"""The builder process, and each worker's link to it.

`feedsvc serve` runs one builder process beside the serving workers. It alone reads the
sources, builds, watches config.yaml and pings the WebSub hub, only on CPU time the
workers leave idle, and it streams every snapshot to every worker over a Unix socket as
a stream of messages (feedsvc.wire). A worker only serves: a reload costs it the time to
apply what changed, in steps that let requests run between them, and every worker
serves the very same bytes.

Messages on the socket are a kind byte, a length and that many bytes: the builder sends
snapshots (feedsvc.wire's messages) and RELOADED replies; a worker sends RELOAD (the
reload endpoint).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import multiprocessing
import os
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, replace

from feedsvc.config import Config
from feedsvc.configwatch import ConfigWatcher
from feedsvc.metrics import Metrics
from feedsvc.model import Problem
from feedsvc.refresh import Refresher, ReloadSummary
from feedsvc.scheduler import make_scheduler, reschedule
from feedsvc.store import Store
from feedsvc.watch import FolderWatch
from feedsvc.websub import Relay
from feedsvc.wire import BATCH, END, KINDS, Message, Receiver, Sender

logger = logging.getLogger(__name__)

HEADER = struct.Struct(">cQ")  # kind, length
RELOAD, RELOADED = b"Q", b"R"
SEND_TIMEOUT = struct.pack("ll", 30, 0)  # a worker that reads nothing for 30 s is dropped
RELOAD_TIMEOUT = 600.0  # seconds a reload endpoint request waits for the builder
KEEP_BYTES = 32 << 20  # a change larger than this is made again for each worker
PAUSE = 0.0001  # seconds a worker sleeps after each batch of resources
GONE = Problem(
    "feedsvc", None, "lost the builder process; serving the last snapshot until it is back"
)


def settle_garbage() -> None:
    """After a reload or a snapshot's batch: collect its cyclic garbage, then freeze what survived.

    A snapshot is hundreds of thousands of long-lived objects. CPython's full
    collections traverse all of them while holding the GIL: 50-100 ms pauses at
    10,000 posts, every few reloads. Frozen objects are left out of every later
    collection (and still freed by reference counting when a later snapshot drops them;
    snapshots hold no cycles), so a collection only traverses what the last reload made.
    """
    gc.collect()
    gc.freeze()


def _let_requests_run() -> None:
    """After each batch of resources: settle what it made, then give up the GIL.

    A request thread waiting for the GIL would otherwise wait for CPython's switch
    interval (5 ms); sleeping hands it over at once. Collecting per batch keeps each
    collection to the objects of one batch.
    """
    settle_garbage()
    time.sleep(PAUSE)


def send(sock: socket.socket, kind: bytes, data: bytes) -> None:
    """One message."""
    if len(data) < 65536:
        sock.sendall(HEADER.pack(kind, len(data)) + data)
    else:
        sock.sendall(HEADER.pack(kind, len(data)))
        sock.sendall(data)


def receive(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """One message, or None when the other end closed the socket."""
    header = _exactly(sock, HEADER.size)
    if header is None:
        return None
    kind, length = HEADER.unpack(header)
    data = _exactly(sock, length)
    if data is None:
        return None
    return kind, data


def _exactly(sock: socket.socket, length: int) -> bytes | None:
    buffer = bytearray(length)
    view = memoryview(buffer)
    got = 0
    while got < length:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(buffer)


@dataclass(eq=False)
class _Worker:
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    primed: bool = False  # has been sent a whole snapshot


def _keeping(messages: Iterable[Message], kept: list[Message]) -> Iterator[Message]:
    """Pass messages on, keeping a copy of them all unless they total over KEEP_BYTES."""
    size = 0
    for message in messages:
        size += len(message[1])
        if size <= KEEP_BYTES:
            kept.append(message)
        else:
            kept.clear()
        yield message


class BuildServer:
    """The builder's side: reloads, one at a time, and streams each result to every worker."""

    def __init__(
        self, refresher: Refresher, on_published: Callable[[list[str]], None] | None = None
    ) -> None:
        self.refresher = refresher
        self.sender = Sender()
        self._lock = threading.Lock()  # one reload and its messages at a time, in order
        self._workers: list[_Worker] = []
        self._published = False
        # The URLs of feeds a reload changed, told once the workers have been sent them
        # (WebSub: a hub fetches the feed as soon as it hears of it).
        self._changed: list[str] = []
        refresher.on_change = self._changed.extend
        self.on_published = on_published

    def reload(self) -> ReloadSummary:
        """Run one reload and send its snapshot to every worker."""
        with self._lock:
            summary = self.refresher.refresh()
            snapshot, config = self.refresher.store.current, self.refresher.config
            try:
                change = self.sender.advance(snapshot, config)
            except Exception:
                # The sender's counts may be half updated: start again from nothing,
                # and send every worker the snapshot whole.
                logger.exception("encoding a change failed; every worker gets the snapshot whole")
                self.sender = Sender()
                change = self.sender.advance(snapshot, config)
                for worker in self._workers:
                    worker.primed = False
            self._published = True
            self._broadcast(change)
            changed = self._changed.copy()
            self._changed.clear()
            if changed and self.on_published is not None:
                self.on_published(changed)
            settle_garbage()
            return summary

    def _broadcast(self, change: Callable[[], Iterator[Message]]) -> None:
        """Send a change to every worker that has a snapshot, a whole one to the others.

        A change is made once and kept for the next worker while it stays small; a large
        one (the first build, a config edit that touches every feed) is made again for
        each worker rather than held whole in memory.
        """
        kept: list[Message] | None = None
        made = False
        for worker in list(self._workers):
            if not worker.primed:
                if self._send(worker, self.sender.whole()):
                    worker.primed = True
            elif made and kept is not None:
                self._send(worker, kept)
            else:
                made, copy = True, list[Message]()
                self._send(worker, _keeping(change(), copy))
                # Whole and within bounds (not cut short by a failed send): keep it.
                kept = copy if copy and copy[-1][0] == END else None

    def accept(self, listener: socket.socket) -> None:
        """Take workers as they connect, for as long as the process lives."""
        while True:
            try:
                sock, _ = listener.accept()
            except OSError as exc:  # out of descriptors, say: try again shortly
                logger.error("cannot take a worker's connection: %s", exc)
                time.sleep(1.0)
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, SEND_TIMEOUT)
            worker = _Worker(sock)
            with self._lock:
                self._workers.append(worker)
                if self._published and self._send(worker, self.sender.whole()):
                    worker.primed = True
            threading.Thread(target=self._serve, args=(worker,), daemon=True).start()

    def _serve(self, worker: _Worker) -> None:
        """Answer one worker's reload requests until it goes away."""
        while True:
            try:
                message = receive(worker.sock)
            except OSError:
                message = None
            if message is None:
                self._drop(worker)
                worker.sock.close()
                return
            kind, data = message
            if kind == RELOAD:
                summary = self.reload()
                reply = json.dumps({"id": data.decode(), "summary": asdict(summary)})
                self._send(worker, [(RELOADED, reply.encode())])

    def _send(self, worker: _Worker, messages: Iterable[Message]) -> bool:
        """Send messages to one worker; a worker that cannot take them is dropped (it
        connects again and is sent a whole snapshot)."""
        try:
            with worker.lock:
                for kind, data in messages:
                    send(worker.sock, kind, data)
            return True
        except OSError as exc:
            logger.warning("dropping a worker that stopped reading: %s", exc)
        except Exception:  # making the messages failed: this worker is mid-stream
            logger.exception("dropping a worker whose snapshot could not be sent")
        self._drop(worker)
        return False

    def _drop(self, worker: _Worker) -> None:
        with contextlib.suppress(ValueError):  # dropped already, by the other thread
            self._workers.remove(worker)
        # Shut down rather than close: this wakes the worker's thread blocked in recv,
        # and the worker sees the end of the stream. That thread closes the socket.
        with contextlib.suppress(OSError):
            worker.sock.shutdown(socket.SHUT_RDWR)


def run_builder(config: Config, path: str, parent: int, *, restarted: bool) -> None:
    """The builder process: listen on `path`, build, and reload on schedule, on SIGUSR1
    and when a file in a source folder changes."""
    _yield_to_workers()
    # The main process stops the builder after the workers; Ctrl-C and a terminal's
    # hang-up are for the main process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    wanted = threading.Event()  # a reload was asked for (SIGUSR1, a remote fetch)
    signal.signal(signal.SIGUSR1, lambda *_: wanted.set())
    # A big reload runs on every core in processes of the builder's own (feedsvc.cores),
    # which multiprocessing refuses to a daemon. They take their work from pipes and
    # end when the builder ends, however it ends (a test kills it during a cold start).
    multiprocessing.current_process().daemon = False
    metrics = Metrics()
    refresher = Refresher(
        config,
        Store(),
        # After a restart the config may have changed since the main process read it.
        watcher=ConfigWatcher(config, check_now=restarted),
        metrics=metrics,
        # A restarted builder replaces snapshots the workers already serve: it fetches
        # remote sources before its first build rather than publish them empty.
        fetch_in_background=not restarted,
    )
    relay = Relay(
        lambda: refresher.config.feeds.websub_hub,
        lambda: refresher.config.site.base_url,
        on_result=metrics.count_websub,
    )
    builder = BuildServer(refresher, on_published=relay)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    threading.Thread(target=builder.accept, args=(listener,), daemon=True).start()
    interval = [config.reload.interval_seconds]

    # A change in a source folder asks for a reload as SIGUSR1 does (reload.watch).
    watch = FolderWatch(wanted.set)

    def reload() -> None:
        builder.reload()
        refresher.fetch_in_background = True
        watch.follow(refresher.config)  # the folders may have changed with the config
        if refresher.config.reload.interval_seconds != interval[0]:
            interval[0] = refresher.config.reload.interval_seconds
            reschedule(scheduler, interval[0])

    def on_demand() -> None:
        # A request that arrives during a reload is one more reload afterwards: none is
        # lost, and any number of them while one runs make one more.
        while True:
            wanted.wait()
            wanted.clear()
            reload()

    # The schedule runs before the first build, so that a remote fetch that finishes
    # during it can already ask for the reload that publishes its items.
    scheduler = make_scheduler(reload, config.reload.interval_seconds)
    scheduler.start()
    refresher.on_fetched = wanted.set
    threading.Thread(target=on_demand, name="reload-on-demand", daemon=True).start()
    watch.follow(config)  # already during the first build: a file saved meanwhile counts
    reload()
    while os.getppid() == parent:  # the main process is gone: so is its server
        time.sleep(1.0)


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


class BuilderProcess:
    """The main process's handle on the builder: started before the workers, restarted
    if it dies, stopped after them."""

    def __init__(self, config: Config, path: str) -> None:
        self.config = config
        self.path = path
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stopping = threading.Event()

    @property
    def pid(self) -> int | None:
        """The running builder's process id (None while there is none)."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def start(self) -> None:
        """Start the builder, and a thread that starts it again should it exit."""
        self._spawn(restarted=False)
        threading.Thread(target=self._keep_running, name="builder-watch", daemon=True).start()

    def stopping(self) -> None:
        """The server is shutting down: a builder that exits now is not started again
        (under systemd's default KillMode every process gets the SIGTERM at once)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop the builder (SIGTERM, then SIGKILL after 5 s)."""
        self._stopping.set()
        process = self._process
        if process is not None and process.is_alive():
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()

    def _spawn(self, *, restarted: bool) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)
        context = multiprocessing.get_context("fork")
        self._process = context.Process(
            target=run_builder,
            args=(self.config, self.path, os.getpid()),
            kwargs={"restarted": restarted},
            name="feedsvc-builder",
            daemon=True,
        )
        self._process.start()

    def _keep_running(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            process.join()
            if self._stopping.wait(1.0):
                return
            logger.error("the builder process exited (%s); starting it again", process.exitcode)
            try:
                self._spawn(restarted=True)
            except OSError as exc:  # out of processes or memory: try again shortly
                logger.error("cannot start the builder process: %s", exc)


class BuilderLink:
    """A worker's side: applies the builder's snapshots to the store, asks it for reloads."""

    def __init__(self, path: str, store: Store) -> None:
        self.path = path
        self.store = store
        self.receiver = Receiver()
        self._parent = os.getppid()
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._replies: dict[str, Future[ReloadSummary]] = {}

    @property
    def config(self) -> Config:
        """The config of the snapshot being served."""
        assert self.receiver.received is not None
        return self.receiver.received.config

    def start(self) -> None:
        """Connect, wait for the first snapshot, then follow the builder from a thread."""
        self._sock = self._connect()
        while self.receiver.received is None:
            self._step()
        threading.Thread(target=self._follow, name="builder-link", daemon=True).start()

    def refresh(self) -> ReloadSummary:
        """Ask the builder for a reload; returns once this worker serves its result."""
        request = uuid.uuid4().hex
        reply: Future[ReloadSummary] = Future()
        self._replies[request] = reply
        try:
            sock = self._sock
            if sock is None:
                raise ConnectionError("the builder process is not reachable")
            with self._send_lock:
                send(sock, RELOAD, request.encode())
            return reply.result(RELOAD_TIMEOUT)  # TimeoutError when the builder is silent
        finally:
            del self._replies[request]

    def _connect(self) -> socket.socket:
        # The main process starts the builder before the workers, but it may be restarting.
        stopping = False
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                return sock
            except OSError:
                sock.close()
            if os.getppid() != self._parent and not stopping:
                # The main process was killed without stopping us: the server is gone.
                logger.error("the main process is gone; this worker stops too")
                os.kill(os.getpid(), signal.SIGTERM)
                stopping = True
            time.sleep(0.2)

    def _handle(self, sock: socket.socket) -> bool:
        message = receive(sock)
        if message is None:
            return False
        kind, data = message
        if kind in KINDS:
            received = self.receiver.take(kind, data)
            if kind == BATCH:
                _let_requests_run()
            if received is not None:
                self.store.swap(received.snapshot)
                settle_garbage()
        elif kind == RELOADED:
            reply = json.loads(data)
            waiting = self._replies.get(reply["id"])
            if waiting is not None and not waiting.done():
                waiting.set_result(ReloadSummary(**reply["summary"]))
        return True

    def _follow(self) -> None:
        while True:
            self._step()

    def _step(self) -> None:
        """Handle one message; when the builder is gone, say so and connect again."""
        sock = self._sock
        assert sock is not None
        try:
            if self._handle(sock):
                return
        except OSError:
            pass
        except Exception:  # a message that cannot be applied: start over from a whole one
            logger.exception("a snapshot from the builder could not be applied")
        sock.close()
        self._sock = None
        for waiting in list(self._replies.values()):
            if not waiting.done():  # answered already, but not yet taken
                waiting.set_exception(ConnectionError("lost the builder process during the reload"))
        current = self.store.current
        if self.receiver.received is not None and GONE not in current.problems:
            logger.error("lost the builder process; serving the last snapshot")
            self.store.swap(replace(current, problems=(*current.problems, GONE)))
        self._sock = self._connect()
        logger.info("connected to the builder process again")

"""A serving worker's side: serve the newest generation in the state directory, follow the builder.

The builder tells every worker over a Unix socket, one JSON line each, which generation
is the newest and what the last reload found (`{"generation": N, "status": {...}}`); the
bytes themselves are in the state directory, which the worker maps (feedsvc.state). A
worker asks for a reload with `{"reload": id}` and is answered `{"reply": id, ...}` after
the line naming the generation that holds the result, and tells the builder which
generation it serves (`{"serving": N}`), so that older files can go.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from feedsvc.dates import parse_stored_date
from feedsvc.model import Problem, ReloadSummary, Snapshot
from feedsvc.resources import prepare_resources
from feedsvc.state.snapshots import BadStateError, SnapshotReader, Status
from feedsvc.store import Store

logger = logging.getLogger(__name__)

RELOAD_TIMEOUT = 600.0  # seconds a reload endpoint request waits for the builder
CONNECT_TIMEOUT = 10.0  # seconds it waits for the link to the builder to come up
PAUSE = 0.0001  # seconds a worker sleeps every few hundred documents it loads
# Seconds before a worker asks again for a generation it could not load: the builder
# announces its newest on every connection, so at once would be a busy loop.
RETRY_SECONDS = 1.0
GONE = Problem(
    "feedsvc", None, "lost the builder process; serving the last snapshot until it is back"
)


def settle_garbage() -> None:
    """After loading a generation: collect its cyclic garbage, then freeze what survived,
    so CPython's full collections never traverse the long-lived snapshot; then give the
    heap freed back to the system (a cold build's temporaries, the builder's copies of
    what it wrote), or the process would keep it resident (about 20 MB at 50,000 posts,
    for under 4 ms)."""
    gc.collect()
    gc.freeze()
    _malloc_trim()(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int]:
    """glibc's malloc_trim (a no-op elsewhere: musl has none)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda _pad: 0
    return trim


def _let_requests_run() -> None:
    # A request thread waiting for the GIL would otherwise wait for the switch interval.
    time.sleep(PAUSE)


def send_line(sock: socket.socket, message: dict[str, Any]) -> None:
    """One message: a JSON object on a line."""
    sock.sendall(json.dumps(message).encode() + b"\n")


class Follower:
    """Keeps a worker's Store on the newest generation, and asks the builder for reloads."""

    def __init__(self, socket_path: str, folder: Path, store: Store) -> None:
        self.socket_path = socket_path
        self.store = store
        self.reader = SnapshotReader(folder)
        self.status = Status()
        self._parent = os.getppid()
        self._sock: socket.socket | None = None
        self._linked = threading.Event()  # set while _sock is connected to the builder
        self._send_lock = threading.Lock()
        self._replies: dict[str, Future[ReloadSummary]] = {}
        self._serving = threading.Event()  # set once a generation is served

    @property
    def reload_token(self) -> str | None:
        """The reload endpoint's token, as the builder's config has it."""
        return self.status.reload_token

    def start(self, generation: int | None) -> None:
        """Serve `generation` (checked by the main process) at once, or wait for the
        builder's first; then follow the builder from a thread."""
        if generation is not None:
            try:
                self._load(generation, None)
            except BadStateError as exc:
                logger.warning(
                    "cannot serve generation %d (%s); waiting for the builder", generation, exc
                )
        threading.Thread(target=self._follow, name="follower", daemon=True).start()
        self._serving.wait()

    def reload(self) -> ReloadSummary:
        """Ask the builder for a reload; returns once this worker serves its result."""
        request = uuid.uuid4().hex
        reply: Future[ReloadSummary] = Future()
        self._replies[request] = reply
        try:
            # Just after a start (or while the builder restarts) the link may be coming up.
            self._linked.wait(CONNECT_TIMEOUT)
            sock = self._sock
            if sock is None:
                raise ConnectionError("the builder process is not reachable")
            with self._send_lock:
                send_line(sock, {"reload": request})
            return reply.result(RELOAD_TIMEOUT)  # TimeoutError when the builder is silent
        finally:
            del self._replies[request]

    def _load(self, generation: int, status: Status | None) -> None:
        current = self.store.current
        if generation < current.generation:
            return  # never backwards
        started = time.perf_counter()
        if generation == current.generation:
            documents, resources = current.documents, current.resources
            read_status = self.status
        else:
            documents, read_status, changed = self.reader.read(generation, _let_requests_run)
            max_age = (status or read_status).cache_max_age
            # A new max-age changes every header list.
            same_age = max_age == self.status.cache_max_age and current.generation
            resources = prepare_resources(
                documents, max_age, current.resources, changed if same_age else None
            )
        self.status = status or read_status
        self.store.swap(_snapshot(documents, resources, self.status, generation))
        self._serving.set()
        if generation != current.generation:
            logger.debug(
                "serving generation %d after %.3fs", generation, time.perf_counter() - started
            )
        settle_garbage()

    def _connect(self) -> socket.socket:
        # The main process starts the builder before the workers, but it may be restarting.
        stopping = False
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.socket_path)
                return sock
            except OSError:
                sock.close()
            if os.getppid() != self._parent and not stopping:
                # The main process was killed without stopping us: the server is gone.
                logger.error("the main process is gone; this worker stops too")
                os.kill(os.getpid(), signal.SIGTERM)
                stopping = True
            time.sleep(0.2)

    def _follow(self) -> None:
        self._sock = self._connect()
        while True:
            self._linked.set()
            self._step()

    def _step(self) -> None:
        """Handle the builder's lines until it goes away; then say so and connect again."""
        sock = self._sock
        assert sock is not None
        unreadable = False
        try:
            for line in sock.makefile("rb"):
                self._handle(json.loads(line))
        except (OSError, ValueError) as exc:
            logger.warning("the link to the builder broke: %s", exc)
        except BadStateError as exc:
            logger.error("cannot serve the builder's newest generation: %s", exc)
            unreadable = True
        self._linked.clear()
        sock.close()
        self._sock = None
        for waiting in list(self._replies.values()):
            if not waiting.done():
                waiting.set_exception(ConnectionError("lost the builder process during the reload"))
        current = self.store.current
        if current.generation and GONE not in current.problems:
            logger.error("lost the builder process; serving the last snapshot")
            self.store.swap(replace(current, problems=(*current.problems, GONE)))
        if unreadable:
            time.sleep(RETRY_SECONDS)
        self._sock = self._connect()
        logger.info("connected to the builder process again")

    def _handle(self, message: dict[str, Any]) -> None:
        if "generation" in message and "reply" not in message:
            generation = message["generation"]
            self._load(generation, Status.from_json(message["status"]))
            assert self._sock is not None
            with self._send_lock:
                send_line(self._sock, {"serving": self.store.current.generation})
        elif "reply" in message:
            waiting = self._replies.get(message["reply"])
            if waiting is not None and not waiting.done():
                waiting.set_result(ReloadSummary(**message["summary"]))


def _snapshot(documents: Any, resources: Any, status: Status, generation: int) -> Snapshot:
    return Snapshot(
        documents=documents,
        resources=resources,
        article_count=status.article_count,
        problems=tuple(Problem(*p) for p in status.problems),  # type: ignore[arg-type]
        loaded_at=parse_stored_date(status.loaded_at) if status.loaded_at else None,
        generation=generation,
    )

"""The builder process's socket: tells every worker of each reload (one JSON line, see
feedsvc.processes.follower for the worker's side) and takes the workers' reload requests."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from feedsvc.processes.follower import send_line
from feedsvc.reload.loop import Reloaded, ReloadLoop
from feedsvc.state.snapshots import Status

logger = logging.getLogger(__name__)

# A worker that reads nothing for 30 s is dropped (SO_SNDTIMEO takes a struct timeval).
SEND_TIMEOUT = struct.pack("ll", 30, 0)


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
        self._moved = threading.Condition(self._lock)  # a worker serves a newer one, or left

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

    def wait_served(self, generation: int, timeout: float) -> None:
        """Wait, at most `timeout` seconds, until every connected worker serves `generation`."""
        with self._moved:
            self._moved.wait_for(
                lambda: all(w.serving >= generation for w in self._workers), timeout
            )

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError as exc:  # out of descriptors, say: try again shortly
                logger.error("cannot take a worker's connection: %s", exc)
                time.sleep(1.0)
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, SEND_TIMEOUT)
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
                    with self._moved:
                        worker.serving = int(message["serving"])
                        self._moved.notify_all()
                elif "reload" in message:
                    asked: str = message["reload"]
                    self.loop.ask().add_done_callback(partial(self._reply, worker, asked))
        except (OSError, ValueError) as exc:
            logger.warning("a worker's link broke: %s", exc)
        self._drop(worker)
        with worker.lock:  # not while a send is under way; a later one finds it closed
            worker.sock.close()

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
                self._moved.notify_all()
        # Shut down rather than close: this wakes the thread reading from it.
        with contextlib.suppress(OSError):
            worker.sock.shutdown(socket.SHUT_RDWR)

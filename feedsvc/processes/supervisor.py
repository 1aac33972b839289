"""The main process's handle on the builder process: started before the workers,
started again if it dies, stopped after them."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

from feedsvc.settings import Config

logger = logging.getLogger(__name__)


class BuilderProcess:
    """Runs `run_builder` (feedsvc.processes.builder) in a child process, for as long as the
    server runs."""

    def __init__(
        self, config: Config, socket_path: str, folder: Path, checked: int | None = None
    ) -> None:
        self.config = config
        self.checked = checked  # the generation the main process validated at start
        self.socket_path = socket_path
        self.folder = folder
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
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        context = multiprocessing.get_context("fork")
        self._process = context.Process(
            target=_run_builder,
            args=(self.config, self.socket_path, self.folder, os.getpid()),
            # A restarted builder checks the state itself: the old one may have died mid-write.
            kwargs={"restarted": restarted, "checked": None if restarted else self.checked},
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


def _run_builder(*args: Any, **kwargs: Any) -> None:
    """The builder process's start. It imports what it runs itself: the main process
    forks it before importing the rest, so that both import on cores of their own."""
    from feedsvc.processes.builder import run_builder  # noqa: PLC0415 (see the docstring)

    run_builder(*args, **kwargs)

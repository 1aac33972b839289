"""Notice edits to config.yaml on a live service: apply valid ones, keep the last good on errors."""

from __future__ import annotations

import logging
import os
from dataclasses import fields

from feedsvc.config import Config, ServerConfig, load_config
from feedsvc.errors import ConfigError
from feedsvc.model import Problem

logger = logging.getLogger(__name__)

# Read once when the server starts; a change needs a restart to take effect.
RESTART_KEYS = ("host", "port", "workers", "threads", "access_log")


class ConfigWatcher:
    """Re-reads the config file when its (mtime, size, inode) change."""

    def __init__(self, running: Config, *, check_now: bool = False) -> None:
        self.path = running.path
        self.current = running
        self.started = running.server
        self.problems: list[Problem] = []
        # check_now: the running config did not come from the file as it is now.
        self._signature = None if check_now else _signature(self.path)

    def check(self) -> Config | None:
        """The new config when the file changed to a valid one, else None; see `problems`."""
        signature = _signature(self.path)
        if signature == self._signature and signature is not None:
            return None
        self._signature = signature
        try:
            candidate = load_config(self.path)  # a vanished file is a ConfigError too
        except ConfigError as exc:
            problems = exc.problems
            if problems != self.problems:
                for problem in problems:
                    logger.warning(
                        "config not applied; the last good one keeps serving: %s", problem
                    )
            self.problems = problems
            return None
        self.problems = self._restart_needed(candidate.server)
        if candidate == self.current:
            return None
        self.current = candidate
        logger.info("config reloaded from %s", self.path)
        return candidate

    def _restart_needed(self, server: ServerConfig) -> list[Problem]:
        problems = []
        for spec in fields(ServerConfig):
            name = spec.name
            if name in RESTART_KEYS and getattr(server, name) != getattr(self.started, name):
                message = f"server.{name} changed; it takes effect after a restart"
                logger.warning("%s: %s", self.path, message)
                problems.append(Problem(self.path, None, message, "warning"))
        return problems


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)

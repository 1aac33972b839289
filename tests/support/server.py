"""The real `feedsvc serve` on a free loopback port, its config, and reading it over HTTP."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from conftest import eventually, write_article
from tests.support.commands import ROOT


def free_port() -> int:
    """A loopback port nothing listens on (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings(port: int, **sections: dict[str, Any]) -> dict[str, Any]:
    """A served site's config: one folder source `articles`, workers 2, a reload an hour
    away; each of `sections` updates the section of its name."""
    data: dict[str, Any] = {
        "site": {
            "title": "Ops Newsroom",
            "base_url": f"http://127.0.0.1:{port}",
            "timezone": "Asia/Shanghai",
        },
        "sources": [{"name": "articles", "path": "articles"}],
        "reload": {"interval_seconds": 3600},
        "server": {"workers": 2},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
    return data


def write_config(folder: Path, port: int, **sections: Any) -> Path:
    """`settings(port, **sections)` as `folder`/config.yaml; its path."""
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(settings(port, **sections), allow_unicode=True), "utf-8")
    return config


class Server:
    """`feedsvc serve` in a child process; its log goes to a file beside the config.

    Waits until /healthz answers, unless `ready=False` (to act while it still builds).
    """

    def __init__(self, config: Path, port: int, log: Path, *extra: str, ready: bool = True) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "feedsvc.cli",
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(port),
                    *extra,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        if ready:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Return once /healthz answers 200; raise with the log if the server exits."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(log_of(self))
            try:
                if requests.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self) -> int:
        """SIGTERM, and the exit status (killed after 10 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def log_of(server: Server) -> str:
    """Everything the server and its processes have logged so far."""
    return server.log.read_text(encoding="utf-8", errors="replace")


def get(base: str, path: str, **headers: str) -> requests.Response:
    """GET on a fresh connection (so that, over many, every worker answers)."""
    return requests.get(base + path, headers={"Connection": "close", **headers}, timeout=5)


def every_worker_sees(base: str, check: Callable[[bytes], bool], seconds: float = 20) -> bool:
    """True once 12 requests in a row on fresh connections (so both workers) satisfy check."""
    streak = 0

    def seen() -> bool:
        nonlocal streak
        streak = streak + 1 if check(get(base, "/feed.atom").content) else 0
        return streak >= 12

    return eventually(seen, seconds, every=0.05)


def slow_first_build(tmp_path: Path) -> tuple[Path, int]:
    """A config whose first build takes seconds: 1,500 posts in 600 categories, 300 tags."""
    articles = tmp_path / "articles"
    for n in range(1500):
        write_article(
            articles,
            f"p{n}.md",
            "Text. " * 100,
            title=f"Post {n}",
            date=f"2022-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z",
            categories=[f"C{n % 20}", f"D{n % 30}"],
            tags=[f"t{n % 300}"],
        )
    port = free_port()
    return write_config(tmp_path, port), port

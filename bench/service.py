"""Start `feedsvc serve` on a generated corpus the way the benchmarks need it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import yaml

FEEDSVC = Path(sys.executable).parent / "feedsvc"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bench_config(port: int, corpus: Path, **sections: dict[str, object]) -> dict[str, object]:
    """The config every bench server runs with, plus `sections`."""
    return {
        "site": {
            "title": "Bench newsroom",
            "base_url": f"http://127.0.0.1:{port}",
            "timezone": "Asia/Shanghai",
        },
        "sources": [{"name": "posts", "path": str(corpus)}],
        **sections,
    }


def start_service(corpus: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = work / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            # Reloads come from the bench's SIGHUPs alone, so it can count them.
            bench_config(
                port,
                corpus,
                reload={"interval_seconds": 3600, "watch": False},
                server={"workers": 1},
            ),
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            str(FEEDSVC),
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urlopen(base + "/healthz", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.3)
    process.kill()
    sys.exit((work / "serve.log").read_text())

"""A `config.yaml` edit as an operator makes one, two versions side by side.

Per round and version, on one generated corpus, each version with its own state
directory: save a new `site.description` while the server runs and poll /feed.atom
until it shows it (seconds from the save); then stop, save another, start, and poll
until that one shows (seconds from the start). The versions alternate (this venv's
`feedsvc` and BENCH_OLD_FEEDSVC's, a checkout with its own venv); each starts from a
state directory its own cold start wrote.

    BENCH_OLD_FEEDSVC=/path/to/old/.venv/bin/feedsvc python bench/config_edit.py 10000 3

prints the seconds per round and the medians, and writes bench/results/config-*.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from pair import in_turns, paired, report, summary
from state import Server, poll_until

SAVED_SECONDS = 8.0  # after a start's edit shows: the builder writes its caches


def main(count: int, rounds: int) -> dict[str, Any]:
    with paired(count, "config") as (_, servers):
        running: dict[str, list[float]] = {name: [] for name in servers}
        restart: dict[str, list[float]] = {name: [] for name in servers}
        for n in range(rounds):
            for name, server in in_turns(servers, n):
                server.start()
                server.wait_for(["/feed.atom"])
                server.settle()
                marker = describe_as(server.config, f"Running edit {n} {time.time_ns()}")
                running[name].append(round(shows(server, marker), 3))
                server.stop()
                marker = describe_as(server.config, f"Edited while down {n} {time.time_ns()}")
                server.start()
                shows(server, marker)
                restart[name].append(round(server.since_start(), 3))
                time.sleep(SAVED_SECONDS)
                server.stop()
    results = {"posts": count, "rounds": rounds}
    return results | summary(servers, running_edit=running, restart_after_edit=restart)


def describe_as(config: Path, description: str) -> bytes:
    """Save `config` with a new site.description; the bytes a feed shows it by."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["site"]["description"] = description
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return description.encode()


def shows(server: Server, marker: bytes) -> float:
    """Seconds until /feed.atom holds `marker` (the port may still be opening)."""
    began = time.monotonic()
    while True:
        try:
            poll_until(server.port, "/feed.atom", lambda body: marker in body, 600)
            return time.monotonic() - began
        except OSError:
            server.check_alive()
            time.sleep(0.005)


if __name__ == "__main__":
    report("config", main(int(sys.argv[1]), int(sys.argv[2])))

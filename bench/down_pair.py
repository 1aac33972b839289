"""Restarts with a post edited while the server was down, two versions side by side (#14).

bench/state.py measures this once per size for the version under test; one start is
noisy on a shared machine. This alternates two `feedsvc` executables (this venv's and
BENCH_OLD_FEEDSVC's, a checkout with its own venv), each with its own state directory
on the same generated corpus: per round, for each version, change the newest post's
title, start `feedsvc serve` (2 workers, defaults otherwise), time the warm restart (the
site feed, a three-level category feed and a tag feed all 200, as bench/state.py does),
poll /feed.atom every 5 ms (gzip) until the new title shows, wait for the builder to save
its caches, stop.

    BENCH_OLD_FEEDSVC=/path/to/old/.venv/bin/feedsvc python bench/down_pair.py 50000 5

prints the seconds per round and the medians, and writes bench/results/down-*.json.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from corpus import write_corpus
from service import free_port
from state import (
    NEW_FEEDSVC,
    TAGS,
    Server,
    describe,
    get,
    newest_post,
    probe_paths,
    write_config,
)

SAVED_SECONDS = 8.0  # after the edit shows: the builder writes its parse cache and memory


def main(count: int, rounds: int) -> dict[str, object]:
    versions = {"old": Path(os.environ["BENCH_OLD_FEEDSVC"]), "new": NEW_FEEDSVC}
    work = Path(tempfile.mkdtemp(prefix="feedsvc-down-bench-"))
    corpus = work / "posts"
    write_corpus(count, corpus, TAGS)
    servers = {}
    for name, executable in versions.items():
        port = free_port()
        servers[name] = Server(executable, write_config(work / name, corpus, port), port)
    newest = newest_post(corpus)
    original = newest.read_text(encoding="utf-8")
    seconds: dict[str, list[float]] = {name: [] for name in versions}
    warm: dict[str, list[float]] = {name: [] for name in versions}
    paths = probe_paths(count, TAGS)
    try:
        for server in servers.values():  # a cold start leaves a state to restart from
            server.start()
            server.wait_for(["/feed.atom"])
            server.settle()
            server.stop()
        for n in range(rounds):
            for name, server in servers.items():
                marker = f"Retitled while down {n} {time.time_ns()}"
                edited = re.sub(
                    r"^title: '(.*)'$", f"title: '{marker} \\1'", original, count=1, flags=re.M
                )
                newest.write_text(edited, encoding="utf-8")
                server.start()
                warm[name].append(round(max(server.wait_for(paths).values()), 3))
                seconds[name].append(served_after(server, marker))
                time.sleep(SAVED_SECONDS)
                server.stop()
                newest.write_text(original, encoding="utf-8")
    finally:
        newest.write_text(original, encoding="utf-8")
        for server in servers.values():
            server.stop()
    return {
        "posts": count,
        "rounds": rounds,
        "seconds": seconds,
        "median_s": {name: statistics.median(s) for name, s in seconds.items()},
        "warm_restart_s": warm,
        "warm_restart_median_s": {name: statistics.median(s) for name, s in warm.items()},
        "old": describe(versions["old"]),
        "new": describe(versions["new"]),
    }


def served_after(server: Server, marker: str) -> float:
    """Seconds from the start until /feed.atom has `marker` (the port opens meanwhile)."""
    while True:
        try:
            status, _, body = get(server.port, "/feed.atom")
        except (OSError, http.client.HTTPException):
            status, body = 0, b""
        if status == 200 and marker.encode() in body:
            return round(server.since_start(), 3)
        server.check_alive()
        if server.since_start() > 300:
            raise TimeoutError("the edited title never showed:\n" + server.log_tail())
        time.sleep(0.005)


if __name__ == "__main__":
    results = main(int(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps(results, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (HERE / "results" / f"down-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")

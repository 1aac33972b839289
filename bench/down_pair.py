"""Restarts with a post edited while the server was down, two versions side by side (#14).

bench/state.py measures this once per size for the version under test; one start is
noisy on a shared machine. This alternates two `feedsvc` executables (this venv's and
BENCH_OLD_FEEDSVC's, a checkout with its own venv), each with its own state directory
on the same generated corpus: per round, for each version (the first of a round
alternating from round to round), change the newest post's
title, start `feedsvc serve` (2 workers, defaults otherwise), time the warm restart (the
site feed, a three-level category feed and a tag feed all 200, as bench/state.py does),
poll /feed.atom every 5 ms (gzip) until the new title shows, wait for the builder to save
its caches, stop.

    BENCH_OLD_FEEDSVC=/path/to/old/.venv/bin/feedsvc python bench/down_pair.py 50000 5

prints the seconds per round and the medians, and writes bench/results/down-*.json.
"""

from __future__ import annotations

import http.client
import re
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from pair import in_turns, paired, report, summary
from state import TAGS, Server, get, newest_post, probe_paths

SAVED_SECONDS = 8.0  # after the edit shows: the builder writes its parse cache and memory


def main(count: int, rounds: int) -> dict[str, Any]:
    with paired(count, "down") as (corpus, servers):
        newest = newest_post(corpus)
        original = newest.read_text(encoding="utf-8")
        seconds: dict[str, list[float]] = {name: [] for name in servers}
        warm: dict[str, list[float]] = {name: [] for name in servers}
        paths = probe_paths(count, TAGS)
        try:
            for n in range(rounds):
                for name, server in in_turns(servers, n):
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
    results = {"posts": count, "rounds": rounds}
    return results | summary(servers, edited_while_down=seconds, warm_restart=warm)


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
    report("down", main(int(sys.argv[1]), int(sys.argv[2])))

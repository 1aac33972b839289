"""Two versions side by side on one machine: this venv's `feedsvc` ("new") and
BENCH_OLD_FEEDSVC's ("old", a checkout with its own venv), each serving one generated
corpus from a state directory of its own that its cold start wrote. What
bench/down_pair.py and bench/config_edit.py alternate their rounds over."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpus import write_corpus
from service import free_port
from state import NEW_FEEDSVC, TAGS, Server, describe, write_config

HERE = Path(__file__).parent


@contextmanager
def paired(count: int, prefix: str) -> Iterator[tuple[Path, dict[str, Server]]]:
    """The corpus of `count` posts and a server per version, each cold-started once (so
    that a restart has a state to carry on from); every server is stopped at the end."""
    versions = {"old": Path(os.environ["BENCH_OLD_FEEDSVC"]), "new": NEW_FEEDSVC}
    work = Path(tempfile.mkdtemp(prefix=f"feedsvc-{prefix}-bench-"))
    corpus = work / "posts"
    write_corpus(count, corpus, TAGS)
    servers = {}
    for name, executable in versions.items():
        port = free_port()
        servers[name] = Server(executable, write_config(work / name, corpus, port), port)
    try:
        for server in servers.values():
            server.start()
            server.wait_for(["/feed.atom"])
            server.settle()
            server.stop()
        yield corpus, servers
    finally:
        for server in servers.values():
            server.stop()


def in_turns(servers: dict[str, Server], round_number: int) -> list[tuple[str, Server]]:
    """The servers in the order they run in round `round_number`: each goes first in every
    other round, since the second of a round measured a few hundredths of a second slower
    at its start (down_pair's warm restarts, thirteenth session)."""
    turns = list(servers.items())
    return turns if round_number % 2 == 0 else turns[::-1]


def summary(servers: dict[str, Server], **runs: dict[str, list[float]]) -> dict[str, Any]:
    """Each run's seconds per version with their medians, and what each version is."""
    results: dict[str, Any] = {}
    for name, seconds in runs.items():
        results[f"{name}_s"] = seconds
        results[f"{name}_median_s"] = {v: statistics.median(s) for v, s in seconds.items()}
    return results | {name: describe(server.executable) for name, server in servers.items()}


def report(prefix: str, results: dict[str, Any]) -> None:
    """Print the results and write them to bench/results/<prefix>-<time>.json."""
    print(json.dumps(results, indent=2))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (HERE / "results" / f"{prefix}-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")

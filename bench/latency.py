"""`make bench`, latency half: does a reload slow down requests? p99 idle against during reloads.

Serves a corpus with the settings `feedsvc serve` uses (server pinned to CPU 1, wrk to
CPU 0) and measures wrk's latency distribution for 10 s idle, then for 10 s while
reloads that re-read and re-render 100 changed posts are asked for every 2 s (SIGHUP).

Two loads. Paced: 16 connections that each wait 4 ms between requests (about 4,000
requests/s, what a busy feed host sees), leaving CPU for the reloads; this is the
comparison that matters. Saturated: 16 connections flat out; the builder runs only on
idle CPU, so here it shows how many reloads got through, not what they cost requests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.request import urlopen

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from service import start_service


PACE = HERE / "pace.lua"  # wrk waits this script's delay() ms before each request


def wrk_latency(url: str, seconds: int, headers: list[str], *, paced: bool) -> dict[str, float]:
    command = ["taskset", "-c", "0", "wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
    if paced:
        command += ["-s", str(PACE)]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}
    for percentile in ("50", "99"):
        found = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)", output, re.M)
        value, unit = float(found.group(1)), found.group(2)
        figures[f"p{percentile}_ms"] = (
            value / 1000 if unit == "us" else value * (1000 if unit == "s" else 1)
        )
    return figures


def measure(corpus: Path, work: Path) -> dict[str, object]:
    process, base = start_service(corpus, work)
    url = base + "/feed.atom"
    headers = ["Accept-Encoding: gzip"]
    try:
        return {
            load: {
                "idle": wrk_latency(url, 10, headers, paced=load == "paced"),
                **during_reloads(process, base, url, headers, corpus, paced=load == "paced"),
            }
            for load in ("paced", "saturated")
        }
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def during_reloads(
    process: subprocess.Popen[bytes],
    base: str,
    url: str,
    headers: list[str],
    corpus: Path,
    *,
    paced: bool,
) -> dict[str, object]:
    stop = threading.Event()
    asked = [0]
    # The 100 newest posts: re-read, re-parsed, and most feeds re-rendered.
    files = sorted(corpus.rglob("post-*"), key=lambda p: p.name)[-100:]
    texts = {path: path.read_text(encoding="utf-8") for path in files}

    def keep_reloading() -> None:
        while not stop.is_set():
            for path, text in texts.items():
                path.write_text(f"{text}\nEdit {time.time()}.\n", encoding="utf-8")
            process.send_signal(signal.SIGHUP)
            asked[0] += 1
            stop.wait(2.0)

    thread = threading.Thread(target=keep_reloading, daemon=True)
    first = generation(base)
    thread.start()
    figures = wrk_latency(url, 10, headers, paced=paced)
    # Reloads whose snapshot reached the worker while wrk was measuring.
    completed = generation(base) - first
    stop.set()
    thread.join()
    return {"during_reloads": figures, "reloads_asked": asked[0], "reloads_done": completed}


def generation(base: str) -> int:
    with urlopen(base + "/healthz", timeout=10) as response:
        return int(json.load(response)["generation"])


if __name__ == "__main__":
    import shutil
    import tempfile

    from corpus import write_corpus

    count = int(os.environ.get("BENCH_LATENCY_POSTS", "10000"))
    work = Path(tempfile.mkdtemp(prefix="feedsvc-latency-"))
    try:
        write_corpus(count, work / "posts")
        result = measure(work / "posts", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(result)

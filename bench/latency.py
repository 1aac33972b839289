"""`make bench`, latency half: does a reload slow down requests? p99 idle against during reloads.

Serves a corpus with the settings `feedsvc serve` uses (server pinned to CPU 1, wrk to
CPU 0), measures wrk's latency distribution for 10 s idle, then for 10 s while reloads
that re-read and re-render 100 changed posts run back to back (SIGHUP).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from service import start_service


def wrk_latency(url: str, seconds: int, headers: list[str]) -> dict[str, float]:
    command = ["taskset", "-c", "0", "wrk", "-t1", "-c16", f"-d{seconds}s", "--latency"]
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
        idle = wrk_latency(url, 10, headers)
        stop = threading.Event()
        reloads = [0]

        def keep_reloading() -> None:
            # The 100 newest posts: re-read, re-parsed, and most feeds re-rendered.
            files = sorted(corpus.rglob("post-*"), key=lambda p: p.name)[-100:]
            texts = {path: path.read_text(encoding="utf-8") for path in files}
            while not stop.is_set():
                for path, text in texts.items():
                    path.write_text(f"{text}\nEdit {reloads[0]}.\n", encoding="utf-8")
                process.send_signal(signal.SIGHUP)
                reloads[0] += 1
                stop.wait(2.0)

        thread = threading.Thread(target=keep_reloading, daemon=True)
        thread.start()
        during = wrk_latency(url, 10, headers)
        stop.set()
        thread.join()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    return {"idle": idle, "during_reloads": during, "reloads": reloads[0]}


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

"""`make bench`: serving throughput against nginx, then reload times against Hugo, in one run.

Generates a deterministic Hexo-style corpus, starts `feedsvc serve` pinned to CPU 1 with
the settings `serve` uses (one worker, as nginx gets one), and runs
../shared/tools/bench-vs-nginx (wrk on CPU 0, nginx on CPU 1) for (a) the 50-entry site
feed with full content and (b) a round-robin mix of 20 category and tag feeds. Then
latency during reloads (bench/latency.py), reload times against Hugo (bench/reload.py)
and the server across restarts, through HTTP (bench/state.py: cold and warm starts,
save -> served, memory; BENCH_OLD_FEEDSVC=<another version's feedsvc> adds its figures)
and publishing to a local SeaweedFS (bench/publish.py: first, no-change and one-edit
publishes, save -> in the bucket through `serve`), and what the id ledger costs a reload
(bench/ledger.py).
Prints tables and writes them as JSON under bench/results/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from urllib.request import urlopen


HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import latency
from service import start_service
import reload
import state
import ledger
import publish
from corpus import DEFAULT_SIZES, write_corpus

BENCH_VS_NGINX = Path(os.environ.get("SHARED", ROOT.parent / "shared")) / "tools/bench-vs-nginx"


def ensure_tools() -> None:
    missing = [t for t in ("wrk", "nginx", "taskset") if not shutil.which(t)]
    if missing and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "wrk", "nginx"],
            check=False,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        missing = [t for t in ("wrk", "nginx", "taskset") if not shutil.which(t)]
    if missing:
        sys.exit(f"bench needs {', '.join(missing)} (Debian packages wrk, nginx)")


def busiest_feeds(base: str, count: int) -> list[str]:
    """Paths of the `count` category and tag feeds with the most entries (from the OPML)."""
    with urlopen(base + "/feeds.opml", timeout=10) as response:
        outlines = ET.fromstring(response.read()).findall("./body/outline")
    paths = [o.get("xmlUrl", "").removeprefix(base) for o in outlines][1:]
    sizes = []
    for path in paths:
        with urlopen(base + path, timeout=10) as response:
            sizes.append((len(response.read()), path))
    return [path for _, path in sorted(sizes, reverse=True)[:count]]


def compare(base: str, paths: list[str]) -> dict[str, float]:
    env = {
        **os.environ,
        "DUR": os.environ.get("DUR", "8s"),
        "REPEAT": os.environ.get("REPEAT", "3"),
    }
    result = subprocess.run(
        [str(BENCH_VS_NGINX), base, *paths], capture_output=True, text=True, env=env, check=True
    )
    print(result.stdout, end="")
    figures: dict[str, float] = {}
    for kind in ("service_200gz", "nginx_200gz", "service_304", "nginx_304"):
        match = re.search(
            rf"^{kind}: rps=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+)", result.stdout, re.M
        )
        if match:
            figures[f"{kind}_rps"] = float(match.group(1))
            figures[f"{kind}_p99_ms"] = float(match.group(3))
    for ratio in ("ratio_200gz", "ratio_304"):
        match = re.search(rf"^{ratio}=([\d.]+)", result.stdout, re.M)
        if match:
            figures[ratio] = float(match.group(1))
    return figures


def measure_latency() -> dict[str, object]:
    """p50/p99 of one feed, idle and while reloads re-render 100 changed posts (largest corpus)."""
    # The largest corpus of the run (the issue asks for a reload at 50,000 posts).
    sizes = os.environ.get("BENCH_SIZES", DEFAULT_SIZES).split(",")
    posts = int(os.environ.get("BENCH_LATENCY_POSTS", max(int(n) for n in sizes)))
    work = Path(tempfile.mkdtemp(prefix="feedsvc-latency-"))
    try:
        write_corpus(posts, work / "posts")
        result = latency.measure(work / "posts", work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for load, figures in result.items():
        idle, busy = figures["idle"], figures["during_reloads"]
        print(
            f"\nlatency at {posts} posts, {load}: idle p50 {idle['p50_ms']:.2f} ms "
            f"p99 {idle['p99_ms']:.2f} ms {idle['rps']:.0f} req/s; during reloads "
            f"({figures['reloads_done']} of {figures['reloads_asked']} asked reached the "
            f"worker) p50 {busy['p50_ms']:.2f} ms p99 {busy['p99_ms']:.2f} ms "
            f"{busy['rps']:.0f} req/s"
        )
    return {"posts": posts, **result}


def main() -> None:
    ensure_tools()
    posts = int(os.environ.get("BENCH_HTTP_POSTS", "1000"))
    work = Path(tempfile.mkdtemp(prefix="feedsvc-bench-"))
    try:
        write_corpus(posts, work / "posts")
        process, base = start_service(work / "posts", work)
        try:
            mix = busiest_feeds(base, 20)
            results = {
                "site feed (50 entries, full content)": compare(base, ["/feed.atom"]),
                "20 category and tag feeds": compare(base, mix),
            }
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=15)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'load':40} {'ratio_200gz':>12} {'ratio_304':>10} {'rps 200gz':>10} {'rps 304':>10}")
    for name, figures in results.items():
        print(
            f"{name:40} {figures.get('ratio_200gz', 0):12.3f} {figures.get('ratio_304', 0):10.3f} "
            f"{figures.get('service_200gz_rps', 0):10.0f} {figures.get('service_304_rps', 0):10.0f}"
        )
    latencies = measure_latency()
    reloads = reload.main()
    states = state.main()
    ledgers = ledger.main()
    publishing = publish.main()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"bench-{stamp}.json").write_text(
        json.dumps(
            {
                "when": stamp,
                "posts": posts,
                "cpus": os.cpu_count(),
                "serving": results,
                "reload": reloads,
                "latency_during_reloads": latencies,
                "state": states,
                "ledger": ledgers,
                "publish": publishing,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()

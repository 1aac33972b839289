"""`make bench`, publishing half: `feedsvc publish` and `serve`'s continuous publishing to a
real S3-compatible store (SeaweedFS from the test extra, on loopback), at 10,000 posts.

a. first publish into an empty prefix (every object: the whole-tree upload that a naive
   `aws s3 sync` of a fresh build amounts to, and the anchor for the rest);
b. a publish with nothing changed;
c. a publish after one edit (text appended to the newest post);
d. continuous: `feedsvc serve` with publish.url; text appended to the newest post, and
   seconds until the bucket's feed.atom (read back by GET every 20 ms) holds it (EDITS times).

    python bench/publish.py   # prints JSON, writes bench/results/publish-*.json

BENCH_PUBLISH_POSTS sets the corpus size (default 10000). Wall-clock figures on whatever
else the machine runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from corpus import write_corpus
from tests.support.seaweed import SeaweedFS
from service import FEEDSVC, bench_config, free_port

EDITS = 5
LINE = re.compile(r"(\d+) uploaded, (\d+) unchanged, (\d+) deleted, (\d+) bytes, ([\d.]+)s")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def publish(config: Path, env: dict[str, str]) -> dict[str, Any]:
    """One `feedsvc publish`: wall seconds (build included) and its summary line's figures."""
    began = time.monotonic()
    done = subprocess.run(
        [str(FEEDSVC), "publish", "--config", str(config), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    wall = time.monotonic() - began
    found = LINE.search(done.stdout)
    assert found, done.stdout + done.stderr
    uploaded, unchanged, deleted, size, seconds = found.groups()
    return {
        "wall_s": round(wall, 3),
        "publish_s": float(seconds),
        "uploaded": int(uploaded),
        "unchanged": int(unchanged),
        "deleted": int(deleted),
        "bytes": int(size),
    }


def append(post: Path, marker: str) -> None:
    with post.open("a", encoding="utf-8") as out:
        out.write(f"\n{marker}\n")


def write_config(work: Path, corpus: Path, port: int, url: str, endpoint: str) -> Path:
    config = work / f"config-{port}.yaml"
    data = bench_config(
        port,
        corpus,
        publish={"url": url, "endpoint_url": endpoint},
        server={"workers": 1},
        state={"path": str(work / f"state-{port}")},
    )
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return config


def one_shot(store: SeaweedFS, work: Path, corpus: Path, env: dict[str, str]) -> dict[str, Any]:
    """(a)-(c)."""
    bucket = store.new_bucket()
    config = write_config(work, corpus, free_port(), f"s3://{bucket}/site", store.endpoint)
    first = publish(config, env)
    log(f"first publish: {first}")
    nothing = publish(config, env)
    log(f"no change: {nothing}")
    append(newest_post(corpus), f"One edit {time.time_ns()}.")
    edit = publish(config, env)
    log(f"one edit: {edit}")
    return {"first": first, "no_change": nothing, "one_edit": edit}


def newest_post(root: Path) -> Path:
    return max(root.rglob("post-*"), key=lambda p: p.name)


def continuous(store: SeaweedFS, work: Path, corpus: Path, env: dict[str, str]) -> dict[str, Any]:
    """(d): save -> in the bucket, through a real `feedsvc serve`."""
    bucket = store.new_bucket()
    port = free_port()
    config = write_config(work, corpus, port, f"s3://{bucket}/live", store.endpoint)
    with (work / "serve.log").open("wb") as out:
        server = subprocess.Popen(
            [str(FEEDSVC), "serve", "--config", str(config), "--log-level", "info"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    client = store.client()
    try:
        began = time.monotonic()
        wait_for(lambda: b"publish: " in (work / "serve.log").read_bytes(), 600)
        first = time.monotonic() - began
        log(f"serve: first publication done {first:.1f}s after start")
        seconds = []
        for n in range(EDITS):
            marker = f"Appended for the publish benchmark {n} {time.time_ns()}."
            began = time.monotonic()
            append(newest_post(corpus), marker)
            wait_for(lambda m=marker: m.encode() in feed(client, bucket), 60)
            seconds.append(round(time.monotonic() - began, 3))
            log(f"save -> bucket: {seconds[-1]:.3f}s")
            time.sleep(1.0)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return {
        "start_to_first_publication_s": round(first, 1),
        "save_to_bucket_s": seconds,
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
    }


def feed(client: Any, bucket: str) -> bytes:
    try:
        return bytes(client.get_object(Bucket=bucket, Key="live/feed.atom")["Body"].read())
    except Exception:  # not there yet
        return b""


def wait_for(condition: Any, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.02)


def main() -> dict[str, Any]:
    posts = int(os.environ.get("BENCH_PUBLISH_POSTS", "10000"))
    work = Path(tempfile.mkdtemp(prefix="feedsvc-publish-bench-"))
    store = SeaweedFS(work / "seaweed")
    try:
        write_corpus(posts, work / "posts")
        store.start()
        env = {**os.environ, **store.environment()}
        results = {
            "posts": posts,
            **one_shot(store, work, work / "posts", env),
            "continuous": continuous(store, work, work / "posts", env),
        }
    finally:
        store.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    results["when"] = stamp
    (out / f"publish-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()

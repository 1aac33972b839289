"""`make bench`, id ledger: what the ledger costs a reload, side by side in one process.

On the wide corpus (10,000 posts, 2,000 tags, every category path; BENCH_LEDGER_POSTS to
change it) two builders read the same folder: one without the ledger (feedsvc before
it), one with it (as `feedsvc serve`'s builder runs). Each measurement alternates
between them, so both see the same machine: a no-change reload, a reload after editing
one post, and, for the ledger only, a rename of one post and a change of site.base_url
(every article placed again: ids kept). Ratios with/without are what to read.

Run alone: python bench/ledger.py
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from corpus import write_corpus

from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.state.ledger import Ledger
from feedsvc.store import Store

ROUNDS = 9


def timed(reloader: Reloader) -> float:
    started = time.perf_counter()
    reloader.reload()
    return time.perf_counter() - started


def write_config(work: Path, corpus: Path, base_url: str) -> Path:
    config = work / "config.yaml"
    config.write_text(
        f"site:\n  title: Bench\n  base_url: {base_url}\n  timezone: Asia/Shanghai\n"
        f"sources:\n  - name: posts\n    path: {corpus}\n",
        encoding="utf-8",
    )
    return config


def edit(path: Path, n: int) -> None:
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n\n", f"\n\nEdit {n}. ", 1), encoding="utf-8")


def measure(posts: int, tags: int, work: Path) -> dict[str, object]:
    corpus = work / "posts"
    write_corpus(posts, corpus, tags)
    config = load_config(write_config(work, corpus, "http://127.0.0.1:8080"))
    (work / "state").mkdir()
    ledger, _ = Ledger.open(work / "state")
    plain = Reloader(config, Store())
    with_ledger = Reloader(config, Store(), ledger=ledger)
    result: dict[str, object] = {"posts": posts, "tags": tags}
    result["cold_without_s"], result["cold_with_s"] = timed(plain), timed(with_ledger)
    timed(plain), timed(with_ledger)  # the first tick also records which nodes exist
    pairs: dict[str, list[tuple[float, float]]] = {"no_change": [], "edit_one": []}
    newest = sorted(corpus.rglob("post-*"))[-ROUNDS - 1 :]
    for n in range(ROUNDS):
        first, second = (plain, with_ledger) if n % 2 == 0 else (with_ledger, plain)
        a, b = timed(first), timed(second)
        pairs["no_change"].append((a, b) if first is plain else (b, a))
        edit(newest[n], n)
        a, b = timed(first), timed(second)
        pairs["edit_one"].append((a, b) if first is plain else (b, a))
    for name, values in pairs.items():
        without = statistics.median(v[0] for v in values)
        with_ = statistics.median(v[1] for v in values)
        result[f"{name}_without_ms"] = round(without * 1000, 2)
        result[f"{name}_with_ms"] = round(with_ * 1000, 2)
        result[f"{name}_ratio"] = round(with_ / without, 3)
    renames = []
    for n in range(ROUNDS):
        path = newest[n]
        path.rename(path.with_name(f"renamed-{n}-{path.name}"))
        renames.append(timed(with_ledger))
    result["rename_one_with_ms"] = round(statistics.median(renames) * 1000, 2)
    moved = load_config(write_config(work, corpus, "https://news.example.cn"))
    with_ledger.watcher = None
    with_ledger._apply(moved)  # what a config reload does
    result["new_base_url_with_s"] = round(timed(with_ledger), 3)
    result["ledger_bytes"] = sum(f.stat().st_size for f in (work / "state").glob("ledger.*"))
    ledger.close()
    return result


def main() -> dict[str, object]:
    logging.disable(logging.WARNING)
    posts = int(os.environ.get("BENCH_LEDGER_POSTS", "10000"))
    with tempfile.TemporaryDirectory(prefix="feedsvc-bench-ledger-") as work:
        result = measure(posts, 2000, Path(work))
    print("\nid ledger, wide corpus:", json.dumps(result, indent=1))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"ledger-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    return result


if __name__ == "__main__":
    main()

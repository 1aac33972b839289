"""Reload figures of another checkout of feedsvc against this one, side by side in one run.

    python bench/compare.py /path/to/old/checkout [posts]

bench/reload.py's measurement (cold start, no-change tick, edit of the newest post) on one
corpus (default 10,000 posts, 200 tags), run for the old tree and this one alternately,
twice each, so both see the same machine. Writes bench/results/compare-<time>.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import reload
from corpus import write_corpus

KEYS = ("cold_s", "tick_s", "edit_newest_s", "documents")


def measure(tree: Path, corpus: Path, work: Path, name: str, posts: int) -> dict[str, float]:
    copy = work / name
    shutil.copytree(corpus, copy)  # the measurement edits and adds posts
    config = work / f"{name}.yaml"
    config.write_text(
        "site:\n  title: Bench\n  base_url: http://127.0.0.1:8080\n  timezone: Asia/Shanghai\n"
        f"sources:\n  - name: posts\n    path: {copy}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-c", reload.MEASURE, str(config), str(HERE), str(copy), str(posts)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        cwd=work,
    )
    result = json.loads(done.stdout)
    return {key: result[key] for key in KEYS}


def main() -> None:
    old, posts = Path(sys.argv[1]).resolve(), int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    trees = {"old": old, "new": HERE.parent.resolve()}
    runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="feedsvc-compare-") as folder:
        work = Path(folder)
        write_corpus(posts, work / "corpus")
        for round_ in range(2):
            for name, tree in trees.items():
                runs[name].append(measure(tree, work / "corpus", work, f"{name}-{round_}", posts))
                print(name, runs[name][-1], flush=True)
    means = {n: {k: sum(r[k] for r in rs) / len(rs) for k in KEYS} for n, rs in runs.items()}
    ratios = {k: round(means["new"][k] / means["old"][k], 3) for k in KEYS}
    print("new / old:", ratios)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    result = {"old": str(old), "posts": posts, "runs": runs, "ratios": ratios}
    (HERE / "results" / f"compare-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

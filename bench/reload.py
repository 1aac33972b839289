"""`make bench`, reload half: feedsvc's reload times and memory against Hugo, in one run.

For each corpus size (1,000, 10,000 and 50,000 posts; BENCH_SIZES=1000,10000 for a
quicker run) a fresh process measures: cold start to the first snapshot, a no-change reload, a
reload after editing the newest post, after adding 100 posts, after deleting one, and its
peak RSS. That process is what `feedsvc serve`'s builder process does (without writing
the snapshot files; bench/state.py measures the server as a whole, through HTTP). The
same corpora are built by Hugo (Debian's
`hugo`, RSS only for home, sections and taxonomies), cold and after touching one file.
The same measurement on 5,000 and 10,000 posts with 2,000 tags shows whether reload
work grows with tags times categories.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from corpus import DEFAULT_SIZES, post, write_corpus

MEASURE = r"""
import json, logging, os, resource, sys, time
from pathlib import Path
logging.disable(logging.WARNING)
from feedsvc.config import load_config
try:
    from feedsvc.reload.reloader import Reloader
except ImportError:  # a checkout from before feedsvc/reload/ (bench/compare.py)
    from feedsvc.refresh import Refresher as Reloader
    Reloader.reload = Reloader.refresh
from feedsvc.store import Store
sys.path.insert(0, sys.argv[2])
from corpus import post
config_path, root = Path(sys.argv[1]), Path(sys.argv[3])
config = load_config(config_path)
store = Store()
reloader = Reloader(config, store)
def timed():
    started = time.perf_counter(); reloader.reload(); return time.perf_counter() - started
result = {"cold_s": timed()}
timed()  # the first tick after start also records which nodes exist
result["tick_s"] = min(timed() for _ in range(5))
newest = max(root.rglob("post-*"), key=lambda p: p.name)
text = newest.read_text(encoding="utf-8")
newest.write_text(text.replace("\n\n", "\n\nEdited for the benchmark. ", 1), encoding="utf-8")
os.utime(newest, ns=(1, time.time_ns()))
result["edit_newest_s"] = timed()
count = int(sys.argv[4]); tags = [f"tag{n:04d}" for n in range(200)]
for index in range(count, count + 100):
    relpath, body = post(index, tags)
    (root / relpath).parent.mkdir(parents=True, exist_ok=True)
    (root / relpath).write_text(body, encoding="utf-8")
result["add_100_s"] = timed()
newest.unlink()
result["delete_one_s"] = timed()
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
feeds = [p for p in store.current.documents if p.endswith("/feed.atom")]
result["tag_feeds"] = sum(p.startswith("tags/") for p in feeds)
result["category_feeds"] = sum(p.startswith("categories/") for p in feeds)
# The cold start's processes (feedsvc.processes.cpus): the largest of them, once they have ended.
result["pool_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
result["documents"] = len(store.current.documents)
print(json.dumps(result))
"""

# A wide taxonomy, to show that reload work does not grow with tags times categories:
# the same measurement at two corpus sizes, with 2,000 tags and every category path in use.
WIDE_SIZES = (5000, 10000)
WIDE_TAGS = 2000

HUGO_CONFIG = """baseURL = "http://127.0.0.1/"
title = "Bench"
disableKinds = ["page", "sitemap", "robotsTXT", "404"]
[outputs]
home = ["RSS"]
section = ["RSS"]
taxonomy = ["RSS"]
term = ["RSS"]
[taxonomies]
category = "categories"
tag = "tags"
"""


def measure_feedsvc(count: int, work: Path, tag_count: int = 200) -> dict[str, float]:
    name = f"{count}-{tag_count}"
    root = work / f"posts-{name}"
    write_corpus(count, root, tag_count)
    config = work / f"config-{name}.yaml"
    config.write_text(
        "site:\n  title: Bench\n  base_url: http://127.0.0.1:8080\n  timezone: Asia/Shanghai\n"
        f"sources:\n  - name: posts\n    path: {root}\n",
        encoding="utf-8",
    )
    output = subprocess.run(
        [sys.executable, "-c", MEASURE, *map(str, (config, HERE, root, count))],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(output.stdout)
    return result


def measure_wide(work: Path) -> dict[str, dict[str, float]]:
    """The same measurement at WIDE_SIZES posts, with WIDE_TAGS tags."""
    return {str(n): measure_feedsvc(n, work, WIDE_TAGS) for n in WIDE_SIZES}


def hugo_tree(count: int, site: Path) -> None:
    """The same posts as a Hugo content tree (Markdown front matter Hugo understands)."""
    tags = [f"tag{n:04d}" for n in range(200)]
    (site / "content/posts").mkdir(parents=True)
    (site / "hugo.toml").write_text(HUGO_CONFIG, encoding="utf-8")
    for index in range(count):
        relpath, text = post(index, tags)
        target = site / "content/posts" / (Path(relpath).stem + ".md")
        # Hugo wants ISO dates; the corpus writes RFC 2822 as Hexo scrapers do.
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if line.startswith("date: "):
                stamp = time.strptime(line[6:], "%a, %d %b %Y %H:%M:%S GMT")
                lines[n] = "date: " + time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)
            if line.startswith("headimg:") or line.startswith("author:"):
                lines[n] = ""
        target.write_text("\n".join(lines), encoding="utf-8")


def measure_hugo(count: int, work: Path) -> dict[str, object] | str:
    hugo = shutil.which("hugo")
    if hugo is None and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "hugo"],
            capture_output=True,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        hugo = shutil.which("hugo")
    if hugo is None:
        return "hugo is not installed and could not be (Debian package hugo); skipped"
    site = work / f"hugo-{count}"
    hugo_tree(count, site)

    def build() -> float:
        started = time.perf_counter()
        subprocess.run(
            [hugo, "--quiet", "--source", str(site), "--destination", str(work / "hugo-public")],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started

    cold = build()
    touched = sorted((site / "content/posts").iterdir())[-1]
    os.utime(touched)
    return {
        "cold_s": cold,
        "touch_one_s": build(),
        "version": subprocess.run(
            [hugo, "version"], capture_output=True, text=True, check=False
        ).stdout.strip(),
    }


def main() -> dict[str, object]:
    sizes = [int(n) for n in os.environ.get("BENCH_SIZES", DEFAULT_SIZES).split(",")]
    work = Path(tempfile.mkdtemp(prefix="feedsvc-reload-bench-"))
    try:
        feedsvc = {str(n): measure_feedsvc(n, work) for n in sizes}
        hugo = {str(n): measure_hugo(n, work) for n in sizes}
        wide = measure_wide(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"\n{'posts':>7} {'cold s':>8} {'tick ms':>8} {'edit ms':>8} {'+100 ms':>8} "
        f"{'-1 ms':>8} {'RSS MB':>7} {'pool MB':>7} {'hugo s':>7} {'hugo touch s':>12}"
    )
    for n, r in feedsvc.items():
        h = hugo[n]
        cold, touch = (h["cold_s"], h["touch_one_s"]) if isinstance(h, dict) else (0.0, 0.0)
        print(
            f"{n:>7} {r['cold_s']:8.2f} {r['tick_s'] * 1e3:8.1f} {r['edit_newest_s'] * 1e3:8.1f} "
            f"{r['add_100_s'] * 1e3:8.1f} {r['delete_one_s'] * 1e3:8.1f} "
            f"{r['peak_rss_mb']:7.0f} {r['pool_rss_mb']:7.0f} {cold:7.2f} {touch:12.2f}"
        )
    if "10000" in feedsvc and isinstance(hugo.get("10000"), dict):
        mine, theirs = feedsvc["10000"], hugo["10000"]
        print(
            f"ratios at 10000 (feedsvc/hugo): cold {mine['cold_s'] / theirs['cold_s']:.2f}, "
            f"edit {mine['edit_newest_s'] / theirs['touch_one_s']:.3f}"
        )
    small, large = (wide[str(n)] for n in WIDE_SIZES)
    print(
        f"wide taxonomy ({large['tag_feeds']} tag and {large['category_feeds']} category feeds), "
        f"{WIDE_SIZES[0]} -> {WIDE_SIZES[1]} posts: "
        + ", ".join(
            f"{step} {small[key] * 1e3:.1f} -> {large[key] * 1e3:.1f} ms "
            f"(x{large[key] / small[key]:.2f})"
            for step, key in (("cold", "cold_s"), ("tick", "tick_s"), ("edit", "edit_newest_s"))
        )
    )
    plot(feedsvc, hugo, HERE.parent / "docs" / "performance.png")
    return {"feedsvc": feedsvc, "hugo": hugo, "wide_taxonomy": wide, "cpus": os.cpu_count()}


def plot(feedsvc: dict[str, dict], hugo: dict[str, object], target: Path) -> None:
    """Reload time against corpus size, for feedsvc (cold, edit, no-change) and Hugo."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'); no plot")
        return
    sizes = sorted(int(n) for n in feedsvc)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=110)
    series = [
        ("feedsvc cold start", [feedsvc[str(n)]["cold_s"] for n in sizes], "o-"),
        (
            "feedsvc reload after editing one post",
            [feedsvc[str(n)]["edit_newest_s"] for n in sizes],
            "s-",
        ),
        ("feedsvc reload, nothing changed", [feedsvc[str(n)]["tick_s"] for n in sizes], "^-"),
    ]
    if all(isinstance(hugo.get(str(n)), dict) for n in sizes):
        series += [
            ("Hugo build", [hugo[str(n)]["cold_s"] for n in sizes], "o--"),  # type: ignore[index]
            (
                "Hugo build after touching one post",
                [hugo[str(n)]["touch_one_s"] for n in sizes],
                "s--",
            ),  # type: ignore[index]
        ]
    for label, values, style in series:
        axes.plot(sizes, values, style, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("posts")
    axes.set_ylabel("seconds")
    axes.set_title("Reload time against corpus size (2 cores)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    target.parent.mkdir(exist_ok=True)
    figure.savefig(target)
    print(f"plot written to {target}")


if __name__ == "__main__":
    main()

"""`make bench`, state half: the server as a user sees it, through HTTP, across restarts.

Starts `feedsvc serve` as a subprocess (2 workers, defaults otherwise: reload.watch on,
state.path `.feedsvc` beside the config) on a free 127.0.0.1 port, on generated corpora
(bench/corpus.py), and measures:

a. cold start: seconds from starting the process until the site feed, a three-level
   category feed and a tag feed all answer 200 (10,000 and 50,000 posts, 200 tags, a
   fresh state directory);
b. warm restart: SIGTERM, start again on the same state directory: seconds until the
   same three URLs answer 200, and whether their ETags equal those before the stop;
c. catch-up: seconds from that restart until the builder logs its first `reload:` line,
   that reload's own seconds, and no-change reloads (SIGHUP) for comparison;
d. a post's title edited while the server was down: seconds from the start until the
   new title is in /feed.atom;
e. on the wide taxonomy (10,000 posts, 2,000 tags): save -> served (text appended to the
   newest post, /feed.atom polled every 5 ms with gzip until it shows; median of 10) and
   `POST /-/reload` with nothing changed (median of 10);
f. total PSS (`Pss:` of /proc/PID/smaps_rollup, the serve process and every descendant)
   once the cold start has settled, and after 200 gzip requests to distinct feeds.

With BENCH_OLD_FEEDSVC set to the `feedsvc` executable of another version (a worktree
with its own venv), a, e and f are measured on it too, on the same corpora in the same
run, for before/after pairs (b-d need a state directory: skipped for it). The version
under test is this venv's `feedsvc`, or BENCH_NEW_FEEDSVC's.

    python bench/state.py   # prints the results as JSON, writes bench/results/state-*.json

BENCH_STATE_SIZES=10000,50000 chooses the sizes of a-d and f (empty: e alone). Every
server is stopped, also on errors; figures are wall-clock on whatever else the machine
runs.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from corpus import post, write_corpus
from service import bench_config, free_port

# The version under test: this venv's (BENCH_NEW_FEEDSVC: another checkout's executable).
NEW_FEEDSVC = Path(os.environ.get("BENCH_NEW_FEEDSVC", Path(sys.executable).parent / "feedsvc"))
SIZES = "10000,50000"
TAGS = 200
WIDE_POSTS = int(os.environ.get("BENCH_STATE_WIDE_POSTS", "10000"))
WIDE_TAGS = 2000
EDITS = 10  # save -> served, and no-change reloads: medians of this many
FEED_REQUESTS = 200  # distinct feeds asked for between the two PSS figures
NO_CHANGE_RELOADS = 5  # (c) SIGHUPs with nothing changed, to compare the catch-up with
TOKEN = "bench-reload-token"
RELOAD_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO \S+: reload: .*?([\d.]+)s$"
)
RESUMED_LINE = re.compile(r"resumed from generation .*? in ([\d.]+)s$")
WORKER_LINE = re.compile(r"Spawning worker-\d+ with PID: (\d+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout stays JSON when run alone."""
    print(f"[state {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- HTTP, to 127.0.0.1 only ----------------------------------------------------------


def get(
    port: int,
    path: str,
    *,
    gzipped: bool = True,
    timeout: float = 60.0,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (as a new client would): status, headers, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        sent = {"Accept-Encoding": "gzip"} if gzipped else {}
        connection.request(method, path, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        body = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        if found.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return response.status, found, body
    finally:
        connection.close()


# --- processes ------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if Path(f"/proc/{pid}").exists():
            found.append(pid)
            todo.extend(children.get(pid, []))
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(found.group(1)) if found else 0


class Server:
    """`feedsvc serve` in a session of its own, its log read line by line as it comes."""

    def __init__(self, executable: Path, config: Path, port: int) -> None:
        self.executable, self.config, self.port = executable, config, port
        self.process: subprocess.Popen[bytes] | None = None
        self.lines: list[tuple[float, str]] = []  # (seconds since start, line)
        self.started = 0.0
        self.started_wall = 0.0
        self._reader: threading.Thread | None = None
        self._changed = threading.Condition()

    def start(self) -> None:
        self.lines = []
        self.started_wall = time.time()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                str(self.executable),
                "serve",
                "--config",
                str(self.config),
                "--port",
                str(self.port),
                "--log-level",
                "info",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one on errors
        )
        self._reader = threading.Thread(target=self._read, args=(self.process,), daemon=True)
        self._reader.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            with self._changed:
                self.lines.append(
                    (time.monotonic() - self.started, raw.decode(errors="replace").rstrip())
                )
                self._changed.notify_all()

    def since_start(self) -> float:
        return time.monotonic() - self.started

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"feedsvc serve exited ({self.process.returncode}):\n" + self.log_tail()
            )

    def log_tail(self, count: int = 30) -> str:
        return "\n".join(line for _, line in self.lines[-count:])

    def reload_lines(self) -> list[tuple[float, float]]:
        """Every `reload:` line so far: (seconds since start by its time stamp, its seconds)."""
        found = []
        for read_at, line in list(self.lines):
            match = RELOAD_LINE.match(line)
            if match:
                stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
                at = stamp + int(match.group(2)) / 1000 - self.started_wall
                # The record's own time stamp (ms); when it was read, should the clocks differ.
                found.append((min(at, read_at) if at > 0 else read_at, float(match.group(3))))
        return found

    def wait_reloads(self, count: int, timeout: float = 600.0) -> list[tuple[float, float]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.reload_lines()) < count:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no reload line {count} in {timeout} s:\n{self.log_tail()}")
                self._changed.wait(0.5)
        return self.reload_lines()

    def worker_pids(self) -> set[int]:
        return {int(m.group(1)) for _, line in self.lines if (m := WORKER_LINE.search(line))}

    def wait_for(self, paths: list[str], timeout: float = 900.0) -> dict[str, float]:
        """Seconds since start at which each path first answered 200 (gzip)."""
        done: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(paths):
            for path in paths:
                if path in done:
                    continue
                try:
                    status, _, _ = get(self.port, path)
                except (OSError, http.client.HTTPException):
                    status = 0
                if status == 200:
                    done[path] = self.since_start()
            if len(done) < len(paths):
                self.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{paths} not served in {timeout} s:\n{self.log_tail()}")
                time.sleep(0.01)
        return done

    def settle(self, window: float = 1.0, limit: float = 180.0) -> float:
        """Wait until the process tree uses under 5% of a core for a whole `window`."""
        assert self.process is not None
        began = time.monotonic()
        pids = process_tree(self.process.pid)
        used = sum(map(cpu_seconds, pids))
        while time.monotonic() - began < limit:
            time.sleep(window)
            now_pids = process_tree(self.process.pid)
            now_used = sum(map(cpu_seconds, now_pids))
            if now_pids == pids and now_used - used < 0.05 * window:
                break
            pids, used = now_pids, now_used
        return time.monotonic() - began

    def memory(self) -> dict[str, Any]:
        """Total PSS of the serve process and its descendants, and by role."""
        assert self.process is not None
        main = self.process.pid
        workers = self.worker_pids()
        roles: dict[str, int] = {}
        for pid in process_tree(main):
            if pid == main:
                role = "main"
            elif pid in workers:
                role = "workers"
            elif Path(f"/proc/{pid}/stat").exists() and _parent(pid) == main:
                role = "builder"
            else:
                role = "other"
            roles[role] = roles.get(role, 0) + pss_kb(pid)
        return {
            "pss_mb": round(sum(roles.values()) / 1024, 1),
            "by_role_mb": {k: round(v / 1024, 1) for k, v in sorted(roles.items())},
            "processes": len(process_tree(main)),
        }

    def stop(self) -> float:
        """SIGTERM and wait for every process of the server to end; seconds it took."""
        process = self.process
        if process is None:
            return 0.0
        began = time.monotonic()
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("serve did not stop in 30 s after SIGTERM: killing its process group")
            # The pipe closes when the last process holding it (builder, workers) is gone.
            if self._reader is not None:
                self._reader.join(timeout=15)
            return time.monotonic() - began
        finally:
            self._kill_group(process)
            self.process = None

    def _kill_group(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL whatever of the server's process group is still running 10 s after its
        main process ended (normally nothing: the builder's multiprocessing resource
        tracker ends last, and is left a zombie for init to reap)."""
        if process.poll() is None:
            process.kill()
            process.wait()
        deadline = time.monotonic() + 10
        while (left := group_members(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if left:
            log(f"killing what is left of the server's process group: {left}")
            os.killpg(process.pid, signal.SIGKILL)
        if process.stdout is not None:
            process.stdout.close()


def group_members(group: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of a process group: (pid, command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append((int(entry), command.decode(errors="replace")[:120]))
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


# --- corpora and configs --------------------------------------------------------------


def newest_post(root: Path) -> Path:
    return max(root.rglob("post-*"), key=lambda p: p.name)


def probe_paths(count: int, tag_count: int) -> list[str]:
    """The site feed, the newest post's three-level category feed and its first tag's feed."""
    _, text = post(count - 1, [f"tag{n:04d}" for n in range(tag_count)])
    lines = text.split("\n")
    start = lines.index("categories:") + 1
    categories = [line.removeprefix(" - ") for line in lines[start : start + 3]]
    tags = next(line for line in lines if line.startswith("tags: ["))[7:-1].split(", ")
    category = "/".join(quote(c) for c in categories)
    return ["/feed.atom", f"/categories/{category}/feed.atom", f"/tags/{quote(tags[0])}/feed.atom"]


def write_config(folder: Path, corpus: Path, port: int, *, token: bool = False) -> Path:
    """A config in `folder` (so the default state directory is `folder`/.feedsvc)."""
    folder.mkdir(parents=True, exist_ok=True)
    server: dict[str, Any] = {"workers": 2}
    if token:
        server["reload_token"] = TOKEN
    config = folder / "config.yaml"
    config.write_text(
        yaml.safe_dump(bench_config(port, corpus, server=server), allow_unicode=True),
        encoding="utf-8",
    )
    return config


def distinct_feeds(port: int, count: int) -> list[str]:
    """`count` distinct feed paths from the OPML: nodes spread over the list, the
    three formats in turn."""
    status, _, body = get(port, "/feeds.opml")
    assert status == 200, status
    urls = [o.get("xmlUrl", "") for o in ET.fromstring(body).findall("./body/outline")]
    nodes = sorted({urlsplit(u).path.removesuffix("feed.rss") for u in urls if u})
    feeds = [f"{node}feed.{fmt}" for node in nodes for fmt in ("atom", "rss", "json")]
    step = max(1, len(feeds) // count)
    return feeds[::step][:count]


def etags(port: int, paths: list[str]) -> dict[str, str]:
    found = {}
    for path in paths:
        status, headers, _ = get(port, path)
        assert status == 200, (path, status)
        found[path] = headers.get("etag", "")
    return found


# --- the measurements -----------------------------------------------------------------


def cold_start(server: Server, paths: list[str]) -> dict[str, Any]:
    """(a) and (f): a cold start until the three paths answer, then memory."""
    server.start()
    answered = server.wait_for(paths)
    result: dict[str, Any] = {
        "seconds": round(max(answered.values()), 3),
        "per_path_s": {p: round(s, 3) for p, s in answered.items()},
    }
    result["settled_after_s"] = round(server.settle(), 1)
    reloads = server.reload_lines()
    if reloads:
        result["first_reload_logged_at_s"] = round(reloads[0][0], 3)
        result["first_reload_s"] = reloads[0][1]
    memory: dict[str, Any] = {"settled": server.memory()}
    feeds = distinct_feeds(server.port, FEED_REQUESTS)
    for path in feeds:
        status, _, _ = get(server.port, path)
        assert status == 200, (path, status)
    server.settle()
    memory["after_requests"] = {**server.memory(), "requests": len(feeds), "gzip": True}
    return {"cold_start": result, "memory": memory}


def warm_restart(server: Server, paths: list[str]) -> dict[str, Any]:
    """(b) and (c): stop, start on the same state, time to 200 and to the catch-up reload."""
    before = etags(server.port, paths)
    stop_s = server.stop()
    server.start()
    answered = server.wait_for(paths)
    after = etags(server.port, paths)
    first = server.wait_reloads(1)[0]
    resumed = [float(m.group(1)) for _, line in server.lines if (m := RESUMED_LINE.search(line))]
    server.settle()
    after_catch_up = etags(server.port, paths)
    # No-change reloads of the same running server, for comparison (SIGHUP -> builder).
    no_change = []
    for n in range(NO_CHANGE_RELOADS):
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        no_change.append(server.wait_reloads(n + 2, timeout=120)[n + 1][1])
        time.sleep(0.3)
    return {
        "warm_restart": {
            "stop_s": round(stop_s, 3),
            "seconds": round(max(answered.values()), 3),
            "per_path_s": {p: round(s, 3) for p, s in answered.items()},
            "etags_equal": before == after,
            "etags_equal_after_catch_up": before == after_catch_up,
            "etags_before": before,
            "etags_after": after,
        },
        "catch_up": {
            "first_reload_logged_at_s": round(first[0], 3),
            "first_reload_s": first[1],
            "resumed_s": resumed[0] if resumed else None,
            "no_change_reload_s": no_change,
            "no_change_reload_median_s": statistics.median(no_change),
        },
    }


def edited_while_down(server: Server, corpus: Path) -> dict[str, Any]:
    """(d): stop, change the newest post's title, start: seconds until /feed.atom has it."""
    server.stop()
    newest = newest_post(corpus)
    original = newest.read_text(encoding="utf-8")
    marker = f"Retitled while down {int(time.time())}"
    edited = re.sub(r"^title: '(.*)'$", f"title: '{marker} \\1'", original, count=1, flags=re.M)
    assert edited != original
    try:
        newest.write_text(edited, encoding="utf-8")
        server.start()
        first_200 = None
        while True:
            try:
                status, _, body = get(server.port, "/feed.atom")
            except (OSError, http.client.HTTPException):
                status, body = 0, b""
            if status == 200:
                first_200 = first_200 or server.since_start()
                if marker.encode() in body:
                    seen = server.since_start()
                    break
            server.check_alive()
            if server.since_start() > 900:
                raise TimeoutError("the edited title never showed:\n" + server.log_tail())
            time.sleep(0.005)
        reloads = server.reload_lines()
        server.stop()
    finally:
        newest.write_text(original, encoding="utf-8")
    return {
        "edited_while_down": {
            "seconds": round(seen, 3),
            "first_200_s": round(first_200 or seen, 3),
            "first_reload_logged_at_s": round(reloads[0][0], 3) if reloads else None,
            "first_reload_s": reloads[0][1] if reloads else None,
        }
    }


def poll_until(port: int, path: str, found: Callable[[bytes], bool], limit: float) -> float:
    """Seconds until a GET of `path` (gzip, every 5 ms, a new connection each) shows it."""
    began = time.monotonic()
    while True:
        status, _, body = get(port, path)
        if status == 200 and found(body):
            return time.monotonic() - began
        if time.monotonic() - began > limit:
            raise TimeoutError(f"{path} did not change in {limit} s")
        time.sleep(0.005)


def wide(executable: Path, corpus: Path, work: Path) -> dict[str, Any]:
    """(e) on the wide-taxonomy corpus: save -> served, and a no-change POST /-/reload."""
    port = free_port()
    server = Server(executable, write_config(work, corpus, port, token=True), port)
    newest = newest_post(corpus)
    original = newest.read_text(encoding="utf-8")
    try:
        server.start()
        paths = probe_paths(WIDE_POSTS, WIDE_TAGS)
        answered = server.wait_for(paths)
        server.settle()
        _, _, top = get(port, "/feed.atom")
        entry = ET.fromstring(top).find("{http://www.w3.org/2005/Atom}entry")
        title = entry.findtext("{http://www.w3.org/2005/Atom}title") if entry is not None else ""
        assert title and title.endswith(f"#{WIDE_POSTS - 1}"), title  # the newest post is on top
        saves, builder = [], []
        for n in range(EDITS):
            marker = f"Appended for the benchmark {n} {time.time_ns()}."
            logged = len(server.reload_lines())
            with newest.open("a", encoding="utf-8") as out:
                out.write(f"\n{marker}\n")
            saves.append(poll_until(port, "/feed.atom", lambda b, m=marker: m.encode() in b, 60))
            # The builder's own reload seconds, logged before the edit was served.
            builder.append([took for _, took in server.reload_lines()[logged:]])
            time.sleep(1.0)
        reloads = []
        for _ in range(EDITS):
            began = time.monotonic()
            status, _, body = get(
                port,
                "/-/reload",
                gzipped=False,
                method="POST",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            took = time.monotonic() - began
            assert status == 200, (status, body)
            summary = json.loads(body)
            reloads.append(
                {"http_s": took, "reload_s": summary["seconds"], "changed": summary["changed"]}
            )
            time.sleep(0.2)
        return {
            "cold_start_s": round(max(answered.values()), 3),
            "save_to_served_s": [round(s, 4) for s in saves],
            "save_to_served_median_s": statistics.median(saves),
            "reloads_logged_per_edit_s": builder,
            "edit_reload_median_s": statistics.median([r[0] for r in builder if r] or [0.0]),
            "no_change_post_reload": reloads,
            "no_change_post_reload_median_s": statistics.median(r["http_s"] for r in reloads),
            "no_change_reload_own_median_s": statistics.median(r["reload_s"] for r in reloads),
        }
    finally:
        server.stop()
        newest.write_text(original, encoding="utf-8")


def old_version(executable: Path, corpus: Path, work: Path, count: int) -> dict[str, Any]:
    port = free_port()
    server = Server(executable, write_config(work, corpus, port), port)
    try:
        return cold_start(server, probe_paths(count, TAGS))
    finally:
        server.stop()


def new_version(executable: Path, corpus: Path, work: Path, count: int) -> dict[str, Any]:
    port = free_port()
    server = Server(executable, write_config(work, corpus, port), port)
    paths = probe_paths(count, TAGS)
    try:
        result = cold_start(server, paths)
        result.update(warm_restart(server, paths))
        result.update(edited_while_down(server, corpus))
        return result
    finally:
        server.stop()


def describe(executable: Path) -> dict[str, Any]:
    """Which code an executable runs: the commit of its checkout, and what differs from it."""
    checkout = executable.resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=False
        ).stdout

    return {
        "executable": str(executable),
        "commit": git("rev-parse", "HEAD").strip(),
        # The package is installed editable: uncommitted changes are what runs.
        "uncommitted": git("status", "--porcelain", "--", "feedsvc").splitlines(),
        "diff_sha256": hashlib.sha256(git("diff", "HEAD", "--", "feedsvc").encode()).hexdigest(),
    }


def main() -> dict[str, Any]:
    sizes = [int(n) for n in os.environ.get("BENCH_STATE_SIZES", SIZES).split(",") if n]
    old = os.environ.get("BENCH_OLD_FEEDSVC")
    old_exe = Path(old) if old else None
    began = time.monotonic()
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "workers": 2,
        "new": describe(NEW_FEEDSVC),
        "old": describe(old_exe) if old_exe else "skipped (BENCH_OLD_FEEDSVC is not set)",
        "sizes": {},
    }
    work = Path(tempfile.mkdtemp(prefix="feedsvc-state-bench-"))
    try:
        for count in sizes:
            corpus = work / f"posts-{count}"
            log(f"writing {count} posts")
            write_corpus(count, corpus, TAGS)
            figures: dict[str, Any] = {}
            if old_exe is not None:
                log(f"old version, {count} posts: cold start and memory")
                figures["old"] = old_version(old_exe, corpus, work / f"old-{count}", count)
            log(f"new version, {count} posts: cold, warm, catch-up, edited while down, memory")
            figures["new"] = new_version(NEW_FEEDSVC, corpus, work / f"new-{count}", count)
            results["sizes"][str(count)] = figures
            shutil.rmtree(corpus, ignore_errors=True)
        corpus = work / "posts-wide"
        log(f"writing {WIDE_POSTS} posts with {WIDE_TAGS} tags")
        write_corpus(WIDE_POSTS, corpus, WIDE_TAGS)
        results["wide"] = {"posts": WIDE_POSTS, "tags": WIDE_TAGS}
        if old_exe is not None:
            log("old version, wide taxonomy: save -> served, no-change reload")
            results["wide"]["old"] = wide(old_exe, corpus, work / "old-wide")
        log("new version, wide taxonomy: save -> served, no-change reload")
        results["wide"]["new"] = wide(NEW_FEEDSVC, corpus, work / "new-wide")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["runtime_s"] = round(time.monotonic() - began, 1)
    # feedsvc is installed editable: whether its code changed while this ran.
    results["new_changed_during_run"] = describe(NEW_FEEDSVC) != results["new"]
    summarize(results)
    return results


def summarize(results: dict[str, Any]) -> None:
    """A table on stderr."""
    rows = []
    for count, figures in results["sizes"].items():
        for version in ("old", "new"):
            r = figures.get(version)
            if not r:
                continue
            m = r["memory"]
            row = (
                f"{version} {count:>6}: cold {r['cold_start']['seconds']:.2f} s, "
                f"PSS settled {m['settled']['pss_mb']:.0f} MB, "
                f"after {m['after_requests']['requests']} feeds "
                f"{m['after_requests']['pss_mb']:.0f} MB"
            )
            if "warm_restart" in r:
                w, c, d = r["warm_restart"], r["catch_up"], r["edited_while_down"]
                row += (
                    f"; warm {w['seconds']:.2f} s (ETags equal: {w['etags_equal']}), catch-up "
                    f"reload logged at {c['first_reload_logged_at_s']:.2f} s taking "
                    f"{c['first_reload_s']:.3f} s "
                    f"(no-change {c['no_change_reload_median_s']:.3f} s), "
                    f"edited while down: served after {d['seconds']:.2f} s"
                )
            rows.append(row)
    for version in ("old", "new"):
        r = results.get("wide", {}).get(version)
        if r:
            rows.append(
                f"{version} wide {results['wide']['posts']}/{results['wide']['tags']} tags: "
                f"save -> served median {r['save_to_served_median_s'] * 1e3:.0f} ms, "
                "no-change POST /-/reload median "
                f"{r['no_change_post_reload_median_s'] * 1e3:.1f} ms"
            )
    print("\n".join(["", *rows]), file=sys.stderr)


if __name__ == "__main__":
    figures = main()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    target = out / f"state-{stamp}.json"
    target.write_text(
        json.dumps({"when": stamp, "state": figures}, indent=2) + "\n", encoding="utf-8"
    )
    print(json.dumps(figures, indent=2))
    log(f"written to {target}")

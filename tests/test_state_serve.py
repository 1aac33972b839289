"""The state directory, end to end: a restart serves the saved snapshot at once, a
killed server leaves a state the next one serves, and a damaged, unwritable, shared or
full state directory is handled the way the design says."""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests
import yaml

from feedsvc.state.files import StateLock
from feedsvc.state.snapshots import validate

from conftest import SAMPLE_SHAPED, eventually, write_article
from tests.support.processes import children, running
from tests.support.server import (
    ROOT,
    Server,
    free_port,
    get,
    log_of,
    settings,
    slow_first_build,
)

pytestmark = pytest.mark.e2e

CATEGORY = "/categories/%E9%87%91%E8%9E%8D/feed.atom"  # 金融, SAMPLE_SHAPED's first category
TOKEN = "state-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """config.yaml for a fixed public address (8080), whatever port a run listens on, so
    that every run of it builds the very same bytes."""
    data = settings(8080, **sections)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return config


def small_site(tmp_path: Path) -> Path:
    articles = tmp_path / "articles"
    articles.mkdir(exist_ok=True)
    (articles / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    write_article(articles, "a.md", "Alpha.", title="Alpha post", date="2022-01-02", tags=["ops"])
    write_article(articles, "b.md", "Beta.", title="Beta post", date="2022-01-03", tags=["ops"])
    return articles


TITLES = {"Alpha post", "Beta post", "钱塘证券首届“客户服务日”启幕：以数字化重塑财富管理"}


def wait_for_200(server: Server, paths: list[str], seconds: float = 20) -> dict[str, str]:
    """Poll until every path answers 200; their ETags."""
    deadline = time.monotonic() + seconds
    etags: dict[str, str] = {}
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(server.log.read_text(encoding="utf-8", errors="replace"))
        for path in paths:
            if path in etags:
                continue
            try:
                answer = get(server.base, path)
            except requests.ConnectionError:
                break
            if answer.status_code == 200:
                etags[path] = answer.headers["ETag"]
        if len(etags) == len(paths):
            return etags
        time.sleep(0.02)
    raise AssertionError(f"no 200 for {set(paths) - set(etags)} within {seconds} s")


def titles(server: Server, path: str = "/feed.atom") -> set[str]:
    feed = feedparser.parse(get(server.base, path).content)
    assert not feed.bozo, feed.get("bozo_exception")
    return {entry.title for entry in feed.entries}


def first_reload_logged_at(server: Server) -> float | None:
    """Wall-clock time of the first `reload:` line in the server's log (the builder's)."""
    for line in log_of(server).splitlines():
        if " feedsvc.reload.reloader: reload:" in line:
            # The log's local time, as time.time() counts it.
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone()
            return stamp.timestamp()
    return None


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts; each stopped (or killed) at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.stop()


def test_a_restart_serves_the_saved_snapshot_from_the_first_request(
    tmp_path: Path, servers: list[Server]
) -> None:
    config, _ = slow_first_build(tmp_path)  # 1,500 posts: a cold build takes seconds
    (tmp_path / "articles" / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    config = write_config(tmp_path)
    paths = ["/feed.atom", CATEGORY, "/tags/t7/feed.atom"]

    started = time.monotonic()
    servers.append(Server(config, free_port(), tmp_path / "cold.log", ready=False))
    cold_etags = wait_for_200(servers[0], paths)
    cold = time.monotonic() - started
    assert servers[0].stop() == 0
    state = tmp_path / ".feedsvc"
    assert validate(state / "snapshots") is not None
    # Without the parse cache the restarted builder parses every post again, so an
    # answer before that build ends can only come from the saved snapshot.
    for cache in state.glob("parse*"):
        cache.unlink()

    started = time.monotonic()
    servers.append(Server(config, free_port(), tmp_path / "warm.log", ready=False))
    warm_etags = wait_for_200(servers[1], paths)
    warm = time.monotonic() - started
    answered_at = time.time()
    assert warm_etags == cold_etags
    assert warm * 3 <= cold, (warm, cold)
    # The log is written line by line: the restarted builder had not finished a build.
    built_at = first_reload_logged_at(servers[1])
    assert built_at is None or answered_at < built_at + 0.01, log_of(servers[1])
    assert "cannot be served" not in log_of(servers[1])
    assert {"Post 1499", "钱塘证券首届“客户服务日”启幕：以数字化重塑财富管理"} <= titles(
        servers[1], "/feed.atom"
    ) | titles(servers[1], CATEGORY)


def test_a_file_edited_while_the_server_was_down_is_served_after_the_restart(
    tmp_path: Path, servers: list[Server]
) -> None:
    articles = small_site(tmp_path)
    config = write_config(tmp_path)
    servers.append(Server(config, free_port(), tmp_path / "first.log"))
    assert titles(servers[0]) == TITLES
    assert servers[0].stop() == 0
    write_article(articles, "a.md", "Edited.", title="Alpha, edited offline", date="2022-01-02")
    write_article(articles, "c.md", "New.", title="Gamma, added offline", date="2022-01-04")

    servers.append(Server(config, free_port(), tmp_path / "second.log"))
    expected = TITLES - {"Alpha post"} | {"Alpha, edited offline", "Gamma, added offline"}
    assert eventually(lambda: titles(servers[1]) == expected), titles(servers[1])
    # Every worker serves the same generation soon, not at once: ask until this one does.
    tag_url = "/tags/ops/feed.atom"
    assert eventually(lambda: "Alpha post" not in titles(servers[1], tag_url)), titles(
        servers[1], tag_url
    )


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every descendant, the way a power cut would: each is
    stopped first, so none can start another or notice the others dying."""
    stopped: set[int] = set()
    while True:
        found = {pid}
        frontier = [pid]
        while frontier:
            below = children(frontier.pop())
            found.update(below)
            frontier.extend(below)
        new = found - stopped
        if not new:
            break
        for member in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGSTOP)
        stopped |= new
    for member in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    assert eventually(lambda: not any(map(running, stopped)), 10)


@pytest.fixture
def private_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TMPDIR for the servers: a killed server leaves its runtime folders here, and they
    go with the test (short, for the builder's Unix socket path)."""
    folder = Path(tempfile.mkdtemp(prefix="fs-"))
    monkeypatch.setenv("TMPDIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def check_consistent(server: Server, path: str = "/feed.atom") -> tuple[str, set[str]]:
    """The document at `path` is whole: its gzip bytes pass gzip's own CRC-32 and length
    check and inflate to the identity bytes, which parse as a feed, and its ETag
    validates. Returns the identity ETag and the entry titles."""
    for _ in range(5):  # a reload may land between two requests: then once more
        zipped = requests.get(
            server.base + path, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=5
        )
        raw = zipped.raw.read(decode_content=False)
        plain = get(server.base, path, **{"Accept-Encoding": "identity"})
        assert zipped.status_code == plain.status_code == 200
        assert zipped.headers["Content-Encoding"] == "gzip"
        etag = plain.headers["ETag"]
        inflated = gzip.decompress(raw)  # checks the trailer's CRC-32 and length
        if zipped.headers["ETag"] != etag[:-1] + '-gz"':
            continue
        assert inflated == plain.content
        feed = feedparser.parse(plain.content)
        assert not feed.bozo, feed.get("bozo_exception")
        again = get(server.base, path, **{"If-None-Match": etag})
        assert again.status_code == 304 or again.headers["ETag"] != etag
        return etag, {entry.title for entry in feed.entries}
    raise AssertionError(f"{path} changed on every request")


def reload_now(server: Server) -> None:
    """POST /-/reload until it answers 200. Right after a warm start a worker serves
    before it has reached the builder, and answers 503 until it has."""
    deadline = time.monotonic() + 10
    while True:
        answer = requests.post(server.base + "/-/reload", headers=AUTH, timeout=30)
        if answer.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert answer.status_code == 200, answer.text


def rounds_in(found: set[str]) -> set[str]:
    return {title.rsplit(" ", 1)[1] for title in found if title.startswith("Post ")}


def edit_posts(articles: Path, count: int, round_: int) -> None:
    for n in range(count):
        write_article(
            articles,
            f"p{n}.md",
            f"Round {round_}. " * 60,
            title=f"Post {n} r{round_}",
            date=f"2022-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z",
            categories=[f"C{n % 10}"],
            tags=[f"t{n % 50}"],
        )


def crash_loop(tmp_path: Path, delays: list[float], count: int = 150) -> None:
    """Start, settle, edit every post, SIGHUP, kill -9 the whole tree after each delay;
    each start must first serve a whole generation of the state before or after."""
    articles = tmp_path / "articles"
    edit_posts(articles, count, 0)
    config = write_config(
        tmp_path, server={"workers": 1, "reload_token": TOKEN}, reload={"watch": False}
    )
    before: str | None = None  # the ETag of the generation the last kill interrupted
    for round_, delay in enumerate(delays, 1):
        server = Server(config, free_port(), tmp_path / f"run-{round_}.log", ready=False)
        try:
            wait_for_200(server, ["/feed.atom"])
            first, first_titles = check_consistent(server)
            assert len(rounds_in(first_titles)) == 1, first_titles  # one build, not a mix
            # Settle: a reload asked now reads the sources as they are.
            reload_now(server)
            settled, settled_titles = check_consistent(server)
            assert rounds_in(settled_titles) == {f"r{round_ - 1}"}
            # What was first served is the generation before the kill, or the one it built.
            if before is not None:
                assert first in (before, settled), log_of(server)
            assert not list((tmp_path / ".feedsvc" / "snapshots").glob(".*.tmp"))
            before = settled
            edit_posts(articles, count, round_)
            server.process.send_signal(signal.SIGHUP)
            time.sleep(delay)
        finally:
            kill_tree(server.process.pid)
            server.process.wait()
    server = Server(config, free_port(), tmp_path / "last.log", ready=False)
    try:
        wait_for_200(server, ["/feed.atom"])
        first, first_titles = check_consistent(server)
        assert first == before or rounds_in(first_titles) == {f"r{len(delays)}"}
        assert rounds_in(first_titles) <= {f"r{len(delays) - 1}", f"r{len(delays)}"}
        assert eventually(lambda: rounds_in(check_consistent(server)[1]) == {f"r{len(delays)}"})
    finally:
        assert server.stop() == 0


def test_kill_9_right_after_sighup_leaves_a_state_the_next_start_serves(
    tmp_path: Path, private_tmpdir: Path
) -> None:
    crash_loop(tmp_path, [0.0])


def test_kill_9_at_random_moments_of_reloads_never_leaves_an_unservable_state(
    tmp_path: Path, private_tmpdir: Path
) -> None:
    chance = random.Random(int(time.time()))
    crash_loop(tmp_path, [0.0, *(chance.uniform(0.05, 0.5) for _ in range(4))])


def damage_truncate_index(snapshots: Path) -> str:
    newest = max(snapshots.glob("gen-*.idx"))
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    return "truncated"


def damage_flip_segment_byte(snapshots: Path) -> str:
    for segment in snapshots.glob("seg-*.bin"):
        data = bytearray(segment.read_bytes())
        data[len(data) // 2] ^= 0xFF
        segment.write_bytes(bytes(data))
    return "checksum mismatch"


def damage_foreign_version(snapshots: Path) -> str:
    newest = max(snapshots.glob("gen-*.idx"))
    data = bytearray(newest.read_bytes())
    data[8:12] = struct.pack("<I", 99)
    newest.write_bytes(bytes(data))
    return "written by another version of feedsvc (99)"


@pytest.mark.parametrize(
    "damage", [damage_truncate_index, damage_flip_segment_byte, damage_foreign_version]
)
def test_a_damaged_state_is_refused_with_its_reason_and_rebuilt(
    tmp_path: Path, servers: list[Server], damage: Callable[[Path], str]
) -> None:
    small_site(tmp_path)
    config = write_config(tmp_path)
    servers.append(Server(config, free_port(), tmp_path / "first.log"))
    etag = get(servers[0].base, "/feed.atom").headers["ETag"]
    assert servers[0].stop() == 0
    snapshots = tmp_path / ".feedsvc" / "snapshots"
    reason = damage(snapshots)
    assert validate(snapshots) is None

    servers.append(Server(config, free_port(), tmp_path / "second.log"))
    assert "the saved snapshot cannot be served (" in log_of(servers[1])
    assert any(
        "cannot be served (" in line and reason in line for line in log_of(servers[1]).splitlines()
    ), log_of(servers[1])
    answer = get(servers[1].base, "/feed.atom")
    assert answer.status_code == 200
    assert answer.headers["ETag"] == etag  # the same bytes as before the damage
    assert titles(servers[1]) == TITLES
    assert titles(servers[1], CATEGORY) == {"钱塘证券首届“客户服务日”启幕：以数字化重塑财富管理"}
    # The damaged files are gone; what is there now is a whole generation.
    assert validate(snapshots) is not None


def test_an_unwritable_state_path_warns_and_serves_from_a_private_state(
    tmp_path: Path, servers: list[Server]
) -> None:
    small_site(tmp_path)
    (tmp_path / "somefile").write_text("not a folder", encoding="utf-8")
    # Root ignores permission bits: a path under a regular file fails with ENOTDIR.
    config = write_config(tmp_path, state={"path": "somefile/state"})
    servers.append(Server(config, free_port(), tmp_path / "serve.log"))
    assert get(servers[0].base, "/feed.atom").status_code == 200
    assert titles(servers[0]) == TITLES
    log = log_of(servers[0])
    assert "somefile/state is not writable" in log, log
    assert "running without saved state" in log
    assert (tmp_path / "somefile").read_text(encoding="utf-8") == "not a folder"
    assert servers[0].stop() == 0


def test_a_second_server_on_the_same_state_directory_exits_2(
    tmp_path: Path, servers: list[Server]
) -> None:
    small_site(tmp_path)
    config = write_config(tmp_path)
    servers.append(Server(config, free_port(), tmp_path / "first.log"))
    etag = get(servers[0].base, "/feed.atom").headers["ETag"]
    snapshots = tmp_path / ".feedsvc" / "snapshots"
    # As if the first server were saving its parse cache: the second must leave it be.
    saving = tmp_path / ".feedsvc" / f".parse-cache.{servers[0].process.pid}.tmp"
    saving.write_bytes(b"being written")
    files = sorted(p.name for p in snapshots.iterdir())
    command = [sys.executable, "-m", "feedsvc.cli", "serve", "--config", str(config)]
    second = subprocess.run(
        [*command, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=False,
    )
    assert second.returncode == 2, second.stderr
    assert "is in use by another feedsvc process" in second.stderr
    assert f"(pid {servers[0].process.pid})" in second.stderr
    # The first server's state and service are untouched.
    assert sorted(p.name for p in snapshots.iterdir()) == files
    assert saving.read_bytes() == b"being written"
    assert get(servers[0].base, "/feed.atom", **{"If-None-Match": etag}).status_code == 304


def test_a_start_removes_what_a_killed_server_left_half_written(
    tmp_path: Path, servers: list[Server]
) -> None:
    """A server killed while saving its parse cache and memory leaves their temporary
    files (a hundred MB at 50,000 posts); the next server's builder removes them as it
    starts (after the first request: the saved snapshot is served before)."""
    small_site(tmp_path)
    config = write_config(tmp_path)
    servers.append(Server(config, free_port(), tmp_path / "first.log"))
    assert servers[0].stop() == 0
    state = tmp_path / ".feedsvc"
    kept = sorted(p.name for p in state.iterdir())
    for name in ("parse-cache", "builder-memory"):
        (state / f".{name}.{servers[0].process.pid}.tmp").write_bytes(b"half written")
    servers.append(Server(config, free_port(), tmp_path / "second.log"))
    assert get(servers[1].base, "/feed.atom").status_code == 200
    assert eventually(lambda: not list(state.glob(".*.tmp"))), log_of(servers[1])
    # Nothing else went; the second builder may have saved its own caches meanwhile (the
    # first one was stopped before it did).
    found = {p.name for p in state.iterdir()}
    assert set(kept) <= found <= {*kept, "parse-cache", "builder-memory"}


def test_a_state_directory_removed_while_serving_is_made_again(
    tmp_path: Path, servers: list[Server]
) -> None:
    """An operator resetting the state directory (or a cleaner of old files) while the
    server runs: the next reload makes it again, whole and locked, with the id ledger's
    rows, and edits go on being served; a restart then serves it warm."""
    articles = small_site(tmp_path)
    config = write_config(tmp_path)
    servers.append(Server(config, free_port(), tmp_path / "first.log"))
    assert titles(servers[0]) == TITLES
    state = tmp_path / ".feedsvc"
    shutil.rmtree(state)
    write_article(articles, "a.md", "Alpha.", title="Alpha again", date="2022-01-02", tags=["ops"])
    assert eventually(lambda: "Alpha again" in titles(servers[0])), log_of(servers[0])
    assert get(servers[0].base, "/healthz").json()["status"] == "ok"
    assert "was removed while the server ran; making it again" in log_of(servers[0])
    generation = validate(state / "snapshots")
    assert generation is not None
    # The ledger was written from the builder's connection, not started anew.
    ledger = sqlite3.connect(state / "ledger.sqlite3")
    try:
        assert ledger.execute("SELECT count(*) FROM articles").fetchone() == (3,)
    finally:
        ledger.close()
    assert not StateLock(state).try_acquire()  # held: a second server is refused
    etag = get(servers[0].base, "/feed.atom").headers["ETag"]
    assert servers[0].stop() == 0

    servers.append(Server(config, free_port(), tmp_path / "second.log"))
    assert get(servers[1].base, "/feed.atom").headers["ETag"] == etag
    # The snapshot is served before the builder has resumed and says so.
    assert eventually(lambda: "resumed from generation" in log_of(servers[1])), log_of(servers[1])


def test_a_removed_lock_file_is_taken_again_at_the_next_write(
    tmp_path: Path, servers: list[Server]
) -> None:
    """With its lock file gone, a state directory is held by no one: the builder takes it
    again before it writes, so a second server is still refused."""
    articles = small_site(tmp_path)
    config = write_config(tmp_path)
    servers.append(Server(config, free_port(), tmp_path / "first.log"))
    (tmp_path / ".feedsvc" / "lock").unlink()
    write_article(articles, "b.md", "Beta.", title="Beta again", date="2022-01-03", tags=["ops"])
    assert eventually(lambda: "Beta again" in titles(servers[0])), log_of(servers[0])
    lock = StateLock(tmp_path / ".feedsvc")
    assert not lock.try_acquire()
    assert lock.holder() in children(servers[0].process.pid)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs: a state directory that can be filled up."""
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Take every free block of the file system under `folder`."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    return filler


def test_a_full_state_directory_fails_the_reload_and_the_last_generation_serves(
    tmp_path: Path, small_tmpfs: Path, servers: list[Server]
) -> None:
    articles = small_site(tmp_path)
    config = write_config(
        tmp_path, state={"path": "state"}, server={"workers": 1}, reload={"watch": False}
    )
    servers.append(Server(config, free_port(), tmp_path / "serve.log"))
    server = servers[0]
    etag = get(server.base, "/feed.atom").headers["ETag"]
    filler = fill(small_tmpfs)
    write_article(articles, "full.md", title="Written while full", date="2022-02-01")
    server.process.send_signal(signal.SIGHUP)

    def failed() -> bool:
        health = get(server.base, "/healthz").json()
        # The id ledger or the snapshot: whichever the reload writes first fails it.
        return health["status"] == "degraded" and any(
            "cannot write the" in p["message"] for p in health["problems"]
        )

    assert eventually(failed), get(server.base, "/healthz").json()
    assert get(server.base, "/feed.atom", **{"If-None-Match": etag}).status_code == 304
    # Space again: the next reload publishes, and the server is healthy again.
    filler.unlink()
    server.process.send_signal(signal.SIGHUP)
    assert eventually(lambda: "Written while full" in titles(server)), log_of(server)
    assert eventually(lambda: get(server.base, "/healthz").json()["status"] == "ok")
    check_consistent(server)
    assert server.stop() == 0

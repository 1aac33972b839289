"""Operating a live service: config edits, SIGHUP, the reload endpoint, logs, replicas."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
import requests
import yaml

from feedsvc.processes.cpus import MIN_BATCH

from conftest import SAMPLE_SHAPED, eventually, write_article
from tests.support.processes import children, inotify_watches, running
from tests.support.server import (
    Server,
    every_worker_sees,
    free_port,
    settings,
    slow_first_build,
    write_config,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Path]]]:
    started: list[Server] = []

    def start(*extra: str, **sections: dict) -> tuple[Server, Path]:
        port = free_port()
        articles = tmp_path / "articles"
        articles.mkdir(exist_ok=True)
        (articles / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
        config = write_config(tmp_path, port, **sections)
        server = Server(config, port, tmp_path / f"serve-{port}.log", *extra)
        started.append(server)
        return server, config

    yield start
    for server in started:
        server.stop()


def test_sighup_reloads_every_worker_now(site: Callable[..., tuple[Server, Path]]) -> None:
    server, config = site(reload={"watch": False})  # else the new file is a reload itself
    write_article(
        config.parent / "articles",
        "new.md",
        title="Arrived before SIGHUP",
        date="2022-06-01T00:00:00Z",
    )
    server.process.send_signal(signal.SIGHUP)
    assert every_worker_sees(server.base, lambda body: b"Arrived before SIGHUP" in body)
    assert server.process.poll() is None


def test_config_edit_applies_live_and_a_bad_edit_keeps_serving(
    site: Callable[..., tuple[Server, Path]],
) -> None:
    server, config = site()
    port = int(server.base.rsplit(":", 1)[1])
    edited = settings(port, site={"title": "Renamed Live"}, feeds={"limit": 1})
    config.write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    server.process.send_signal(signal.SIGHUP)
    assert every_worker_sees(server.base, lambda body: b"<title>Renamed Live</title>" in body)

    config.write_text(config.read_text(encoding="utf-8") + "feeds:\n  limt: 3\n", "utf-8")
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = requests.get(server.base + "/healthz", headers={"Connection": "close"}).json()
        if health["status"] == "degraded":
            break
        time.sleep(0.1)
    assert health["status"] == "degraded"
    assert health["problems"][0]["message"].endswith("unknown key")
    feed = feedparser.parse(server.base + "/feed.atom")
    assert feed.status == 200 and feed.feed.title == "Renamed Live"


def test_reload_endpoint_reloads_every_worker(site: Callable[..., tuple[Server, Path]]) -> None:
    server, config = site(server={"reload_token": "ops-token-123"})
    assert requests.post(server.base + "/-/reload").status_code == 401
    write_article(
        config.parent / "articles",
        "hot.md",
        title="Reloaded on demand",
        date="2022-06-02T00:00:00Z",
    )
    response = requests.post(
        server.base + "/-/reload", headers={"Authorization": "Bearer ops-token-123"}, timeout=30
    )
    assert response.status_code == 200
    assert response.json()["articles"] == 2
    assert every_worker_sees(server.base, lambda body: b"Reloaded on demand" in body)


def test_json_logs_are_one_object_per_line(site: Callable[..., tuple[Server, Path]]) -> None:
    server, _ = site("--log-format", "json")
    requests.get(server.base + "/feed.atom")
    assert server.stop() == 0
    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any(
        r["logger"] == "feedsvc.reload.reloader" and "reload:" in r["message"] for r in records
    )
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_two_replicas_serve_identical_documents(tmp_path: Path) -> None:
    articles = tmp_path / "articles"
    articles.mkdir()
    (articles / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    write_article(articles, "en.md", title="Replicated", date="2022-01-02", tags=["ops"])
    replicas = []
    for n in range(2):
        # Both replicas sit behind one public address, as behind a load balancer; each
        # has a state directory of its own.
        config = tmp_path / f"config-{n}.yaml"
        data = settings(8080, state={"path": f"state-{n}"})
        config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        replicas.append(Server(config, free_port(), tmp_path / f"r{n}.log"))
    try:
        opml = requests.get(replicas[0].base + "/feeds.opml").text
        paths = [
            "/",
            "/feeds.opml",
            "/feed.atom",
            "/feed.rss",
            "/feed.json",
            "/feed.html",
            "/categories/%E9%87%91%E8%9E%8D/feed.atom",
            "/tags/ops/feed.rss",
        ]
        assert "tags/ops/feed.rss" in opml
        for path in paths:
            for encoding in ("identity", "gzip"):
                answers = [
                    requests.get(r.base + path, headers={"Accept-Encoding": encoding}, stream=True)
                    for r in replicas
                ]
                bodies = [a.raw.read(decode_content=False) for a in answers]
                assert bodies[0] == bodies[1], path
                for header in ("ETag", "Last-Modified", "Content-Type"):
                    assert answers[0].headers[header] == answers[1].headers[header], path
    finally:
        for replica in replicas:
            replica.stop()


def test_sigterm_during_the_first_build_still_stops_the_server(tmp_path: Path) -> None:
    config, port = slow_first_build(tmp_path)
    server = Server(config, port, tmp_path / "serve.log", ready=False)
    wait_for_processes(server)  # the workers are forked, the builder is building
    assert server.stop() == 0  # SIGTERM, then exit within 10 s


def test_sighup_during_the_first_build_is_a_reload_not_a_crash(tmp_path: Path) -> None:
    """SIGHUP reaches the builder as SIGUSR1, whose default action would end it if it
    came before the builder's handler."""
    config, port = slow_first_build(tmp_path)
    server = Server(config, port, tmp_path / "serve.log", ready=False)
    try:
        wait_for_processes(server)  # the workers are forked, the builder is building
        for _ in range(3):
            server.process.send_signal(signal.SIGHUP)
            time.sleep(0.3)
        server.wait_ready()
        assert requests.get(server.base + "/feed.atom", timeout=5).status_code == 200
        assert server.process.poll() is None
    finally:
        assert server.stop() == 0


def wait_for_processes(server: Server) -> None:
    """Until the builder and both workers exist: from then on the main process is
    granian's serve loop, with its own signal handlers. (A fixed sleep was not always
    long enough on a busy machine; a signal before that ends the process.)"""
    assert eventually(lambda: len(children(server.process.pid)) >= 3, 20)


def builder_of(server: Server) -> int:
    """The server's one child on SCHED_IDLE: the builder process, once its warm start is
    done (until then it runs at full priority)."""
    idle: list[int] = []

    def found() -> bool:
        idle[:] = [
            p for p in children(server.process.pid) if os.sched_getscheduler(p) == os.SCHED_IDLE
        ]
        return len(idle) == 1

    assert eventually(found, 20), idle
    return idle[0]


def health(server: Server) -> dict:
    return requests.get(server.base + "/healthz", headers={"Connection": "close"}).json()


def test_a_builder_started_again_removes_what_the_killed_one_left_half_written(
    site: Callable[..., tuple[Server, Path]],
) -> None:
    """A builder killed while it saved the parse cache and memory leaves their temporary
    files (a hundred MB at 50,000 posts); the one the main process starts removes them."""
    server, config = site()
    builder = builder_of(server)
    state = config.parent / ".feedsvc"
    half_written = [state / f".{name}.{builder}.tmp" for name in ("parse-cache", "builder-memory")]
    for path in half_written:
        path.write_bytes(b"half written")
    os.kill(builder, signal.SIGKILL)
    assert eventually(lambda: not any(path.exists() for path in half_written), 20)
    assert builder_of(server) != builder


def test_the_builder_runs_on_idle_cpu_and_a_crash_of_it_stops_no_request(
    site: Callable[..., tuple[Server, Path]],
) -> None:
    server, config = site()
    builder = builder_of(server)
    workers = [p for p in children(server.process.pid) if p != builder]
    assert len(workers) == 2
    assert all(os.sched_getscheduler(p) == os.SCHED_OTHER for p in workers)
    before = requests.get(server.base + "/feed.atom")
    os.kill(builder, signal.SIGKILL)
    # Workers keep serving the last snapshot, byte for byte, and say why they are stale.
    assert eventually(lambda: health(server)["status"] == "degraded")
    assert "lost the builder process" in json.dumps(health(server)["problems"])
    during = requests.get(
        server.base + "/feed.atom", headers={"If-None-Match": before.headers["ETag"]}
    )
    assert during.status_code == 304
    # The main process starts a new builder; every worker follows it again.
    assert eventually(lambda: all(health(server)["status"] == "ok" for _ in range(6)))
    assert builder_of(server) != builder
    write_article(
        config.parent / "articles", "after.md", title="After the crash", date="2022-07-01"
    )
    server.process.send_signal(signal.SIGHUP)
    assert every_worker_sees(server.base, lambda body: b"After the crash" in body)


def test_the_builder_does_not_outlive_its_server(site: Callable[..., tuple[Server, Path]]) -> None:
    server, _ = site()
    builder = builder_of(server)
    workers = [p for p in children(server.process.pid) if p != builder]
    server.process.kill()  # no chance to clean up
    server.process.wait()

    # The builder notices first; then the workers, whose link to it is gone for good.
    assert eventually(lambda: not any(map(running, (builder, *workers))), 15)


def test_a_builder_killed_during_a_cold_start_on_every_core_takes_its_processes(
    tmp_path: Path,
) -> None:
    """Over feedsvc.processes.cpus.MIN_BATCH posts, the builder parses and renders them in
    processes of its own; killed meanwhile, it leaves none of them behind, and the next
    builder publishes every post."""
    count = MIN_BATCH + 100
    articles = tmp_path / "articles"
    for n in range(count):
        write_article(articles, f"p{n}.md", f"第 {n} 篇。", title=f"Post {n}", date="2022-03-01")
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(settings(port)), encoding="utf-8")
    server = Server(config, port, tmp_path / "serve.log", ready=False)
    try:
        wait_for_processes(server)
        builder = builder_of(server)
        assert eventually(lambda: len(pool_of(builder)) >= 2, 20)  # one per core
        pool = pool_of(builder)
        assert all(os.sched_getscheduler(p) == os.SCHED_IDLE for p in pool)
        os.kill(builder, signal.SIGKILL)
        assert eventually(lambda: not any(map(running, pool)), 10)
        server.wait_ready()
        assert eventually(lambda: health(server)["articles"] == count, 60)
    finally:
        assert server.stop() == 0


def pool_of(builder: int) -> list[int]:
    """The builder's worker processes (feedsvc.processes.cpus), not multiprocessing's tracker."""
    found = []
    for pid in children(builder):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def test_a_post_saved_into_a_source_folder_is_served_without_a_signal(
    site: Callable[..., tuple[Server, Path]],
) -> None:
    server, config = site()  # the scheduled reload is an hour away
    assert inotify_watches(builder_of(server)) > 0
    write_article(
        config.parent / "articles", "2022/watched.md", title="Seen by inotify", date="2022-08-01"
    )
    assert every_worker_sees(server.base, lambda body: b"Seen by inotify" in body, 10)


def test_a_config_edit_applies_without_a_signal(site: Callable[..., tuple[Server, Path]]) -> None:
    server, config = site()
    port = int(server.base.rsplit(":", 1)[1])
    edited = settings(port, site={"title": "Renamed by inotify"})
    config.write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    assert every_worker_sees(server.base, lambda body: b"Renamed by inotify" in body, 10)


def test_with_reload_watch_off_a_saved_post_waits_for_a_reload(
    site: Callable[..., tuple[Server, Path]],
) -> None:
    server, config = site(reload={"watch": False})
    # No file event can reach the builder: it watches nothing (the schedule is an hour away).
    assert inotify_watches(builder_of(server)) == 0
    write_article(config.parent / "articles", "unseen.md", title="Not yet", date="2022-08-01")
    server.process.send_signal(signal.SIGHUP)
    assert every_worker_sees(server.base, lambda body: b"Not yet" in body)


def test_a_reload_asked_for_during_a_reload_still_happens(tmp_path: Path) -> None:
    """The reload running may have read the folder before the new file came: the request
    made meanwhile must be one more reload, not dropped (the interval here is an hour)."""
    config, port = slow_first_build(tmp_path)
    server = Server(config, port, tmp_path / "serve.log")
    try:
        for path in (tmp_path / "articles").glob("p*.md"):  # every post re-read: a slow reload
            path.write_text(path.read_text(encoding="utf-8") + "\nEdited.\n", encoding="utf-8")
        server.process.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # that reload has walked the folder and is parsing
        write_article(tmp_path / "articles", "late.md", title="Late arrival", date="2023-01-01")
        server.process.send_signal(signal.SIGHUP)
        assert every_worker_sees(server.base, lambda body: b"Late arrival" in body, seconds=60)
    finally:
        assert server.stop() == 0

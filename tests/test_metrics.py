from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from feedsvc.metrics import Metrics
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.store import Store
from feedsvc.web import create_app

from conftest import eventually, write_article
from tests.support.metrics import sample
from tests.support.server import Server, free_port, write_config


def test_metrics_report_reloads_sources_problems_and_responses(
    config: Config, articles_dir: Path
) -> None:
    metrics = Metrics()
    store = Store()
    reloader = Reloader(config, store, metrics=metrics)
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    (articles_dir / "bad.md").write_text("---\ntitle: [\n---\n", encoding="utf-8")
    reloader.reload()
    client: Any = create_app(store, reloader, metrics=metrics).test_client()
    etag = client.get("/feed.atom").headers["ETag"]
    client.get("/feed.atom", headers={"If-None-Match": etag})
    client.get("/feed.atom", headers={"If-None-Match": etag})
    client.get("/nope")
    response = client.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    assert sample(text, "feedsvc_articles", source="articles") == 1
    assert sample(text, "feedsvc_problems", severity="error") == 1
    assert sample(text, "feedsvc_source_failing", source="articles") == 0
    assert sample(text, "feedsvc_reload_duration_seconds_count") == 1
    assert sample(text, "feedsvc_last_reload_success_timestamp_seconds") > 1.7e9
    assert sample(text, "feedsvc_http_responses_total", route="feed", status="200") == 1
    assert sample(text, "feedsvc_http_responses_total", route="feed", status="304") == 2
    assert sample(text, "feedsvc_http_responses_total", route="other", status="404") == 1
    shutil.rmtree(articles_dir)
    reloader.reload()
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "feedsvc_source_failing", source="articles") == 1
    assert sample(text, "feedsvc_articles", source="articles") == 1  # last good kept


@pytest.mark.e2e
def test_metrics_add_up_across_worker_processes(tmp_path: Path) -> None:
    port = free_port()
    write_article(tmp_path / "articles", "a.md", title="A", date="2022-01-01")
    config = write_config(tmp_path, port, site={"title": "Counted"})
    server = Server(config, port, tmp_path / "serve.log")
    try:
        etag = requests.get(server.base + "/feed.rss").headers["ETag"]
        for _ in range(40):  # fresh connections reach both workers
            requests.get(
                server.base + "/feed.rss", headers={"If-None-Match": etag, "Connection": "close"}
            )

        # Each worker moves its tallies into the shared counters every 5 s: wait until
        # both have (a lost count never gets there, an extra one goes past).
        def counted() -> float:
            text = requests.get(server.base + "/metrics").text
            if 'route="feed",status="304"' not in text:
                return 0  # no worker has moved its tallies yet
            return sample(text, "feedsvc_http_responses_total", route="feed", status="304")

        assert eventually(lambda: counted() >= 40, seconds=20)
        text = requests.get(server.base + "/metrics").text
    finally:
        server.stop()
    assert sample(text, "feedsvc_http_responses_total", route="feed", status="304") == 40
    assert sample(text, "feedsvc_articles", source="articles") == 1


def test_a_metrics_file_being_created_does_not_break_start_or_scrape(tmp_path: Path) -> None:
    # prometheus_client creates a process's file and sizes it a moment later; a worker
    # starting (or a scrape) in that moment must read the others and skip the empty one.
    script = f"""
import sys
import threading
from prometheus_client import generate_latest
from feedsvc.metrics import Metrics, enable_multiprocess
enable_multiprocess({str(tmp_path)!r})
first = Metrics()
first.articles.labels("articles").set(7)
open({str(tmp_path / "gauge_mostrecent_4242.db")!r}, "wb").close()
second = Metrics()
sys.stdout.write(generate_latest(second.registry).decode())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert sample(done.stdout, "feedsvc_articles", source="articles") == 7


def test_request_counts_are_exact_under_sixteen_threads(config: Config, articles_dir: Path) -> None:
    """16 threads answering at once lose no count, while counts are moved into the
    Prometheus counters meanwhile (as the flush thread and every scrape do).

    Under CPython's GIL a thread switch can only happen where the interpreter checks for
    one (calls, loops): a plain `+=` on a dict is read and written without one, except
    when the key is new since the last flush (Counter.__missing__ is a Python call). So
    the test flushes all the time, counts five kinds of answer (five new keys after each
    flush), and asks for a switch at every check (sys.setswitchinterval)."""
    write_article(articles_dir, "a.md", "Body", title="A", date="2021-10-01")
    store = Store()
    Reloader(config, store).reload()
    metrics = Metrics()
    app = create_app(store, metrics=metrics).wsgi_app
    requests_ = [
        {"PATH_INFO": "/feed.atom", "HTTP_IF_NONE_MATCH": "*"},  # feed 304
        {"PATH_INFO": "/feed.atom"},  # feed 200
        {"PATH_INFO": "/", "HTTP_IF_NONE_MATCH": "*"},  # page 304
        {"PATH_INFO": "/"},  # page 200
        {"PATH_INFO": "/nowhere"},  # other 404
    ]
    threads, rounds = 16, 2000
    start = threading.Barrier(threads + 1)
    done = threading.Event()

    def answer() -> None:
        start.wait()
        for _ in range(rounds):
            for request in requests_:
                app({"REQUEST_METHOD": "HEAD", **request}, lambda status, headers: None)

    def flush() -> None:
        while not done.is_set():
            metrics.flush()

    workers = [threading.Thread(target=answer) for _ in range(threads)]
    flusher = threading.Thread(target=flush)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in [*workers, flusher]:
            thread.start()
        start.wait()
        for thread in workers:
            thread.join()
    finally:
        done.set()
        sys.setswitchinterval(interval)
    flusher.join()
    text = metrics.exposition()[0].decode()
    counted = {
        (route, status): sample(text, "feedsvc_http_responses_total", route=route, status=status)
        for route, status in [("feed", "304"), ("feed", "200"), ("page", "304"), ("page", "200")]
    }
    counted["other", "404"] = sample(
        text, "feedsvc_http_responses_total", route="other", status="404"
    )
    assert counted == dict.fromkeys(counted, threads * rounds)

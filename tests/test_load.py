"""Saturating load on loopback while sources change and the service reloads every second.

16 keep-alive connections send conditional and full GETs for 20 s, as fast as they are
answered, against two worker processes while a writer adds and edits articles. The builder
runs under SCHED_IDLE (README "Processes", docs/performance.md): at saturation reloads may
not get through at all, and that is not promised. What is: every request is answered, from
a whole snapshot, never an error; and once the load drops, the reloads run.
"""

from __future__ import annotations

import gzip
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from conftest import write_article
from tests.support.server import Server, every_worker_sees, free_port, write_config

pytestmark = pytest.mark.e2e
DURATION = 20.0
CONNECTIONS = 16
NUMBER = re.compile(rb'Load post (\d+)["<]')


class Bodies:
    """Every (ETag, body) pair any client saw: a strong ETag must always mean the same bytes,
    and a gzip body must inflate to the identity body its tag pairs with."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_etag: dict[str, bytes] = {}

    def check(self, etag: str, raw: bytes, packed: bool) -> str | None:
        with self.lock:
            seen = self.by_etag.setdefault(etag, raw)
            if seen != raw:
                return f"ETag {etag} was sent with two different bodies"
            twin = self.by_etag.get(etag.removesuffix("-gz") if packed else f"{etag}-gz")
        if twin is None:
            return None
        identity, compressed = (twin, raw) if packed else (raw, twin)
        if gzip.decompress(compressed) != identity:
            return f"ETag {etag}: the gzip body is not the identity body compressed"
        return None


class Client(threading.Thread):
    def __init__(self, base: str, index: int, stop: threading.Event, bodies: Bodies) -> None:
        super().__init__(daemon=True)
        self.base, self.index, self.stop, self.bodies = base, index, stop, bodies
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self.newest = -1  # highest post number this connection has seen
        self.generation = 0

    def run(self) -> None:
        session = requests.Session()
        etags: dict[tuple[str, bool], str] = {}
        paths = ["/feed.atom", "/feed.rss", "/categories/Load/feed.json"]
        n = 0
        while not self.stop.is_set():
            n += 1
            path = paths[(n + self.index) % len(paths)]
            packed = n % 2 == 0
            headers = {"Accept-Encoding": "gzip" if packed else "identity"}
            if n % 3 and (path, packed) in etags:
                headers["If-None-Match"] = etags[(path, packed)]
            try:
                response = session.get(self.base + path, headers=headers, timeout=10, stream=True)
                raw = response.raw.read(decode_content=False)
                if n % 10 == 0:
                    health = session.get(self.base + "/healthz", timeout=10).json()
                    self.generation = max(self.generation, health["generation"])
            except requests.RequestException as exc:
                self.errors.append(f"{path}: {exc!r}")
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 200:
                self.check(path, packed, response.headers, raw, etags)

    def check(self, path: str, packed: bool, headers: dict, raw: bytes, etags: dict) -> None:
        etag = headers["ETag"].strip('"')
        if etag.endswith("-gz") != packed or headers.get("Content-Encoding") != (
            "gzip" if packed else None
        ):
            self.errors.append(f"{path}: ETag {etag} does not name the coding it came with")
            return
        mismatch = self.bodies.check(etag, raw, packed)
        if mismatch:
            self.errors.append(f"{path}: {mismatch}")
            return
        etags[(path, packed)] = headers["ETag"]
        body = gzip.decompress(raw) if packed else raw
        numbers = [int(m) for m in NUMBER.findall(body)] or [-1]
        if max(numbers) < self.newest:
            self.errors.append(f"{path}: went back from post {self.newest} to {max(numbers)}")
        self.newest = max(self.newest, *numbers)


def test_load_during_reloads(tmp_path: Path) -> None:
    port = free_port()
    articles = tmp_path / "articles"
    for n in range(30):
        write_article(
            articles,
            f"p{n}.md",
            f"Body {n}",
            title=f"Load post {n}",
            date=f"2022-01-01T00:{n:02d}:00Z",
            categories=["Load"],
        )
    config = write_config(tmp_path, port, site={"title": "Load"}, reload={"interval_seconds": 1})
    server = Server(config, port, tmp_path / "serve.log")
    stop = threading.Event()
    bodies = Bodies()
    clients = [Client(server.base, i, stop, bodies) for i in range(CONNECTIONS)]
    try:
        for client in clients:
            client.start()
        started, n = time.monotonic(), 30
        while time.monotonic() - started < DURATION:
            write_article(
                articles,
                f"p{n}.md",
                f"Body {n}",
                title=f"Load post {n}",
                date=f"2022-01-02T{n // 60 % 24:02d}:{n % 60:02d}:00Z",
                categories=["Load"],
            )
            write_article(
                articles,
                "p0.md",
                f"Edited {n}",
                title="Load post 0",
                date="2022-01-01T00:00:00Z",
                categories=["Load"],
            )
            n += 1
            time.sleep(0.5)
        stop.set()
        for client in clients:
            client.join(timeout=30)
        newest = f"Load post {n - 1}<".encode()
        # Once the load drops, the reloads run: every worker serves the last post written.
        caught_up = every_worker_sees(server.base, lambda body: newest in body, seconds=60)
    finally:
        stop.set()
        assert server.stop() == 0
    statuses = sum((c.statuses for c in clients), Counter())
    errors = [e for c in clients for e in c.errors]
    print(
        f"statuses {dict(statuses)}, newest post {max(c.newest for c in clients)} of {n - 1}, "
        f"generation {max(c.generation for c in clients)}"
    )
    assert errors == []
    assert set(statuses) <= {200, 304}, statuses
    assert statuses[200] > 100 and statuses[304] > 100, statuses
    assert caught_up, f"post {n - 1} was not served within 60 s of the load's end"

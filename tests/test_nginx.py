"""deploy/nginx/feedsvc.conf for real: nginx caches feeds and revalidates them with ETags.

Needs Debian's nginx; `.ci/run` installs it and runs `pytest -m nginx`. `make test`
deselects this module so that the suite needs no system nginx.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from conftest import write_article
from tests.support.server import ROOT, Server, free_port, write_config

pytestmark = pytest.mark.nginx
MAX_AGE = 2


def responses_304(base: str) -> float:
    text = requests.get(base + "/metrics", timeout=5).text
    found = re.search(
        r'^feedsvc_http_responses_total\{route="feed",status="304"\} (\S+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[str, Server, Path]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(nginx), "nginx is required: apt-get install nginx"
    articles = tmp_path / "articles"
    write_article(articles, "a.md", "First version.", title="Cached post", date="2022-01-01")
    upstream_port, public_port = free_port(), free_port()
    config = write_config(
        tmp_path,
        public_port,  # the address readers see: nginx's
        site={"title": "Behind nginx"},
        reload={"interval_seconds": 1},
        server={"workers": 1, "cache_max_age": MAX_AGE},
    )
    server = Server(config, upstream_port, tmp_path / "serve.log")
    site = (ROOT / "deploy/nginx/feedsvc.conf").read_text(encoding="utf-8")
    site = site.replace("127.0.0.1:8080", f"127.0.0.1:{upstream_port}")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{public_port};")
    site = site.replace("/var/cache/nginx/feedsvc", str(tmp_path / "cache"))
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp_path / "nginx.conf").write_text(
        f"{user}\nworker_processes 1;\ndaemon off;\npid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/error.log warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  include {tmp_path}/site.conf;\n}}\n",
        encoding="utf-8",
    )
    proxy = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")])
    public = f"http://127.0.0.1:{public_port}"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(public + "/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield public, server, articles
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        server.stop()


def test_nginx_caches_and_revalidates_with_etags(stack: tuple[str, Server, Path]) -> None:
    public, server, _ = stack
    headers = {"Accept-Encoding": "gzip"}
    first = requests.get(public + "/feed.atom", headers=headers, timeout=5)
    assert first.headers["X-Cache-Status"] == "MISS"
    assert b"Cached post" in first.content
    second = requests.get(public + "/feed.atom", headers=headers, timeout=5)
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.headers["ETag"] == first.headers["ETag"]

    # A client's own conditional request is answered by nginx from the cache.
    mine = requests.get(
        public + "/feed.atom",
        headers={**headers, "If-None-Match": first.headers["ETag"]},
        timeout=5,
    )
    assert mine.status_code == 304

    # After max-age, nginx asks feedsvc with If-None-Match and gets a 304. feedsvc allows
    # stale-while-revalidate, so nginx answers that request from the stale copy (STALE)
    # and revalidates in the background.
    before = responses_304(server.base)
    statuses = []
    deadline = time.monotonic() + MAX_AGE + 5
    while time.monotonic() < deadline and responses_304(server.base) == before:
        again = requests.get(public + "/feed.atom", headers=headers, timeout=5)
        statuses.append(again.headers["X-Cache-Status"])
        assert again.content == first.content
        time.sleep(0.2)
    assert responses_304(server.base) == before + 1
    assert statuses[-1] in ("STALE", "REVALIDATED", "UPDATING")
    after = requests.get(public + "/feed.atom", headers=headers, timeout=5)
    assert after.headers["X-Cache-Status"] == "HIT"
    assert after.headers["ETag"] == first.headers["ETag"]


def test_a_changed_article_reaches_clients_through_the_cache(
    stack: tuple[str, Server, Path],
) -> None:
    public, _, articles = stack
    headers = {"Accept-Encoding": "gzip"}
    first = requests.get(public + "/feed.rss", headers=headers, timeout=5)
    assert b"First version." in first.content
    write_article(articles, "a.md", "Second version.", title="Cached post", date="2022-01-01")
    os.utime(articles / "a.md", ns=(1, 1_900_000_000_000_000_000))
    deadline = time.monotonic() + MAX_AGE + 10
    while time.monotonic() < deadline:
        now = requests.get(public + "/feed.rss", headers=headers, timeout=5)
        if b"Second version." in now.content:
            break
        time.sleep(0.3)
    assert b"Second version." in now.content
    assert now.headers["ETag"] != first.headers["ETag"]


def test_an_encoded_slash_in_the_path_is_a_404_in_front(stack: tuple[str, Server, Path]) -> None:
    public, _, articles = stack
    write_article(
        articles, "b.md", title="Nested", date="2022-02-01", categories=["Markets", "Asia"]
    )
    deadline = time.monotonic() + 15
    while requests.get(public + "/categories/Markets/Asia/feed.atom").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert requests.get(public + "/categories/Markets%2FAsia/feed.atom").status_code == 404
    assert requests.get(public + "/categories/Markets%2fAsia/feed.atom").status_code == 404
    # Only the path: an encoded slash in the query string is the client's business.
    assert requests.get(public + "/feed.atom?from=a%2Fb").status_code == 200

"""HTTP caching and content coding of built documents, per RFC 9110 and RFC 9111."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from feedsvc.reload.reloader import Reloader
from feedsvc.serving import accepts_gzip, is_browser_navigation

from conftest import SAMPLE_SHAPED, write_article

URL = "/categories/金融/feed.atom"


@pytest.fixture(autouse=True)
def loaded(reloader: Reloader, articles_dir: Path) -> None:
    (articles_dir / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    write_article(articles_dir, "b.md", title="Bank news", date="2021-11-01", categories=["金融"])
    reloader.reload()


def test_gzip_is_served_when_accepted_with_its_own_etag(client: Any) -> None:
    plain = client.get(URL)
    packed = client.get(URL, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.data) == plain.data
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert packed.headers["Content-Length"] == str(len(packed.data))
    assert "Content-Encoding" not in plain.headers
    for response in (plain, packed):
        assert response.headers["Vary"] == "Accept-Encoding, Sec-Fetch-Dest"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True),
        ("GZIP", True),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("*;q=0", False),
        ("identity", False),
        ("br", False),
        ("gzip;q=0, *", False),
        ("", False),
        (None, False),
    ],
)
def test_accept_encoding_q_values(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_gzip_refused_with_q0_falls_back_to_identity(client: Any) -> None:
    response = client.get(URL, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in response.headers
    assert response.data.startswith(b"<?xml")


def test_etag_of_one_coding_does_not_validate_the_other(client: Any) -> None:
    plain_etag = client.get(URL).headers["ETag"]
    response = client.get(URL, headers={"Accept-Encoding": "gzip", "If-None-Match": plain_etag})
    assert response.status_code == 200
    gz_etag = response.headers["ETag"]
    again = client.get(URL, headers={"Accept-Encoding": "gzip", "If-None-Match": gz_etag})
    assert again.status_code == 304


@pytest.mark.parametrize("coding", ["identity", "gzip"])
def test_feed_returns_304_without_body_but_with_validators_and_caching_fields_when_etag_matches(
    client: Any, coding: str
) -> None:
    first = client.get(URL, headers={"Accept-Encoding": coding})
    response = client.get(
        URL, headers={"Accept-Encoding": coding, "If-None-Match": first.headers["ETag"]}
    )
    assert response.status_code == 304
    assert response.data == b""
    for name in ("ETag", "Cache-Control", "Last-Modified", "Vary"):
        assert response.headers[name] == first.headers[name], name
    assert "Content-Encoding" not in response.headers


def test_if_none_match_takes_precedence_over_if_modified_since(client: Any) -> None:
    first = client.get(URL)
    for since in (first.headers["Last-Modified"], "Fri, 01 Jan 2100 00:00:00 GMT"):
        stale_etag = client.get(URL, headers={"If-None-Match": '"old"', "If-Modified-Since": since})
        assert stale_etag.status_code == 200, since
    fresh_etag = client.get(
        URL,
        headers={
            "If-None-Match": first.headers["ETag"],
            "If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT",
        },
    )
    assert fresh_etag.status_code == 304


@pytest.mark.parametrize(
    ("since", "status"),
    [
        ("Sun, 24 Oct 2021 11:30:58 GMT", 304),  # equal, to the second
        ("Sun, 24 Oct 2021 11:30:59 GMT", 304),  # later
        ("Sun, 24 Oct 2021 11:30:57 GMT", 200),  # one second older
        ("Sat, 01 Jan 2000 00:00:00 GMT", 200),  # years older
        ("Sunday, 24-Oct-21 11:30:58 GMT", 304),  # RFC 850 form
        ("Sun Oct 24 11:30:58 2021", 304),  # asctime form
        ("yesterday", 200),  # garbage is ignored
        ("", 200),
    ],
)
def test_if_modified_since_has_second_precision_and_ignores_garbage(
    client: Any, since: str, status: int
) -> None:
    url = "/categories/金融/财联社/feed.atom"
    assert client.get(url).headers["Last-Modified"] == "Sun, 24 Oct 2021 11:30:58 GMT"
    assert client.get(url, headers={"If-Modified-Since": since}).status_code == status


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ('"a", "b"', 200),
        ('"nope", "{etag}"', 304),  # a list holding the current tag
        ("*", 304),
        ('W/"{etag}"', 304),  # weak comparison, RFC 9110 §13.1.2
        ('"x",W/"{etag}" , "y"', 304),
    ],
)
def test_if_none_match_forms(client: Any, header: str, status: int) -> None:
    etag = client.get(URL).headers["ETag"].strip('"')
    assert client.get(URL, headers={"If-None-Match": header.format(etag=etag)}).status_code == (
        status
    )


def test_head_equals_get_without_body(client: Any) -> None:
    for headers in ({}, {"Accept-Encoding": "gzip"}):
        get = client.get(URL, headers=headers)
        head = client.head(URL, headers=headers)
        assert head.status_code == 200
        assert head.data == b""
        assert dict(head.headers) == dict(get.headers)
        assert get.headers["Content-Length"] == str(len(get.data))


@pytest.mark.parametrize(
    ("url", "media_type"),
    [
        ("/feed.rss", "application/rss+xml; charset=utf-8"),
        ("/feed.atom", "application/atom+xml; charset=utf-8"),
        ("/categories/金融/财联社/feed.atom", "application/atom+xml; charset=utf-8"),
    ],
)
def test_feed_is_served_with_type_and_validators(client: Any, url: str, media_type: str) -> None:
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == media_type
    assert response.headers["ETag"].startswith('"') and response.headers["ETag"].endswith('"')
    assert response.headers["Cache-Control"] == (
        "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    )
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Last-Modified"]
    assert "Content-Security-Policy" not in response.headers


def test_html_pages_carry_a_strict_csp(client: Any) -> None:
    for response in (client.get("/"), client.get(URL, headers={"Sec-Fetch-Dest": "document"})):
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/categories/../feed.atom",
        "/categories/%2E%2E/feed.atom",
        "/..%2Fconfig.yaml",
        "/categories/%E9%87%91%E8%9E%8D%2Ffeed.atom",
        "/feed.atom%00",
        "/%ff%fe/feed.atom",
        "/config.yaml",
        "/articles/finance/x.txt",
        "/.git/config",
        "//etc/passwd",
    ],
)
def test_hostile_paths_are_404_never_500(client: Any, path: str) -> None:
    assert client.get(path).status_code in (400, 404)


def test_overlong_path_and_query_are_414(client: Any) -> None:
    assert client.get("/" + "a" * 3000).status_code == 414
    assert client.get("/feed.atom?" + "q=1&" * 600).status_code == 414
    assert client.get("/feed.atom?utm_source=reader").status_code == 200


def test_host_header_never_reaches_a_document(client: Any) -> None:
    response = client.get(URL, headers={"Host": "evil.example"})
    assert b"evil.example" not in response.data
    page = client.get(URL, headers={"Host": "evil.example", "Sec-Fetch-Dest": "document"})
    assert b"evil.example" not in page.data


@pytest.mark.parametrize(
    ("dest", "accept", "expected"),
    [
        ("document", None, True),
        ("empty", "text/html", False),
        ("iframe", None, False),
        (None, "text/html,application/xml;q=0.9,*/*;q=0.8", True),
        (None, "application/atom+xml, text/html;q=0.9", False),
        (None, "text/html, application/rss+xml", False),
        (None, "*/*", False),
        (None, None, False),
        (None, "text/html;q=0", False),
    ],
)
def test_browser_navigation_detection(dest: str | None, accept: str | None, expected: bool) -> None:
    assert is_browser_navigation(dest, accept) is expected


def test_unchanged_documents_reuse_their_prepared_representations(
    reloader: Reloader, articles_dir: Path
) -> None:
    before = reloader.store.current.resources
    write_article(articles_dir, "c.md", title="Tech", date="2021-12-01", categories=["科技"])
    reloader.reload()
    after = reloader.store.current.resources
    bank = "/categories/" + "金融".encode().decode("latin-1") + "/feed.atom"
    assert after[bank] is before[bank]
    assert after["/feed.atom"] is not before["/feed.atom"]


def test_bodies_are_made_on_demand_within_a_bound(reloader: Reloader) -> None:
    from feedsvc.serving import Bodies

    resources = reloader.store.current.resources
    feeds = [resources[p] for p in ("/feed.atom", "/feed.rss", "/feed.json")]
    sizes = [r.document.size for r in feeds]
    cache = Bodies(max_bytes=max(sizes) + 1)
    for resource in feeds:
        body = cache.get(resource.variant(False, False))
        assert body == resource.document.body and len(body) == resource.document.size
        assert cache._size <= cache.max_bytes
        assert gzip.decompress(cache.get(resource.variant(True, False))) == body
    assert len(cache._bodies) == 1  # the older ones were dropped to stay under the bound
    view = cache.get(feeds[0].variant(False, True))
    assert view.startswith(b"<!doctype html>")


def test_304_of_a_feed_allows_cross_origin_readers(client: Any) -> None:
    etag = client.get(URL).headers["ETag"]
    response = client.get(URL, headers={"If-None-Match": etag, "Origin": "https://reader.example"})
    assert response.status_code == 304
    assert response.headers["Access-Control-Allow-Origin"] == "*"


PROBES = r"""
import gc
from feedsvc.store import Store
from feedsvc.web import create_app
wsgi = create_app(Store()).wsgi_app
answers = []
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/wp-login.php", "QUERY_STRING": ""}
gc.collect()
gc.disable()
for _ in range(200):
    body = wsgi(dict(environ), lambda status, headers: answers.append(status))
assert set(answers) == {"404 Not Found"} and body == [b"Not Found\n"], (answers, body)
print(gc.collect())
"""


def test_a_flood_of_probes_for_unknown_paths_leaves_no_garbage() -> None:
    """Workers freeze what survives a snapshot's batches; cycles from requests in flight
    would be frozen too. Unknown paths never reach Flask, whose 404 makes cycles. (In a
    process of its own: other tests' threads make garbage of their own.)"""
    done = subprocess.run(
        [sys.executable, "-c", PROBES], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "0"

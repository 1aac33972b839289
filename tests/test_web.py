from pathlib import Path
from typing import Any

import pytest
from werkzeug.http import http_date

from feedsvc.refresh import Refresher

from conftest import SAMPLE_SHAPED, write_article


@pytest.fixture(autouse=True)
def loaded(refresher: Refresher, articles_dir: Path) -> None:
    (articles_dir / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    write_article(
        articles_dir,
        "en.md",
        title="English post",
        date="2022-05-01 10:00:00",
        categories=["Engineering"],
    )
    refresher.refresh()


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
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Last-Modified"]


def test_percent_encoded_category_path_works(client: Any) -> None:
    response = client.get("/categories/%E9%87%91%E8%9E%8D/feed.rss")
    assert response.status_code == 200
    assert "钱塘证券".encode() in response.data


def test_last_modified_is_the_newest_entry(client: Any) -> None:
    response = client.get("/categories/金融/feed.rss")
    assert response.headers["Last-Modified"] == "Sun, 24 Oct 2021 11:30:58 GMT"


def test_feed_returns_304_when_etag_matches(client: Any) -> None:
    etag = client.get("/feed.atom").headers["ETag"]
    response = client.get("/feed.atom", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag


@pytest.mark.parametrize("header", ['"nope", {etag}', "*", "W/{etag}"])
def test_if_none_match_lists_star_and_weak_match(client: Any, header: str) -> None:
    etag = client.get("/feed.rss").headers["ETag"]
    response = client.get("/feed.rss", headers={"If-None-Match": header.format(etag=etag)})
    assert response.status_code == 304


def test_if_none_match_mismatch_gives_200_even_with_fresh_date(client: Any) -> None:
    response = client.get(
        "/feed.rss",
        headers={"If-None-Match": '"other"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    )
    assert response.status_code == 200


def test_if_modified_since_not_newer_gives_304(client: Any) -> None:
    last = client.get("/feed.rss").headers["Last-Modified"]
    assert client.get("/feed.rss", headers={"If-Modified-Since": last}).status_code == 304
    older = http_date(946684800)
    assert client.get("/feed.rss", headers={"If-Modified-Since": older}).status_code == 200


def test_head_has_headers_and_no_body(client: Any) -> None:
    get = client.get("/feed.atom")
    head = client.head("/feed.atom")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["ETag"] == get.headers["ETag"]
    assert head.headers["Content-Length"] == str(len(get.data))


@pytest.mark.parametrize(
    "url",
    [
        "/nope",
        "/categories/无此分类/feed.rss",
        "/feed.json",
        "/categories/金融/feed.xml",
        "/../config.yaml",
        "/categories/../feed.rss",
    ],
)
def test_unknown_paths_are_404(client: Any, url: str) -> None:
    assert client.get(url).status_code == 404


def test_other_methods_are_405(client: Any) -> None:
    response = client.post("/feed.rss")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_healthz_reports_counts_and_problems(
    client: Any, articles_dir: Path, refresher: Refresher
) -> None:
    (articles_dir / "broken.md").write_text("---\ntitle: [\n---\n", encoding="utf-8")
    refresher.refresh()
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded"
    assert body["articles"] == 2
    assert body["last_reload"] == "2026-11-25T12:00:00+00:00"
    [problem] = body["problems"]
    assert problem["path"] == "articles/broken.md" and problem["line"] == 3


def test_healthz_is_ok_when_clean(client: Any) -> None:
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["problems"] == []

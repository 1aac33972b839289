from pathlib import Path
from typing import Any

import pytest

from feedsvc.reload.reloader import Reloader

from conftest import SAMPLE_SHAPED, write_article


@pytest.fixture(autouse=True)
def loaded(reloader: Reloader, articles_dir: Path) -> None:
    (articles_dir / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    write_article(
        articles_dir,
        "en.md",
        title="English post",
        date="2022-05-01 10:00:00",
        categories=["Engineering"],
    )
    reloader.reload()


def test_percent_encoded_category_path_works(client: Any) -> None:
    response = client.get("/categories/%E9%87%91%E8%9E%8D/feed.rss")
    assert response.status_code == 200
    assert "钱塘证券".encode() in response.data


def test_last_modified_is_the_newest_entry(client: Any) -> None:
    response = client.get("/categories/金融/feed.rss")
    assert response.headers["Last-Modified"] == "Sun, 24 Oct 2021 11:30:58 GMT"


@pytest.mark.parametrize(
    "url",
    [
        "/nope",
        "/categories/无此分类/feed.rss",
        "/feed.xml",
        "/categories/金融/feed.xml",
        "/../config.yaml",
        "/categories/../feed.rss",
    ],
)
def test_unknown_paths_are_404(client: Any, url: str) -> None:
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(client: Any, method: str) -> None:
    for path in ("/feed.atom", "/healthz", "/"):
        response = client.open(path, method=method)
        assert response.status_code == 405
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed == {"GET", "HEAD"}


def test_healthz_reports_counts_and_problems(
    client: Any, articles_dir: Path, reloader: Reloader
) -> None:
    (articles_dir / "broken.md").write_text("---\ntitle: [\n---\n", encoding="utf-8")
    reloader.reload()
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded"
    assert body["articles"] == 2
    assert body["last_reload"] == "2026-11-25T12:00:00+00:00"
    [problem] = body["problems"]
    assert problem["path"] == "articles/broken.md" and problem["line"] == 3


def test_healthz_is_ok_when_clean(client: Any) -> None:
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["problems"] == []


CHROME_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)
READER_ACCEPT = "application/atom+xml,application/rss+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7"


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Dest": "document", "Accept": CHROME_ACCEPT},
        {"Accept": CHROME_ACCEPT},  # a browser too old to send Sec-Fetch-*
    ],
)
@pytest.mark.parametrize("url", ["/feed.atom", "/feed.rss", "/categories/金融/feed.json"])
def test_browser_navigation_gets_the_html_view(client: Any, url: str, headers: dict) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert page.startswith("<!doctype html>")
    assert "This is a web feed" in page
    assert 'rel="alternate" type="application/atom+xml"' in page
    assert "Sec-Fetch-Dest" in response.headers["Vary"]
    assert "private" in response.headers["Cache-Control"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Accept": "*/*"},
        {"Accept": READER_ACCEPT},
        {"Sec-Fetch-Dest": "empty", "Accept": CHROME_ACCEPT},  # fetch() from a web reader
        {"Accept": "text/html;q=0.5, application/rss+xml"},
    ],
)
def test_readers_and_scripts_get_the_feed(client: Any, headers: dict) -> None:
    response = client.get("/feed.rss", headers=headers)
    assert response.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
    assert response.headers["Vary"] == "Accept-Encoding, Sec-Fetch-Dest"
    assert response.headers["Cache-Control"].startswith("public, max-age=300")


def test_html_view_lists_entries_and_escapes_them(client: Any) -> None:
    page = client.get("/feed.atom", headers={"Sec-Fetch-Dest": "document"}).get_data(True)
    assert "钱塘证券" in page and "English post" in page
    assert "http://127.0.0.1:8080/feed.atom" in page
    assert '<button type="button" data-copy="http://127.0.0.1:8080/feed.rss">Copy</button>' in page


def test_index_lists_every_feed_with_autodiscovery(client: Any) -> None:
    response = client.get("/")
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"]
    page = response.get_data(as_text=True)
    assert '<link rel="alternate" type="application/rss+xml"' in page
    assert "Test Newsroom — 金融 / 财联社 / 深度" in page
    assert "Test Newsroom — Engineering" in page


def test_opml_lists_every_feed(client: Any) -> None:
    import xml.etree.ElementTree as ET

    response = client.get("/feeds.opml")
    assert response.headers["Content-Type"] == "text/x-opml; charset=utf-8"
    root = ET.fromstring(response.data)
    assert root.get("version") == "2.0"
    outlines = root.findall("./body/outline")
    urls = [o.get("xmlUrl") for o in outlines]
    assert urls[0] == "http://127.0.0.1:8080/feed.rss"
    assert "http://127.0.0.1:8080/categories/%E9%87%91%E8%9E%8D/feed.rss" in urls
    assert all(o.get("type") == "rss" and o.get("htmlUrl") and o.get("title") for o in outlines)
    for url in urls:
        path = url.removeprefix("http://127.0.0.1:8080")
        assert client.get(path).status_code == 200


def test_json_feed_is_json_feed_1_1(client: Any) -> None:
    response = client.get("/feed.json")
    assert response.headers["Content-Type"] == "application/feed+json; charset=utf-8"
    feed = response.get_json(force=True)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["feed_url"] == "http://127.0.0.1:8080/feed.json"
    sample = next(i for i in feed["items"] if i["title"].startswith("钱塘证券"))
    assert sample["date_published"] == "2021-10-24T11:30:58Z"
    assert sample["authors"] == [{"name": "财联社"}]
    assert sample["tags"] == ["金融", "财联社", "深度"]
    assert sample["image"].startswith("https://img.example.cn/")
    assert sample["content_html"].startswith("<div>")


def test_deleted_category_stays_as_an_empty_valid_feed(
    client: Any, articles_dir: Path, reloader: Reloader
) -> None:
    import feedparser

    (articles_dir / "en.md").unlink()
    reloader.reload()
    response = client.get("/categories/Engineering/feed.atom")
    assert response.status_code == 200
    parsed = feedparser.parse(response.data)
    assert not parsed.bozo and parsed.entries == []


def reload_client(make_config: Any, **server: Any) -> Any:
    from feedsvc.store import Store
    from feedsvc.web import create_app

    config = make_config(server=server)
    store = Store()
    reloader = Reloader(config, store)
    calls: list[int] = []
    real_reload = reloader.reload

    def reload() -> Any:
        calls.append(1)
        return real_reload()

    reloader.reload = reload  # type: ignore[method-assign]
    app = create_app(store, reloader)
    return app.test_client(), calls


def test_reload_endpoint_is_404_without_a_token(make_config: Any) -> None:
    client, _ = reload_client(make_config)
    assert client.post("/-/reload").status_code == 404
    assert client.get("/-/reload").status_code == 404


def test_reload_endpoint_needs_the_bearer_token(make_config: Any) -> None:
    client, calls = reload_client(make_config, reload_token="s3cret-token")
    assert client.post("/-/reload").status_code == 401
    wrong = client.post("/-/reload", headers={"Authorization": "Bearer s3cret-tokeN"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/-/reload").status_code == 405
    assert calls == []
    ok = client.post("/-/reload", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert set(ok.get_json()) == {"articles", "documents", "changed", "problems", "seconds"}
    assert calls == [1]

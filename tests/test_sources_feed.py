"""Remote feed sources against a scripted upstream on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from feedsvc import __version__
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.sources.feed import RemoteSource, SavedFetch
from feedsvc.store import Store

from conftest import eventually, write_article
from tests.support.metrics import sample
from tests.support.server import Server, free_port, write_config
from tests.support.upstream import Reply, Upstream

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Partner Wire</title><link>https://partner.example/</link>
<description>Wire</description>
<item><title>Rates &amp; <b>bonds</b> rally</title><link>https://partner.example/news/rates</link>
<guid isPermaLink="false">wire-001</guid><pubDate>Mon, 06 Dec 2021 10:12:05 GMT</pubDate>
<dc:creator>Li Wei</dc:creator><category>Markets</category><category>Bonds</category>
<enclosure url="/img/rates.png" length="0" type="image/png"/>
<content:encoded><![CDATA[<p onclick="x()">Yields fell. <img src="chart.png">
<script>alert(1)</script><a href="javascript:alert(1)">x</a></p>]]></content:encoded></item>
<item><title>Undated note</title><link>https://partner.example/news/note</link>
<description>No date here.</description></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Lab</title><id>urn:lab</id>
<updated>2022-05-01T00:00:00Z</updated><link href="https://lab.example/"/>
<entry><title>Atom one</title><id>urn:lab:1</id><link href="https://lab.example/1"/>
<published>2022-04-01T08:00:00+08:00</published><updated>2022-04-02T00:00:00Z</updated>
<author><name>Ada</name></author><content type="html">&lt;p&gt;Hello&lt;/p&gt;</content></entry>
</feed>"""

ATOM03 = b"""<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>Old</title>
<entry><title>Atom 0.3 entry</title><id>tag:old,2004:1</id>
<link rel="alternate" type="text/html" href="https://old.example/1"/>
<issued>2004-01-01T00:00:00Z</issued><modified>2004-01-02T00:00:00Z</modified></entry></feed>"""

RDF = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://rdf.example/"><title>RDF</title><link>https://rdf.example/</link>
<description>d</description></channel>
<item rdf:about="https://rdf.example/1"><title>RSS 1.0 item</title><link>https://rdf.example/1</link>
<dc:date>2003-05-01T00:00:00Z</dc:date></item></rdf:RDF>"""

RSS091 = b"""<?xml version="1.0"?><rss version="0.91"><channel><title>Legacy</title>
<link>https://legacy.example/</link><description>d</description>
<item><title>RSS 0.91 item</title><link>https://legacy.example/1</link></item></channel></rss>"""

JSON11 = """{"version": "https://jsonfeed.org/version/1.1", "title": "JF",
 "home_page_url": "https://jf.example/",
 "items": [{"id": "j1", "url": "/posts/1", "title": "JSON item 一",
   "content_html": "<p>Hi <img src='/a.png'></p>", "date_published": "2022-03-01T10:00:00+08:00",
   "authors": [{"name": "Jo"}], "tags": ["AI"], "image": "/cover.jpg"}]}""".encode()

JSON10 = b"""{"version": "https://jsonfeed.org/version/1", "title": "Old JF",
 "items": [{"id": "k1", "url": "https://jf.example/k1", "title": "JSON 1.0 item",
   "content_text": "Plain text", "author": {"name": "Kay"},
   "date_published": "2020-01-01T00:00:00Z"}]}"""

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def remote(
    make_config: Callable[..., Config], upstream: Upstream
) -> Callable[..., tuple[Reloader, Store]]:
    def make(*sources: dict[str, Any]) -> tuple[Reloader, Store]:
        config = make_config(
            sources=[{"name": s.get("name", "wire"), "type": "feed", **s} for s in sources]
            or [{"name": "wire", "type": "feed", "url": upstream.base + "/feed"}]
        )
        store = Store()
        return Reloader(config, store, now=lambda: NOW), store

    return make


def titles(store: Store, path: str = "feed.atom") -> list[str]:
    return [e.title for e in feedparser.parse(store.current.documents[path].body).entries]


def source_of(reloader: Reloader, index: int = 0) -> RemoteSource:
    source = reloader.sources[index]
    assert isinstance(source, RemoteSource)
    return source


def test_rss_items_become_articles(remote: Any, upstream: Upstream) -> None:
    upstream.routes["/feed"] = Reply(body=RSS, headers={"Content-Type": "application/rss+xml"})
    reloader, store = remote(
        {
            "url": upstream.base + "/feed",
            "categories": ["Partners"],
            "category_map": {"Markets": "市场"},
            "tags": ["wire"],
        }
    )
    reloader.reload()
    [first, undated] = sorted(source_of(reloader).read().articles, key=lambda a: a.title)
    assert first.title == "Rates & bonds rally"
    assert first.link == "https://partner.example/news/rates"
    assert first.published == datetime(2021, 12, 6, 10, 12, 5, tzinfo=UTC)
    assert first.authors[0].name == "Li Wei"
    assert first.categories == (("Partners",), ("市场",), ("Bonds",))
    assert first.tags == ("wire",)
    assert first.image == "https://partner.example/img/rates.png"
    assert "https://partner.example/news/chart.png" in first.content_html
    for banned in ("script", "onclick", "javascript:"):
        assert banned not in first.content_html
    assert undated.published == NOW  # first seen
    assert "categories/Partners/feed.atom" in store.current.documents
    assert titles(store, "categories/市场/feed.atom") == ["Rates & bonds rally"]


@pytest.mark.parametrize(
    ("body", "content_type", "title"),
    [
        (ATOM, "application/atom+xml", "Atom one"),
        (ATOM03, "application/atom+xml", "Atom 0.3 entry"),
        (RDF, "application/rdf+xml", "RSS 1.0 item"),
        (RSS091, "text/xml", "RSS 0.91 item"),
        (JSON11, "application/feed+json", "JSON item 一"),
        (JSON10, "application/json", "JSON 1.0 item"),
    ],
)
def test_every_feed_format_is_read(
    remote: Any, upstream: Upstream, body: bytes, content_type: str, title: str
) -> None:
    upstream.routes["/feed"] = Reply(body=body, headers={"Content-Type": content_type})
    reloader, store = remote()
    reloader.reload()
    [article] = source_of(reloader).read().articles
    assert article.title == title
    assert article.link.startswith("https://")
    assert store.current.problems == ()


def test_json_feed_fields(remote: Any, upstream: Upstream) -> None:
    upstream.routes["/feed"] = Reply(body=JSON11, headers={"Content-Type": "application/feed+json"})
    reloader, _ = remote()
    reloader.reload()
    [article] = source_of(reloader).read().articles
    assert article.link == "https://jf.example/posts/1"
    assert article.image == "https://jf.example/cover.jpg"
    assert article.published == datetime(2022, 3, 1, 2, 0, tzinfo=UTC)
    assert article.categories == (("AI",),)
    assert 'src="https://jf.example/a.png"' in article.content_html


def test_polite_conditional_get_reuses_items_on_304(remote: Any, upstream: Upstream) -> None:
    def reply(headers: dict[str, str]) -> Reply:
        if headers.get("if-none-match") == '"v1"':
            return Reply(304)
        return Reply(
            body=ATOM, headers={"ETag": '"v1"', "Last-Modified": "Mon, 02 May 2022 00:00:00 GMT"}
        )

    upstream.routes["/feed"] = reply
    reloader, _ = remote({"url": upstream.base + "/feed", "interval_seconds": 1})
    source = source_of(reloader)
    reloader.reload()
    before = source.read().articles
    source._next_fetch = 0  # due again now
    reloader.reload()
    assert source.read().articles is before
    (_, first), (_, second) = upstream.requests
    assert first["user-agent"] == f"feedsvc/{__version__} (+http://127.0.0.1:8080)"
    assert "gzip" in first["accept-encoding"]
    assert "if-none-match" not in first
    assert second["if-none-match"] == '"v1"'
    assert second["if-modified-since"] == "Mon, 02 May 2022 00:00:00 GMT"


def test_same_guid_in_two_sources_gives_two_ids(remote: Any, upstream: Upstream) -> None:
    upstream.routes["/a"] = upstream.routes["/b"] = Reply(body=ATOM)
    reloader, _ = remote(
        {"name": "a", "url": upstream.base + "/a"}, {"name": "b", "url": upstream.base + "/b"}
    )
    reloader.reload()
    ids = {source_of(reloader, i).read().articles[0].id for i in (0, 1)}
    assert len(ids) == 2


def test_undated_items_keep_their_first_seen_time(
    make_config: Callable[..., Config], upstream: Upstream
) -> None:
    clock = [NOW]
    upstream.routes["/feed"] = Reply(body=RSS)
    config = make_config(sources=[{"name": "w", "type": "feed", "url": upstream.base + "/feed"}])
    reloader = Reloader(config, Store(), now=lambda: clock[0])
    reloader.reload()
    source = source_of(reloader)
    source.now = lambda: clock[0]
    clock[0] = datetime(2026, 11, 26, tzinfo=UTC)
    source._next_fetch = 0
    reloader.reload()
    undated = next(a for a in source.read().articles if a.title == "Undated note")
    assert undated.published == NOW


def test_permanent_redirect_is_followed_and_reported(remote: Any, upstream: Upstream) -> None:
    upstream.routes["/old"] = Reply(301, headers={"Location": "/new"})
    upstream.routes["/new"] = Reply(body=ATOM)
    reloader, store = remote({"url": upstream.base + "/old"})
    reloader.reload()
    assert titles(store) == ["Atom one"]
    [warning] = store.current.problems
    assert warning.severity == "warning" and f"moved permanently to {upstream.base}/new" in str(
        warning
    )


FAULTS: dict[str, Callable[[Upstream], tuple[dict[str, Any], str]]] = {
    "timeout": lambda u: ({"url": u.base + "/slow", "timeout_seconds": 1}, "timed out"),
    "refused": lambda u: ({"url": f"http://127.0.0.1:{free_port()}/feed"}, "connection failed"),
    "not found": lambda u: ({"url": u.base + "/missing"}, "HTTP 404"),
    "server error": lambda u: ({"url": u.base + "/500"}, "HTTP 500"),
    "too large": lambda u: ({"url": u.base + "/big", "max_bytes": 5000}, "over max_bytes 5000"),
    "too large, chunked": lambda u: (
        {"url": u.base + "/bigchunked", "max_bytes": 5000},
        "over max_bytes 5000; stopped reading",
    ),
    "html page": lambda u: ({"url": u.base + "/html"}, "not a feed"),
    "redirect loop": lambda u: ({"url": u.base + "/loop1"}, "redirect loop"),
    "too many redirects": lambda u: ({"url": u.base + "/r0"}, "more than 5 redirects"),
    "invalid utf-8": lambda u: ({"url": u.base + "/badjson"}, "not valid UTF-8"),
}


def script_faults(upstream: Upstream) -> None:
    upstream.routes.update(
        {
            "/slow": Reply(body=ATOM, delay=2.5),
            "/500": Reply(500, b"oops"),
            "/big": Reply(body=b"<rss>" + b"x" * 20_000),
            "/bigchunked": Reply(body=b"<rss>" + b"x" * 20_000, chunked=True),
            "/html": Reply(
                body=b"<!doctype html><html><body><p>Login</p></body></html>",
                headers={"Content-Type": "text/html"},
            ),
            "/loop1": Reply(302, headers={"Location": "/loop2"}),
            "/loop2": Reply(302, headers={"Location": "/loop1"}),
            "/badjson": Reply(
                body=b'{"version": "https://jsonfeed.org/version/1.1", "t": "\xff"}',
                headers={"Content-Type": "application/feed+json"},
            ),
            **{f"/r{n}": Reply(302, headers={"Location": f"/r{n + 1}"}) for n in range(7)},
        }
    )


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_keeps_the_last_good_items(remote: Any, upstream: Upstream, fault: str) -> None:
    script_faults(upstream)
    settings, reason = FAULTS[fault](upstream)
    good = settings["url"]
    upstream.routes[good.removeprefix(upstream.base)] = upstream.routes.get(
        good.removeprefix(upstream.base), Reply(404)
    )
    reloader, store = remote(settings)
    source = source_of(reloader)
    # First it never succeeded: nothing is published and the problem says so.
    reloader.reload()
    assert source.read().articles == ()
    [problem] = store.current.problems
    assert reason in problem.message and "never succeeded" in problem.message
    # Then it works once, then fails again: the items it had stay published.
    source.url = upstream.base + "/good"
    upstream.routes["/good"] = Reply(body=ATOM)
    source._next_fetch = 0
    reloader.reload()
    assert titles(store) == ["Atom one"]
    source.url = good
    source._next_fetch = 0
    reloader.reload()
    assert titles(store) == ["Atom one"]
    [problem] = store.current.problems
    assert reason in problem.message and "keeping its last good items" in problem.message


def test_dns_failure_is_reported(
    remote: Any, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    reloader, store = remote({"url": "http://partner.invalid/feed"})
    reloader.reload()
    assert "DNS lookup failed" in store.current.problems[0].message


def test_retry_after_and_backoff(remote: Any, upstream: Upstream) -> None:
    upstream.routes["/feed"] = Reply(429, headers={"Retry-After": "120"})
    reloader, _ = remote({"url": upstream.base + "/feed", "interval_seconds": 10})
    source = source_of(reloader)
    reloader.reload()
    assert source._next_fetch - time.monotonic() > 110
    reloader.reload()
    assert len(upstream.requests) == 1  # not due: nobody hammers a server that said wait
    upstream.routes["/feed"] = Reply(503)
    delays = []
    for _ in range(3):
        source._next_fetch = 0
        reloader.reload()
        delays.append(source._next_fetch - time.monotonic())
    assert delays[0] < delays[1] < delays[2]  # exponential, with jitter
    upstream.routes["/feed"] = Reply(body=ATOM)
    source._next_fetch = 0
    reloader.reload()
    assert 8 < source._next_fetch - time.monotonic() <= 10  # success resets the backoff


def test_retry_after_date_without_a_zone_is_gmt_in_any_local_zone(
    remote: Any, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 9110 §5.6.7: an HTTP date is GMT; "-0000" must not be read in the host's zone.
    in_an_hour = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1)
    upstream.routes["/feed"] = Reply(429, headers={"Retry-After": format_datetime(in_an_hour)})
    reloader, _ = remote({"url": upstream.base + "/feed", "interval_seconds": 10})
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        reloader.reload()
    finally:
        monkeypatch.undo()
        time.tzset()
    assert source_of(reloader)._next_fetch - time.monotonic() > 3000


def test_slow_upstream_delays_neither_others_nor_the_reload(
    make_config: Callable[..., Config], upstream: Upstream, articles_dir: Path
) -> None:
    upstream.routes["/slow"] = Reply(body=ATOM, delay=3)
    upstream.routes["/fast"] = Reply(body=RSS)
    write_article(
        articles_dir, "local.md", title="Local post", date="2022-01-01", categories=["Markets"]
    )
    config = make_config(
        sources=[
            {"name": "articles", "path": "articles"},
            {"name": "slow", "type": "feed", "url": upstream.base + "/slow"},
            {"name": "fast", "type": "feed", "url": upstream.base + "/fast"},
        ]
    )
    store = Store()
    reloader = Reloader(config, store, now=lambda: NOW, fetch_in_background=True)
    started = time.perf_counter()
    reloader.reload()
    assert time.perf_counter() - started < 1.0

    def fast_one_served() -> bool:
        reloader.reload()
        return "Rates & bonds rally" in titles(store)

    assert eventually(fast_one_served, seconds=2.5, every=0.05)
    # The slow upstream answers 3 s after it was asked: its items cannot be in yet.
    assert time.perf_counter() - started < 3
    assert "Atom one" not in titles(store)
    # An article's category feed holds items from every source.
    assert sorted(titles(store, "categories/Markets/feed.atom")) == [
        "Local post",
        "Rates & bonds rally",
    ]


@pytest.mark.e2e
def test_served_site_republishes_a_remote_feed(tmp_path: Path, upstream: Upstream) -> None:
    upstream.routes["/feed"] = Reply(body=RSS, headers={"Content-Type": "application/rss+xml"})
    port = free_port()
    write_article(tmp_path / "articles", "local.md", title="Local", date="2022-01-01")
    wire = {"name": "wire", "type": "feed", "url": f"{upstream.base}/feed"}
    config = write_config(
        tmp_path,
        port,
        site={"title": "Mixed"},
        sources=[{"name": "articles", "path": "articles"}, {**wire, "categories": ["Partners"]}],
        server={"workers": 1},
    )
    server = Server(config, port, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            feed = feedparser.parse(server.base + "/categories/Partners/feed.atom")
            if feed.get("status") == 200 and feed.entries:
                break
            time.sleep(0.2)
        assert sorted(e.title for e in feed.entries) == ["Rates & bonds rally", "Undated note"]
        site = feedparser.parse(server.base + "/feed.atom")
        assert {"Local", "Rates & bonds rally"} <= {e.title for e in site.entries}
    finally:
        assert server.stop() == 0


def test_twenty_megabytes_are_cut_off_at_the_default_cap(remote: Any, upstream: Upstream) -> None:
    upstream.routes["/huge"] = Reply(body=b"<rss>" + b"x" * 20_000_000, chunked=True)
    reloader, store = remote({"url": upstream.base + "/huge"})
    started = time.perf_counter()
    reloader.reload()
    assert time.perf_counter() - started < 10
    [problem] = store.current.problems
    assert "body is over max_bytes 10000000; stopped reading" in problem.message
    assert "source wire:" in problem.message


def test_remote_failures_reach_the_metrics(
    make_config: Callable[..., Config], upstream: Upstream
) -> None:
    from feedsvc.metrics import Metrics

    upstream.routes["/feed"] = Reply(500, b"down")
    config = make_config(sources=[{"name": "wire", "type": "feed", "url": upstream.base + "/feed"}])
    metrics = Metrics()
    Reloader(config, Store(), now=lambda: NOW, metrics=metrics).reload()
    text = metrics.exposition()[0].decode()
    assert sample(text, "feedsvc_source_failing", source="wire") == 1
    assert (
        sample(text, "feedsvc_source_fetch_failures_total", reason="http_5xx", source="wire") == 1
    )


ATOM_NS = "{http://www.w3.org/2005/Atom}"


def test_republished_items_carry_their_upstream_feed(remote: Any, upstream: Upstream) -> None:
    upstream.routes["/rss"] = Reply(body=RSS, headers={"Content-Type": "application/rss+xml"})
    tagged = ATOM.replace(b"<id>urn:lab</id>", b"<id>tag:lab.example,2022:feed</id>")
    upstream.routes["/atom"] = Reply(body=tagged, headers={"Content-Type": "application/atom+xml"})
    upstream.routes["/json"] = Reply(body=JSON11, headers={"Content-Type": "application/json"})
    reloader, store = remote(
        {"name": "rss", "url": upstream.base + "/rss"},
        {"name": "atom", "url": upstream.base + "/atom"},
        {"name": "json", "url": upstream.base + "/json"},
    )
    reloader.reload()
    documents = store.current.documents
    rss = feedparser.parse(documents["feed.rss"].body)
    assert {e.title: (e.source.href, e.source.title) for e in rss.entries} == {
        "Rates & bonds rally": (upstream.base + "/rss", "Partner Wire"),
        "Undated note": (upstream.base + "/rss", "Partner Wire"),
        "Atom one": (upstream.base + "/atom", "Lab"),
        "JSON item 一": (upstream.base + "/json", "JF"),
    }
    atom = etree.fromstring(documents["feed.atom"].body)
    sources = {
        entry.findtext(f"{ATOM_NS}title"): entry.find(f"{ATOM_NS}source")
        for entry in atom.iter(f"{ATOM_NS}entry")
    }
    lab = sources["Atom one"]
    assert lab.findtext(f"{ATOM_NS}id") == "tag:lab.example,2022:feed"  # the upstream's own
    assert lab.findtext(f"{ATOM_NS}title") == "Lab"
    # Its newest item's update, not the upstream's <updated> (2022-05-01 here), which many
    # generators set to each request's time.
    assert lab.findtext(f"{ATOM_NS}updated") == "2022-04-02T00:00:00+00:00"
    self_link = lab.find(f"{ATOM_NS}link[@rel='self']")
    assert self_link.get("href") == upstream.base + "/atom"
    wire = sources["Rates & bonds rally"]
    assert wire.findtext(f"{ATOM_NS}id") == upstream.base + "/rss"  # RSS has no id: its URL
    assert wire.find(f"{ATOM_NS}link[@rel='alternate']").get("href") == "https://partner.example/"
    parsed = feedparser.parse(documents["feed.atom"].body)
    assert not parsed.bozo
    assert {e.title: e.source.get("title") for e in parsed.entries}["JSON item 一"] == "JF"
    items = {i["title"]: i for i in json.loads(documents["feed.json"].body)["items"]}
    assert items["JSON item 一"]["_feedsvc"]["source"] == {
        "feed_url": upstream.base + "/json",
        "title": "JF",
        "home_page_url": "https://jf.example/",
    }


def test_the_origin_survives_a_restart_from_the_saved_body(
    make_config: Callable[..., Config], upstream: Upstream, tmp_path: Path
) -> None:
    upstream.routes["/feed"] = Reply(body=ATOM, headers={"Content-Type": "application/atom+xml"})
    config = make_config(sources=[{"name": "w", "type": "feed", "url": upstream.base + "/feed"}])
    memory = _Memory()
    first = RemoteSource(config.sources[0], config.site, 60, now=lambda: NOW, memory=memory)
    first.fetch()
    again = RemoteSource(config.sources[0], config.site, 60, now=lambda: NOW, memory=memory)
    [before], [after] = first.read().articles, again.read().articles
    assert after.origin == before.origin and before.origin is not None
    assert before.origin.title == "Lab" and after.revision == before.revision


@pytest.mark.parametrize(
    ("upstream_id", "kept"),
    [
        ("tag:lab.example,2022:feed", True),
        ("urn:uuid:60a76c80-d399-11d9-b93C-0003939e0af6", True),
        ("https://lab.example/feed", True),
        ("urn:lab", False),  # not a URN: no namespace-specific string
        ("lab-1", False),
        ("mailto:lab@example.org", False),
    ],
)
def test_an_upstream_id_is_kept_only_when_validators_accept_it(
    remote: Any, upstream: Upstream, upstream_id: str, kept: bool
) -> None:
    body = ATOM.replace(b"urn:lab</id>", upstream_id.encode() + b"</id>")
    upstream.routes["/feed"] = Reply(body=body, headers={"Content-Type": "application/atom+xml"})
    reloader, _ = remote({"url": upstream.base + "/feed"})
    reloader.reload()
    [article] = source_of(reloader).read().articles
    assert article.origin is not None
    assert article.origin.id == (upstream_id if kept else upstream.base + "/feed")


class _Memory:
    def __init__(self) -> None:
        self.saved: dict[str, SavedFetch] = {}

    def fetch_state(self, source: str) -> SavedFetch | None:
        return self.saved.get(source)

    def save_fetch(self, source: str, saved: SavedFetch) -> None:
        self.saved[source] = saved

    def save_schedule(self, source: str, url: str, failures: int, next_attempt: float) -> None:
        pass

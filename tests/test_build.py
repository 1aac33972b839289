import copy
import json
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from feedsvc.build import xmlfeed
from feedsvc.build.entryfields import image_type
from feedsvc.build.membership import FeedNode, NodeIndex, feed_title
from feedsvc.build.site import SiteRenderer
from feedsvc.build.sitepages import SitePages
from feedsvc.dates import EPOCH
from feedsvc.model import Article, Author, Document, Origin, SourceResult, deflate_html
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.sources.directory import DirectorySource
from feedsvc.store import Store

from conftest import write_article
from tests.support.articles import T0, article
from tests.support.commands import in_another_process


def build_documents(articles: list[Article], config: Config) -> dict[str, Document]:
    return SiteRenderer(config).build(articles).documents


def test_site_every_category_node_tag_and_author_get_every_format(config: Config) -> None:
    docs = build_documents([article(1, (("金融", "财联社", "深度"),), tags=("A股",))], config)
    directories = [
        "",
        "categories/金融/",
        "categories/金融/财联社/",
        "categories/金融/财联社/深度/",
        "tags/A股/",
        "authors/Desk/",
    ]
    assert sorted(docs) == sorted(
        [
            f"{d}{name}"
            for d in directories
            for name in ("feed.rss", "feed.atom", "feed.json", "feed.html")
        ]
        + ["index.html", "feeds.opml"]
    )
    assert docs["feed.atom"].media_type == "application/atom+xml; charset=utf-8"
    assert docs["feed.rss"].media_type == "application/rss+xml; charset=utf-8"
    assert docs["feed.json"].media_type == "application/feed+json; charset=utf-8"
    assert docs["tags/A股/feed.rss"].view == "tags/A股/feed.html"


def test_formats_not_configured_are_not_built(make_config: Callable[..., Config]) -> None:
    docs = build_documents([article(1, (("金融",),))], make_config(feeds={"formats": ["atom"]}))
    assert not [p for p in docs if p.endswith((".rss", ".json"))]
    assert "categories/金融/feed.atom" in docs


def test_list_of_lists_is_several_paths(config: Config) -> None:
    nodes, _ = NodeIndex(config).update([article(1, (("Engineering", "Python"), ("Open Source",)))])
    assert [n.directory for n in nodes] == [
        "",
        "categories/Engineering",
        "categories/Engineering/Python",
        "categories/Open-Source",
        "authors/Desk",
    ]


def test_without_hierarchy_only_the_leaf_node_exists(make_config: Callable[..., Config]) -> None:
    config = make_config(feeds={"category_hierarchy": False})
    nodes, _ = NodeIndex(config).update([article(1, (("金融", "财联社"),))])
    assert [n.directory for n in nodes] == ["", "categories/金融/财联社", "authors/Desk"]


def test_category_map_gives_the_slug(make_config: Callable[..., Config]) -> None:
    config = make_config(feeds={"category_map": {"金融": "finance"}})
    nodes, _ = NodeIndex(config).update([article(1, (("金融", "银行"),))])
    assert [n.directory for n in nodes] == [
        "",
        "categories/finance",
        "categories/finance/银行",
        "authors/Desk",
    ]
    assert nodes[2].names == ("金融", "银行")
    assert feed_title(config, nodes[2]) == "Test Newsroom — 金融 / 银行"


def test_tag_feeds_use_tag_map_and_say_what_they_are(make_config: Callable[..., Config]) -> None:
    config = make_config(feeds={"tag_map": {"A股": "a-shares"}})
    nodes, _ = NodeIndex(config).update([article(1, tags=("A股", "央行 政策"))])
    assert [n.directory for n in nodes] == ["", "tags/a-shares", "tags/央行-政策", "authors/Desk"]
    assert feed_title(config, nodes[1]) == "Test Newsroom — #A股"


def test_names_sharing_a_slug_are_merged_with_a_warning(config: Config) -> None:
    nodes, problems = NodeIndex(config).update(
        [article(1, (("Open Source",),)), article(2, (("Open-Source",),))]
    )
    assert [n.directory for n in nodes] == ["", "categories/Open-Source", "authors/Desk"]
    assert len(nodes[1].articles) == 2
    [warning] = problems
    assert warning.severity == "warning" and "share the URL /categories/Open-Source/" in str(
        warning
    )


def test_entries_are_newest_first_and_limited(make_config: Callable[..., Config]) -> None:
    config = make_config(feeds={"limit": 3})
    docs = build_documents([article(n) for n in (5, 1, 4, 2, 3)], config)
    parsed = feedparser.parse(docs["feed.atom"].body)
    assert [e.title for e in parsed.entries] == [f"Post {n} & <friends>" for n in (5, 4, 3)]


def test_output_is_deterministic_and_clock_free(config: Config) -> None:
    articles = [article(n, (("金融",),)) for n in range(3)]
    first = build_documents(articles, config)
    second = build_documents(list(reversed(articles)), config)
    assert {k: d.body for k, d in first.items()} == {k: d.body for k, d in second.items()}
    newest = T0 + timedelta(hours=2)
    assert first["feed.atom"].last_modified == newest
    assert b"<updated>2022-01-01T10:00:00+00:00</updated>" in first["feed.atom"].body
    assert (
        b"<lastBuildDate>Sat, 01 Jan 2022 10:00:00 +0000</lastBuildDate>" in first["feed.rss"].body
    )
    assert str(datetime.now(tz=UTC).year).encode() not in first["feed.rss"].body


def test_bytes_are_identical_in_another_process(config: Config, tmp_path: Path) -> None:
    script = (
        "import sys;"
        "from feedsvc.build.site import SiteRenderer;"
        "from feedsvc.config import load_config;"
        "from tests.support.articles import article;"
        f"config = load_config({config.path!r});"
        "docs = SiteRenderer(config).build([article(n, (('金融',),)) for n in range(3)]).documents;"
        "sys.stdout.buffer.write(docs['categories/金融/feed.atom'].body)"
    )
    here = build_documents([article(n, (("金融",),)) for n in range(3)], config)
    assert in_another_process(script) == here["categories/金融/feed.atom"].body


def test_etag_changes_with_the_bytes(config: Config) -> None:
    before = build_documents([article(1)], config)["feed.rss"]
    after = build_documents([article(1, title="Edited")], config)["feed.rss"]
    assert before.etag != after.etag
    assert before.etag == build_documents([article(1)], config)["feed.rss"].etag


@pytest.mark.parametrize("fmt", ["rss", "atom"])
def test_feedparser_reads_every_field(config: Config, fmt: str) -> None:
    docs = build_documents([article(1, (("金融", "财联社"),), tags=("A股",))], config)
    parsed = feedparser.parse(docs[f"feed.{fmt}"].body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Test Newsroom"
    [entry] = parsed.entries
    assert entry.id == article(1).id
    assert entry.title == "Post 1 & <friends>"
    assert entry.link == article(1).link
    assert entry.author == "Desk"
    assert entry.published_parsed[:5] == (2022, 1, 1, 9, 0)
    assert [t.term for t in entry.tags] == ["金融", "财联社", "A股"]
    assert "a link" in entry.content[0].value


def test_rss_guid_is_not_a_permalink(config: Config) -> None:
    body = build_documents([article(1)], config)["feed.rss"].body
    assert b'<guid isPermaLink="false">urn:uuid:' in body
    assert b'<atom:link href="http://127.0.0.1:8080/feed.rss" rel="self"' in body


def test_empty_site_is_a_valid_feed(config: Config) -> None:
    docs = build_documents([], config)
    assert sorted(docs) == sorted(
        ["feed.atom", "feed.rss", "feed.json", "feed.html", "index.html", "feeds.opml"]
    )
    parsed = feedparser.parse(docs["feed.atom"].body)
    assert not parsed.bozo and parsed.entries == []


def test_image_is_an_rss_enclosure_and_media_content(config: Config) -> None:
    image = "https://img.example.cn/images/20211206/Rr05cUtBk3.png"
    body = build_documents([article(1, image=image)], config)["feed.rss"].body
    assert f'<enclosure url="{image}" length="0" type="image/png"/>'.encode() in body
    assert f'<media:content url="{image}" type="image/png" medium="image"/>'.encode() in body
    assert f'<media:thumbnail url="{image}"/>'.encode() in body
    [entry] = feedparser.parse(body).entries
    assert entry.enclosures[0].href == image


def test_atom_entry_links_keep_rel_type_and_length(config: Config) -> None:
    image = "https://cdn.example.org/covers/a.webp"
    body = build_documents([article(1, image=image)], config)["feed.atom"].body
    assert f'<link href="{article(1).link}" rel="alternate" type="text/html"/>'.encode() in body
    assert f'<link href="{image}" rel="enclosure" type="image/webp" length="0"/>'.encode() in body
    [entry] = feedparser.parse(body).entries
    assert entry.link == article(1).link
    assert [e.href for e in entry.enclosures] == [image]


def test_feedgen_still_drops_atom_entry_link_attributes() -> None:
    """Pins the feedgen 1.0.0 defect the builder works around; when this fails, drop the fix."""
    from feedgen.feed import FeedGenerator

    generator = FeedGenerator()
    generator.id("urn:x")
    generator.title("t")
    generator.updated(T0)
    entry = generator.add_entry()
    entry.id("urn:y")
    entry.title("e")
    entry.updated(T0)
    entry.content("c")
    entry.link(href="https://a.example/img.png", rel="enclosure", type="image/png", length="0")
    assert b'<link href="https://a.example/img.png"/>' in generator.atom_str()


def test_summary_mode_leaves_out_full_content(make_config: Callable[..., Config]) -> None:
    config = make_config(feeds={"content": "summary"})
    docs = build_documents([article(1, summary="Short lead.")], config)
    for fmt in ("rss", "atom"):
        body = docs[f"feed.{fmt}"].body
        assert b"Body of post 1" not in body
        [entry] = feedparser.parse(body).entries
        assert entry.summary == "Short lead."
    assert b"<content:encoded>" not in docs["feed.rss"].body
    full = build_documents([article(1, summary="Short lead.")], make_config())
    assert b"Body of post 1" in full["feed.rss"].body
    assert b"<description>Short lead.</description>" in full["feed.rss"].body


def test_websub_hub_is_advertised_in_every_format(make_config: Callable[..., Config]) -> None:
    hub = "https://hub.example.org/"
    docs = build_documents([article(1)], make_config(feeds={"websub_hub": hub}))
    assert f'<link href="{hub}" rel="hub"/>'.encode() in docs["feed.atom"].body
    assert f'<atom:link href="{hub}" rel="hub"/>'.encode() in docs["feed.rss"].body
    assert json.loads(docs["feed.json"].body)["hubs"] == [{"type": "WebSub", "url": hub}]
    assert b'rel="hub"' not in build_documents([article(1)], make_config())["feed.atom"].body


def test_json_feed_honours_summary_mode(make_config: Callable[..., Config]) -> None:
    docs = build_documents([article(1, summary="Lead.")], make_config(feeds={"content": "summary"}))
    [item] = json.loads(docs["feed.json"].body)["items"]
    assert item["content_text"] == "Lead." and "content_html" not in item


def test_only_changed_feeds_are_rendered_again(config: Config) -> None:
    builder = SiteRenderer(config)
    articles = [article(n, ((f"C{n % 3}",),)) for n in range(9)]
    first = builder.build(articles).documents
    assert builder.rendered == 5  # the site, three categories and the author
    again = builder.build(articles).documents
    assert builder.rendered == 5
    assert all(again[path] is first[path] for path in first)
    edited = [*articles[:8], article(8, (("C2",),), title="Edited")]
    third = builder.build(edited).documents
    assert builder.rendered == 8  # the site, C2 and the author only
    assert third["categories/C0/feed.rss"] is first["categories/C0/feed.rss"]
    assert third["categories/C2/feed.rss"].etag != first["categories/C2/feed.rss"].etag


def _whole_feed(node: FeedNode, fmt: str, config: Config) -> bytes:
    """What feedgen writes for the whole feed, entries added to one generator."""
    entries = node.articles[: config.feeds.limit]
    updated = max((a.updated for a in entries), default=EPOCH)
    generator = xmlfeed.feed_generator(node, fmt, node.path(f"feed.{fmt}"), updated, config)
    for entry in entries:
        html = entry.content_html if config.feeds.content == "full" else ""
        xmlfeed.fill_entry(generator.add_entry(order="append"), entry, html)
    return bytes(
        generator.rss_str(pretty=True) if fmt == "rss" else generator.atom_str(pretty=True)
    )


@pytest.mark.parametrize(
    "feeds", [{}, {"content": "summary", "websub_hub": "https://hub.example.org/"}]
)
def test_spliced_feeds_are_what_feedgen_writes_whole(
    make_config: Callable[..., Config], feeds: dict[str, str]
) -> None:
    config = make_config(feeds={**feeds, "limit": 3})
    many = Author("李明", email="li@example.cn", url="https://example.cn/li")
    articles = [
        article(1, (("金融", "财联社"),), tags=("A股",), image="https://img.example.cn/a.png"),
        article(2, (("金融",),), authors=(many, Author("Desk")), summary="导语 & <lead>"),
        article(3, (("Tech",),), tags=("A股", "AI"), content=deflate_html("<p>x]]>y</p>")),
        article(4, (("金融", "财联社"),), origin=WIRE),
        article(5, (("金融",),), title="五", language="en-GB"),
    ]
    build = SiteRenderer(config).build(articles)
    nodes = {node.path("feed.rss"): node for node in build.nodes}
    assert len(nodes) == 8  # site, 金融, 金融/财联社, Tech, A股, AI, authors 李明 and Desk
    for path, node in nodes.items():
        for fmt in ("rss", "atom"):
            spliced = build.documents[path.replace(".rss", f".{fmt}")].body
            assert spliced == _whole_feed(node, fmt, config), (path, fmt)
        body = build.documents[path.replace(".rss", ".json")].body
        assert body == (json.dumps(json.loads(body), ensure_ascii=False, indent=1) + "\n").encode()
    empty = SiteRenderer(config).build([]).documents
    assert json.loads(empty["feed.json"].body)["items"] == []


def test_each_entry_is_rendered_once_for_every_feed_listing_it(
    config: Config, filled: list[str]
) -> None:
    site = SiteRenderer(config)
    articles = [article(n, (("A", "B", "C"),), tags=("t1", "t2")) for n in range(4)]
    site.build(articles)  # each article is in 6 feeds of 3 formats
    assert sorted(filled) == sorted(a.path for a in articles)
    filled.clear()
    site.build([*articles[:3], article(3, (("A", "B", "C"),), tags=("t1", "t2"), title="New")])
    assert filled == ["post-3.md"]  # only the edited article is rendered again


@pytest.fixture
def filled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the articles whose entries are rendered, in order."""
    paths: list[str] = []
    original = xmlfeed.fill_entry
    monkeypatch.setattr(
        xmlfeed,
        "fill_entry",
        lambda entry, a, html: (paths.append(a.path), original(entry, a, html)),
    )
    return paths


def _three_posts(articles_dir: Path) -> None:
    for n, category in enumerate(["A", "B", "C"]):
        write_article(
            articles_dir,
            f"{n}.md",
            title=f"Post {n}",
            date=f"2022-01-0{n + 1}",
            categories=[category],
        )


def test_equal_but_new_articles_from_a_source_are_rendered_once(
    config: Config,
    store: Store,
    now: Callable[[], datetime],
    articles_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    filled: list[str],
) -> None:
    # Every read gives copies, as a source in another process would.
    original = DirectorySource.read

    def read_copies(source: DirectorySource, changed: set[str] | None = None) -> SourceResult:
        result = original(source, changed)
        return SourceResult(tuple(copy.deepcopy(a) for a in result.articles), result.problems)

    monkeypatch.setattr(DirectorySource, "read", read_copies)
    _three_posts(articles_dir)
    reloader = Reloader(config, store, now=now)
    reloader.reload()
    rendered = reloader.renderer.rendered
    assert rendered == 5 and sorted(filled) == ["0.md", "1.md", "2.md"]
    filled.clear()
    assert reloader.reload().changed == 0
    assert reloader.renderer.rendered == rendered and filled == []
    edited = write_article(
        articles_dir, "2.md", title="Edited", date="2022-01-03", categories=["C"]
    )
    os.utime(edited, ns=(1, 1_800_000_000_000_000_000))
    reloader.reload()
    assert reloader.renderer.rendered == rendered + 3  # the site, C and the author
    assert filled == ["2.md"]


def test_a_file_touched_but_unchanged_is_parsed_again_and_rendered_once(
    reloader: Reloader, articles_dir: Path, filled: list[str]
) -> None:
    _three_posts(articles_dir)
    reloader.reload()
    filled.clear()
    rendered = reloader.renderer.rendered
    os.utime(articles_dir / "0.md", ns=(1, 1_800_000_000_000_000_000))  # a checkout, a copy
    write_article(articles_dir, "1.md", title="Edited", date="2022-01-02", categories=["B"])
    os.utime(articles_dir / "1.md", ns=(1, 1_800_000_000_000_000_001))
    reloader.reload()
    assert reloader.sources[0].reads == 5  # type: ignore[union-attr]
    assert reloader.renderer.rendered == rendered + 3  # the site, B and the author
    assert filled == ["1.md"]


WIRE = Origin(
    feed_url="https://wire.example/feed.xml",
    title="Wire & <Co>",
    id="urn:wire",
    home="https://wire.example/",
)
ATOM = "{http://www.w3.org/2005/Atom}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def test_a_republished_item_names_its_upstream_feed(config: Config) -> None:
    docs = build_documents([article(1, origin=WIRE), article(2)], config)
    rss = etree.fromstring(docs["feed.rss"].body)
    sources = {i.findtext("title"): i.find("source") for i in rss.iter("item")}
    assert sources["Post 2 & <friends>"] is None
    source = sources["Post 1 & <friends>"]
    assert source is not None
    assert (source.get("url"), source.text) == ("https://wire.example/feed.xml", "Wire & <Co>")
    atom = etree.fromstring(docs["feed.atom"].body)
    [entry, plain] = sorted(atom.iter(f"{ATOM}entry"), key=lambda e: e.findtext(f"{ATOM}title"))
    assert plain.find(f"{ATOM}source") is None
    [atom_source] = entry.findall(f"{ATOM}source")
    assert atom_source.findtext(f"{ATOM}id") == "urn:wire"
    assert atom_source.findtext(f"{ATOM}title") == "Wire & <Co>"
    assert atom_source.find(f"{ATOM}updated") is None
    links = {link.get("rel"): link.get("href") for link in atom_source.iter(f"{ATOM}link")}
    assert links == {"self": "https://wire.example/feed.xml", "alternate": "https://wire.example/"}
    parsed = feedparser.parse(docs["feed.rss"].body)
    assert {e.get("source", {}).get("href") for e in parsed.entries} == {
        None,
        "https://wire.example/feed.xml",
    }
    items = json.loads(docs["feed.json"].body)["items"]
    extension = next(i["_feedsvc"] for i in items if "_feedsvc" in i)
    assert extension["source"] == {
        "feed_url": "https://wire.example/feed.xml",
        "title": "Wire & <Co>",
        "home_page_url": "https://wire.example/",
        "id": "urn:wire",
    }
    assert extension["about"].startswith("https://")
    assert sum("_feedsvc" in i for i in items) == 1


def test_an_upstream_feed_without_title_id_or_date_is_named_by_its_url(config: Config) -> None:
    bare = Origin(feed_url="https://bare.example/rss", title="", id="https://bare.example/rss")
    docs = build_documents([article(1, origin=bare)], config)
    source = etree.fromstring(docs["feed.rss"].body).find("channel/item/source")
    assert source is not None
    assert (source.get("url"), source.text) == (
        "https://bare.example/rss",
        "https://bare.example/rss",
    )
    atom_source = etree.fromstring(docs["feed.atom"].body).find(f"{ATOM}entry/{ATOM}source")
    assert atom_source is not None
    assert [child.tag.removeprefix(ATOM) for child in atom_source] == ["id", "link"]
    item = json.loads(docs["feed.json"].body)["items"][0]
    assert item["_feedsvc"]["source"] == {"feed_url": "https://bare.example/rss"}


def test_an_articles_language_is_its_atom_xml_lang_and_json_language(config: Config) -> None:
    docs = build_documents([article(1, language="en-GB"), article(2)], config)
    atom = etree.fromstring(docs["feed.atom"].body)
    langs = {e.findtext(f"{ATOM}title"): e.get(XML_LANG) for e in atom.iter(f"{ATOM}entry")}
    assert langs == {"Post 1 & <friends>": "en-GB", "Post 2 & <friends>": None}
    assert atom.get(XML_LANG) == config.site.language  # the feed's stays the site's
    parsed = feedparser.parse(docs["feed.atom"].body)
    # feedparser: an element's language is the nearest xml:lang
    languages = {e.title: e.title_detail.language for e in parsed.entries}
    assert languages == {"Post 1 & <friends>": "en-GB", "Post 2 & <friends>": config.site.language}
    items = {i["title"]: i for i in json.loads(docs["feed.json"].body)["items"]}
    assert items["Post 1 & <friends>"]["language"] == "en-GB"
    assert "language" not in items["Post 2 & <friends>"]
    assert b"en-GB" not in docs["feed.rss"].body  # RSS has no per-item language


def test_lang_front_matter_reaches_the_atom_entry_and_the_json_item(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    write_article(tmp_path / "articles", "uk.md", title="Colour", date="2022-06-01", lang="en-GB")
    write_article(tmp_path / "articles", "bad.md", title="Bad", date="2022-06-02", lang="en GB")
    store = Store()
    Reloader(make_config(), store).reload()
    documents = store.current.documents
    atom = etree.fromstring(documents["feed.atom"].body)
    langs = {e.findtext(f"{ATOM}title"): e.get(XML_LANG) for e in atom.iter(f"{ATOM}entry")}
    assert langs == {"Colour": "en-GB", "Bad": None}
    items = json.loads(documents["feed.json"].body)["items"]
    assert {i["title"]: i.get("language") for i in items} == {"Colour": "en-GB", "Bad": None}
    [warning] = [p for p in store.current.problems if "lang" in p.message]
    assert warning.severity == "warning" and str(warning).startswith("articles/bad.md:4: ")
    assert "lang: not a BCP 47 language tag" in str(warning)


def test_nodes_seeded_without_their_index_line_get_it_once(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A generation written before each node's line in the index and OPML was saved
    with it: the first build that renders the pages makes every node's links once and
    exports the lines, so a restart from that export makes only its own feeds' links."""
    articles = [article(n, (("金融", f"Desk {n % 3}"),)) for n in range(9)]
    first = SiteRenderer(config)
    documents = first.build(articles).documents
    exported = first.export()
    before = {**exported, "nodes": {k: e[:3] for k, e in exported["nodes"].items()}}
    made: list[str] = []
    links = SitePages.links
    monkeypatch.setattr(
        SitePages,
        "links",
        lambda pages, node, *a: made.append(node.directory) or links(pages, node, *a),
    )
    edited = [*articles[:-1], replace(articles[-1], title="Post 8, edited")]

    seeded = SiteRenderer(config)
    seeded.seed(before, documents)
    again = seeded.build(edited)
    assert 0 < seeded.rendered < len(again.nodes)
    assert len(made) == len(again.nodes)  # the rendered ones' as they render, then the rest
    assert all(len(entry) == 4 for entry in seeded.export()["nodes"].values())

    made.clear()
    restarted = SiteRenderer(config)
    restarted.seed(seeded.export(), again.documents)
    restarted.build([*edited[:-1], replace(edited[-1], title="Post 8, edited twice")])
    assert len(made) == restarted.rendered > 0


@pytest.mark.parametrize(
    ("url", "media_type"),
    [
        ("https://img.example.cn/2024/cover.webp", "image/webp"),
        ("https://img.example.cn/2024/cover.JXL", "image/jxl"),
        ("https://img.example.cn/a.jpg?w=640#top", "image/jpeg"),
        ("https://img.example.cn/logo.svg", "image/svg+xml"),
        ("https://img.example.cn/clip.mp4", "application/octet-stream"),
        ("https://img.example.cn/render?id=7", "application/octet-stream"),
    ],
)
def test_an_images_media_type_is_the_same_on_every_machine(url: str, media_type: str) -> None:
    """By feedsvc's own table, not the system's mime.types (Python's has no .webp)."""
    assert image_type(url) == media_type

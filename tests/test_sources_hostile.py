"""Hostile and broken files: each is one `path:line: reason` problem; nothing else is lost."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedsvc.dates import load_timezone
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.sources import reading
from feedsvc.sources.directory import DirectorySource
from feedsvc.sources.fields import PostContext
from feedsvc.sources.post import parse_post_bytes
from feedsvc.store import Store

from conftest import write_article
from tests.support.hostile import HOSTILE, LAUGHS
from tests.support.posts import CONFIG, MTIME


def ctx(name: str) -> PostContext:
    return PostContext("articles", name, name, CONFIG.site, load_timezone("UTC"), MTIME)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file_is_one_located_problem(name: str) -> None:
    data, line, reason = HOSTILE[name]
    article, problems = parse_post_bytes(data, ctx(name))
    assert article is None
    [problem] = problems
    assert problem.severity == "error"
    assert (problem.path, problem.line) == (name, line), str(problem)
    assert reason in problem.message


def test_no_yaml_tag_is_ever_constructed() -> None:
    parse_post_bytes(HOSTILE["python-tag.md"][0], ctx("python-tag.md"))
    assert not Path("/tmp/feedsvc-pwned").exists()


def test_billion_laughs_is_refused_fast_and_small() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    parse_post_bytes(LAUGHS.encode(), ctx("laughs.md"))
    assert time.perf_counter() - started < 1.0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50_000


def test_inert_content_and_clean_text(config: Config) -> None:
    data = (
        b'---\ntitle: "<b>Bold</b> claim\\x07 & more"\nauthor: "Eve\\x0b"\n---\n'
        b'<p onmouseover="x()">Hi<script>alert(1)</script><iframe src="https://e.example/">'
        b'</iframe><a href="javascript:alert(1)">j</a><a href="vbscript:x">v</a>'
        b'<img src="data:image/png;base64,AAAA" onerror="x()"><style>*{}</style></p>\n'
    )
    article, problems = parse_post_bytes(data, ctx("inert.html"))
    assert problems[0].message.startswith("no date")
    assert article is not None
    assert article.title == "Bold claim & more"
    assert article.authors[0].name == "Eve"
    html = article.content_html.lower()
    for banned in (
        "script",
        "iframe",
        "onmouseover",
        "onerror",
        "javascript:",
        "vbscript:",
        "data:",
        "style",
        "alert",
    ):
        assert banned not in html, banned


def test_very_long_title_is_kept_whole() -> None:
    title = "长" * 20_000
    data = f"---\ntitle: {title}\ndate: 2022-01-01\n---\nx\n".encode()
    article, _ = parse_post_bytes(data, ctx("long.md"))
    assert article is not None and article.title == title


def test_whole_hostile_corpus_leaves_the_good_file_published(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config(sources=[{"name": "articles", "path": "articles", "max_bytes": 100_000}])
    root = tmp_path / "articles"
    for name, (data, _, _) in HOSTILE.items():
        (root / name).write_bytes(data)
    (root / "huge.md").write_bytes(b"---\ntitle: big\n---\n" + b"x" * 200_000)
    write_article(root, "good.md", title="Still here", date="2022-01-01")
    store = Store()
    summary = Reloader(config, store).reload()
    assert summary.articles == 1
    reported = {p.path.removeprefix("articles/") for p in store.current.problems}
    assert reported == {*HOSTILE, "huge.md"}
    assert b"Still here" in store.current.documents["feed.rss"].body


def test_huge_file_is_not_read_whole(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(sources=[{"name": "articles", "path": "articles", "max_bytes": 1000}])
    (tmp_path / "articles" / "huge.md").write_bytes(b"---\ntitle: x\n---\n" + b"y" * 10_000_000)
    source = DirectorySource(config.sources[0], config.site, tmp_path)
    started = time.perf_counter()
    [problem] = source.read().problems
    assert "over max_bytes 1000" in problem.message
    assert time.perf_counter() - started < 0.5


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
fields = st.sampled_from(
    [
        "title",
        "date",
        "updated",
        "lastmod",
        "author",
        "categories",
        "category",
        "tags",
        "keywords",
        "id",
        "slug",
        "permalink",
        "link",
        "draft",
        "published",
        "headimg",
        "images",
        "summary",
        "description",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(fields | st.text(max_size=8), yaml_values, max_size=8), st.text())
def test_random_front_matter_gives_an_article_or_a_problem(meta: dict, body: str) -> None:
    import yaml

    text = "---\n" + yaml.safe_dump(meta, allow_unicode=True) + "---\n" + body
    article, problems = parse_post_bytes(text.encode("utf-8", "surrogatepass"), ctx("p.md"))
    assert article is not None or problems or meta.get("draft") or meta.get("published") is False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_give_an_article_or_a_problem(data: bytes) -> None:
    article, problems = parse_post_bytes(data, ctx("r.txt"))
    assert article is not None or problems or b"draft" in data or b"published" in data


def test_check_prints_every_hostile_file_with_its_line(
    make_config: Callable[..., Config], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from feedsvc.cli import main

    config = make_config()
    for name, (data, _, _) in HOSTILE.items():
        (tmp_path / "articles" / name).write_bytes(data)
    assert main(["check", "--config", config.path]) == 1
    out = capsys.readouterr().out
    for name, (_, line, _) in HOSTILE.items():
        assert f"articles/{name}:{line}: " in out


# markdown-it.rs panics on this text (found by the hypothesis test above).
PANICS_MARKDOWN = "\nÛ[n\U000c086e\U000cf7e9\x94\xad}`îñ\x81\U000b27f1"


def test_a_body_the_markdown_renderer_fails_on_is_published_as_plain_text() -> None:
    text = f"---\ntitle: 渲染失败\ndate: 2024-01-01\n---\n{PANICS_MARKDOWN}\n\nSecond <b>para</b>."
    article, problems = parse_post_bytes(text.encode("utf-8"), ctx("p.md"))
    assert article is not None and article.title == "渲染失败"
    assert "<p>Second &lt;b&gt;para&lt;/b&gt;.</p>" in article.content_html
    assert [(p.line, p.severity) for p in problems] == [(5, "warning")]
    assert "published as plain text" in problems[0].message


def test_a_panic_in_a_rust_extension_is_one_file_s_problem(
    make_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class PanicException(BaseException):  # what pyo3 raises for a Rust panic
        pass

    write_article(tmp_path / "articles", "good.md", title="Good", date="2024-01-01")
    write_article(tmp_path / "articles", "bad.md", title="Bad", date="2024-01-02")
    real = reading.parse_post_bytes

    def panicking(data: bytes, ctx: PostContext) -> object:
        if ctx.relpath == "bad.md":
            raise PanicException("index out of bounds")
        return real(data, ctx)

    monkeypatch.setattr(reading, "parse_post_bytes", panicking)
    reloader = Reloader(make_config(), Store())
    summary = reloader.reload()
    assert summary.articles == 1
    [problem] = reloader.store.current.problems
    assert problem.path.endswith("bad.md") and "index out of bounds" in problem.message

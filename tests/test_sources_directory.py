import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedsvc.errors import SourceError
from feedsvc.model import Author
from feedsvc.settings import Config
from feedsvc.sources.directory import DirectorySource

from conftest import SAMPLE_SHAPED, write_article


def source_for(config: Config) -> DirectorySource:
    return DirectorySource(config.sources[0], config.site, Path(config.path).parent)


def test_sample_shaped_post_gives_its_fields(config: Config, articles_dir: Path) -> None:
    (articles_dir / "2021-10-24-brokerage-day.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    result = source_for(config).read()
    assert result.problems == ()
    [article] = result.articles
    assert article.title == "钱塘证券首届“客户服务日”启幕：以数字化重塑财富管理"
    assert article.published == datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)
    assert article.updated == article.published
    assert article.authors == (Author("财联社"),)
    assert article.categories == (("金融", "财联社", "深度"),)
    assert article.content_html.startswith("<div>")
    assert "<strong>财联社（杭州，记者 林晓）讯</strong>" in article.content_html
    # site.timezone is Asia/Shanghai: 11:30 UTC is 19:30 on the 24th there.
    assert article.link == "http://127.0.0.1:8080/2021/10/24/2021-10-24-brokerage-day/"
    assert article.id.startswith("urn:uuid:")


def test_markdown_body_is_rendered_with_tables(config: Config, articles_dir: Path) -> None:
    body = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ new"
    write_article(articles_dir, "post.md", body, title="T", date="2022-03-14")
    [article] = source_for(config).read().articles
    assert "<table>" in article.content_html
    assert "<s>old</s>" in article.content_html
    assert "<h1>Title</h1>" in article.content_html


def test_broken_file_is_skipped_with_path_and_line(config: Config, articles_dir: Path) -> None:
    write_article(articles_dir, "good.md", title="Good", date="2022-01-01")
    (articles_dir / "bad.md").write_text("---\ntitle: ok\ndate: [unclosed\n---\nbody\n", "utf-8")
    result = source_for(config).read()
    assert [a.title for a in result.articles] == ["Good"]
    [problem] = result.problems
    assert str(problem).startswith("articles/bad.md:4: invalid YAML front matter")


def test_wrong_field_type_is_a_problem_on_its_line(config: Config, articles_dir: Path) -> None:
    (articles_dir / "bad.md").write_text("---\ntitle: ok\ndate: 2021-13-45\n---\nx\n", "utf-8")
    [problem] = source_for(config).read().problems
    assert str(problem).startswith("articles/bad.md:3: date:")


def test_bom_and_crlf_are_tolerated(config: Config, articles_dir: Path) -> None:
    text = "\ufeff---\r\ntitle: 带 BOM 的文章\r\ndate: 2022-01-01\r\n---\r\n\r\n正文\r\n"
    (articles_dir / "bom.md").write_bytes(text.encode("utf-8"))
    [article] = source_for(config).read().articles
    assert article.title == "带 BOM 的文章"
    assert "\r" not in article.content_html


def test_gbk_file_is_read_as_gb18030_with_a_warning(config: Config, articles_dir: Path) -> None:
    text = "---\ntitle: 央行降准\ndate: 2021-12-06\n---\n正文\n"
    (articles_dir / "gbk.md").write_bytes(text.encode("gbk"))
    result = source_for(config).read()
    assert [a.title for a in result.articles] == ["央行降准"]
    assert [str(p) for p in result.problems] == ["articles/gbk.md:2: not UTF-8; read as GB18030"]


def test_text_in_neither_encoding_is_a_problem(config: Config, articles_dir: Path) -> None:
    (articles_dir / "latin.md").write_bytes(b"---\ntitle: caf\xe9\n---\nbody\n")
    [problem] = source_for(config).read().problems
    assert str(problem) == "articles/latin.md:2: neither UTF-8 nor GB18030 text"


def test_file_over_max_bytes_is_refused(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(sources=[{"name": "articles", "path": "articles", "max_bytes": 100}])
    write_article(tmp_path / "articles", "big.md", "x" * 200, title="Big")
    [problem] = source_for(config).read().problems
    assert "over max_bytes 100" in str(problem)


def test_drafts_hidden_and_backup_files_are_not_published(
    config: Config, articles_dir: Path
) -> None:
    write_article(articles_dir, "live.md", title="Live", date="2022-01-01")
    write_article(articles_dir, "draft.md", title="Draft", draft=True)
    write_article(articles_dir, "unpub.md", title="Unpublished", published=False)
    write_article(articles_dir, "_drafts/wip.md", title="WIP")
    write_article(articles_dir, ".hidden.md", title="Hidden")
    write_article(articles_dir, "live.md~", title="Backup")
    write_article(articles_dir, "notes.rst", title="Not included")
    assert [a.title for a in source_for(config).read().articles] == ["Live"]


def test_include_and_exclude_globs(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config(
        sources=[
            {
                "name": "articles",
                "path": "articles",
                "include": ["news/**/*.md"],
                "exclude": ["news/old/*"],
            }
        ]
    )
    root = tmp_path / "articles"
    write_article(root, "news/a.md", title="A", date="2022-01-01")
    write_article(root, "news/2022/b.md", title="B", date="2022-01-02")
    write_article(root, "news/old/c.md", title="C", date="2022-01-03")
    write_article(root, "blog/d.md", title="D", date="2022-01-04")
    assert sorted(a.title for a in source_for(config).read().articles) == ["A", "B"]


def test_unchanged_file_is_not_read_again(config: Config, articles_dir: Path) -> None:
    path = write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    write_article(articles_dir, "b.md", title="B", date="2022-01-02")
    source = source_for(config)
    source.read()
    assert source.reads == 2
    source.read()
    assert source.reads == 2
    write_article(articles_dir, "a.md", title="A, edited", date="2022-01-01")
    os.utime(path, ns=(1, 1_700_000_000_000_000_000))
    titles = sorted(a.title for a in source.read().articles)
    assert source.reads == 3
    assert titles == ["A, edited", "B"]


def test_missing_date_falls_back_to_mtime_with_a_warning(
    config: Config, articles_dir: Path
) -> None:
    path = write_article(articles_dir, "undated.md", title="Undated")
    os.utime(path, (1_650_000_000, 1_650_000_000))
    result = source_for(config).read()
    [article] = result.articles
    assert article.published == datetime.fromtimestamp(1_650_000_000, tz=UTC)
    [warning] = result.problems
    assert warning.severity == "warning" and "no date" in warning.message


def test_id_is_stable_across_title_and_permalink_changes(
    make_config: Callable[..., Config], articles_dir: Path
) -> None:
    write_article(articles_dir, "a.md", title="First title", date="2022-01-01")
    first = source_for(make_config()).read().articles[0]
    write_article(articles_dir, "a.md", title="Second title", date="2022-01-01")
    second = source_for(make_config(site={"permalink": "posts/:slug.html"})).read().articles[0]
    assert first.id == second.id
    assert second.link == "http://127.0.0.1:8080/posts/a.html"


def test_front_matter_id_overrides_the_derived_id(config: Config, articles_dir: Path) -> None:
    write_article(articles_dir, "a.md", title="A", date="2022-01-01", id="tag:example.com,2022:a")
    write_article(articles_dir, "b.md", title="B", date="2022-01-01", guid="legacy-42")
    by_title = {a.title: a for a in source_for(config).read().articles}
    assert by_title["A"].id == "tag:example.com,2022:a"
    assert by_title["B"].id.startswith("urn:uuid:")


def test_missing_folder_is_a_source_error(config: Config, articles_dir: Path) -> None:
    articles_dir.rmdir()
    with pytest.raises(SourceError, match="missing"):
        source_for(config).read()


def test_symlink_outside_the_root_is_not_read(
    config: Config, articles_dir: Path, tmp_path: Path
) -> None:
    outside = write_article(tmp_path / "secret", "passwd.md", title="Secret", date="2022-01-01")
    (articles_dir / "link.md").symlink_to(outside)
    (articles_dir / "loop").symlink_to(articles_dir)
    write_article(articles_dir, "real.md", title="Real", date="2022-01-01")
    assert [a.title for a in source_for(config).read().articles] == ["Real"]


def test_unreadable_file_keeps_its_last_good_article(
    config: Config, articles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_article(articles_dir, "a.md", title="Kept", date="2022-01-01")
    source = source_for(config)
    assert [a.title for a in source.read().articles] == ["Kept"]
    os.utime(path, ns=(1, 1_900_000_000_000_000_000))
    real_open = open

    def failing_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith("a.md"):
            raise OSError(5, "Input/output error")
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", failing_open)
    result = source.read()
    assert [a.title for a in result.articles] == ["Kept"]
    assert [str(p) for p in result.problems] == ["articles/a.md:1: cannot read: Input/output error"]
    monkeypatch.undo()
    result = source.read()  # retried, and clean again
    assert [a.title for a in result.articles] == ["Kept"] and result.problems == ()


def test_given_the_changed_files_a_read_looks_at_those_alone(
    config: Config, articles_dir: Path
) -> None:
    source = source_for(config)
    kept = write_article(articles_dir, "kept.md", title="Kept", date="2022-01-01")
    edited = write_article(articles_dir, "a/edited.md", title="Before", date="2022-01-02")
    gone = write_article(articles_dir, "gone.md", title="Gone", date="2022-01-03")
    assert len(source.read(set()).articles) == 3  # the first read scans, whatever it is told
    real = Path(os.path.realpath(articles_dir))
    write_article(articles_dir, "a/edited.md", title="After", date="2022-01-02")
    gone.unlink()
    added = write_article(articles_dir, "new.md", title="New", date="2022-01-04")
    hidden = write_article(articles_dir, ".hidden.md", title="Hidden", date="2022-01-05")
    backup = write_article(articles_dir, "new.md~", title="Backup", date="2022-01-05")
    unseen = write_article(articles_dir, "unseen.md", title="Unseen", date="2022-01-06")
    kept.write_text(kept.read_text(encoding="utf-8").replace("Kept", "Kept, edited unseen"))
    told = {str(real / p.relative_to(articles_dir)) for p in (edited, gone, added, hidden, backup)}
    told.add("/elsewhere/outside.md")  # not under the folder: ignored
    reads = source.reads
    titles = sorted(a.title for a in source.read(told).articles)
    # What it was told of is read; what no watch reported waits for the next scan.
    assert titles == ["After", "Kept", "New"]
    assert source.reads == reads + 2
    assert "Unseen" in {a.title for a in source.read(None).articles}
    assert unseen.exists()


def test_an_empty_title_is_published_under_the_file_name_with_a_warning(
    config: Config, articles_dir: Path
) -> None:
    (articles_dir / "2022-05-01-quiet-day.md").write_text(
        "---\ndate: 2022-05-01\ntitle: ''\n---\nBody.\n", encoding="utf-8"
    )
    (articles_dir / "named.md").write_text(
        "---\ntitle: Named\ndate: 2022-05-02\n---\nBody.\n", encoding="utf-8"
    )
    result = DirectorySource(config.sources[0], config.site, articles_dir.parent).read()
    assert sorted(a.title for a in result.articles) == ["2022-05-01-quiet-day", "Named"]
    [warning] = result.problems
    assert str(warning) == "articles/2022-05-01-quiet-day.md:3: title: empty, the file name is used"
    assert warning.severity == "warning"


def test_the_first_read_takes_a_listing_made_ahead_and_what_changed_since(
    config: Config, articles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restart: another process lists the folder while the builder loads its state; the
    catch-up takes that listing for its scan, and the files a watch saw change after it."""
    write_article(articles_dir, "kept.md", title="Kept", date="2022-01-01")
    down = write_article(articles_dir, "down.md", title="Before", date="2022-01-02")
    later = write_article(articles_dir, "later.md", title="Before", date="2022-01-03")
    gone = write_article(articles_dir, "gone.md", title="Gone", date="2022-01-04")
    before = source_for(config)
    before.read()
    write_article(articles_dir, "down.md", title="Edited while down", date="2022-01-02")
    os.utime(down, ns=(1, 1_700_000_000_000_000_000))
    undated = write_article(articles_dir, "undated.md", title="Undated")  # dated by its mtime
    os.utime(undated, (1_650_000_000, 1_650_000_000))
    source = source_for(config)
    source.import_cache(before.export_cache())
    listed = source.listing()
    # After the listing, seen by the watch: an edit, a removal and a new file.
    write_article(articles_dir, "later.md", title="Edited after", date="2022-01-03")
    os.utime(later, ns=(1, 1_600_000_000_000_000_000))
    gone.unlink()
    added = write_article(articles_dir, "new.md", title="New", date="2022-01-05")
    real = Path(os.path.realpath(articles_dir))
    told = {str(real / p.name) for p in (later, gone, added)}
    source.expect(listed)

    def no_scan(_: DirectorySource) -> None:
        raise AssertionError("walked the folder although a listing was handed over")

    monkeypatch.setattr(DirectorySource, "_walk", no_scan)
    read = {a.title: a for a in source.read(told).articles}
    titles = sorted(read)
    assert titles == ["Edited after", "Edited while down", "Kept", "New", "Undated"]
    assert source.reads == 4  # the four changed files alone were parsed
    assert read["Undated"].published == datetime.fromtimestamp(1_650_000_000, tz=UTC)
    monkeypatch.undo()
    assert sorted(a.title for a in source.read(None).articles) == titles  # a scan agrees


def test_a_listing_is_not_taken_without_word_of_what_changed_since(
    config: Config, articles_dir: Path
) -> None:
    """No watch (or one that missed events): the first read scans, whatever was listed."""
    write_article(articles_dir, "a.md", title="A", date="2022-01-01")
    source = source_for(config)
    listed = source.listing()
    write_article(articles_dir, "b.md", title="B", date="2022-01-02")
    source.expect(listed)
    assert sorted(a.title for a in source.read(None).articles) == ["A", "B"]

"""`feedsvc publish` against a real S3-compatible store (SeaweedFS on loopback)."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from feedsvc.cli import main
from feedsvc.config import Config
from feedsvc.reload.reloader import Reloader
from feedsvc.state.ledger import FILE as LEDGER
from feedsvc.state.ledger import Ledger
from feedsvc.store import Store

from conftest import PublishingConfig, bucket_of, eventually, write_article, write_corpus
from tests.support.commands import ROOT, run_cli
from tests.support.seaweed import SeaweedFS


def publish(config: Config, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    code = main(["publish", "--config", config.path, "--quiet", *extra])
    return code, capsys.readouterr().out.strip().splitlines()[-1]


def built(config: Config) -> dict[str, bytes]:
    """What `feedsvc build` writes now: with the ids and kept feeds of the state's ledger."""
    state = Path(config.state.path)
    ledger = Ledger.open(state, repair=False)[0] if (state / LEDGER).exists() else None
    reloader = Reloader(config, Store(), ledger=ledger, record=False)
    reloader.reload()
    if ledger is not None:
        ledger.close()
    return {path: doc.body for path, doc in reloader.store.current.documents.items()}


def test_first_publish_equals_build_byte_for_byte(
    publishing: PublishingConfig,
    articles_dir: Path,
    seaweed: SeaweedFS,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = publishing()
    assert main(["build", "--config", config.path, "--out", str(tmp_path / "out")]) == 0
    files = {
        str(p.relative_to(tmp_path / "out")): p.read_bytes()
        for p in (tmp_path / "out").rglob("*")
        if p.is_file() and p.suffix != ".gz"
    }
    code, line = publish(config, capsys)
    assert code == 0
    assert line.startswith(f"s3://{bucket_of(config)}/site/: {len(files)} uploaded, 0 unchanged")
    assert seaweed.objects(bucket_of(config), "site/") == files
    client = seaweed.client()
    feed = client.head_object(Bucket=bucket_of(config), Key="site/categories/金融/feed.atom")
    assert feed["ContentType"] == "application/atom+xml; charset=utf-8"
    assert feed["CacheControl"] == (
        "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    )
    assert "ContentEncoding" not in feed
    index = client.head_object(Bucket=bucket_of(config), Key="site/index.html")
    assert index["ContentType"] == "text/html; charset=utf-8"
    assert index["CacheControl"] == "public, max-age=300"


def test_publish_without_changes_uploads_nothing(
    publishing: PublishingConfig, articles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_corpus(articles_dir)
    config = publishing()
    assert publish(config, capsys)[0] == 0
    code, line = publish(config, capsys)
    assert code == 0
    documents = len(built(config))
    assert f": 0 uploaded, {documents} unchanged, 0 deleted, 0 bytes" in line


def test_one_edit_uploads_only_the_documents_that_list_it(
    publishing: PublishingConfig,
    articles_dir: Path,
    seaweed: SeaweedFS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = publishing()
    publish(config, capsys)
    before = built(config)
    # Same size, other bytes: a size+mtime comparison would miss it.
    post = articles_dir / "post-3.md"
    post.write_text(post.read_text().replace("Body of post 3", "Body of post X"))
    after = built(config)
    changed = {path for path in after if after[path] != before[path]}
    assert "categories/金融/desk-0/feed.atom" in changed
    assert "categories/Engineering/feed.atom" not in changed  # post 3 is not in it
    code, line = publish(config, capsys)
    assert code == 0
    assert f": {len(changed)} uploaded, {len(after) - len(changed)} unchanged, 0 deleted" in line
    assert seaweed.objects(bucket_of(config), "site/") == after


def test_deleted_article_deletes_the_feeds_only_it_was_in(
    publishing: PublishingConfig,
    articles_dir: Path,
    seaweed: SeaweedFS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    write_article(articles_dir, "lonely.md", title="Lonely", date="2022-02-01", tags=["lonely"])
    config = publishing()
    publish(config, capsys)
    assert "tags/lonely/feed.rss" in seaweed.objects(bucket_of(config), "site/")
    (articles_dir / "lonely.md").unlink()
    code, line = publish(config, capsys)
    assert code == 0
    # The emptied tag stays, an empty feed, as a server keeps it (README: Ids) ...
    assert ", 0 deleted," in line
    assert b"<item>" not in seaweed.objects(bucket_of(config), "site/")["tags/lonely/feed.rss"]
    # ... until an operator forgets it: then its rss, atom, json and html view go.
    assert main(["forget", "--config", config.path, "tags/lonely"]) == 0
    code, line = publish(config, capsys)
    assert code == 0
    assert ", 4 deleted," in line
    assert "tags/lonely/feed.rss" not in seaweed.objects(bucket_of(config), "site/")


def test_gzip_encoding_stores_gzip_bytes_with_content_encoding(
    publishing: PublishingConfig,
    articles_dir: Path,
    seaweed: SeaweedFS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = publishing(publish={"encoding": "gzip"})
    assert publish(config, capsys)[0] == 0
    stored = seaweed.objects(bucket_of(config), "site/")
    assert {path: gzip.decompress(body) for path, body in stored.items()} == built(config)
    head = seaweed.client().head_object(Bucket=bucket_of(config), Key="site/feed.json")
    assert head["ContentEncoding"] == "gzip"


def test_dry_run_changes_nothing(
    publishing: PublishingConfig,
    articles_dir: Path,
    seaweed: SeaweedFS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = publishing()
    code, line = publish(config, capsys, "--dry-run")
    assert code == 0
    assert f"{len(built(config))} would upload" in line
    assert seaweed.objects(bucket_of(config), "site/") == {}


def test_store_killed_mid_publish_then_a_publish_completes(
    publishing: PublishingConfig,
    articles_dir: Path,
    seaweed: SeaweedFS,
    aws_env: dict[str, str],
) -> None:
    write_corpus(articles_dir, count=20)
    write_article(articles_dir, "old.md", title="Old", date="2020-01-01", tags=["old"])
    config = publishing(feeds={"limit": 100})
    bucket = bucket_of(config)
    # A first publish, then a change that adds feeds and removes some: the interrupted
    # publish has uploads and deletions to do.
    first = run_publish(config)
    assert first.returncode == 0, first.stderr
    (articles_dir / "old.md").unlink()
    for n in range(150):
        write_article(
            articles_dir, f"new-{n}.md", title=f"New {n}", date="2023-01-01", tags=[f"n{n}"]
        )
    command = [sys.executable, "-m", "feedsvc.cli", "publish", "--config", config.path, "--quiet"]
    client = seaweed.client()
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) as running:
        new = [f"site/tags/n{n}/feed.rss" for n in range(0, 150, 10)]
        assert eventually(lambda: any(_has(client, bucket, key) for key in new), 60)
        seaweed.stop()
        _, stderr = running.communicate(timeout=120)
    seaweed.start()
    assert running.returncode == 1
    assert stderr.count("\n") == 1  # one line, no traceback
    assert stderr.startswith(f"feedsvc: s3://{bucket}/site/: cannot reach {seaweed.endpoint}")
    objects = seaweed.objects(bucket, "site/")
    assert "tags/old/feed.rss" in objects  # deletions wait for every upload
    again = run_publish(config)
    assert again.returncode == 0, again.stderr
    assert seaweed.objects(bucket, "site/") == built(config)


def run_publish(config: Config) -> subprocess.CompletedProcess[str]:
    return run_cli("publish", "--config", config.path, timeout=300)


def _has(client: object, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True


def test_new_max_age_puts_every_object_again_with_its_cache_control(
    publishing: PublishingConfig,
    make_config: Callable[..., Config],
    articles_dir: Path,
    seaweed: SeaweedFS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = publishing()
    publish(config, capsys)
    assert config.publish.url is not None
    again = make_config(
        publish={"url": config.publish.url, "endpoint_url": seaweed.endpoint},
        server={"cache_max_age": 60},
    )
    code, line = publish(again, capsys)
    assert code == 0
    assert f": {len(built(again))} uploaded, 0 unchanged" in line
    head = seaweed.client().head_object(Bucket=bucket_of(again), Key="site/feeds.opml")
    assert head["CacheControl"] == "public, max-age=60"

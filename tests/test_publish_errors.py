"""`feedsvc publish` failures: one clear line on stderr and the exit status that says whose
fault it is (2: a setting, 1: the store), against a real SeaweedFS."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from feedsvc.cli import main
from feedsvc.config import Config

from conftest import PublishingConfig, bucket_of, write_corpus
from tests.support.seaweed import SeaweedFS


def test_wrong_credentials_exit_2_with_one_line(
    publishing: PublishingConfig,
    articles_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = publishing()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    assert main(["publish", "--config", config.path, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"feedsvc: s3://{bucket_of(config)}/site/: the store refused the credentials "
        "(SignatureDoesNotMatch)"
    )


def test_missing_bucket_exits_2_with_one_line(
    make_config: Callable[..., Config],
    seaweed: SeaweedFS,
    aws_env: dict[str, str],
    articles_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = make_config(publish={"url": "s3://no-such-bucket/x", "endpoint_url": seaweed.endpoint})
    assert main(["publish", "--config", config.path, "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        "feedsvc: s3://no-such-bucket/x/: the bucket does not exist"
    )


def test_unreachable_endpoint_exits_1_with_one_line(
    config: Config, aws_env: dict[str, str], articles_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_corpus(articles_dir)
    closed = "http://127.0.0.1:9"  # discard: nothing listens there
    command = ["publish", "--config", config.path, "--to", "s3://b/p", "--endpoint-url", closed]
    assert main([*command, "--quiet"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"feedsvc: s3://b/p/: cannot reach {closed} to list the prefix")
    assert "\n" not in error


def test_bucket_root_only_when_asked_for(
    config: Config, aws_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", "--config", config.path, "--to", "s3://bucket"]) == 2
    assert "s3://bucket/ for the whole bucket" in capsys.readouterr().err


def test_missing_credentials_exit_2_with_one_line(
    publishing: PublishingConfig,
    articles_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_corpus(articles_dir)
    config = publishing()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert main(["publish", "--config", config.path, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"feedsvc: s3://{bucket_of(config)}/site/: no credentials")
    assert "\n" not in error

"""Golden feeds: the repository's sample articles give these exact bytes (`make golden`)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedsvc.config import load_config
from feedsvc.refresh import Refresher
from feedsvc.store import Store

ROOT = Path(__file__).parent.parent
GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def documents() -> dict[str, bytes]:
    store = Store()
    Refresher(load_config(ROOT / "config.yaml"), store, now=lambda: NOW).refresh()
    return {path: doc.body for path, doc in store.current.documents.items()}


def test_golden_files_match_the_sample_feeds_byte_for_byte(documents: dict[str, bytes]) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        for old in GOLDEN.rglob("*"):
            if old.is_file():
                old.unlink()
        for path, body in documents.items():
            (GOLDEN / path).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / path).write_bytes(body)
    expected = {
        str(p.relative_to(GOLDEN)): p.read_bytes() for p in GOLDEN.rglob("*") if p.is_file()
    }
    assert sorted(expected) == sorted(documents)
    for path, body in documents.items():
        assert body == expected[path], f"{path} differs from tests/golden; run make golden"

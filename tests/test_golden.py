"""Golden feeds: the repository's sample articles give these exact bytes (`make golden`).

Two configs over the same articles: the repository's `config.yaml` (tests/golden) and
`tests/data/audience/config.yaml` (tests/golden-audience: monthly archives of the site
and of every author, overrides, and a site feed cut by its byte budget).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedsvc.config import load_config
from feedsvc.reload.reloader import Reloader
from feedsvc.store import Store

ROOT = Path(__file__).parent.parent
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CASES = {
    "golden": ROOT / "config.yaml",
    "golden-audience": ROOT / "tests/data/audience/config.yaml",
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> tuple[Path, dict[str, bytes]]:
    store = Store()
    Reloader(load_config(CASES[request.param]), store, now=lambda: NOW).reload()
    documents = {path: doc.body for path, doc in store.current.documents.items()}
    return Path(__file__).parent / request.param, documents


def test_golden_files_match_the_sample_feeds_byte_for_byte(
    case: tuple[Path, dict[str, bytes]],
) -> None:
    golden, documents = case
    if os.environ.get("UPDATE_GOLDEN"):
        for old in golden.rglob("*"):
            if old.is_file():
                old.unlink()
        for path, body in documents.items():
            (golden / path).parent.mkdir(parents=True, exist_ok=True)
            (golden / path).write_bytes(body)
    expected = {
        str(p.relative_to(golden)): p.read_bytes() for p in golden.rglob("*") if p.is_file()
    }
    assert sorted(expected) == sorted(documents)
    for path, body in documents.items():
        assert body == expected[path], f"{path} differs from {golden}; run make golden"

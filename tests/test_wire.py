"""Snapshots crossing from the builder process to workers arrive whole, and pieces go once."""

from __future__ import annotations

import io
import pickle
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from feedsvc.config import Config
from feedsvc.model import Snapshot
from feedsvc.refresh import Refresher
from feedsvc.store import Store
from feedsvc.wire import BATCH, BATCH_SIZE, END, HEAD, PIECES, Receiver, Sender

from conftest import write_article

TOPICS = ["宏观", "公司", "Markets", "Policy"]


def served(snapshot: Snapshot) -> dict[str, object]:
    """Everything a worker answers with, by path: bytes, validators and header lists."""
    return {
        key: (
            resource.document.gzip_body,
            resource.identity.headers,
            resource.gzip.headers if resource.gzip else None,
            resource.browser_gzip.not_modified if resource.browser_gzip else None,
        )
        for key, resource in snapshot.resources.items()
    }


def distinct_pieces(snapshot: Snapshot) -> int:
    return len({id(piece) for doc in snapshot.documents.values() for piece in doc.gzip_chunks})


def test_any_history_of_edits_arrives_whole_with_each_piece_once(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config()
    folder = tmp_path / "articles"
    pick = random.Random(20261125)
    names: list[str] = []
    refresher = Refresher(config, Store())
    sender, receiver = Sender(), Receiver()
    for step in range(25):
        for _ in range(pick.randint(1, 6)):
            action = pick.choice(["add", "add", "edit", "delete"]) if names else "add"
            if action == "delete":
                (folder / names.pop(pick.randrange(len(names)))).unlink()
                continue
            name = pick.choice(names) if action == "edit" else f"post-{step}-{len(names)}.md"
            if action == "add":
                names.append(name)
            write_article(
                folder,
                name,
                body=f"第{step}版 {pick.random()}",
                title=f"{name} {step}",
                date=f"2026-0{pick.randint(1, 9)}-1{pick.randint(0, 9)}",
                categories=[pick.choice(TOPICS), pick.choice(TOPICS)],
                tags=pick.sample(TOPICS, 2),
            )
        refresher.refresh()
        built = refresher.store.current
        change = list(sender.advance(built, refresher.config)())
        # A worker joins with a whole snapshot and follows the changes from there.
        received = receiver.apply(change if step else list(sender.whole()))
        assert served(received.snapshot) == served(built)
        assert dict(received.snapshot.documents).keys() == dict(built.documents).keys()
        assert received.snapshot.generation == built.generation
        assert received.config == refresher.config
        # Pieces shared between feeds stay shared, and none outlives every document.
        assert receiver.piece_count == distinct_pieces(received.snapshot) == distinct_pieces(built)
        # A worker that starts now gets the same snapshot from nothing.
        late = Receiver().apply(sender.whole())
        assert served(late.snapshot) == served(built)


def test_a_change_sends_only_new_pieces_in_small_messages(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config()
    folder = tmp_path / "articles"
    for n in range(40):
        write_article(folder, f"p{n}.md", body="正文。" * 200, title=f"P{n}", date="2026-01-01")
    refresher = Refresher(config, Store())
    refresher.refresh()
    sender, receiver = Sender(), Receiver()
    sender.advance(refresher.store.current, refresher.config)
    whole = list(sender.whole())
    receiver.apply(whole)
    write_article(folder, "p3.md", body="改过的正文。" * 200, title="P3", date="2026-01-01")
    refresher.refresh()
    change = list(sender.advance(refresher.store.current, refresher.config)())
    kinds = [kind for kind, _ in change]
    assert kinds[0] == HEAD and kinds[-1] == END and set(kinds[1:-1]) <= {PIECES, BATCH}
    head = pickle.loads(change[0][1])
    fresh = [piece for kind, data in change if kind == PIECES for piece in pickle.loads(data)]
    # One article changed: its piece in each format, and the heads and tails of the feeds
    # listing it, are new; the pieces they replace are forgotten.
    assert len(fresh) == len(head.dropped) > 0
    assert sum(len(data) for _, data in change) < sum(len(data) for _, data in whole) / 5
    assert head.config is None  # an unchanged config is not sent again
    batches = [peek(data) for kind, data in change if kind == BATCH]
    assert batches and all(len(batch) <= BATCH_SIZE for batch in batches)
    receiver.apply(change)
    assert served(receiver.received.snapshot) == served(refresher.store.current)  # type: ignore[union-attr]


def peek(batch: bytes) -> dict[str, object]:
    """A batch of resources, with its pieces left as their numbers."""

    class Peek(pickle.Unpickler):
        def persistent_load(self, number: object) -> object:
            return number

    loaded: dict[str, object] = Peek(io.BytesIO(batch)).load()
    return loaded


def test_a_change_before_any_whole_snapshot_is_refused() -> None:
    sender = Sender()
    sender.advance(Snapshot(generation=1), None)  # type: ignore[arg-type]
    change = sender.advance(Snapshot(generation=2), None)()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="before any whole"):
        Receiver().apply(change)
    with pytest.raises(ValueError, match="outside a snapshot"):
        Receiver().take(END, b"")

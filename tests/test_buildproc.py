"""The builder's side and the workers' links, in one process over a real Unix socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from feedsvc import buildproc, wire
from feedsvc.buildproc import BuilderLink, BuildServer
from feedsvc.config import Config
from feedsvc.model import Snapshot
from feedsvc.refresh import Refresher
from feedsvc.store import Store
from feedsvc.wire import Receiver

from conftest import write_article


def served(snapshot: Snapshot) -> dict[str, tuple[bytes, str]]:
    return {k: (r.document.gzip_body, r.gzip.etag) for k, r in snapshot.resources.items() if r.gzip}


def start_builder(config: Config, path: Path) -> BuildServer:
    builder = BuildServer(Refresher(config, Store()))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    threading.Thread(target=builder.accept, args=(listener,), daemon=True).start()
    return builder


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("keep_bytes", [buildproc.KEEP_BYTES, 200])
def test_every_worker_follows_every_reload_byte_for_byte(
    make_config: Callable[..., Config],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    keep_bytes: int,
) -> None:
    # 200 bytes: every change is too large to keep, so it is made again for each worker.
    monkeypatch.setattr(buildproc, "KEEP_BYTES", keep_bytes)
    folder = tmp_path / "articles"
    for n in range(12):
        write_article(
            folder, f"p{n}.md", title=f"第{n}篇", date=f"2026-01-{n + 1:02d}", tags=["宏观"]
        )
    builder = start_builder(make_config(), tmp_path / "builder.sock")
    early = BuilderLink(str(tmp_path / "builder.sock"), Store())
    # A worker that connects before the first build waits for it...
    starting = threading.Thread(target=early.start)
    starting.start()
    builder.reload()
    starting.join(10)
    assert served(early.store.current) == served(builder.refresher.store.current)
    # ...and one that connects later is sent the snapshot whole.
    late = BuilderLink(str(tmp_path / "builder.sock"), Store())
    late.start()
    for step in range(3):
        write_article(
            folder, f"p{step}.md", body=f"改稿 {step}", title=f"第{step}篇", date="2026-02-01"
        )
        (folder / f"p{11 - step}.md").unlink()
        builder.reload()
        built = builder.refresher.store.current
        for link in (early, late):
            wanted = built.generation
            wait_until(lambda link=link, wanted=wanted: link.store.current.generation == wanted)
            assert served(link.store.current) == served(built)
            assert link.receiver.piece_count == len(
                {id(p) for d in built.documents.values() for p in d.gzip_chunks}
            )


def test_a_reload_request_is_answered_after_the_worker_serves_its_result(
    make_config: Callable[..., Config], tmp_path: Path
) -> None:
    folder = tmp_path / "articles"
    write_article(folder, "a.md", title="Before", date="2026-01-01")
    builder = start_builder(make_config(), tmp_path / "builder.sock")
    builder.reload()
    link = BuilderLink(str(tmp_path / "builder.sock"), Store())
    link.start()
    write_article(folder, "b.md", title="Asked for", date="2026-01-02")
    summary = link.refresh()
    assert summary.articles == 2
    assert b"Asked for" in link.store.current.documents["feed.atom"].body


def test_a_change_that_fails_on_either_side_ends_in_a_whole_snapshot(
    make_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "articles"
    for n in range(6):
        write_article(folder, f"p{n}.md", title=f"P{n}", date=f"2026-01-0{n + 1}", tags=["x"])
    builder = start_builder(make_config(), tmp_path / "builder.sock")
    builder.reload()
    links = [BuilderLink(str(tmp_path / "builder.sock"), Store()) for _ in range(2)]
    for link in links:
        link.start()

    def caught_up() -> bool:
        built = builder.refresher.store.current
        return all(served(link.store.current) == served(built) for link in links)

    # The builder cannot make one batch: the worker it was sending to is dropped, and
    # connects again for a whole snapshot; the other is sent the change made again.
    real_dumps, failures = wire._dumps, [1]

    def dumps_failing_once(obj: object, numbered: object) -> bytes:
        if numbered and failures:
            failures.pop()
            raise RuntimeError("cannot pickle")
        return real_dumps(obj, numbered)  # type: ignore[arg-type]

    monkeypatch.setattr(wire, "_dumps", dumps_failing_once)
    write_article(folder, "p1.md", body="改稿", title="P1", date="2026-01-02", tags=["x"])
    builder.reload()
    wait_until(caught_up)
    # A worker cannot apply a message: it connects again for a whole snapshot.
    real_take, breaks = Receiver.take, [1]

    def take_failing_once(self: Receiver, kind: bytes, data: bytes) -> object:
        if kind == wire.BATCH and breaks:
            breaks.pop()
            raise KeyError("no such piece")
        return real_take(self, kind, data)

    monkeypatch.setattr(Receiver, "take", take_failing_once)
    write_article(folder, "p2.md", body="再改", title="P2", date="2026-01-03", tags=["x"])
    builder.reload()
    wait_until(caught_up)
    assert not failures and not breaks

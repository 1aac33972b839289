"""Snapshots from the builder process to the serving workers: whole once, then changes.

Feed documents share their gzip pieces: an entry's piece sits in the site feed, its
category feeds and its tag feeds. The wire keeps that sharing and sends each piece once.
A frame lists the pieces new since the last frame, under numbers, and the resources that
changed, pickled in small batches that refer to pieces by number (pickle's persistent
ids). A receiver thus holds exactly one copy of each piece, and it can pause between
batches, so that applying a large change never holds the GIL for long. The sender counts
how many documents hold each piece and tells receivers which numbers to forget.

Only the builder's own process writes frames, over a socket in a private directory, and
only the workers it serves read them: pickle is safe in that setting and no other.
"""

from __future__ import annotations

import io
import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from feedsvc.config import Config
from feedsvc.model import Document, Resource, Snapshot


@dataclass(frozen=True, slots=True)
class Received:
    """What a receiver holds after a frame: the snapshot to serve and the config it came from."""

    snapshot: Snapshot
    config: Config


BATCH = 4  # resources per batch: about a tenth of a millisecond to apply


@dataclass(frozen=True, slots=True)
class Head:
    """A frame: pieces to add and forget, what is gone, and batches of changed resources."""

    whole: bool  # a whole snapshot: the receiver starts from nothing
    fresh: list[tuple[int, bytes]]
    dropped: list[int]
    gone_documents: list[str]
    gone_resources: list[str]
    fields: tuple[Any, ...]  # article_count, problems, loaded_at, generation
    config: Config | None  # None: unchanged
    batches: list[bytes]


class Sender:
    """The builder's end: turns successive snapshots into frames."""

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}  # id(piece) -> number
        self._pieces: dict[int, bytes] = {}  # number -> piece; holding it keeps its id stable
        self._holders: Counter[int] = Counter()  # number -> documents holding the piece
        self._next = 0
        self._snapshot = Snapshot()
        self._config: Config | None = None
        self._whole: bytes | None = None

    def advance(self, snapshot: Snapshot, config: Config) -> bytes:
        """The frame that takes a receiver from the last snapshot to this one."""
        old, new = self._snapshot.documents, snapshot.documents
        changed = [path for path, doc in new.items() if old.get(path) is not doc]
        gone_documents = [path for path in old if path not in new]
        fresh: list[tuple[int, bytes]] = []
        for path in changed:
            fresh.extend(self._hold(new[path]))
        dropped: list[int] = []
        for path in (*changed, *gone_documents):
            if path in old:
                dropped.extend(self._release(old[path]))
        old_resources, resources = self._snapshot.resources, snapshot.resources
        head = Head(
            whole=False,
            fresh=fresh,
            dropped=dropped,
            gone_documents=gone_documents,
            gone_resources=[key for key in old_resources if key not in resources],
            fields=_fields(snapshot),
            config=config if config is not self._config else None,
            batches=self._batches(
                [(k, r) for k, r in resources.items() if old_resources.get(k) is not r]
            ),
        )
        self._snapshot, self._config, self._whole = snapshot, config, None
        return _dumps(head, {})

    def whole(self) -> bytes:
        """The frame that gives a new receiver the last snapshot, from nothing."""
        if self._whole is None:
            assert self._config is not None, "nothing to send before the first advance"
            head = Head(
                whole=True,
                fresh=list(self._pieces.items()),
                dropped=[],
                gone_documents=[],
                gone_resources=[],
                fields=_fields(self._snapshot),
                config=self._config,
                batches=self._batches(list(self._snapshot.resources.items())),
            )
            self._whole = _dumps(head, {})
        return self._whole

    def _batches(self, resources: list[tuple[str, Resource]]) -> list[bytes]:
        return [
            _dumps(dict(resources[start : start + BATCH]), self._numbers)
            for start in range(0, len(resources), BATCH)
        ]

    def _hold(self, document: Document) -> Iterable[tuple[int, bytes]]:
        for piece in document.gzip_chunks:
            number = self._numbers.get(id(piece))
            if number is None:
                number = self._next
                self._next += 1
                self._numbers[id(piece)] = number
                self._pieces[number] = piece
                yield number, piece
            self._holders[number] += 1

    def _release(self, document: Document) -> Iterable[int]:
        for piece in document.gzip_chunks:
            number = self._numbers[id(piece)]
            self._holders[number] -= 1
            if not self._holders[number]:
                del self._holders[number], self._numbers[id(piece)], self._pieces[number]
                yield number


class _Pickler(pickle.Pickler):
    """Pickles resources with every gzip piece as its number."""

    def __init__(self, out: io.BytesIO, numbers: dict[int, int]) -> None:
        super().__init__(out, protocol=pickle.HIGHEST_PROTOCOL)
        self._numbers = numbers

    def persistent_id(self, obj: object) -> int | None:
        return self._numbers.get(id(obj)) if type(obj) is bytes else None

    def reducer_override(self, obj: object) -> Any:
        # Config and snapshots hold read-only views of dicts; they cross as such.
        if type(obj) is MappingProxyType:
            return _read_only, (dict(obj),)
        return NotImplemented


class Receiver:
    """A worker's end: turns frames back into snapshots, holding each piece once."""

    def __init__(self) -> None:
        self._pieces: dict[int, bytes] = {}
        self.received: Received | None = None

    def apply(self, frame: bytes, pause: Callable[[], object] = lambda: None) -> Received:
        """Read one frame, calling `pause` after each batch of resources; returns (and
        keeps) the snapshot and config it leads to."""
        # Frames come only from this server's own builder process (module docstring).
        head: Head = pickle.loads(frame)  # noqa: S301
        if head.whole:
            self._pieces = dict(head.fresh)
            documents: dict[str, Document] = {}
            resources: dict[str, Resource] = {}
            config = head.config
        elif self.received is None:
            raise ValueError("a change frame arrived before any whole snapshot")
        else:
            self._pieces.update(head.fresh)
            previous = self.received.snapshot
            documents = dict(previous.documents)
            resources = dict(previous.resources)
            config = head.config or self.received.config
        for path in head.gone_documents:
            del documents[path]
        for key in head.gone_resources:
            del resources[key]
        for batch in head.batches:
            unpickler = pickle.Unpickler(io.BytesIO(batch))  # noqa: S301
            unpickler.persistent_load = self._pieces.__getitem__  # type: ignore[method-assign]
            changed: dict[str, Resource] = unpickler.load()
            resources.update(changed)
            # Every document is served as a resource of its own (prepare_resources).
            documents.update((r.document.path, r.document) for r in changed.values())
            pause()
        for number in head.dropped:
            del self._pieces[number]
        assert config is not None
        article_count, problems, loaded_at, generation = head.fields
        snapshot = Snapshot(
            documents=MappingProxyType(documents),
            resources=resources,
            article_count=article_count,
            problems=problems,
            loaded_at=loaded_at,
            generation=generation,
        )
        self.received = Received(snapshot, config)
        return self.received

    @property
    def piece_count(self) -> int:
        """How many distinct pieces this receiver holds."""
        return len(self._pieces)


def _dumps(obj: object, numbers: dict[int, int]) -> bytes:
    """Pickle `obj`, with the pieces in `numbers` as their numbers (none in a head)."""
    out = io.BytesIO()
    _Pickler(out, numbers).dump(obj)
    return out.getvalue()


def _read_only(mapping: dict[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(mapping)


def _fields(snapshot: Snapshot) -> tuple[Any, ...]:
    return (snapshot.article_count, snapshot.problems, snapshot.loaded_at, snapshot.generation)

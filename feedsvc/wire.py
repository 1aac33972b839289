"""Snapshots from the builder process to the serving workers: whole once, then changes.

Feed documents share their gzip pieces: an entry's piece sits in the site feed, its
category feeds and its tag feeds. The wire keeps that sharing and sends each piece once.
A snapshot crosses as a stream of messages: a HEAD (what is gone, the snapshot's fields,
the config when it changed), PIECES (gzip pieces new to the receiver, under numbers),
BATCHes of changed resources that refer to pieces by number (pickle's persistent ids),
and an END. A receiver thus holds exactly one copy of each piece; it can pause after
any message, so applying a large change never holds the GIL for long; and neither end
ever holds a whole snapshot's worth of encoded bytes. The sender counts how many
documents hold each piece and tells receivers which numbers to forget.

Only the builder's own process writes messages, over a socket in a private directory,
and only the workers it serves read them: pickle is safe in that setting and no other.
"""

from __future__ import annotations

import io
import pickle
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from feedsvc.config import Config
from feedsvc.model import Document, Resource, Snapshot, read_only

HEAD, PIECES, BATCH, END = b"H", b"P", b"B", b"E"
KINDS = frozenset((HEAD, PIECES, BATCH, END))
Message = tuple[bytes, bytes]  # kind, data

BATCH_SIZE = 4  # resources per batch: about a tenth of a millisecond to apply
PIECES_BYTES = 1 << 20  # about this much gzip per PIECES message


@dataclass(frozen=True, slots=True)
class Received:
    """What a receiver holds after an END: the snapshot to serve and its config."""

    snapshot: Snapshot
    config: Config


@dataclass(frozen=True, slots=True)
class Head:
    """How a snapshot stream starts: from nothing or from the last one, and what is gone."""

    whole: bool  # the receiver starts from nothing
    dropped: list[int]  # numbers of pieces no document holds any more
    gone_documents: list[str]
    gone_resources: list[str]
    fields: tuple[Any, ...]  # article_count, problems, loaded_at, generation
    config: Config | None  # None: unchanged


class Sender:
    """The builder's end: turns successive snapshots into messages.

    A piece's number is its id(): every numbered piece is held by a document of the
    last snapshot, which the sender holds, so no two live pieces share a number, and a
    number is forgotten only when receivers are told to forget it.
    """

    def __init__(self) -> None:
        self._holders: Counter[int] = Counter()  # id(piece) -> documents holding it
        self._snapshot = Snapshot()
        self._config: Config | None = None

    def advance(self, snapshot: Snapshot, config: Config) -> Callable[[], Iterator[Message]]:
        """Move on to `snapshot`; returns what makes the messages that take a receiver
        from the last snapshot to this one (made when called, as they are sent)."""
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
            dropped=dropped,
            gone_documents=gone_documents,
            gone_resources=[key for key in old_resources if key not in resources],
            fields=_fields(snapshot),
            config=config if config is not self._config else None,
        )
        changed_resources = [(k, r) for k, r in resources.items() if old_resources.get(k) is not r]
        self._snapshot, self._config = snapshot, config
        return lambda: self._stream(head, fresh, changed_resources)

    def whole(self) -> Iterator[Message]:
        """The messages that give a new receiver the last snapshot, from nothing; made
        as they are sent. Call no `advance` before the last one is taken."""
        assert self._config is not None, "nothing to send before the first advance"
        head = Head(
            whole=True,
            dropped=[],
            gone_documents=[],
            gone_resources=[],
            fields=_fields(self._snapshot),
            config=self._config,
        )
        return self._stream(head, self._every_piece(), list(self._snapshot.resources.items()))

    def _every_piece(self) -> Iterator[tuple[int, bytes]]:
        seen: set[int] = set()
        for document in self._snapshot.documents.values():
            for piece in document.gzip_chunks:
                if id(piece) not in seen:
                    seen.add(id(piece))
                    yield id(piece), piece

    def _stream(
        self,
        head: Head,
        fresh: Iterable[tuple[int, bytes]],
        resources: list[tuple[str, Resource]],
    ) -> Iterator[Message]:
        yield HEAD, _dumps(head, {})
        chunk: list[tuple[int, bytes]] = []
        size = 0
        for number, piece in fresh:
            chunk.append((number, piece))
            size += len(piece)
            if size >= PIECES_BYTES:
                yield PIECES, _dumps(chunk, {})
                chunk, size = [], 0
        if chunk:
            yield PIECES, _dumps(chunk, {})
        for start in range(0, len(resources), BATCH_SIZE):
            yield BATCH, _dumps(dict(resources[start : start + BATCH_SIZE]), self._holders)
        yield END, b""

    def _hold(self, document: Document) -> Iterable[tuple[int, bytes]]:
        for piece in document.gzip_chunks:
            number = id(piece)
            if number not in self._holders:
                yield number, piece
            self._holders[number] += 1

    def _release(self, document: Document) -> Iterable[int]:
        for piece in document.gzip_chunks:
            number = id(piece)
            self._holders[number] -= 1
            if not self._holders[number]:
                del self._holders[number]
                yield number


class _Pickler(pickle.Pickler):
    """Pickles with every gzip piece whose id is in `numbered` as its number."""

    def __init__(self, out: io.BytesIO, numbered: Mapping[int, object]) -> None:
        super().__init__(out, protocol=pickle.HIGHEST_PROTOCOL)
        self._numbered = numbered

    def persistent_id(self, obj: object) -> int | None:
        return id(obj) if type(obj) is bytes and id(obj) in self._numbered else None

    def reducer_override(self, obj: object) -> Any:
        # Config and snapshots hold read-only views of dicts; they cross as such.
        if type(obj) is MappingProxyType:
            return read_only, (dict(obj),)
        return NotImplemented


class Receiver:
    """A worker's end: turns messages back into snapshots, holding each piece once."""

    def __init__(self) -> None:
        self._pieces: dict[int, bytes] = {}
        self.received: Received | None = None
        self._head: Head | None = None
        self._documents: dict[str, Document] = {}
        self._resources: dict[str, Resource] = {}

    def take(self, kind: bytes, data: bytes) -> Received | None:
        """Apply one message; at an END, returns (and keeps) the snapshot it completes."""
        # Messages come only from this server's own builder process (module docstring).
        if kind == HEAD:
            self._begin(pickle.loads(data))  # noqa: S301
        elif self._head is None:
            raise ValueError("a snapshot message arrived outside a snapshot")
        elif kind == PIECES:
            self._pieces.update(pickle.loads(data))  # noqa: S301
        elif kind == BATCH:
            unpickler = pickle.Unpickler(io.BytesIO(data))  # noqa: S301
            unpickler.persistent_load = self._pieces.__getitem__  # type: ignore[method-assign]
            changed: dict[str, Resource] = unpickler.load()
            self._resources.update(changed)
            # Every document is served as a resource of its own (prepare_resources).
            self._documents.update((r.document.path, r.document) for r in changed.values())
        elif kind == END:
            return self._end(self._head)
        else:
            raise ValueError(f"not a snapshot message: {kind!r}")
        return None

    def apply(self, messages: Iterable[Message]) -> Received:
        """Take a whole stream of messages (as Sender gives them)."""
        for kind, data in messages:
            received = self.take(kind, data)
            if received is not None:
                return received
        raise ValueError("the stream ended before its END")

    @property
    def piece_count(self) -> int:
        """How many distinct pieces this receiver holds."""
        return len(self._pieces)

    def _begin(self, head: Head) -> None:
        if head.whole:
            self._pieces, self._documents, self._resources = {}, {}, {}
        elif self.received is None:
            raise ValueError("a change arrived before any whole snapshot")
        else:
            previous = self.received.snapshot
            self._documents = dict(previous.documents)
            self._resources = dict(previous.resources)
        for path in head.gone_documents:
            del self._documents[path]
        for key in head.gone_resources:
            del self._resources[key]
        self._head = head

    def _end(self, head: Head) -> Received:
        for number in head.dropped:
            del self._pieces[number]
        config = head.config or (self.received.config if self.received else None)
        assert config is not None
        article_count, problems, loaded_at, generation = head.fields
        snapshot = Snapshot(
            documents=MappingProxyType(self._documents),
            resources=self._resources,
            article_count=article_count,
            problems=problems,
            loaded_at=loaded_at,
            generation=generation,
        )
        self.received = Received(snapshot, config)
        self._head, self._documents, self._resources = None, {}, {}
        return self.received


def _dumps(obj: object, numbered: Mapping[int, object]) -> bytes:
    """Pickle `obj`, with the pieces in `numbered` as their numbers."""
    out = io.BytesIO()
    _Pickler(out, numbered).dump(obj)
    return out.getvalue()


def _fields(snapshot: Snapshot) -> tuple[Any, ...]:
    return (snapshot.article_count, snapshot.problems, snapshot.loaded_at, snapshot.generation)

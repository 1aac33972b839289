"""The id ledger: what must outlive a rename, a move, a new base_url and a restart.

An SQLite database in the state directory (`ledger.sqlite3`, WAL). The builder is its one
writer, one transaction per reload, and it writes only what changed. It remembers

- every article ever published (`articles`): its id, source, current path, what it is
  recognised by after a rename (feedsvc.model.Identity), the slug and date it was first
  published with, when it was last seen changed or going, and whether it is present;
- every feed node ever served (`nodes`), so an emptied feed stays until `feedsvc forget`;
- each remote source's last good response and validators, and its backoff (`fetches`).

How ids are given (feedsvc.state.placing) is README's "Ids"; a fresh ledger gives every
article the id derived from source and path, so fresh replicas agree.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import cast

from feedsvc.build.membership import Kind, NodeKeys
from feedsvc.dates import parse_stored_date
from feedsvc.errors import FeedsvcError
from feedsvc.model import Problem
from feedsvc.sources.feed import SavedFetch
from feedsvc.state.files import StateError

logger = logging.getLogger(__name__)

FILE = "ledger.sqlite3"
VERSION = 2  # PRAGMA user_version of the schema below; 2 added `changes`

_SCHEMA = """
CREATE TABLE articles (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    content TEXT,
    fields TEXT,
    slug TEXT,
    first_published TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    present INTEGER NOT NULL,
    UNIQUE (source, path)
);
CREATE INDEX gone_by_content ON articles (source, content) WHERE present = 0;
CREATE INDEX gone_by_fields ON articles (source, fields) WHERE present = 0;
CREATE TABLE nodes (
    kind TEXT NOT NULL,
    directory TEXT NOT NULL,
    names TEXT NOT NULL,
    PRIMARY KEY (kind, directory)
);
CREATE TABLE fetches (
    source TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    content_type TEXT NOT NULL,
    body BLOB,
    failures INTEGER NOT NULL,
    next_attempt REAL NOT NULL
);
"""
# Version 2: which articles the ledger holds, as a mark that any change to `articles`
# moves (whoever makes it): this ledger's random name and a count of rows changed.
# A restart that finds the mark it saved with its memory takes the ids it remembers
# instead of reading every row (feedsvc.state.placing).
_CHANGES = """
CREATE TABLE changes (ledger TEXT NOT NULL, count INTEGER NOT NULL);
INSERT INTO changes VALUES (lower(hex(randomblob(8))), 0);
CREATE TRIGGER article_added AFTER INSERT ON articles
    BEGIN UPDATE changes SET count = count + 1; END;
CREATE TRIGGER article_changed AFTER UPDATE ON articles
    BEGIN UPDATE changes SET count = count + 1; END;
CREATE TRIGGER article_removed AFTER DELETE ON articles
    BEGIN UPDATE changes SET count = count + 1; END;
"""


@dataclass(frozen=True, slots=True)
class Row:
    """What the ledger holds of one article."""

    id: str
    source: str
    path: str
    content: str | None
    fields: str | None
    slug: str | None
    first_published: datetime
    present: bool


class DamagedLedgerError(FeedsvcError):
    """The database cannot be trusted (not SQLite, fails its check, a foreign version)."""


_SELECT = "SELECT id, source, path, content, fields, slug, first_published, present FROM articles"
_BY_KEY = _SELECT + " WHERE source = ? AND path = ?"
_BY_ID = _SELECT + " WHERE id = ?"
_GONE = {
    c: f"{_SELECT} WHERE present = 0 AND source = ? AND {c} = ?" for c in ("content", "fields")
}


class Ledger:
    """One connection to the ledger, shared by the reload and the remote fetches."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._lock = threading.RLock()
        self._version = self._data_version()

    @classmethod
    def open(cls, folder: Path, *, repair: bool = True) -> tuple[Ledger | None, Problem | None]:
        """The ledger in `folder` (created if absent), with a warning when it was not usable:
        a damaged one is moved aside and a new one started (without `repair`: left alone,
        and None); one that cannot be opened at all gives None."""
        path = folder / FILE
        try:
            try:
                return cls(path, _connect(path)), None
            except DamagedLedgerError as exc:
                if not repair:
                    message = f"id ledger damaged ({exc}); the next serve or build starts it anew"
                    return None, Problem(str(path), None, message, "warning")
                aside = path.with_name(f"{FILE}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
                for suffix in ("", "-wal", "-shm"):
                    damaged = Path(f"{path}{suffix}")
                    if damaged.exists():
                        damaged.rename(f"{aside}{suffix}")
                message = (
                    f"id ledger damaged ({exc}); moved to {aside.name} and started anew: ids "
                    "fall back to the ones derived from source and path, so articles renamed "
                    "before may reach readers again"
                )
                logger.warning("%s: %s", path, message)
                return cls(path, _connect(path)), Problem(str(path), None, message, "warning")
        except (OSError, sqlite3.Error) as exc:
            message = (
                f"cannot open the id ledger ({exc}); ids are the ones derived from source and path"
            )
            logger.warning("%s: %s", path, message)
            return None, Problem(str(path), None, message, "warning")

    @property
    def total_changes(self) -> int:
        """Rows this connection has written since it opened."""
        return self._db.total_changes

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def keep_file(self) -> None:
        """Write the ledger to its file again if the file was removed (with the state
        directory, while the server ran): the open connection still holds every row, and
        SQLite's backup copies them into a new file this connection moves to."""
        with self._lock:
            if self.path.exists():
                return
            fresh = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            try:
                self._db.backup(fresh)
                fresh.execute("PRAGMA journal_mode = WAL")
                fresh.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                fresh.close()
                raise StateError(f"cannot write the id ledger {self.path}: {exc}") from exc
            self._db.close()
            self._db = fresh
            self._version = self._data_version()

    @contextmanager
    def transaction(self, *, keep: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: committed when `keep` and nothing raised, else rolled back."""
        with self._lock:
            try:
                with self._db:  # commits, or rolls back when the block raises
                    self._db.execute("BEGIN IMMEDIATE")
                    yield self._db
                    if not keep:
                        self._db.rollback()
            except sqlite3.Error as exc:  # a full disk, say: the reload fails, named
                raise StateError(f"cannot write the id ledger {self.path}: {exc}") from exc

    # ---- articles ----

    def rows(self, keys: Iterable[tuple[str, str]] | None = None) -> dict[tuple[str, str], Row]:
        """Rows by (source, path): of `keys`, or every row."""
        if keys is None:
            return {(row.source, row.path): row for row in self._select(_SELECT)}
        return {key: row for key in keys for row in self._select(_BY_KEY, *key)}

    def mark(self) -> tuple[str, int]:
        """What moves with every change to the articles held: equal marks, equal rows."""
        with self._lock:
            ledger, count = self._db.execute("SELECT ledger, count FROM changes").fetchone()
        return ledger, count

    def present(self) -> dict[tuple[str, str], str]:
        """(source, path) -> id of every article present when last placed."""
        with self._lock:
            found = self._db.execute("SELECT source, path, id FROM articles WHERE present = 1")
            return {(source, path): ident for source, path, ident in found}

    def gone(self, source: str, column: str, digest: str) -> list[Row]:
        """Rows of `source` no longer present whose `column` (content/fields) is `digest`."""
        return self._select(_GONE[column], source, digest)

    def holder(self, ident: str) -> Row | None:
        """The row holding id `ident`."""
        return next(iter(self._select(_BY_ID, ident)), None)

    def _select(self, statement: str, *values: str) -> list[Row]:
        with self._lock:
            found = self._db.execute(statement, values).fetchall()
        # The text columns hold what placing writes: str, or NULL for None.
        return [
            Row(ident, source, path, content, fields, slug, parse_stored_date(first), bool(present))
            for ident, source, path, content, fields, slug, first, present in found
        ]

    # ---- feed nodes ----

    def nodes(self) -> dict[tuple[Kind, str], tuple[str, ...]]:
        """Every feed node ever served: (kind, directory) -> names."""
        with self._lock:
            found = self._db.execute("SELECT kind, directory, names FROM nodes").fetchall()
        return {(cast(Kind, k), d): tuple(json.loads(n)) for k, d, n in found}

    def remember_nodes(self, nodes: NodeKeys) -> None:
        """Add nodes served for the first time."""
        values = [(k, d, json.dumps(n, ensure_ascii=False)) for (k, d), n in nodes.items()]
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)", values)

    def forget_nodes(self, directories: Iterable[str]) -> list[str]:
        """Forget the nodes at `directories` (`x/**`: x and every node below); those forgotten."""
        wanted = set(directories)
        subtrees = tuple(d[:-2] for d in wanted if d.endswith("/**"))
        with self.transaction() as db:
            gone = [
                (kind, directory)
                for kind, directory in db.execute("SELECT kind, directory FROM nodes")
                if directory in wanted
                or directory.startswith(subtrees)
                or f"{directory}/" in subtrees
            ]
            db.executemany("DELETE FROM nodes WHERE kind = ? AND directory = ?", gone)
        return sorted(directory for _, directory in gone)

    def changed_elsewhere(self) -> bool:
        """Whether another connection (`feedsvc forget`) committed since this one last
        looked; looking resets it (this connection's own commits leave data_version as is)."""
        with self._lock:
            version = self._data_version()
            changed, self._version = version != self._version, version
        return changed

    # ---- remote sources ----

    def fetch_state(self, source: str) -> SavedFetch | None:
        """What the ledger keeps of a remote source's last fetch."""
        with self._lock:
            found = self._db.execute(
                "SELECT url, etag, last_modified, content_type, body, failures, next_attempt "
                "FROM fetches WHERE source = ?",
                (source,),
            ).fetchone()
        if found is None:
            return None
        saved = SavedFetch(*found)  # the columns in the order of its fields
        return saved if saved.body is None else replace(saved, body=zlib.decompress(saved.body))

    def save_fetch(self, source: str, saved: SavedFetch) -> None:
        """Keep a good response with its validators and the schedule."""
        if saved.body is not None:
            saved = replace(saved, body=zlib.compress(saved.body))
        statement = "INSERT OR REPLACE INTO fetches VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        self._keep_fetch(statement, (source, *astuple(saved)))

    def save_schedule(self, source: str, url: str, failures: int, next_attempt: float) -> None:
        """Keep a source's schedule (after a 304 or a failure); its last body stays."""
        self._keep_fetch(
            "INSERT INTO fetches (source, url, content_type, failures, next_attempt) "
            "VALUES (?, ?, '', ?, ?) ON CONFLICT (source) DO UPDATE SET url = excluded.url, "
            "failures = excluded.failures, next_attempt = excluded.next_attempt",
            (source, url, failures, next_attempt),
        )

    def _keep_fetch(self, statement: str, values: tuple[object, ...]) -> None:
        try:
            with self.transaction() as db:
                db.execute(statement, values)
        except (StateError, OSError) as exc:  # fetching goes on; a restart forgets more
            logger.warning("cannot keep a fetch in the id ledger: %s", exc)

    def _data_version(self) -> int:
        version: int = self._db.execute("PRAGMA data_version").fetchone()[0]
        return version


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to a ledger that passed its checks; DamagedLedgerError when it fails."""
    fresh = not path.exists() or path.stat().st_size == 0
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL: a crash loses no committed reload
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if fresh:
            db.executescript(f"BEGIN; {_SCHEMA}{_CHANGES} PRAGMA user_version = {VERSION}; COMMIT;")
        elif version not in (1, VERSION):
            raise DamagedLedgerError(f"schema version {version}, this feedsvc reads {VERSION}")
        else:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise DamagedLedgerError(f"quick_check: {verdict}")
            if version == 1:  # written by feedsvc before the mark: given one
                db.executescript(f"BEGIN; {_CHANGES} PRAGMA user_version = {VERSION}; COMMIT;")
    except sqlite3.OperationalError:  # locked, a full disk: not damage, nothing moved
        db.close()
        raise
    except (sqlite3.DatabaseError, DamagedLedgerError) as exc:  # malformed, or fails a check
        db.close()
        raise DamagedLedgerError(str(exc)) from exc
    return db

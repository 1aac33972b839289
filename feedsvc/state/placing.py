"""Giving each article its lasting id from the ledger (README: "Ids").

Sources name an article by where it is: the id derived from `site.base_url`, source
and path, a link from the permalink pattern, and for an undated article the date its
file was last written. `Placer.place` turns those into what readers already know:

1. an article at a path the ledger knows keeps that path's id (so a new base_url or
   permalink pattern moves links, not ids), and an undated one its first date;
2. an article at a new path takes over the id, date and slug of an article gone from
   the same source that it matches: first by content (identity fields and body), then
   by identity fields alone (title and date: a rename with an edit). One gone article
   matched by two new paths, or one new path matching two, is ambiguous: fresh ids and
   a warning naming the paths;
3. an `id`/`guid` in front matter always wins, unless a present article at another
   path holds it already: then the later one keeps an id of its own, with a warning;
4. anything else gets the derived id (a variant of it when that id is taken).

Only changed articles are looked at: an unchanged reload costs a dict lookup each.
Over 300 lines: the rules above, and the placing a restart carries on from
(`export`/`restore`), which must name articles by the same keys.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from operator import attrgetter
from pathlib import PurePosixPath

from feedsvc.dates import load_timezone
from feedsvc.model import Article, Problem, assemble, field_names
from feedsvc.settings import SiteConfig
from feedsvc.state.ledger import Ledger, Row
from feedsvc.urls import entry_id, expand_permalink, slugize

logger = logging.getLogger(__name__)

_ID = attrgetter("id")
_BULK = 1000  # changed articles beyond which every row is read in one query

Key = tuple[str, str]  # (source, path)
Remembered = tuple[str, str, str, str, str, datetime, datetime, str]
"""One article of a placing: source, path, revision, then the id, link, published and
updated it was published with and its revision so (Placer.export)."""
SavedPlacing = tuple[tuple[str, int] | None, list[str], list[Remembered], dict[Key, str]]
"""Placer.export: the ledger's mark then (None: not read yet); the revisions of the
articles published as parsed (most: their id, link and dates are theirs); every other
article placed; and what else the ledger held present then (or present with another id)."""


@dataclass(frozen=True, slots=True)
class Placed:
    """One placing: the articles as published, warnings (collisions, ambiguous renames),
    and what happened to ids (renames followed, ids that changed and why)."""

    articles: list[Article]
    problems: list[Problem] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Round:
    """The working set of one placing."""

    rows: dict[Key, Row]
    vanished: dict[Key, str]  # keys present last time and not now, with their ids
    taken: dict[str, str] = field(default_factory=dict)  # id -> where, given in this round
    placed: dict[int, Article] = field(default_factory=dict)  # by id() of the derived one
    problems: list[Problem] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    writes: list[tuple[Article, Row | None, str]] = field(default_factory=list)


class Placer:
    """Places articles with one ledger for one site config; remembers the last placing."""

    def __init__(self, ledger: Ledger, site: SiteConfig) -> None:
        self.ledger = ledger
        self.site = site
        self._tz = load_timezone(site.timezone)
        # The last placing, kept to look at changed articles only: derived revision ->
        # placed article, and per (source, path) its derived revision and its id.
        self._by_revision: dict[str, Article] = {}
        self._revision_at: dict[Key, str] = {}
        self._keys: dict[Key, str] | None = None  # None: not read from the ledger yet

    def place(self, articles: Sequence[Article], now: datetime, *, keep: bool = True) -> Placed:
        """The articles as published; with `keep` False (`feedsvc check`) nothing is written."""
        known = self._by_revision
        placed = [known.get(a.revision) for a in articles]
        todo = [a for a, p in zip(articles, placed, strict=True) if p is None]
        if self._keys is None:  # the first placing: what the ledger saw before the start
            self._keys = self.ledger.present()
        # Distinct unchanged articles (a remote feed may repeat an item): with none of the
        # last placing's keys missing, nothing went.
        hits = len({id(p) for p in placed}) - (1 if todo else 0)
        todo_keys = {(a.source, a.path) for a in todo}
        if hits + sum(1 for key in todo_keys if key in self._keys) == len(self._keys):
            if not todo:
                return Placed(placed)  # type: ignore[arg-type]
            vanished: dict[Key, str] = {}
        else:
            keys = {(a.source, a.path) for a in articles}
            vanished = {k: i for k, i in self._keys.items() if k not in keys}
        todo.sort(key=lambda a: (a.source, a.path))
        work = _Round(self._rows(todo), vanished)
        stamp = now.isoformat()
        with self.ledger.transaction(keep=keep) as db:
            db.executemany(
                "UPDATE articles SET present = 0, last_seen = ? WHERE source = ? AND path = ?",
                [(stamp, *key) for key in sorted(vanished)],
            )
            self._assign(todo, work)
            for article, row, ident in work.writes:
                _write(db, article, row, ident, stamp)
        if keep:
            self._remember(todo, work)
        published = [p or work.placed[id(a)] for a, p in zip(articles, placed, strict=True)]
        return Placed(published, work.problems, work.changes)

    def export(self) -> SavedPlacing:
        """The last placing, for `restore` in a later process, with the ledger's mark."""
        as_parsed: list[str] = []
        other: list[Remembered] = []
        ids: dict[Key, str] = {}
        for key, revision in self._revision_at.items():
            p = self._by_revision.get(revision)
            if p is None:
                continue
            ids[key] = p.id
            if p.revision == revision:
                as_parsed.append(revision)
            else:
                other.append((*key, revision, p.id, p.link, p.published, p.updated, p.revision))
        if self._keys is None:
            return None, as_parsed, other, {}
        beyond = {key: ident for key, ident in self._keys.items() if ids.get(key) != ident}
        return self.ledger.mark(), as_parsed, other, beyond

    def restore(self, saved: SavedPlacing, articles: Iterable[Article]) -> dict[str, Article]:
        """Carry on from `export` of an earlier process (a restart), before the first
        placing. `articles` are those it placed, as parsed then (the parse cache saved
        with it); returns them as published then, by revision. Those at a path the ledger
        still gives the id given then are remembered: read again unchanged, they are
        published so without a look at the ledger; every other one is placed as usual.

        The ledger's rows are read only when it changed since (its mark moved: a crash
        between its commit and this save, `feedsvc build`, an operator) or an article
        placed then is not among `articles`: 0.1 s of a 50,000-post restart otherwise."""
        mark, as_parsed, other, beyond = saved
        # By revision, which digests the source and path too: one string per article to
        # hash, where (source, path) keys are two. Each pass below reaches every article
        # (50,000 on a restart's path), so there are as few as can be, most of them C loops.
        parsed = {a.revision: a for a in articles}
        # (revision parsed, revision published, article as published), as parallel lists
        found = list(map(parsed.get, as_parsed))
        held = list(filter(None, found))  # an Article is always true
        revisions = (
            list(as_parsed) if len(held) == len(found) else [r for r in as_parsed if r in parsed]
        )
        revisions_published = revisions.copy()
        for _source, _path, revision, ident, link, published_at, updated, as_published in other:
            article = parsed.get(revision)
            if article is None:
                continue
            changes = {"id": ident, "link": link, "published": published_at}
            changes |= {"updated": updated, "revision": as_published}
            held.append(
                assemble(
                    Article, [changes.get(f, getattr(article, f)) for f in field_names(Article)]
                )
            )
            revisions.append(revision)
            revisions_published.append(as_published)
        keys = [(a.source, a.path) for a in held]
        whole = len(held) == len(as_parsed) + len(other)
        if whole and mark is not None and mark == self.ledger.mark():
            # The ledger holds what it held then: the ids given then, but where `beyond`
            # (rows no article of then names) says otherwise.
            present = dict(zip(keys, map(_ID, held), strict=True))
            present.update(beyond)
            doubtful: Iterable[Key] = beyond.keys()
        else:
            present = self.ledger.present()
            doubtful = keys
        # Those at a path the ledger still gives the id given then are remembered.
        self._by_revision = dict(zip(revisions, held, strict=True))
        self._revision_at = dict(zip(keys, revisions, strict=True))
        for key in [k for k in doubtful if k in self._revision_at]:
            revision = self._revision_at[key]
            if present.get(key) != self._by_revision[revision].id:
                del self._revision_at[key], self._by_revision[revision]
        self._keys = present  # what the first placing would read
        return dict(zip(revisions_published, held, strict=True))

    def _remember(self, todo: list[Article], work: _Round) -> None:
        """Carry the last placing forward by what changed in this one."""
        assert self._keys is not None
        for key in work.vanished:
            del self._keys[key]
            self._by_revision.pop(self._revision_at.pop(key, ""), None)
        for article in todo:
            key = (article.source, article.path)
            self._by_revision.pop(self._revision_at.get(key, ""), None)
            self._by_revision[article.revision] = work.placed[id(article)]
            self._revision_at[key] = article.revision
            self._keys[key] = work.placed[id(article)].id
        for change in work.changes:
            logger.info("%s", change)

    def _rows(self, todo: list[Article]) -> dict[Key, Row]:
        return self.ledger.rows(None if len(todo) > _BULK else [(a.source, a.path) for a in todo])

    def _assign(self, todo: list[Article], work: _Round) -> None:
        """Ids for every changed article: known paths and front-matter ids, then renames
        (by content, then by identity fields), then fresh ids."""
        pending = [a for a in todo if not self._known(a, work)]
        for column in ("content", "fields"):
            candidates = {id(a): self._candidates(a, column, work) for a in pending}
            claims = Counter(r.id for rows in candidates.values() for r in rows)
            waiting = []
            for article in pending:
                rows = candidates[id(article)]
                if not rows:
                    waiting.append(article)
                elif len(rows) == 1 and claims[rows[0].id] == 1:
                    gone = rows[0]
                    work.changes.append(
                        f"{_where(article)}: renamed from {_at(gone.source, gone.path)}; "
                        f"keeps its id {gone.id}"
                    )
                    self._give(article, gone, gone.id, work)
                else:
                    paths = ", ".join(sorted({r.path for r in rows}))
                    message = (
                        f"matches more than one article gone from the source ({paths}), or "
                        "another new file matches the same one; given a new id"
                    )
                    work.problems.append(Problem(_where(article), None, message, "warning"))
                    self._give(article, None, self._fresh_id(article, work), work)
            pending = waiting
        for article in pending:
            self._give(article, None, self._fresh_id(article, work), work)
        for key, ident in sorted(work.vanished.items()):
            if ident not in work.taken:
                work.changes.append(f"{_at(*key)}: gone; the ledger keeps its id {ident}")

    def _known(self, article: Article, work: _Round) -> bool:
        """Place an article with a front-matter id or at a known path; False when neither."""
        key = (article.source, article.path)
        row = work.rows.get(key)
        if article.identity.explicit:
            holder = self.ledger.holder(article.id)
            owner = work.taken.get(article.id)
            if owner is None and holder is not None and holder.present:
                held = (holder.source, holder.path)
                owner = None if held == key or held in work.vanished else _at(*held)
            if owner is None:
                if row is not None and row.id != article.id:
                    work.changes.append(
                        f"{_where(article)}: id changes from {row.id} to {article.id}, "
                        "set in front matter"
                    )
                self._give(article, holder or row, article.id, work)
                return True
            message = f"id {article.id} is {owner}'s already; this article keeps an id of its own"
            work.problems.append(Problem(_where(article), None, message, "warning"))
        if row is not None and row.id not in work.taken:
            self._give(article, row, row.id, work)
            return True
        return False

    def _candidates(self, article: Article, column: str, work: _Round) -> list[Row]:
        """Articles gone from this source (and not given out in this round) that match."""
        digest = getattr(article.identity, column)
        if digest is None:
            return []
        return [
            r for r in self.ledger.gone(article.source, column, digest) if r.id not in work.taken
        ]

    def _fresh_id(self, article: Article, work: _Round) -> str:
        """The derived id, or the first free variant of it (a renamed article may hold it)."""
        base, source, path = self.site.base_url, article.source, article.path
        ident = entry_id(base, source, path) if article.identity.explicit else article.id
        n = 1
        while ident in work.taken or self.ledger.holder(ident) is not None:
            n += 1
            ident = entry_id(base, source, f"{path}#{n}")
        return ident

    def _give(self, article: Article, row: Row | None, ident: str, work: _Round) -> None:
        """Publish `article` with id `ident` and what `row` remembers (first date, slug)."""
        identity = article.identity
        work.taken[ident] = _where(article)
        if (
            row is None
            or row.content != identity.content
            or row.fields != identity.fields
            or not row.present
            or row.id != ident
            or (row.source, row.path) != (article.source, article.path)
        ):
            work.writes.append((article, row, ident))
        published = row.first_published if row and not identity.dated else article.published
        link = self._link(article, row, ident, published)
        updated = max(article.updated, published)
        given = (ident, link, published, updated)
        same = given == (article.id, article.link, article.published, article.updated)
        work.placed[id(article)] = (
            article
            if same
            else replace(article, id=ident, link=link, published=published, updated=updated)
        )

    def _link(self, article: Article, row: Row | None, ident: str, published: datetime) -> str:
        """The article's link once its id, first date and slug are the ledger's."""
        identity = article.identity
        # The file's name is the slug unless front matter fixed one: a renamed article keeps
        # the one it was first published with (the ledger's), so its link stays.
        inherited = row.slug if row and row.slug and identity.slug is None else None
        if inherited == _slug(article):
            inherited = None
        if identity.pattern is None or (
            ident == article.id and published == article.published and not inherited
        ):
            return article.link
        return expand_permalink(
            identity.pattern,
            self.site.home,
            published=published,
            tz=self._tz,
            slug=inherited or _slug(article),
            category=identity.category,
            ident=ident,
        )


def _write(
    db: sqlite3.Connection, article: Article, row: Row | None, ident: str, stamp: str
) -> None:
    """Record a placed article: the row it took over (or a new one) now at its path."""
    identity = article.identity
    slug = row.slug if row is not None else (_slug(article) if identity.slug is None else None)
    first = (row.first_published if row is not None else article.published).isoformat()
    db.execute(
        "DELETE FROM articles WHERE source = ? AND path = ? AND id != ?",
        (article.source, article.path, ident),
    )
    db.execute(
        "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO UPDATE SET "
        "source = excluded.source, path = excluded.path, content = excluded.content, "
        "fields = excluded.fields, last_seen = excluded.last_seen, present = 1",
        (
            ident,
            article.source,
            article.path,
            identity.content,
            identity.fields,
            slug,
            first,
            stamp,
        ),
    )


def _slug(article: Article) -> str:
    """The `:slug` the article's link was made with (post.py: its file's name, slugized)."""
    fixed = article.identity.slug
    return fixed if fixed is not None else slugize(PurePosixPath(article.path).stem)


def _where(article: Article) -> str:
    return _at(article.source, article.path)


def _at(source: str, path: str) -> str:
    """How problems and changes name an article: source name, then path in it."""
    return f"{source}/{path}"

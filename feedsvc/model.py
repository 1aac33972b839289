"""Frozen value types shared by every layer: articles, documents, snapshots, problems."""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from feedsvc.build.gzparts import gzip_chunks

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Problem:
    """Something an operator should fix, located as `path:line`."""

    path: str
    line: int | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Author:
    """An article author; only the name is required."""

    name: str
    email: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """How the id ledger (feedsvc.state.ledger) recognises an article at a new path and
    names it again: what the parser knew of the article beyond its fields.

    `content` digests (64 bits, hex) the identity fields (title and front-matter date) and
    the body as written; `fields` the identity fields alone, so a rename is followed with or without
    an edit. Either is None where it cannot tell articles apart (a remote item, a post
    without a title or a date). The rest re-expands a link made from a permalink pattern.
    """

    content: str | None = None
    fields: str | None = None
    explicit: bool = False  # the id came from front matter (`id` / `guid`)
    dated: bool = True  # `published` came from the article, not from a file's mtime
    pattern: str | None = None  # the permalink pattern the link came from; None: a set link
    # The `:slug` it used when front matter fixed it (`slug`, or a `permalink` pattern);
    # None: the file's name, which a renamed article keeps from before.
    slug: str | None = None
    category: str = ""  # the `:category` it used


_REMOTE = Identity()


@dataclass(frozen=True, slots=True)
class Origin:
    """The upstream feed a republished item came from: RSS `<source url>`, Atom
    `<source>` (RFC 4287 §4.2.11), JSON Feed `_feedsvc.source`. Shared by every item
    of one fetch. Directory posts have none."""

    feed_url: str  # the URL the feed was fetched from (RSS `url`, Atom `rel="self"`)
    title: str  # the upstream feed's title; "" when it has none
    id: str  # its Atom id, else feed_url
    home: str | None = None  # its home page (RSS <link>, Atom rel="alternate", home_page_url)
    # Its newest item's update time: Atom `<source>` should carry an `updated` (RFC 4287
    # §4.2.11), and the upstream's own one changes on every request of some generators.
    updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class Article:
    """One publishable article; every datetime is aware UTC.

    The body is held deflated (`deflate_html`): it is most of an article's memory
    (docs/performance.md has the figures), and it is read only when the article's entry
    is rendered, once per format.

    `revision` is a digest of every other field, the same in every process and run:
    incremental work (the node index, the entry cache, "nothing changed") is keyed by
    it, so an equal article made anew (a re-parse, a pickle from another process)
    counts as unchanged. It is never passed in: `dataclasses.replace` recomputes it.
    """

    id: str
    source: str
    path: str
    title: str
    link: str
    published: datetime
    updated: datetime
    content: bytes  # the body's HTML, UTF-8, deflated
    authors: tuple[Author, ...] = ()
    categories: tuple[tuple[str, ...], ...] = ()
    tags: tuple[str, ...] = ()
    summary: str = ""
    image: str | None = None
    identity: Identity = _REMOTE
    origin: Origin | None = None  # the upstream feed of a republished item
    language: str | None = None  # a BCP 47 tag (front matter `lang`): Atom xml:lang, JSON language
    revision: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "revision", _revision(self))

    @property
    def content_html(self) -> str:
        """The body's HTML."""
        return zlib.decompress(self.content).decode("utf-8")


def _revision(article: Article) -> str:
    """sha256 (first 32 hex digits) of an article's fields. The repr of a tuple of str,
    None and tuples is unambiguous and, unlike hash(), the same in every process."""
    fields = (
        article.id,
        article.source,
        article.path,
        article.title,
        article.link,
        article.published.isoformat(),
        article.updated.isoformat(),
        tuple((a.name, a.email, a.url) for a in article.authors),
        article.categories,
        article.tags,
        article.summary,
        article.image,
        article.identity,
        article.origin,
        article.language,
    )
    digest = hashlib.sha256(repr(fields).encode("utf-8"))
    digest.update(article.content)  # last, so no separator is needed
    return digest.hexdigest()[:32]


def field_names(cls: type) -> tuple[str, ...]:
    """The names of a model class's fields, in order: the values `assemble` takes."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def assemble(cls: type[_T], values: Sequence[object]) -> _T:
    """A model object from every field value of `cls` in order, without running __init__:
    an Article's revision is among them and is taken as given. For values this code made
    before (Placer.restore, the parse cache of feedsvc.state.parsecache), where computing
    the revision again was most of a restart's resume. Values of another shape raise."""
    return assembler(cls)(values)


def assembler(cls: type[_T]) -> Callable[[Sequence[object]], _T]:
    """The function `assemble` calls for `cls`, for callers making many.

    The object is made as an instance of a twin class with the same slots but no frozen
    __setattr__, so that each field is set by a plain attribute store, which the
    interpreter specializes for slots; it then becomes a `cls` (the same layout lets
    Python change an object's class). Generated and unrolled, as dataclasses makes its
    own methods. For 50,000 articles: a loop of setattr calls took 0.29 s, a call of each
    slot's descriptor 0.08 s, this 0.04 s."""
    made: Callable[[Sequence[object]], _T] | None = _ASSEMBLERS.get(cls)
    if made is None:
        names = field_names(cls)
        twin = type(f"_Unfrozen{cls.__name__}", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
        scope: dict[str, Any] = {"new": object.__new__, "cls": cls, "twin": twin}
        unpacked = "".join(f"v{i}, " for i in range(len(names)))
        sets = "".join(f"    made.{name} = v{i}\n" for i, name in enumerate(names))
        source = f"def make(values):\n    {unpacked}= values\n    made = new(twin)\n{sets}"
        exec(source + "    made.__class__ = cls\n    return made", scope)  # noqa: S102 - our code; the fields' names
        made = _ASSEMBLERS[cls] = scope["make"]
    return made


_ASSEMBLERS: dict[type, Any] = {}
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def deflate_html(html: str) -> bytes:
    """An article body as Article holds it: level 1, fast for bodies read once per format."""
    return zlib.compress(html.encode("utf-8"), 1)


@dataclass(frozen=True, slots=True)
class SourceResult:
    """What one read of a source gives: its articles and its problems."""

    articles: tuple[Article, ...]
    problems: tuple[Problem, ...]


@dataclass(frozen=True, slots=True)
class Document:
    """One built document, ready to serve: its bytes (kept gzipped), validators, media type.

    Only the gzip bytes are kept, as the deflated pieces they are assembled from
    (feedsvc.build.gzparts): a feed's entries are shared with every other feed listing them,
    so a document costs little more than its head. In the builder the pieces are
    bytes; in a serving worker they are views of the snapshot files it maps
    (feedsvc.state.snapshots). `gzip_body` joins them, `body` inflates them again.
    `etag` (identity) and `gzip_etag` are opaque-tags without quotes; `last_modified`
    is aware UTC.
    """

    path: str
    media_type: str
    pieces: Sequence[bytes | memoryview]  # deflated parts, in order
    trailer: bytes  # the gzip trailer: CRC-32 and length of the identity bytes
    size: int  # length of the identity bytes
    gzip_size: int  # length of the gzip bytes
    etag: str
    gzip_etag: str
    last_modified: datetime
    view: str | None = None  # for a feed: the path of its HTML view for browsers
    digests: tuple[bytes, ...] = ()  # the pieces' content addresses (builder side)

    @property
    def gzip_body(self) -> bytes:
        """The gzip bytes."""
        return b"".join(gzip_chunks(self.pieces, self.trailer))

    @property
    def body(self) -> bytes:
        """The identity bytes."""
        return gzip.decompress(self.gzip_body)


def read_only(mapping: dict[Any, Any]) -> Mapping[Any, Any]:
    """A read-only view of `mapping`: the one way read-only mappings are made, in every
    process (feedsvc.processes.cpus has pickles of them made by this too)."""
    return MappingProxyType(mapping)


@dataclass(frozen=True, slots=True)
class ReloadSummary:
    """What one reload did, for logs and the reload endpoint."""

    articles: int
    documents: int
    changed: int
    problems: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything served at one moment; replaced whole, never mutated."""

    documents: Mapping[str, Document] = field(default_factory=lambda: read_only({}))
    # What the serving layer made of the documents, by PATH_INFO (feedsvc.resources.Resource,
    # with the HTTP header lists): swapped with them, opaque to the domain.
    resources: Mapping[str, Any] = field(default_factory=lambda: read_only({}))
    article_count: int = 0
    problems: tuple[Problem, ...] = ()
    loaded_at: datetime | None = None
    generation: int = 0

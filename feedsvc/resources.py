"""Ready-made HTTP representations of built documents: for every URL its Resource, and
for each coding (and a feed's browser page) a Variant with the exact header lists of its
200 and 304 answers, made once per document per process and only looked up per request
(feedsvc.serving). The domain's Document knows nothing of HTTP headers; this does.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime
from functools import lru_cache

from feedsvc.build.archives import is_archive, past_archives
from feedsvc.build.documents import MEDIA_TYPES, VIEW_NAME
from feedsvc.build.pages import CONTENT_SECURITY_POLICY
from feedsvc.model import Document

STALE = "stale-while-revalidate=60, stale-if-error=86400"  # RFC 5861
# A past month's archive is complete (RFC 5005 §4: archives should not change): a year,
# and RFC 8246 `immutable` so browsers do not revalidate it on reload either.
IMMUTABLE = "public, max-age=31536000, immutable"
# RFC 9110 §12.5.5: Vary names the request fields that chose a representation. Listing
# Accept on feeds would split shared caches into one copy per distinct Accept string
# (every reader and browser sends its own); Sec-Fetch-Dest has a handful of values and
# every current browser sends it on navigation. A browser too old to send it is recognised
# by Accept alone, so the page it gets is `private`: no shared cache hands it to a reader.
FEED_VARY = "Accept-Encoding, Sec-Fetch-Dest"
BROWSER_VARY = "Accept-Encoding, Sec-Fetch-Dest, Accept"


@dataclass(frozen=True, slots=True)
class Variant:
    """One ready-to-send representation: its document and coding, and the exact header
    lists for 200 and 304. The body itself is made on first use (serving.Bodies).
    """

    document: Document
    gzipped: bool
    etag: str  # quoted, as sent
    last_modified: int  # epoch seconds, for If-Modified-Since
    # Lists, as PEP 3333 start_response wants them; built once, never mutated.
    headers: list[tuple[str, str]]
    not_modified: list[tuple[str, str]]


class Resource:
    """Every representation of one URL: identity and gzip, and for a feed its browser page.

    Each is made on first use by `make(resource, gzipped, browser)` and kept: a worker that
    loads a generation of 10,000 documents can answer at once, and pays for the header
    lists of a document only when it is first asked for.
    """

    __slots__ = ("_make", "_variants", "document", "view_document")

    def __init__(
        self,
        document: Document,
        view_document: Document | None,
        make: Callable[[Resource, bool, bool], Variant],
    ) -> None:
        self.document = document
        self.view_document = view_document  # a feed's HTML view, for browsers
        self._make = make
        self._variants: list[Variant | None] = [None, None, None, None]

    def variant(self, gzipped: bool, browser: bool) -> Variant:
        """The document, or with `browser` a feed's HTML view; gzipped or not."""
        slot = 2 * browser + gzipped
        variant = self._variants[slot]
        if variant is None:  # two threads may make it at once; both make equal ones
            variant = self._variants[slot] = self._make(self, gzipped, browser)
        return variant


def wsgi_path(path: str) -> str:
    """The PATH_INFO a WSGI server gives for a document path (UTF-8 bytes as latin-1, PEP 3333)."""
    return "/" + path.encode("utf-8").decode("latin-1")


def prepare_resources(
    documents: Mapping[str, Document],
    max_age: int,
    previous: Mapping[str, Resource],
    changed: Collection[str] | None = None,
) -> dict[str, Resource]:
    """Resources by PATH_INFO; unchanged documents reuse what the last reload prepared.

    With `changed` (the paths of documents new, gone or different since `previous`),
    only those are looked at, and the feeds beside a changed HTML view.
    """
    if changed is not None and "index.html" in documents:
        resources, archives = _update_resources(documents, max_age, previous, changed)
    else:
        resources, archives = _all_resources(documents, max_age, previous)
    _archive_resources(documents, max_age, resources, archives)
    if "index.html" in documents:
        resources["/"] = resources[wsgi_path("index.html")]
    return resources


def _all_resources(
    documents: Mapping[str, Document], max_age: int, previous: Mapping[str, Resource]
) -> tuple[dict[str, Resource], list[str]]:
    """Every resource but the archives', and the archive paths to make."""
    resources: dict[str, Resource] = {}
    archives = [path for path in documents if "archive-" in path and is_archive(path)]
    made_below = set(archives)  # by _archive_resources, which knows the past months
    for path, document in documents.items():
        if path in made_below:
            continue
        key = wsgi_path(path)
        old = previous.get(key)
        view = documents.get(document.view) if document.view else None
        if old is not None and _same(old.document, document) and _same_view(old, view):
            resources[key] = old
        else:
            resources[key] = Resource(document, view, _variants(max_age))
    return resources, archives


def _update_resources(
    documents: Mapping[str, Document],
    max_age: int,
    previous: Mapping[str, Resource],
    changed: Collection[str],
) -> tuple[dict[str, Resource], list[str]]:
    """The resources of what changed, the rest kept, and the archive paths to make."""
    resources = dict(previous)
    paths = set(changed)
    for path in changed:  # a feed's resource holds its view: a new view, a new resource
        if path.endswith(VIEW_NAME):
            folder = path[: -len(VIEW_NAME)]
            paths.update(f"{folder}feed.{fmt}" for fmt in MEDIA_TYPES)
    for path in paths:
        document = documents.get(path)
        if document is None:
            resources.pop(wsgi_path(path), None)
        else:
            view = documents.get(document.view) if document.view else None
            resources[wsgi_path(path)] = Resource(document, view, _variants(max_age))
    # A new month makes the month before it past: its feed's archives are made again.
    folders = {p.rpartition("/")[0] for p in changed if "archive-" in p and is_archive(p)}
    if not folders:
        return resources, []
    return resources, [p for p in documents if p.rpartition("/")[0] in folders and is_archive(p)]


def _archive_resources(
    documents: Mapping[str, Document],
    max_age: int,
    resources: dict[str, Resource],
    archives: list[str],
) -> None:
    """Resources of these archive paths (whole feeds' worth): past months immutable."""
    past = past_archives(archives)
    for path in archives:
        resources[wsgi_path(path)] = Resource(
            documents[path], None, _variants(max_age, path in past)
        )


def _same(old: Document, new: Document) -> bool:
    # The ETag is a digest of the bytes: equal tags, equal bytes.
    return (old.etag, old.last_modified, old.media_type) == (
        new.etag,
        new.last_modified,
        new.media_type,
    )


def _same_view(old: Resource, view: Document | None) -> bool:
    if view is None or old.view_document is None:
        return view is None and old.view_document is None
    return _same(old.view_document, view)


def cache_control(document: Document, max_age: int, *, immutable: bool = False) -> str:
    """The Cache-Control a document is served with to everyone but a browser's page
    (`immutable`: a past month's archive)."""
    feed_cache, page_cache = _cache_controls(max_age, immutable)
    is_feed = document.view is not None or document.media_type in _FEED_MEDIA_TYPES
    return feed_cache if is_feed else page_cache


@lru_cache(maxsize=16)
def _cache_controls(max_age: int, immutable: bool) -> tuple[str, str]:
    """Cache-Control of a feed and of a page, for one max-age: one string each, shared by
    every response that sends it."""
    feed_cache = IMMUTABLE if immutable else f"public, max-age={max_age}, {STALE}"
    return feed_cache, f"public, max-age={max_age}"


_FEED_MEDIA_TYPES = frozenset(MEDIA_TYPES.values())


@lru_cache(maxsize=16)
def _variants(max_age: int, immutable: bool = False) -> Callable[[Resource, bool, bool], Variant]:
    """What makes a resource's representations, for one max-age (`immutable`: a past
    month's archive)."""
    feed_cache, page_cache = _cache_controls(max_age, immutable)
    private = f"private, max-age={max_age}"

    def make(resource: Resource, gzipped: bool, browser: bool) -> Variant:
        negotiated = resource.view_document is not None  # a feed with an HTML view
        if browser:
            assert resource.view_document is not None
            return _variant(resource.view_document, gzipped, private, BROWSER_VARY, cors=False)
        # Archives are feeds without a view: feed caching and CORS, no negotiation.
        is_feed = negotiated or resource.document.media_type in _FEED_MEDIA_TYPES
        cache = feed_cache if is_feed else page_cache
        vary = FEED_VARY if negotiated else "Accept-Encoding"
        return _variant(resource.document, gzipped, cache, vary, cors=is_feed)

    return make


def _variant(document: Document, gzipped: bool, cache: str, vary: str, *, cors: bool) -> Variant:
    # The standard library, not werkzeug.http: the builder makes these too (feedsvc
    # build, object storage) and starts sooner without importing werkzeug.
    etag = f'"{document.gzip_etag if gzipped else document.etag}"'  # hex digits: no quotes
    length = document.gzip_size if gzipped else document.size
    last_modified = format_datetime(document.last_modified.astimezone(UTC), usegmt=True)
    # RFC 9110 §15.4.5: a 304 carries the validators and caching fields a 200 would.
    validators = [
        ("ETag", etag),
        ("Last-Modified", last_modified),
        ("Cache-Control", cache),
        ("Vary", vary),
    ]
    headers = [
        ("Content-Type", document.media_type),
        ("Content-Length", str(length)),
        *validators,
        ("X-Content-Type-Options", "nosniff"),
    ]
    if gzipped:
        headers.append(("Content-Encoding", "gzip"))
    if cors:
        # Web-based readers fetch feeds from their own origin.
        headers.append(("Access-Control-Allow-Origin", "*"))
        # A web reader that polls with its own If-None-Match reads the 304 through CORS.
        validators.append(("Access-Control-Allow-Origin", "*"))
    if document.media_type.startswith("text/html"):
        headers.append(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
    seconds = int(document.last_modified.timestamp())
    return Variant(document, gzipped, etag, seconds, headers, validators)

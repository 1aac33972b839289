"""The hot path: ready-made HTTP representations of built documents, served by a WSGI layer.

Everything a feed response needs (bytes, gzip bytes, ETags, the header lists for 200 and
304) is prepared once per reload by `prepare_resources`; `FastPath` only picks one and
evaluates the conditional headers, with Werkzeug's parsers behind small caches. It sits in
front of Flask the way Werkzeug's SharedDataMiddleware does; everything else goes to Flask.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any, Protocol

from werkzeug.datastructures import Accept, ETags, MIMEAccept
from werkzeug.http import http_date, parse_accept_header, parse_etags, quote_etag

from feedsvc.build.archives import is_archive, past_archives
from feedsvc.build.documents import MEDIA_TYPES, VIEW_NAME
from feedsvc.build.pages import CONTENT_SECURITY_POLICY
from feedsvc.dates import parse_http_date
from feedsvc.model import Document, Resource, Variant
from feedsvc.store import Store

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_TARGET = 2048  # bytes of path plus query string; longer is 414 (RFC 9110 §15.5.15)
STALE = "stale-while-revalidate=60, stale-if-error=86400"  # RFC 5861
# A past month's archive is complete (RFC 5005 §4: archives should not change): a year,
# and RFC 8246 `immutable` so browsers do not revalidate it on reload either.
IMMUTABLE = "public, max-age=31536000, immutable"
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/xml",
    "text/xml",
    "application/json",
)
# RFC 9110 §12.5.5: Vary names the request fields that chose a representation. Listing
# Accept on feeds would split shared caches into one copy per distinct Accept string
# (every reader and browser sends its own); Sec-Fetch-Dest has a handful of values and
# every current browser sends it on navigation. A browser too old to send it is recognised
# by Accept alone, so the page it gets is `private`: no shared cache hands it to a reader.
FEED_VARY = "Accept-Encoding, Sec-Fetch-Dest"
BROWSER_VARY = "Accept-Encoding, Sec-Fetch-Dest, Accept"


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
        return _update_resources(documents, max_age, previous, changed)
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
            resources[key] = _resource(document, view, max_age)
    _archive_resources(documents, max_age, resources, archives)
    if "index.html" in documents:
        resources["/"] = resources[wsgi_path("index.html")]
    return resources


def _update_resources(
    documents: Mapping[str, Document],
    max_age: int,
    previous: Mapping[str, Resource],
    changed: Collection[str],
) -> dict[str, Resource]:
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
            resources[wsgi_path(path)] = _resource(document, view, max_age)
    # A new month makes the month before it past: its feed's archives are made again.
    folders = {p.rpartition("/")[0] for p in changed if "archive-" in p and is_archive(p)}
    if folders:
        archives = [p for p in documents if p.rpartition("/")[0] in folders and is_archive(p)]
        _archive_resources(documents, max_age, resources, archives)
    resources["/"] = resources[wsgi_path("index.html")]
    return resources


def _archive_resources(
    documents: Mapping[str, Document],
    max_age: int,
    resources: dict[str, Resource],
    archives: list[str],
) -> None:
    """Resources of these archive paths (whole feeds' worth): past months immutable."""
    past = past_archives(archives)
    for path in archives:
        resources[wsgi_path(path)] = _resource(documents[path], None, max_age, path in past)


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


def _resource(
    document: Document, view: Document | None, max_age: int, immutable: bool = False
) -> Resource:
    return Resource(document, view, _variants(max_age, immutable))


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
    etag = quote_etag(document.gzip_etag if gzipped else document.etag)
    length = document.gzip_size if gzipped else document.size
    last_modified = http_date(document.last_modified)
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


class Bodies:
    """Response bodies made on first use and kept within a size bound, oldest dropped first.

    Documents hold only their gzip pieces (shared between feeds); a body is those
    pieces joined, or inflated for clients that do not take gzip. The bound keeps a
    crawler asking for every feed in every coding from making the process hold every
    body; the feeds polled most stay made. A hit is one dict lookup, without the lock.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._bodies: OrderedDict[str, bytes] = OrderedDict()  # by quoted ETag: one per coding
        self._size = 0
        self._lock = threading.Lock()

    def get(self, variant: Variant) -> bytes:
        """The body of one representation."""
        body = self._bodies.get(variant.etag)
        if body is not None:
            return body
        document = variant.document
        body = document.gzip_body if variant.gzipped else document.body
        with self._lock:
            if variant.etag not in self._bodies:
                self._bodies[variant.etag] = body
                self._size += len(body)
            while self._size > self.max_bytes and len(self._bodies) > 1:
                _, dropped = self._bodies.popitem(last=False)
                self._size -= len(dropped)
        return body


class RequestTally(Protocol):
    """Where responses are counted: (route, status) -> count, drained by its owner."""

    pending: Counter[tuple[str, str]]


NOT_FOUND = b"Not Found\n"
NOT_FOUND_HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(NOT_FOUND))),
    ("X-Content-Type-Options", "nosniff"),
]
# Flask's routes, for counting; every other path that reaches Flask is a 405.
_APP_ROUTES = {"/healthz": "healthz", "/metrics": "metrics", "/-/reload": "reload"}


class FastPath:
    """WSGI middleware answering GET/HEAD for built documents from prepared representations."""

    def __init__(self, store: Store, app: WSGIApp, tally: RequestTally | None = None) -> None:
        self.store = store
        self.app = app
        self.tally = tally
        self.bodies = Bodies()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if len(path) + len(environ.get("QUERY_STRING", "")) > MAX_TARGET:
            start_response(
                "414 URI Too Long", [("Content-Type", "text/plain"), ("Content-Length", "13")]
            )
            return [b"URI Too Long\n"]
        method = environ["REQUEST_METHOD"]
        if method in ("GET", "HEAD"):
            resource = self.store.current.resources.get(path)
            if resource is not None and not _has_encoded_slash(environ):
                return self._serve(resource, environ, start_response, method == "HEAD")
            if path not in _APP_ROUTES:
                # Answered here rather than by Flask, whose 404 raises and leaves cyclic
                # garbage for the collector: a flood of probes costs next to nothing.
                if self.tally is not None:
                    self.tally.pending[("other", "404")] += 1
                start_response("404 Not Found", NOT_FOUND_HEADERS)
                return [] if method == "HEAD" else [NOT_FOUND]
        if self.tally is None:
            return self.app(environ, start_response)
        route = _APP_ROUTES.get(path, "other")
        tally = self.tally

        def counted(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            tally.pending[(route, status[:3])] += 1
            return start_response(status, headers, *args)

        return self.app(environ, counted)

    def _serve(
        self,
        resource: Resource,
        environ: dict[str, Any],
        start_response: Callable[..., Any],
        head: bool,
    ) -> list[bytes]:
        gzipped = accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING"))
        dest = environ.get("HTTP_SEC_FETCH_DEST")
        accept = environ.get("HTTP_ACCEPT")
        # Cheap test first: readers send neither Sec-Fetch-Dest nor an Accept naming HTML.
        maybe_browser = dest is not None or (accept is not None and "html" in accept)
        if (
            maybe_browser
            and resource.view_document is not None
            and is_browser_navigation(dest, accept)
        ):
            variant = resource.browser_gzip if gzipped else resource.browser_identity
        else:
            variant = resource.gzip if gzipped else resource.identity
        assert variant is not None
        route = "feed" if resource.view_document is not None else "page"
        if is_not_modified(variant, environ):
            if self.tally is not None:
                self.tally.pending[(route, "304")] += 1
            start_response("304 Not Modified", variant.not_modified)
            return []
        if self.tally is not None:
            self.tally.pending[(route, "200")] += 1
        start_response("200 OK", variant.headers)
        if head:
            return []
        return [self.bodies.get(variant)]


def _has_encoded_slash(environ: dict[str, Any]) -> bool:
    """`%2F` in the raw target: a slash inside a segment names no document of ours.

    Only servers that pass the raw request target (RAW_URI, REQUEST_URI) allow the check;
    granian decodes `%2F` before the application sees the path.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    return raw is not None and "%2f" in raw.lower()


def is_not_modified(variant: Variant, environ: dict[str, Any]) -> bool:
    """RFC 9110 §13.2.2: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        # §13.1.2: weak comparison, so W/"x" matches "x"; "*" matches any current one.
        if if_none_match == variant.etag:
            return True
        return bool(_etags(if_none_match).contains_weak(variant.etag.strip('"')))
    if_modified_since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if if_modified_since is None:
        return False
    since = _date(if_modified_since)
    # §13.1.3: an invalid date is ignored; HTTP dates have one-second precision.
    return since is not None and variant.last_modified <= since


@lru_cache(maxsize=1024)
def accepts_gzip(header: str | None) -> bool:
    """Whether Accept-Encoding allows gzip (q-values respected, `gzip;q=0` refused)."""
    if not header:
        return False
    return bool(parse_accept_header(header, Accept).quality("gzip") > 0)


@lru_cache(maxsize=1024)
def is_browser_navigation(dest: str | None, accept: str | None) -> bool:
    """A top-level browser navigation: Sec-Fetch-Dest: document, or Accept preferring HTML."""
    if dest is not None:
        return dest == "document"
    if not accept or "html" not in accept:
        return False
    accepted = parse_accept_header(accept, MIMEAccept)
    html = accepted.quality("text/html")
    return html > 0 and all(html > accepted.quality(t) for t in FEED_TYPES)


@lru_cache(maxsize=1024)
def _etags(header: str) -> ETags:
    return parse_etags(header)


@lru_cache(maxsize=1024)
def _date(header: str) -> int | None:
    parsed = parse_http_date(header)
    return int(parsed.timestamp()) if parsed is not None else None

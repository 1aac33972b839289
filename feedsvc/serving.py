"""The hot path: ready-made HTTP representations of built documents, served by a WSGI layer.

Everything a feed response needs (bytes, gzip bytes, ETags, the header lists for 200 and
304) is prepared once per document by feedsvc.resources; `FastPath` only picks one and
evaluates the conditional headers, with Werkzeug's parsers behind small caches. It sits in
front of Flask the way Werkzeug's SharedDataMiddleware does; everything else goes to Flask.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from werkzeug.datastructures import Accept, ETags, MIMEAccept
from werkzeug.http import parse_accept_header, parse_etags

from feedsvc.dates import parse_http_date
from feedsvc.metrics import RequestCounts
from feedsvc.resources import Resource, Variant
from feedsvc.store import Store

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_TARGET = 2048  # bytes of path plus query string; longer is 414 (RFC 9110 §15.5.15)
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/xml",
    "text/xml",
    "application/json",
)


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

    def __init__(self, store: Store, app: WSGIApp, requests: RequestCounts) -> None:
        self.store = store
        self.app = app
        # Each thread counts in its own `requests.counts`; Metrics adds them up.
        self.requests = requests
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
                self.requests.counts[("other", "404")] += 1
                start_response("404 Not Found", NOT_FOUND_HEADERS)
                return [] if method == "HEAD" else [NOT_FOUND]
        route = _APP_ROUTES.get(path, "other")

        def counted(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            self.requests.counts[(route, status[:3])] += 1  # on the request's thread
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
        browser = (
            maybe_browser
            and resource.view_document is not None
            and is_browser_navigation(dest, accept)
        )
        variant = resource.variant(gzipped, browser)
        route = "feed" if resource.view_document is not None else "page"
        if is_not_modified(variant, environ):
            self.requests.counts[(route, "304")] += 1
            start_response("304 Not Modified", variant.not_modified)
            return []
        self.requests.counts[(route, "200")] += 1
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
        etag = variant.etag
        return if_none_match == etag or _etags(if_none_match).contains_weak(etag.strip('"'))
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

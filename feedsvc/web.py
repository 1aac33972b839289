"""create_app(store, config): the Flask app serving the current snapshot. The only user of Flask."""

from __future__ import annotations

from flask import Blueprint, Flask, Request, Response, abort, current_app, jsonify, request

from feedsvc.config import Config
from feedsvc.model import Document, Snapshot
from feedsvc.pages import CONTENT_SECURITY_POLICY
from feedsvc.store import Store

# Media types a feed reader may ask for; a browser asks for text/html above all of them.
FEED_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/feed+json",
    "application/xml",
    "text/xml",
    "application/json",
)

bp = Blueprint("feeds", __name__)


def create_app(store: Store, config: Config) -> Flask:
    """Wire a Flask app to a Store; nothing is read or started here."""
    app = Flask(__name__)
    app.extensions["feedsvc"] = {"store": store, "config": config}
    app.register_blueprint(bp)
    return app


def _snapshot() -> Snapshot:
    store: Store = current_app.extensions["feedsvc"]["store"]
    return store.current


def _config() -> Config:
    config: Config = current_app.extensions["feedsvc"]["config"]
    return config


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness and the current problems, as JSON."""
    snapshot = _snapshot()
    errors = [p for p in snapshot.problems if p.severity == "error"]
    response = jsonify(
        status="ok" if snapshot.generation and not errors else "degraded",
        articles=snapshot.article_count,
        documents=len(snapshot.documents),
        last_reload=snapshot.loaded_at.isoformat() if snapshot.loaded_at else None,
        generation=snapshot.generation,
        problems=[
            {"path": p.path, "line": p.line, "message": p.message, "severity": p.severity}
            for p in snapshot.problems
        ],
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def index() -> Response:
    """The HTML index of every feed."""
    return document("index.html")


@bp.get("/<path:path>")
def document(path: str) -> Response:
    """One built document, with validators; 304 when the client's copy is current."""
    snapshot = _snapshot()
    found = snapshot.documents.get(path)
    if found is None:
        abort(404)
    browser = found.view is not None and is_browser_navigation(request)
    if browser:
        found = snapshot.documents[found.view]  # type: ignore[index]
    response = _response(found)
    if found.view is not None or browser:
        # RFC 9110 §12.5.5: Vary names the request fields that chose this representation.
        # Listing Accept would make shared caches keep one copy per distinct Accept string
        # (every browser and reader sends its own), so feeds vary on Sec-Fetch-Dest, which
        # has a handful of values and which every current browser sends on navigation.
        # A browser too old to send it is recognised by Accept alone, so its HTML page is
        # `private`: no shared cache can hand that page to a feed reader.
        response.vary.add("Sec-Fetch-Dest")
    if browser:
        response.vary.add("Accept")
        response.cache_control.public = False
        response.cache_control.private = True
    response.make_conditional(request)
    return response


def is_browser_navigation(req: Request) -> bool:
    """A top-level browser navigation: Sec-Fetch-Dest: document, or Accept preferring HTML."""
    dest = req.headers.get("Sec-Fetch-Dest")
    if dest is not None:
        return dest == "document"
    accept = req.accept_mimetypes
    html = accept.quality("text/html")
    return html > 0 and all(html > accept.quality(t) for t in FEED_TYPES)


def _response(found: Document) -> Response:
    response = Response(found.body, content_type=found.media_type)
    # RFC 9110 §8.8.3: a strong validator computed from the very bytes sent.
    response.set_etag(found.etag)
    response.last_modified = found.last_modified
    response.cache_control.public = True
    response.cache_control.max_age = _config().server.cache_max_age
    response.headers["X-Content-Type-Options"] = "nosniff"
    if found.media_type.startswith("text/html"):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response

"""create_app(store, config): the Flask app serving the current snapshot. The only user of Flask."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request

from feedsvc.config import Config
from feedsvc.model import Snapshot
from feedsvc.store import Store

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


@bp.get("/<path:path>")
def document(path: str) -> Response:
    """One built document, with validators; 304 when the client's copy is current."""
    found = _snapshot().documents.get(path)
    if found is None:
        abort(404)
    response = Response(found.body, content_type=found.media_type)
    # RFC 9110 §8.8.3: a strong validator computed from the very bytes sent.
    response.set_etag(found.etag)
    response.last_modified = found.last_modified
    response.cache_control.public = True
    response.cache_control.max_age = _config().server.cache_max_age
    # RFC 9110 §13.2.2: If-None-Match (weak comparison) is evaluated first and
    # If-Modified-Since only when it is absent; a match gives 304 without a body.
    response.make_conditional(request)
    return response

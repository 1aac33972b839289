"""create_app(store, config): the Flask app serving the current snapshot. The only user of Flask."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, abort, current_app, jsonify

from feedsvc.config import Config
from feedsvc.model import Snapshot
from feedsvc.serving import FastPath
from feedsvc.store import Store

bp = Blueprint("feeds", __name__)


def create_app(store: Store, config: Config) -> Flask:
    """Wire a Flask app to a Store; nothing is read or started here."""
    app = Flask(__name__)
    app.extensions["feedsvc"] = {"store": store, "config": config}
    app.register_blueprint(bp)
    # Built documents never reach Flask: the prepared-bytes layer answers them first.
    app.wsgi_app = FastPath(store, app.wsgi_app)  # type: ignore[method-assign]
    return app


def _snapshot() -> Snapshot:
    store: Store = current_app.extensions["feedsvc"]["store"]
    return store.current


@bp.route("/healthz", methods=["GET"], provide_automatic_options=False)
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


@bp.route("/", methods=["GET"], provide_automatic_options=False)
@bp.route("/<path:path>", methods=["GET"], provide_automatic_options=False)
def not_found(path: str = "") -> Response:
    """Built documents are answered by FastPath before Flask; anything else does not exist."""
    abort(404)

"""create_app(store): the Flask app serving the current snapshot. The only user of Flask."""

from __future__ import annotations

import hmac
from dataclasses import asdict
from typing import Protocol

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request

from feedsvc.metrics import Metrics
from feedsvc.model import ReloadSummary, Snapshot
from feedsvc.serving import FastPath
from feedsvc.store import Store

bp = Blueprint("feeds", __name__)


class ReloadTarget(Protocol):
    """What the reload endpoint drives: a Reloader, or a worker's Follower."""

    @property
    def reload_token(self) -> str | None: ...

    def reload(self) -> ReloadSummary: ...


def create_app(
    store: Store,
    reloader: ReloadTarget | None = None,
    metrics: Metrics | None = None,
) -> Flask:
    """Wire a Flask app to a Store; nothing is read or started here.

    With a `reloader`, `POST /-/reload` runs a reload (when `server.reload_token` is set)
    and answers once this process serves its result; `metrics` is what `/metrics` reports
    (a private registry when not given).
    """
    app = Flask(__name__)
    metrics = metrics or Metrics()
    app.extensions["feedsvc"] = {"store": store, "reloader": reloader, "metrics": metrics}
    app.register_blueprint(bp)
    # Built documents never reach Flask: the prepared-bytes layer answers them first.
    app.wsgi_app = FastPath(store, app.wsgi_app, metrics.requests)  # type: ignore[method-assign]
    return app


@bp.route("/healthz", methods=["GET"], provide_automatic_options=False)
def healthz() -> Response:
    """Liveness and the current problems, as JSON."""
    snapshot: Snapshot = current_app.extensions["feedsvc"]["store"].current
    errors = [p for p in snapshot.problems if p.severity == "error"]
    response = jsonify(
        status="ok" if snapshot.generation and not errors else "degraded",
        articles=snapshot.article_count,
        documents=len(snapshot.documents),
        last_reload=snapshot.loaded_at.isoformat() if snapshot.loaded_at else None,
        generation=snapshot.generation,
        problems=[asdict(problem) for problem in snapshot.problems],
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/metrics", methods=["GET"], provide_automatic_options=False)
def metrics() -> Response:
    """Prometheus text exposition format."""
    body, content_type = current_app.extensions["feedsvc"]["metrics"].exposition()
    return Response(body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"})


@bp.route("/-/reload", methods=["GET", "POST"], provide_automatic_options=False)
def reload() -> Response:
    """Reload now; only with `Authorization: Bearer <server.reload_token>`."""
    reloader: ReloadTarget | None = current_app.extensions["feedsvc"]["reloader"]
    token = reloader.reload_token if reloader else None
    if reloader is None or not token:
        abort(404)
    if request.method != "POST":
        return Response("use POST\n", 405, {"Allow": "POST", "Content-Type": "text/plain"})
    given = request.headers.get("Authorization", "")
    # Compare in constant time, so the token cannot be guessed byte by byte.
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return Response(
            "a valid bearer token is required\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="feedsvc"', "Content-Type": "text/plain"},
        )
    try:
        summary = reloader.reload()
    except OSError as exc:  # the builder process is gone or did not answer
        return Response(f"reload failed: {exc}\n", 503, {"Content-Type": "text/plain"})
    response = jsonify(asdict(summary))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/", methods=["GET"], provide_automatic_options=False)
@bp.route("/<path:path>", methods=["GET"], provide_automatic_options=False)
def not_found(path: str = "") -> Response:
    """Never reached by GET or HEAD: FastPath answers built documents and unknown paths
    alike. The route is what makes every other method on them a 405 with `Allow`."""
    abort(404)

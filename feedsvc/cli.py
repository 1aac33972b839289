"""The composition root: `feedsvc serve`, `build`, `check` and `publish`."""

from __future__ import annotations

import argparse
import atexit
import errno
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from feedsvc import __version__
from feedsvc.config import load_config
from feedsvc.errors import EXIT_CONFIG, EXIT_OK, ConfigError, fail
from feedsvc.logs import configure_logging, server_logging
from feedsvc.metrics import Metrics, enable_multiprocess, process_exited
from feedsvc.processes.cpus import available_cores
from feedsvc.processes.follower import Follower
from feedsvc.processes.supervisor import BuilderProcess
from feedsvc.settings import Config
from feedsvc.state.files import StateError, StateLock, prepare_folder
from feedsvc.state.snapshots import discard, validate
from feedsvc.store import Store

logger = logging.getLogger(__name__)

# Feed requests are answered from memory in microseconds and granian does the network
# I/O in Rust. Python threads hand requests over faster when one is free for every
# connection in flight; idle threads cost little. Sixteen measured best
# (docs/performance.md, "Figures behind the code's constants").
DEFAULT_THREADS = 16
SOCKET_ENV = "FEEDSVC_BUILDER_SOCKET"
SNAPSHOTS_ENV = "FEEDSVC_SNAPSHOTS"
GENERATION_ENV = "FEEDSVC_GENERATION"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    args = _parser().parse_args(argv)
    # --quiet: the summary line alone, unless a log level is asked for.
    quiet = getattr(args, "quiet", False) and args.log_level is None
    args.log_level = "warning" if quiet else args.log_level or "info"
    configure_logging(args.log_level, args.log_format)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    return int(args.run(args, config))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedsvc", description=__doc__)
    parser.add_argument("--version", action="version", version=f"feedsvc {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="build, then serve with the scheduler running")
    serve.add_argument("--host", help="listen address (default: server.host)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port)")
    serve.set_defaults(run=serve_command)
    build = commands.add_parser("build", help="write every document as static files")
    build.add_argument("--out", required=True, type=Path, help="output folder")
    build.set_defaults(run=_batch("build_command"))
    check = commands.add_parser("check", help="validate the config and every source")
    check.set_defaults(run=_batch("check_command"))
    publish = commands.add_parser(
        "publish", help="build, then upload what changed to object storage (S3-compatible)"
    )
    publish.add_argument("--to", help="s3://bucket/prefix (default: publish.url)")
    publish.add_argument("--endpoint-url", help="the store's URL (default: publish.endpoint_url)")
    publish.add_argument(
        "--dry-run", action="store_true", help="say what would change; change nothing"
    )
    publish.set_defaults(run=_batch("publish_command"))
    forget = commands.add_parser(
        "forget", help="stop serving emptied feeds the state directory keeps (README: Ids)"
    )
    forget.add_argument(
        "feeds",
        nargs="+",
        metavar="FEED",
        help="a feed's directory (categories/旧栏目, tags/x; a trailing /** takes what is below)",
    )
    forget.set_defaults(run=_batch("forget_command"))
    _add_common_options((serve, build, check, publish, forget), quiet=(build, check, publish))
    return parser


def _batch(name: str) -> Callable[[argparse.Namespace, Config], int]:
    """A command of feedsvc.batch, imported when it runs: `serve` starts sooner without it
    (its main process forks the builder and the workers, which need other modules)."""

    def run(args: argparse.Namespace, config: Config) -> int:
        from feedsvc import batch  # noqa: PLC0415 (see the docstring)

        return int(getattr(batch, name)(args, config))

    return run


def _add_common_options(
    commands: Sequence[argparse.ArgumentParser], *, quiet: Sequence[argparse.ArgumentParser]
) -> None:
    """The options every command takes, and --quiet for those that draw progress bars."""
    for sub in quiet:
        sub.add_argument(
            "--quiet", action="store_true", help="no progress bars, only the summary line"
        )
    for sub in commands:
        sub.add_argument("--config", default="config.yaml", help="default: ./config.yaml")
        sub.add_argument(
            "--log-level", choices=["debug", "info", "warning", "error"], help="default: info"
        )
        sub.add_argument("--log-format", default="text", choices=["text", "json"])


def serve_command(args: argparse.Namespace, config: Config) -> int:
    """Serve with granian: one builder process reloads on schedule and writes each
    snapshot into the state directory; every worker maps it and only serves."""
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if not _is_port_free(host, port):
        return fail(f"cannot listen on {host}:{port}: address already in use")
    runtime = tempfile.TemporaryDirectory(prefix="feedsvc-")
    try:
        snapshots, lock = _open_state(Path(config.state.path), Path(runtime.name))
    except StateError as exc:
        return fail(str(exc))
    # A complete generation from before the stop is served from the first request.
    generation = validate(snapshots)
    if generation is None:
        discard(snapshots)
    os.environ[SNAPSHOTS_ENV] = str(snapshots)
    os.environ[GENERATION_ENV] = str(generation or "")
    metrics_dir = tempfile.TemporaryDirectory(prefix="feedsvc-metrics-")
    enable_multiprocess(metrics_dir.name)
    # The builder's socket lives in a directory only this user can enter (mode 0700).
    os.environ[SOCKET_ENV] = os.path.join(runtime.name, "builder.sock")
    # The builder takes SIGUSR1 as "reload now"; until its handler is in place (and in
    # every other process) the signal must not end the process.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    builder = BuilderProcess(config, os.environ[SOCKET_ENV], snapshots, generation)
    builder.start()
    server = _make_server(args, config, host, port)
    server.builder = builder
    try:
        server.serve()
    finally:
        builder.stop()
        lock.release()
    return EXIT_OK


def _make_server(args: argparse.Namespace, config: Config, host: str, port: int) -> Any:
    """granian, set up to run `worker_app` in every worker."""
    # The server is imported only when serving: check and build never need it. The web
    # app is imported here too: after the builder was forked (it serves nothing, and
    # its start does not wait for these), before granian forks the workers that use it.
    from granian.constants import Interfaces  # noqa: PLC0415
    from granian.http import HTTP1Settings  # noqa: PLC0415

    import feedsvc.web  # noqa: F401, PLC0415

    return _server_class()(
        "feedsvc.cli:worker_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        # One worker per core: each maps the same snapshot files.
        workers=config.server.workers or available_cores(),
        blocking_threads=config.server.threads or DEFAULT_THREADS,
        # Keep-alive on; a client has 10 s to send its headers, which may total 64 KiB
        # (larger is 431). Feeds take no request bodies.
        http1_settings=HTTP1Settings(
            header_read_timeout=10_000, keep_alive=True, max_buffer_size=65_536
        ),
        log_level=args.log_level,
        # Python-side access logging halves feed throughput (docs/performance.md), so it is
        # opt-in; a proxy or CDN in front usually keeps the access log.
        log_access=config.server.access_log,
        log_dictconfig=server_logging(args.log_level, args.log_format),
        websockets=False,
        # SIGTERM: workers get 8 s to finish in-flight requests, then are killed, so the
        # server always exits within 10 s.
        workers_kill_timeout=8,
    )


def _open_state(folder: Path, runtime: Path) -> tuple[Path, StateLock]:
    """The snapshots folder of the state directory, and its lock, held for this server.

    An unwritable state directory is not fatal: the server runs with a private one that
    goes with it (state off, warned). Another server holding it is (StateError).
    """
    try:
        prepare_folder(folder)
    except StateError as exc:
        logger.warning("%s; running without saved state (a restart builds from scratch)", exc)
        folder = runtime / "state"
        prepare_folder(folder)
    lock = StateLock(folder)
    lock.acquire()
    return folder / "snapshots", lock


def _server_class() -> type:
    """granian's server, with SIGHUP meaning "reload now" instead of "restart workers",
    and a SIGTERM or SIGINT that keeps a dying builder from being started again.

    granian answers SIGHUP by starting fresh workers and stopping the old ones a fixed
    3.5 s later. feedsvc's workers hold no sources: the builder process reloads, and
    every worker follows it.
    """
    from granian import Granian  # noqa: PLC0415

    class FeedsvcServer(Granian):  # type: ignore[misc,valid-type]
        builder: BuilderProcess

        def signal_handler_interrupt(self, *args: object, **kwargs: object) -> None:
            self.builder.stopping()
            super().signal_handler_interrupt(*args, **kwargs)

        def _reload(self, spawn_target: object, target_loader: object) -> None:
            self.reload_signal = False
            self.main_loop_interrupt.clear()
            logger.info("SIGHUP: asking the builder to reload now")
            if self.builder.pid is not None:
                os.kill(self.builder.pid, signal.SIGUSR1)

    return FeedsvcServer


def worker_app() -> object:
    """Granian worker factory: serve the saved generation, or wait for the builder's first;
    then return the WSGI app."""
    # A forked worker inherits the main process's SIGTERM handler, which only sets a flag
    # there; until granian installs the worker's own handlers (after this returns), a
    # SIGTERM must end the worker, or a stop during the first build would be lost.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    store = Store()
    metrics = Metrics()
    metrics.start_flushing()
    atexit.register(process_exited, os.getpid())
    follower = Follower(os.environ[SOCKET_ENV], Path(os.environ[SNAPSHOTS_ENV]), store)
    generation = os.environ.get(GENERATION_ENV)
    follower.start(int(generation) if generation else None)
    from feedsvc.web import create_app  # noqa: PLC0415 (imported before the fork: _make_server)

    app = create_app(store, follower, metrics=metrics)
    # Serve the app's WSGI callable (FastPath in front of Flask) directly: one frame less
    # on every feed request than going through Flask.__call__.
    return app.wsgi_app


def _is_port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno not in (errno.EADDRINUSE, errno.EACCES)
    return True


if __name__ == "__main__":
    raise SystemExit(main())

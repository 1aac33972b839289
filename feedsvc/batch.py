"""The commands run by hand: `check`, `build` and `publish` build once and exit; `forget`
edits the id ledger.

Each prints the problems as `path:line: message` and one summary line on standard
output; progress bars, when standard error is a terminal, go there.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from feedsvc.errors import EXIT_CONFIG, EXIT_OK, EXIT_PROBLEMS, PublishError, fail
from feedsvc.model import Snapshot
from feedsvc.progress import Progress
from feedsvc.publish.bucket import Bucket, parse_target
from feedsvc.publish.sync import Publication
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.state.files import StateError, StateLock, prepare_folder
from feedsvc.state.ledger import FILE as LEDGER_FILE
from feedsvc.state.ledger import Ledger
from feedsvc.store import Store

logger = logging.getLogger(__name__)


def _read(config: Config, progress: Progress, *, record: bool = True) -> tuple[Snapshot, str, int]:
    """Read every source and build, with the ids of the state directory's ledger (kept up
    to date when `record` and no server holds it): the snapshot, its summary line and exit
    status. Prints the problems, and without `record` (check) what the reload would do to ids."""
    with _ledger(config, create=record) as (ledger, writable):
        reloader = Reloader(config, Store(), ledger=ledger, record=record and writable)
        with progress.files(reloader.sources, reloader.renderer):
            summary = reloader.reload()
    snapshot = reloader.store.current
    for problem in snapshot.problems:
        print(problem)
    if not record:  # check: what the next reload would do to ids (build and publish log it)
        for change in reloader.id_changes:
            print(change)
    errors = sum(1 for p in snapshot.problems if p.severity == "error")
    warnings = len(snapshot.problems) - errors
    line = f"{summary.articles} articles, {summary.documents} documents, "
    status = EXIT_PROBLEMS if errors else EXIT_OK
    return snapshot, f"{line}{errors} errors, {warnings} warnings", status


@contextlib.contextmanager
def _ledger(config: Config, *, create: bool) -> Iterator[tuple[Ledger | None, bool]]:
    """The id ledger of the config's state directory, and whether this command may write
    it: not while a server holds the state directory. Without `create`, only a ledger
    that exists, left as it is even when damaged (`check` writes nothing)."""
    folder = Path(config.state.path)
    if not create and not (folder / LEDGER_FILE).exists():
        yield None, False
        return
    try:
        prepare_folder(folder)
    except StateError as exc:
        logger.warning("%s; ids are the ones derived from source and path", exc)
        yield None, False
        return
    lock = StateLock(folder)
    held = lock.try_acquire()  # False: a server runs; read the ledger, leave writing to it
    ledger, damage = Ledger.open(folder, repair=create)
    if damage is not None and ledger is None:
        print(damage, file=sys.stderr)
    try:
        yield ledger, ledger is not None and held
    finally:
        if ledger is not None:
            ledger.close()
        lock.release()


def check_command(args: argparse.Namespace, config: Config) -> int:
    """Read every source without serving; print each problem, what the next reload would
    do to ids (nothing is written to the ledger), and a summary line."""
    _, line, status = _read(config, Progress.for_terminal(args.quiet), record=False)
    print(line)
    return status


def build_command(args: argparse.Namespace, config: Config) -> int:
    """Write every document under --out, replacing the folder only once all is written."""
    progress = Progress.for_terminal(args.quiet)
    snapshot, line, status = _read(config, progress)
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with progress.bar("documents written", len(snapshot.documents), "documents") as advance:
            for path, document in snapshot.documents.items():
                target = staging / path
                target.parent.mkdir(parents=True, exist_ok=True)
                stamp = document.last_modified.timestamp()
                # The .gz sibling is what nginx's gzip_static and most CDNs send as is.
                gz = Path(f"{target}.gz")
                for file, body in ((target, document.body), (gz, document.gzip_body)):
                    file.write_bytes(body)
                    os.utime(file, (stamp, stamp))
                advance(1)
        _replace_dir(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        logger.error("cannot write %s: %s", out, exc)
        return EXIT_PROBLEMS
    print(f"{line}; written to {out}")
    return status


def _replace_dir(staging: Path, out: Path) -> None:
    """Swap `staging` into place at `out`; the old tree is removed only after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.chmod(0o755)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish_command(args: argparse.Namespace, config: Config) -> int:
    """Build, then bring the bucket prefix to the documents: upload what changed, delete
    what is gone, the index and the OPML last; print one summary line."""
    url = args.to or config.publish.url
    if not url:
        return fail("nowhere to publish: give --to s3://bucket/prefix or set publish.url")
    try:
        target = parse_target(url)
    except ValueError as exc:
        return fail(str(exc))
    progress = Progress.for_terminal(args.quiet)
    snapshot, _, status = _read(config, progress)
    documents = snapshot.documents
    try:
        bucket = Bucket(target, args.endpoint_url or config.publish.endpoint_url)
        publication = Publication(bucket, config.publish.encoding, dry_run=args.dry_run)
        with progress.bar("objects", len(documents), "objects") as advance:
            result = publication.publish(documents, config.server.cache_max_age, advance)
    except PublishError as exc:
        return fail(str(exc), EXIT_CONFIG if exc.config else EXIT_PROBLEMS)
    print(result.line(str(target), dry_run=args.dry_run))
    return status


def forget_command(args: argparse.Namespace, config: Config) -> int:
    """Forget emptied feeds the ledger keeps serving; a running server reloads to drop them."""
    wanted = [_feed_directory(feed) for feed in args.feeds]
    with _ledger(config, create=False) as (ledger, _):
        if ledger is None:
            return fail(f"no id ledger in {config.state.path}: nothing to forget", EXIT_PROBLEMS)
        forgotten = ledger.forget_nodes(wanted)
    for directory in forgotten:
        print(f"forgot {directory or 'site'}")
    missed = [d for d in wanted if not d.endswith("/**") and d not in forgotten]
    for directory in missed:
        fail(f"{directory} is not a feed the ledger keeps")
    server = StateLock(Path(config.state.path)).holder()
    if forgotten and server is not None:
        os.kill(server, signal.SIGHUP)  # the server reloads: a forgotten empty feed goes
        print(f"asked the server (pid {server}) to reload")
    return EXIT_PROBLEMS if missed else EXIT_OK


def _feed_directory(feed: str) -> str:
    """`categories/旧栏目` from that, a URL path (`/categories/%E6%97%A7.../feed.atom`) or a URL."""
    path = unquote(urlsplit(feed).path if "://" in feed else feed).strip("/")
    head, _, last = path.rpartition("/")
    if last.startswith("feed.") or last == "index.html":
        path = head
    return "" if path == "site" else path

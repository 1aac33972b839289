"""The commands that build once and exit: `check`, `build` and `publish`.

Each prints the problems as `path:line: message` and one summary line on standard
output; progress bars, when standard error is a terminal, go there.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from feedsvc.config import Config
from feedsvc.errors import PublishError
from feedsvc.model import Snapshot
from feedsvc.progress import Progress
from feedsvc.publish.bucket import Bucket, parse_target
from feedsvc.publish.sync import Publication
from feedsvc.refresh import Refresher
from feedsvc.store import Store

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2


def _progress(args: argparse.Namespace) -> Progress:
    return Progress.for_terminal(getattr(args, "quiet", False))


def _read(config: Config, progress: Progress) -> tuple[Snapshot, str]:
    """Read every source and build; the snapshot and its summary line."""
    refresher = Refresher(config, Store())
    with progress.files(refresher.sources):
        summary = refresher.refresh()
    snapshot = refresher.store.current
    for problem in snapshot.problems:
        print(problem)
    errors = sum(1 for p in snapshot.problems if p.severity == "error")
    warnings = len(snapshot.problems) - errors
    line = f"{summary.articles} articles, {summary.documents} documents, "
    return snapshot, f"{line}{errors} errors, {warnings} warnings"


def _status(snapshot: Snapshot) -> int:
    errors = any(p.severity == "error" for p in snapshot.problems)
    return EXIT_PROBLEMS if errors else EXIT_OK


def check_command(args: argparse.Namespace, config: Config) -> int:
    """Read every source without serving; print each problem and a summary line."""
    snapshot, line = _read(config, _progress(args))
    print(line)
    return _status(snapshot)


def build_command(args: argparse.Namespace, config: Config) -> int:
    """Write every document under --out, replacing the folder only once all is written."""
    progress = _progress(args)
    snapshot, line = _read(config, progress)
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
    return _status(snapshot)


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
        print(
            "feedsvc: nowhere to publish: give --to s3://bucket/prefix or set publish.url",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        target = parse_target(url)
    except ValueError as exc:
        print(f"feedsvc: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    progress = _progress(args)
    snapshot, _ = _read(config, progress)
    documents = snapshot.documents
    try:
        bucket = Bucket(target, args.endpoint_url or config.publish.endpoint_url)
        publication = Publication(bucket, config.publish.encoding, dry_run=args.dry_run)
        with progress.bar("objects", len(documents), "objects") as advance:
            result = publication.publish(documents, config.server.cache_max_age, advance)
    except PublishError as exc:
        print(f"feedsvc: {exc}", file=sys.stderr)
        return EXIT_CONFIG if exc.config else EXIT_PROBLEMS
    print(result.line(str(target), dry_run=args.dry_run))
    return _status(snapshot)

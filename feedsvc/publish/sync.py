"""One publication: put the documents whose bytes differ from the bucket's, then the index
and the OPML, then delete what the build no longer has.

Changed or not is decided by content: the MD5 of the bytes we would store against the
ETag the listing gives, which S3 and every S3-compatible store we know make the MD5 of
an object put in one part (we never use multipart: a document is a few MB at most). A
size or mtime comparison misses same-size edits (aws/aws-cli#8377). Documents whose
validator (Document.etag, a digest of their bytes) matches one already put are not
even hashed again: a serve's publication costs what the reload changed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from feedsvc.build.archives import past_archives
from feedsvc.build.sitepages import PAGE_PATHS
from feedsvc.errors import PublishError
from feedsvc.model import Document
from feedsvc.publish.bucket import Bucket, Upload
from feedsvc.resources import cache_control

WORKERS = 8  # uploads in flight at once: enough to hide latency, polite to the store


@dataclass(frozen=True, slots=True)
class Result:
    """What a publication did."""

    uploaded: int
    unchanged: int
    deleted: int
    bytes: int
    seconds: float

    def line(self, target: str, dry_run: bool = False) -> str:
        """The one summary line."""
        verb = "would upload" if dry_run else "uploaded"
        deleted = "would delete" if dry_run else "deleted"
        return (
            f"{target}: {self.uploaded} {verb}, {self.unchanged} unchanged, "
            f"{self.deleted} {deleted}, {self.bytes} bytes, {self.seconds:.2f}s"
        )


@dataclass
class _Run:
    """One publication's input and its running counts."""

    documents: Mapping[str, Document]
    remote: dict[str, str]
    max_age: int
    progress: Callable[[int], None]
    past: set[str] = field(default_factory=set)  # past months' archives: served immutable
    uploaded: int = 0
    unchanged: int = 0
    bytes: int = 0


class Publication:
    """A bucket prefix and what we know it holds; publishes documents into it.

    `remote` (path -> MD5 hex) is read by listing on first use and kept up to date with
    every put and delete; a failed publication forgets it, so the next one lists again
    and catches up with whatever the store kept.
    """

    def __init__(self, bucket: Bucket, encoding: str, *, dry_run: bool = False) -> None:
        self.bucket = bucket
        self.gzip = encoding == "gzip"
        self.dry_run = dry_run
        self.remote: dict[str, str] | None = None
        self._max_age = -1  # the max-age `remote`'s objects were put with
        self._hashed: dict[str, tuple[str, str]] = {}  # path -> (Document.etag, MD5 hex)
        self._lock = threading.Lock()

    def publish(
        self,
        documents: Mapping[str, Document],
        max_age: int,
        progress: Callable[[int], None] = lambda n: None,
    ) -> Result:
        """Bring the prefix to `documents`; PublishError when the store fails (nothing
        after the failure is done: the index and the deletions wait for a full run)."""
        started = time.perf_counter()
        try:
            run = _Run(documents, self._remote(documents, max_age), max_age, progress)
            run.past = past_archives(documents)
            # The index and OPML go last: they never list a feed not in the bucket yet.
            self._put_all([p for p in documents if p not in PAGE_PATHS], run)
            self._put_all([p for p in PAGE_PATHS if p in documents], run)
            gone = sorted(set(run.remote) - set(documents))
            if gone and not self.dry_run:
                self.bucket.delete(gone)
                for path in gone:
                    del run.remote[path]
        except PublishError:
            self.remote = None
            raise
        seconds = time.perf_counter() - started
        return Result(run.uploaded, run.unchanged, len(gone), run.bytes, seconds)

    def _remote(self, documents: Mapping[str, Document], max_age: int) -> dict[str, str]:
        """What the prefix holds; every object counts as changed when its Cache-Control
        would (a new max-age changes no bytes, so no digest shows it)."""
        if self.remote is not None and max_age == self._max_age:
            return self.remote
        if self.remote is None:
            remote = self.bucket.listing()  # fails clearly for a missing bucket, refused keys
            # Cache-Control is not in a listing; the index tells what max-age the bucket has.
            stale = "index.html" in remote and "index.html" in documents
            if stale:
                expected = cache_control(documents["index.html"], max_age)
                stale = self.bucket.cache_control("index.html") != expected
        else:
            remote, stale = self.remote, True
        if stale:
            remote = dict.fromkeys(remote, "")  # put everything again, delete what is gone
        self.remote, self._max_age = remote, max_age
        return remote

    def _put_all(self, paths: list[str], run: _Run) -> None:
        todo = []
        for path in paths:
            known = self._hashed.get(path)
            etag = run.documents[path].etag
            if known is not None and known[0] == etag and run.remote.get(path) == known[1]:
                run.unchanged += 1
                run.progress(1)
            else:
                todo.append(path)

        def one(path: str) -> None:
            self._put_one(path, run)
            run.progress(1)

        pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="publish")
        try:
            for done in [pool.submit(one, path) for path in todo]:
                done.result()  # the first failure ends the publication
        finally:
            pool.shutdown(cancel_futures=True)

    def _put_one(self, path: str, run: _Run) -> None:
        document = run.documents[path]
        body = document.gzip_body if self.gzip else document.body
        md5 = hashlib.md5(body, usedforsecurity=False)
        digest = md5.hexdigest()
        with self._lock:
            self._hashed[path] = (document.etag, digest)
        if run.remote.get(path) == digest:
            with self._lock:
                run.unchanged += 1
            return
        upload = Upload(
            body,
            md5.digest(),
            document.media_type,
            cache_control(document, run.max_age, immutable=path in run.past),
            "gzip" if self.gzip else None,
        )
        if not self.dry_run:
            self.bucket.put(path, upload)
            run.remote[path] = digest
        with self._lock:
            run.uploaded += 1
            run.bytes += len(body)

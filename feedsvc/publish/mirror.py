"""serve's publisher: after each reload, the builder hands the documents to a thread that
brings the bucket to them, retrying with backoff while the store fails.

A failing store never stops serving or reloading: reloads only hand over the newest
documents and return. Each attempt publishes the newest documents handed over, and a
failed one forgets what it knew of the bucket, so the next that succeeds lists it again
and catches up with everything missed. While it fails, `/healthz` lists the failure
(the builder announces it to the workers with the generation they serve) and
`feedsvc_publish_failing` is 1.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from feedsvc.errors import PublishError
from feedsvc.metrics import Metrics
from feedsvc.model import Document
from feedsvc.publish.bucket import Bucket, parse_target
from feedsvc.publish.sync import Publication
from feedsvc.settings import Config, PublishConfig
from feedsvc.state.snapshots import Status

logger = logging.getLogger(__name__)

BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)  # seconds before each retry; then every 60 s
WORKERS_WAIT = 10.0  # seconds


class Mirror:
    """Keeps `publish.url` a copy of what is served, from one background thread."""

    def __init__(
        self,
        announce: Callable[[int, Status], None],
        metrics: Metrics | None = None,
        wait_served: Callable[[int, float], None] = lambda generation, timeout: None,
    ) -> None:
        self._announce = announce
        # Waits until every worker serves a generation: the bucket gets it after they do.
        self._wait_served = wait_served
        self.metrics = metrics
        self.failure: str | None = None  # why the last attempt failed; None once one succeeds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._newest: tuple[Mapping[str, Document], Config, int] | None = None
        self._last: tuple[int, Status] | None = None
        self._publication: Publication | None = None
        self._settings: PublishConfig | None = None
        self._thread: threading.Thread | None = None

    def announce(self, generation: int, status: Status) -> None:
        """Tell the workers of a generation, with the publisher's failure among its problems."""
        with self._lock:
            self._last = (generation, status)
            self._announce(generation, self._with_failure(status))

    def offer(self, documents: Mapping[str, Document], config: Config, generation: int = 0) -> None:
        """Publish these documents (generation `generation`, announced) once the workers
        serve them; never blocks."""
        if config.publish.url is None:
            with self._lock:
                self._newest = None  # publishing was turned off: stop retrying
            self._set_failure(None)
            return
        with self._lock:
            self._newest = (documents, config, generation)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="publish", daemon=True)
                self._thread.start()
        self._wake.set()

    def _with_failure(self, status: Status) -> Status:
        if self.failure is None:
            return status
        problem = ("publish.url", None, self.failure, "error")
        return replace(status, problems=(*status.problems, problem))

    def _set_failure(self, failure: str | None) -> None:
        """Record the publisher's state; the workers hear of a change at once."""
        with self._lock:
            if failure == self.failure:
                return
            self.failure = failure
            if self._last is not None:
                generation, status = self._last
                self._announce(generation, self._with_failure(status))

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            attempt = 0
            while not self._attempt():
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                time.sleep(delay)

    def _attempt(self) -> bool:
        """Publish the newest documents; whether that succeeded (or there is nothing to do)."""
        with self._lock:
            if self._newest is None:
                return True
            documents, config, generation = self._newest
        # At most WORKERS_WAIT seconds: a stuck worker holds back no publication.
        self._wait_served(generation, WORKERS_WAIT)
        try:
            publication = self._publication_for(config.publish)
            result = publication.publish(documents, config.server.cache_max_age)
        except PublishError as exc:
            logger.warning("publishing failed (retrying): %s", exc)
            if self.metrics is not None:
                self.metrics.count_publish_failure()
            self._set_failure(f"publishing failed, retrying: {exc}")
            return False
        if result.uploaded or result.deleted:
            logger.info("publish: %s", result.line(str(publication.bucket.target)))
        if self.metrics is not None:
            self.metrics.observe_publish(result.uploaded, result.deleted, result.bytes, time.time())
        self._set_failure(None)
        return True

    def _publication_for(self, settings: PublishConfig) -> Publication:
        """The publication of the current settings; a new one when they changed."""
        if self._publication is None or settings != self._settings:
            assert settings.url is not None  # offer() keeps no documents without one
            # The config was validated with the same check: the URL parses.
            bucket = Bucket(parse_target(settings.url), settings.endpoint_url)
            self._publication = Publication(bucket, settings.encoding)
            self._settings = settings
        return self._publication

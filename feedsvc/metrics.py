"""Prometheus metrics: the only user of prometheus_client.

Requests are counted in plain dicts on the hot path and moved into the Prometheus
counters every few seconds, so serving pays a dict increment, not a locked write. Each
thread counts in a dict of its own (RequestCounts), so no increment is ever lost to
another thread's; a flush adds up every thread's and moves what is new since the last.
With several server processes, multiprocess mode aggregates what each one records.
"""

from __future__ import annotations

import glob
import os
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterable
from functools import partial

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from feedsvc.model import Problem

FLUSH_SECONDS = 5.0


def enable_multiprocess(directory: str) -> None:
    """Before server processes start: record metrics in `directory`, aggregated on scrape."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def process_exited(pid: int) -> None:
    """Drop a finished process's live gauges (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


class _ProcessFiles(MultiProcessCollector):
    """The multiprocess collector, safe against a process that is creating its file.

    prometheus_client opens a new metrics file and only then sizes it, so a scrape (or a
    registration, which collects once) at that moment finds an empty file and fails to
    unpack its header. An empty file holds no samples yet, so it is left out.
    """

    def describe(self) -> list[object]:
        # Registration would otherwise collect to learn the names, racing the same way.
        return []

    def collect(self):  # type: ignore[no-untyped-def]
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            try:
                if os.stat(path).st_size > 0:
                    files.append(path)
            except FileNotFoundError:  # a dead process's live gauges, just removed
                continue
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


class RequestCounts(threading.local):
    """One thread's response counts, (route, status) -> count: only that thread writes
    them, so a `+=` needs no lock. Made on a thread's first use, and listed in `every`
    for the flush to add up."""

    def __init__(self, every: list[Tally[tuple[str, str]]], lock: threading.Lock) -> None:
        self.counts: Tally[tuple[str, str]] = Tally()
        with lock:
            every.append(self.counts)


class Metrics:
    """Everything feedsvc reports; one instance per process."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        registry = None if self.multiprocess else self.registry
        self._reload_metrics(registry)
        self._publish_metrics(registry)
        self._lock = threading.Lock()
        self._every: list[Tally[tuple[str, str]]] = []  # every thread's counts
        self._flushed: Tally[tuple[str, str]] = Tally()  # what the counters already have
        self.requests = RequestCounts(self._every, self._lock)
        if self.multiprocess:
            _ProcessFiles(self.registry)  # type: ignore[no-untyped-call]

    def _reload_metrics(self, registry: CollectorRegistry | None) -> None:
        """The metrics of reloads and requests, in `registry` (None: multiprocess mode's
        files, where a gauge's mode says how the processes' values join)."""
        counter = partial(Counter, registry=registry)
        gauge = partial(Gauge, registry=registry, multiprocess_mode="mostrecent")
        latest = partial(Gauge, registry=registry, multiprocess_mode="max")
        self.articles = gauge("feedsvc_articles", "Published articles per source", ["source"])
        self.problems = gauge("feedsvc_problems", "Current problems by severity", ["severity"])
        self.source_failing = gauge(
            "feedsvc_source_failing",
            "1 while a source cannot be read (its last good articles stay)",
            ["source"],
        )
        self.reload_seconds = Histogram(
            "feedsvc_reload_duration_seconds",
            "Time one reload took",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.last_success = latest(
            "feedsvc_last_reload_success_timestamp_seconds", "When a reload last succeeded"
        )
        self.responses = counter(
            "feedsvc_http_responses", "HTTP responses by route and status", ["route", "status"]
        )
        self.fetch_failures = counter(
            "feedsvc_source_fetch_failures",
            "Failed fetches of remote sources by source and kind of failure",
            ["source", "reason"],
        )
        self.websub = counter("feedsvc_websub_pings", "WebSub hub pings by result", ["result"])

    def _publish_metrics(self, registry: CollectorRegistry | None) -> None:
        counter = partial(Counter, registry=registry)
        gauge = partial(Gauge, registry=registry, multiprocess_mode="mostrecent")
        latest = partial(Gauge, registry=registry, multiprocess_mode="max")
        self.publish_objects = counter(
            "feedsvc_publish_objects",
            "Objects uploaded to or deleted from object storage",
            ["action"],
        )
        self.publish_bytes = counter("feedsvc_publish_bytes", "Bytes uploaded to object storage")
        self.publish_failures = counter(
            "feedsvc_publish_failures",
            "Publications to object storage that failed (each is retried)",
        )
        self.publish_failing = gauge(
            "feedsvc_publish_failing", "1 while publishing to object storage fails"
        )
        self.publish_last_success = latest(
            "feedsvc_publish_last_success_timestamp_seconds",
            "When a publication to object storage last completed",
        )

    def observe_reload(
        self,
        seconds: float,
        articles: dict[str, int],
        failing: Iterable[str],
        problems: Iterable[Problem],
        finished_at: float,
    ) -> None:
        """Record one reload's outcome."""
        self.reload_seconds.observe(seconds)
        failing = set(failing)
        for source, count in articles.items():
            self.articles.labels(source).set(count)
            self.source_failing.labels(source).set(1 if source in failing else 0)
        by_severity = Tally(p.severity for p in problems)
        for severity in ("error", "warning"):
            self.problems.labels(severity).set(by_severity[severity])
        self.last_success.set(finished_at)

    def observe_publish(self, uploaded: int, deleted: int, size: int, finished_at: float) -> None:
        """Record one completed publication to object storage."""
        self.publish_objects.labels("uploaded").inc(uploaded)
        self.publish_objects.labels("deleted").inc(deleted)
        self.publish_bytes.inc(size)
        self.publish_failing.set(0)
        self.publish_last_success.set(finished_at)

    def count_publish_failure(self) -> None:
        """Count one failed publication; the state is failing until one completes."""
        self.publish_failures.inc()
        self.publish_failing.set(1)

    def count_fetch_failure(self, source: str, reason: str) -> None:
        """Count one failed fetch of a remote source."""
        self.fetch_failures.labels(source, reason).inc()

    def count_websub(self, result: str) -> None:
        """Count one hub ping by result (`ok`, `failed`)."""
        self.websub.labels(result).inc()

    def flush(self) -> None:
        """Move the hot path's request counts into the Prometheus counters."""
        with self._lock:  # two flushes at once would move the same counts twice
            totals: Tally[tuple[str, str]] = Tally()
            for counts in self._every:
                # dict() copies in one step under the GIL, while the thread goes on counting.
                totals.update(dict(counts))
            new, self._flushed = totals - self._flushed, totals
            for (route, status), count in new.items():
                self.responses.labels(route, status).inc(count)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        self.flush()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def start_flushing(self) -> None:
        """Flush request tallies every few seconds from a daemon thread."""

        def loop() -> None:
            while True:
                time.sleep(FLUSH_SECONDS)
                self.flush()

        threading.Thread(target=loop, name="metrics-flush", daemon=True).start()

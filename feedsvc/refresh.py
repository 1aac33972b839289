"""Sources -> builder -> store. Keeps last good data on failure; the only broad except."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from feedsvc.build.membership import Kind, NodeKeys, node_keys
from feedsvc.build.site import SiteBuild, SiteBuilder
from feedsvc.config import Config, SourceConfig
from feedsvc.configwatch import ConfigWatcher
from feedsvc.cores import Cores
from feedsvc.dates import Clock, utc_now
from feedsvc.errors import FeedsvcError, SourceError
from feedsvc.metrics import Metrics
from feedsvc.model import Article, Document, Problem, Resource, Snapshot, SourceResult
from feedsvc.serving import prepare_resources
from feedsvc.sources.directory import DirectorySource
from feedsvc.sources.feed import RemoteSource
from feedsvc.state.ledger import Ledger
from feedsvc.state.placing import Placer
from feedsvc.store import Store
from feedsvc.urls import join_url

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadSummary:
    """What one reload did, for logs and the reload endpoint."""

    articles: int
    documents: int
    changed: int
    problems: int
    seconds: float


Source = DirectorySource | RemoteSource


class Refresher:
    """Reads every source, builds every document and swaps the result into the store."""

    def __init__(
        self,
        config: Config,
        store: Store,
        now: Clock = utc_now,
        *,
        watcher: ConfigWatcher | None = None,
        on_change: Callable[[list[str]], None] | None = None,
        metrics: Metrics | None = None,
        fetch_in_background: bool = False,
        cores: Cores | None = None,
        prepare: bool = True,
        ledger: Ledger | None = None,
        record: bool = True,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.now = now
        # Called with the URLs of feeds whose bytes a reload changed (WebSub pings).
        self.on_change = on_change
        self._lock = threading.Lock()
        # With a watcher, each reload first applies a valid edit of the config file.
        self.watcher = watcher
        self.sources: list[Source] = []
        # Remote feeds are fetched on up to 8 threads, off the reload: a slow upstream
        # delays nobody. on_fetched is told when new items arrived (to reload soon).
        self.fetch_in_background = fetch_in_background
        self.on_fetched: Callable[[], None] | None = None
        # What a watch saw change since the last reload (None: look at every file).
        self.changed_files: Callable[[], set[str] | None] = lambda: None
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: set[str] = set()
        self._last_good: dict[str, SourceResult] = {}
        self._failing: set[str] = set()
        self._last_problems: tuple[Problem, ...] = ()
        # A cold start parses and renders on every core; the processes last one reload.
        self.cores = cores or Cores()
        # Whether snapshots carry served resources (in-process serving; the builder
        # process leaves that to the workers).
        self.prepare = prepare
        # The id ledger gives articles the ids readers know them by; without `record`
        # (`feedsvc check`) it is only read.
        self.ledger, self.record = ledger, record
        self.placer: Placer | None = None
        self.id_changes: list[str] = []  # what the last reload did to ids (check prints it)
        self.state_problems: tuple[Problem, ...] = ()  # a damaged ledger, say: every reload says it
        # Every feed node served so far: one whose articles all go away stays as an
        # empty, valid feed rather than turning into a 404 for its subscribers. Kept
        # through config edits and, in the ledger, through restarts.
        self.known_nodes: dict[tuple[Kind, str], tuple[str, ...]] = {}
        if ledger is not None:
            self.known_nodes.update(ledger.nodes())
        self._apply(config)

    @property
    def reload_token(self) -> str | None:
        """The token `POST /-/reload` wants (server.reload_token)."""
        return self.config.server.reload_token

    def _apply(self, config: Config) -> None:
        """Bind everything derived from a config; sources whose settings stay keep their cache."""
        base_dir = Path(config.path).parent
        self.sources = [self._source_for(s, config, base_dir) for s in config.sources]
        self.config = config
        self.builder = SiteBuilder(config, self.cores)
        if self.ledger is not None:
            self.placer = Placer(self.ledger, config.site)
        self._last_build: SiteBuild | None = None
        self._fresh_resources = True  # headers depend on the config: prepare them anew

    def _source_for(self, settings: SourceConfig, config: Config, base_dir: Path) -> Source:
        """The running source for these settings if they did not change, else a new one."""
        for source in self.sources:
            if source.config == settings and source.site == config.site:
                return source
        if settings.type == "feed":
            memory = self.ledger if self.record else None
            remote = RemoteSource(
                settings, config.site, config.reload.interval_seconds, now=self.now, memory=memory
            )
            if self.metrics is not None:
                remote.on_failure = self.metrics.count_fetch_failure
            return remote
        return DirectorySource(settings, config.site, base_dir, self.cores)

    def refresh(self) -> ReloadSummary:
        """Run one reload; never raises: failures are logged and reported as problems."""
        with self._lock:
            started = time.perf_counter()
            try:
                return self._refresh(started)
            except Exception as exc:
                logger.exception("reload failed; the previous snapshot keeps serving")
                return self._keep_serving(exc, started)
            finally:
                self.cores.release()

    def _refresh(self, started: float) -> ReloadSummary:
        now = self.now()
        articles: list[Article] = []
        problems: list[Problem] = list(self.state_problems)
        if self.watcher is not None:
            changed_config = self.watcher.check()
            if changed_config is not None:
                self._apply(changed_config)
            problems.extend(self.watcher.problems)
        per_source: dict[str, int] = {}
        self._fetch_due()
        files = self.changed_files()
        for source in self.sources:
            result, source_problems = self._read_source(source, files)
            published = [a for a in result.articles if a.published <= now]
            per_source[source.config.name] = len(published)
            articles.extend(published)
            problems.extend(source_problems)
        articles = self._place(articles, now, problems)
        build = self.builder.build(articles, self.known_nodes)
        self._remember_nodes(node_keys(build.nodes))
        problems.extend(build.problems)
        previous = self.store.current
        documents, resources, changed = self._documents(build, previous)
        if changed and previous.generation and self.on_change is not None:
            base = self.config.site.base_url
            self.on_change([join_url(base, path) for path in changed if documents[path].view])
        self._last_problems = tuple(problems)
        self.store.swap(
            Snapshot(
                documents=documents,
                resources=resources,
                article_count=len(articles),
                problems=tuple(problems),
                loaded_at=now,
                generation=previous.generation + 1,
            )
        )
        seconds = time.perf_counter() - started
        if self.metrics is not None:
            failing = [name for name in per_source if name in self._failing]
            self.metrics.observe_reload(seconds, per_source, failing, problems, time.time())
        logger.info(
            "reload: %d articles, %d documents (%d changed), %d problems, %.3fs",
            len(articles),
            len(documents),
            len(changed),
            len(problems),
            seconds,
        )
        return ReloadSummary(len(articles), len(documents), len(changed), len(problems), seconds)

    def _place(
        self, articles: list[Article], now: datetime, problems: list[Problem]
    ) -> list[Article]:
        """The articles with the ids readers know them by (feedsvc.state.placing)."""
        if self.placer is None:
            return articles
        if self.placer.ledger.changed_elsewhere():  # `feedsvc forget` took nodes away
            self.known_nodes = self.placer.ledger.nodes()
        placed = self.placer.place(articles, now, keep=self.record)
        problems.extend(placed.problems)
        self.id_changes = placed.changes
        return placed.articles

    def _remember_nodes(self, nodes: NodeKeys) -> None:
        """Keep every node served, in memory and in the ledger (only the new ones)."""
        new = {key: names for key, names in nodes.items() if self.known_nodes.get(key) != names}
        if new and self.ledger is not None and self.record:
            self.ledger.remember_nodes(new)
        self.known_nodes.update(new)

    def _documents(
        self, build: SiteBuild, previous: Snapshot
    ) -> tuple[Mapping[str, Document], dict[str, Resource], list[str]]:
        """The documents and served resources of a build, and the paths that changed."""
        if build is self._last_build:
            # Nothing new: keep serving the very same prepared bytes.
            return previous.documents, dict(previous.resources), []
        self._last_build = build
        documents = build.documents
        old = previous.documents
        changed = [
            path
            for path, doc in documents.items()
            if (was := old.get(path)) is None or was.etag != doc.etag
        ]
        # The hot path reads resources on every request; nothing writes to them after the swap.
        reuse = {} if self._fresh_resources else previous.resources
        self._fresh_resources = False
        resources = (
            prepare_resources(documents, self.config.server.cache_max_age, reuse)
            if self.prepare
            else {}
        )
        return MappingProxyType(documents), resources, changed

    def _keep_serving(self, exc: Exception, started: float) -> ReloadSummary:
        """Keep the last good documents, with the failure listed among the problems."""
        current = self.store.current
        reason = str(exc) if isinstance(exc, FeedsvcError) else repr(exc)
        failure = Problem("feedsvc", None, f"reload failed: {reason}")
        self.store.swap(replace(current, problems=(*self._last_problems, failure)))
        seconds = time.perf_counter() - started
        return ReloadSummary(
            current.article_count,
            len(current.documents),
            0,
            len(self._last_problems) + 1,
            seconds,
        )

    def _fetch_due(self) -> None:
        """Fetch the remote sources that are due: inline, or on the pool when serving."""
        for source in self.sources:
            if not isinstance(source, RemoteSource) or not source.is_due():
                continue
            if not self.fetch_in_background:
                source.fetch()
            elif source.config.name not in self._in_flight:
                self._in_flight.add(source.config.name)
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fetch")
                self._pool.submit(self._fetch_one, source)

    def _fetch_one(self, source: RemoteSource) -> None:
        try:
            changed = source.fetch()
        except Exception:
            logger.exception("fetching %s failed", source.url)
            changed = False
        finally:
            self._in_flight.discard(source.config.name)
        if changed and self.on_fetched is not None:
            self.on_fetched()

    def _read_source(
        self, source: Source, changed: set[str] | None
    ) -> tuple[SourceResult, list[Problem]]:
        name = source.config.name
        try:
            result = source.read(changed) if isinstance(source, DirectorySource) else source.read()
        except SourceError as exc:
            self._failing.add(name)
            # Invariant 5: a source that fails keeps its last good articles.
            logger.warning("source %s: %s; keeping its last good articles", name, exc)
            last = self._last_good.get(name, SourceResult((), ()))
            where = source.config.path or name
            return last, [*last.problems, Problem(where, None, f"source {name}: {exc}")]
        # A remote source keeps its own last good items and reports its failures itself.
        if any(p.severity == "error" for p in result.problems) and isinstance(source, RemoteSource):
            self._failing.add(name)
        else:
            self._failing.discard(name)
        self._last_good[name] = result
        return result, list(result.problems)

"""One reload: sources -> documents -> store. Keeps last good data on failure; the only
broad except of a reload (feedsvc.reload.sources catches a failed background fetch)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from feedsvc.build.membership import Kind, NodeKeys, node_keys
from feedsvc.build.site import SiteBuild, SiteRenderer
from feedsvc.dates import Clock, utc_now
from feedsvc.errors import FeedsvcError
from feedsvc.metrics import Metrics
from feedsvc.model import Article, Document, Problem, ReloadSummary, Snapshot, read_only
from feedsvc.processes.cpus import Cores
from feedsvc.reload.sources import Source, SourceSet
from feedsvc.resources import Resource, prepare_resources
from feedsvc.settings import Config
from feedsvc.state.ledger import Ledger
from feedsvc.state.placing import Placer
from feedsvc.store import Store
from feedsvc.urls import join_url
from feedsvc.watch import ConfigWatcher

logger = logging.getLogger(__name__)


class Reloader:
    """Runs one reload: reads every source, builds every document and swaps the result
    into the store."""

    def __init__(
        self,
        config: Config,
        store: Store,
        now: Clock = utc_now,
        *,
        watcher: ConfigWatcher | None = None,
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
        self.on_change: Callable[[list[str]], None] | None = None
        self._lock = threading.Lock()
        # With a watcher, each reload first applies a valid edit of the config file.
        self.watcher = watcher
        # A cold start parses and renders on every core; the processes last one reload.
        self.cores = cores or Cores()
        memory = ledger if record else None
        self.source_set = SourceSet(now, self.cores, metrics, memory, fetch_in_background)
        # What a watch saw change since the last reload (None: look at every file).
        self.changed_files: Callable[[], set[str] | None] = lambda: None
        self._last_problems: tuple[Problem, ...] = ()
        # Whether snapshots carry served resources (in-process serving; the builder
        # process leaves that to the workers).
        self.prepare = prepare
        self._bind_ledger(ledger, record)
        self._apply(config, None)

    def _bind_ledger(self, ledger: Ledger | None, record: bool) -> None:
        """The id ledger gives articles the ids readers know them by; without `record`
        (`feedsvc check`) it is only read."""
        self.ledger, self.record = ledger, record
        self.id_changes: list[str] = []  # what the last reload did to ids (check prints it)
        self.state_problems: tuple[Problem, ...] = ()  # a damaged ledger, say: every reload says it
        # Every feed node served so far: one whose articles all go away stays as an
        # empty, valid feed rather than turning into a 404 for its subscribers. Kept
        # through config edits and, in the ledger, through restarts.
        self.known_nodes: dict[tuple[Kind, str], tuple[str, ...]] = {}
        if ledger is not None:
            self.known_nodes.update(ledger.nodes())

    @property
    def sources(self) -> list[Source]:
        """The running sources."""
        return self.source_set.sources

    @property
    def reload_token(self) -> str | None:
        """The token `POST /-/reload` wants (server.reload_token)."""
        return self.config.server.reload_token

    def _apply(self, config: Config, before: SiteRenderer | None) -> None:
        """Bind everything derived from a config; sources whose settings stay keep their
        cache, and the renderer the entries of `before` (the last config's) it can use."""
        self.source_set.apply(config)
        self.config = config
        self.renderer = SiteRenderer(config, self.cores, before)  # renders every document
        self.placer = Placer(self.ledger, config.site) if self.ledger is not None else None
        self._last_build: SiteBuild | None = None
        self._built_of: tuple[str, ...] = ()  # the revisions of the articles it was built of
        self._built_generation = 0  # the generation the store gives the last build
        self.same_build = False  # whether the last reload kept the build before it
        self._fresh_resources = True  # headers depend on the config: prepare them anew

    def reload(self) -> ReloadSummary:
        """Run one reload; never raises: failures are logged and reported as problems."""
        with self._lock:
            started = time.perf_counter()
            try:
                return self._reload_once(started)
            except Exception as exc:
                logger.exception("reload failed; the previous snapshot keeps serving")
                return self._keep_serving(exc, started)
            finally:
                self.cores.release()

    def _reload_once(self, started: float) -> ReloadSummary:
        problems: list[Problem] = [*self.state_problems, *self._check_config()]
        # Fetches made inline (check, build) come first: an undated item is dated when
        # first fetched, and must not be dated after the moment this reload publishes up to.
        self.source_set.fetch_due()
        now = self.now()
        articles, per_source = self._read(now, problems)
        build = self._build(articles, now, problems)
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
        summary = ReloadSummary(
            len(articles),
            len(documents),
            len(changed),
            len(problems),
            time.perf_counter() - started,
        )
        self._report(summary, per_source, problems)
        return summary

    def _check_config(self) -> list[Problem]:
        """Apply a valid edit of the config file; the problems of the file as it is."""
        if self.watcher is None:
            return []
        changed_config = self.watcher.check()
        if changed_config is not None:
            self._apply(changed_config, self.renderer)
        return list(self.watcher.problems)

    def _read(self, now: datetime, problems: list[Problem]) -> tuple[list[Article], dict[str, int]]:
        """The published articles of every source, and how many each has."""
        articles: list[Article] = []
        per_source: dict[str, int] = {}
        files = self.changed_files()
        for source in self.sources:
            result, source_problems = self.source_set.read(source, files)
            published = [a for a in result.articles if a.published <= now]
            per_source[source.config.name] = len(published)
            articles.extend(published)
            problems.extend(source_problems)
        return articles, per_source

    def _report(
        self, summary: ReloadSummary, per_source: dict[str, int], problems: list[Problem]
    ) -> None:
        """The reload's metrics and its one INFO line."""
        if self.metrics is not None:
            failing = [name for name in per_source if name in self.source_set.failing]
            self.metrics.observe_reload(summary.seconds, per_source, failing, problems, time.time())
        logger.info(
            "reload: %d articles, %d documents (%d changed), %d problems, %.3fs",
            summary.articles,
            summary.documents,
            summary.changed,
            summary.problems,
            summary.seconds,
        )

    def _build(self, articles: list[Article], now: datetime, problems: list[Problem]) -> SiteBuild:
        """The site built of the articles read; the last build when their revisions, the
        config and the ledger are those it was made of (`same_build`: a reload that finds
        nothing new places, groups and writes nothing)."""
        revisions = tuple(article.revision for article in articles)
        forgotten = self.placer is not None and self.placer.ledger.changed_elsewhere()
        if forgotten:  # `feedsvc forget` took nodes away
            self.known_nodes = self.placer.ledger.nodes()  # type: ignore[union-attr]
        last = self._last_build
        self.same_build = last is not None and not forgotten and revisions == self._built_of
        if self.same_build:  # placing them again would place nothing and warn of nothing
            assert last is not None
            self.id_changes = []
            return last
        placed = self._place(articles, now, problems)
        build = self.renderer.build(placed, self.known_nodes)
        self._remember_nodes(node_keys(build.nodes))
        self._built_of = revisions
        return build

    def _place(
        self, articles: list[Article], now: datetime, problems: list[Problem]
    ) -> list[Article]:
        """The articles with the ids readers know them by (feedsvc.state.placing)."""
        if self.placer is None:
            return articles
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
            # Nothing new: keep serving the very same prepared bytes. The generation this
            # makes holds the last build still, so the next build's changes are still
            # those it touched (not a comparison of every document).
            if previous.generation == self._built_generation:
                self._built_generation += 1
            return previous.documents, dict(previous.resources), []
        # What the build touched, when the store holds the build before it.
        follows = self._last_build is not None and previous.generation == self._built_generation
        self._last_build, self._built_generation = build, previous.generation + 1
        documents = build.documents
        old = previous.documents
        paths = sorted(build.touched) if follows and build.touched is not None else documents
        changed = [
            path
            for path in paths
            if (doc := documents.get(path)) is not None
            and ((was := old.get(path)) is None or was.etag != doc.etag)
        ]
        # The hot path reads resources on every request; nothing writes to them after the swap.
        reuse = {} if self._fresh_resources else previous.resources
        self._fresh_resources = False
        resources = (
            prepare_resources(documents, self.config.server.cache_max_age, reuse)
            if self.prepare
            else {}
        )
        return read_only(documents), resources, changed

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

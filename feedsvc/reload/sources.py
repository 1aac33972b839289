"""The running sources of a reload: each keeps its last good articles, remote feeds are
fetched off the reload while serving (a fetch on the pool catches broadly: it is logged,
never fatal)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from feedsvc.dates import Clock
from feedsvc.errors import SourceError
from feedsvc.metrics import Metrics
from feedsvc.model import Problem, SourceResult
from feedsvc.processes.cpus import Cores
from feedsvc.settings import Config, SourceConfig
from feedsvc.sources.directory import DirectorySource
from feedsvc.sources.feed import RemoteSource
from feedsvc.state.ledger import Ledger

logger = logging.getLogger(__name__)

Source = DirectorySource | RemoteSource


class SourceSet:
    """The sources of the running config, read one by one; a failing one keeps its last
    good articles (invariant 5)."""

    def __init__(
        self,
        now: Clock,
        cores: Cores,
        metrics: Metrics | None,
        memory: Ledger | None,
        fetch_in_background: bool,
    ) -> None:
        self.now = now
        self.cores = cores
        self.metrics = metrics
        self.memory = memory  # where remote sources keep their validators and bodies
        self.sources: list[Source] = []
        # Remote feeds are fetched on up to 8 threads, off the reload: a slow upstream
        # delays nobody. on_fetched is told when new items arrived (to reload soon).
        self.fetch_in_background = fetch_in_background
        self.on_fetched: Callable[[], None] | None = None
        self.failing: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: set[str] = set()
        self._last_good: dict[str, SourceResult] = {}

    def apply(self, config: Config) -> None:
        """Bind the sources of `config`; those whose settings did not change keep their cache."""
        base_dir = Path(config.path).parent
        self.sources = [self._source_for(s, config, base_dir) for s in config.sources]

    def _source_for(self, settings: SourceConfig, config: Config, base_dir: Path) -> Source:
        """The running source for these settings if they did not change, else a new one."""
        for source in self.sources:
            if source.config == settings and source.site.for_articles == config.site.for_articles:
                return source
        if settings.type == "feed":
            remote = RemoteSource(
                settings,
                config.site,
                config.reload.interval_seconds,
                now=self.now,
                memory=self.memory,
            )
            if self.metrics is not None:
                remote.on_failure = self.metrics.count_fetch_failure
            return remote
        return DirectorySource(settings, config.site, base_dir, self.cores)

    def fetch_due(self) -> None:
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

    def read(self, source: Source, changed: set[str] | None) -> tuple[SourceResult, list[Problem]]:
        """One source's articles and problems (`changed`: the files a watch saw change)."""
        name = source.config.name
        try:
            result = source.read(changed) if isinstance(source, DirectorySource) else source.read()
        except SourceError as exc:
            self.failing.add(name)
            # Invariant 5: a source that fails keeps its last good articles.
            logger.warning("source %s: %s; keeping its last good articles", name, exc)
            last = self._last_good.get(name, SourceResult((), ()))
            where = source.config.path or name
            return last, [*last.problems, Problem(where, None, f"source {name}: {exc}")]
        # A remote source keeps its own last good items and reports its failures itself.
        if any(p.severity == "error" for p in result.problems) and isinstance(source, RemoteSource):
            self.failing.add(name)
        else:
            self.failing.discard(name)
        self._last_good[name] = result
        return result, list(result.problems)

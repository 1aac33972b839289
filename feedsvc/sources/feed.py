"""A remote feed (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, JSON Feed 1.0/1.1) as a source of Articles.

Fetching is polite (conditional GET, a User-Agent naming feedsvc, Retry-After, exponential
backoff with jitter) and happens off the reload: `read()` never waits on the network, it
returns the last good items; `fetch()` runs on a worker thread when the source is due.
What a fetched document holds is read by feedsvc.sources.feeditems.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from feedsvc.content import html_to_text, truncate
from feedsvc.dates import Clock, utc_now
from feedsvc.errors import FetchError
from feedsvc.model import Article, Author, Identity, Origin, Problem, SourceResult, deflate_html
from feedsvc.settings import SiteConfig, SourceConfig
from feedsvc.sources.feeditems import Channel, Item, parse_feed
from feedsvc.sources.post import SUMMARY_LIMIT
from feedsvc.transport import Fetched, fetch, make_session
from feedsvc.urls import entry_id

logger = logging.getLogger(__name__)

MAX_BACKOFF = 6 * 3600.0  # seconds; a failing upstream is still tried every six hours


@dataclass(frozen=True, slots=True)
class SavedFetch:
    """A remote source's last good response and schedule, kept across restarts."""

    url: str
    etag: str | None
    last_modified: str | None
    content_type: str
    body: bytes | None  # the last good body; None: none yet
    failures: int
    next_attempt: float  # epoch seconds


class FetchMemory(Protocol):
    """Where a remote source keeps its fetches across restarts (the id ledger). Saving
    never raises: a memory that cannot write logs it, and fetching goes on."""

    def fetch_state(self, source: str) -> SavedFetch | None:
        """What was kept of `source`."""

    def save_fetch(self, source: str, saved: SavedFetch) -> None:
        """Keep a good response (its body and validators) and the schedule."""

    def save_schedule(self, source: str, url: str, failures: int, next_attempt: float) -> None:
        """Keep the schedule only (a 304, a failure)."""


_DATED, _UNDATED = Identity(), Identity(dated=False)


class RemoteSource:
    """Republishes one upstream feed; keeps its last good items through every failure
    and, with a memory, through restarts: the first fetch after one is conditional."""

    def __init__(
        self,
        config: SourceConfig,
        site: SiteConfig,
        default_interval: int,
        now: Clock = utc_now,
        *,
        memory: FetchMemory | None = None,
    ) -> None:
        assert config.url is not None  # config validation requires it for feeds
        # `site`: kept through edits of the site but its `for_articles`.
        self.config, self.site, self.url = config, site, config.url
        self.interval = float(config.interval_seconds or default_interval)
        self.now = now
        self._session = make_session(site.base_url)
        self._lock = threading.Lock()
        self._articles: tuple[Article, ...] = ()
        self._problems: tuple[Problem, ...] = (
            Problem(self.url, None, f"source {config.name}: not fetched yet", "warning"),
        )
        self._validators: tuple[str | None, str | None] = (None, None)
        self._first_seen: dict[str, datetime] = {}
        self._next_fetch = 0.0  # monotonic seconds
        self._failures = 0
        self.on_failure: Callable[[str, str], None] | None = None  # (source, kind)
        self.memory = memory
        if memory is not None:
            self._restore(memory.fetch_state(config.name))

    def _restore(self, saved: SavedFetch | None) -> None:
        """Carry on from a fetch before the restart: its items, validators and schedule."""
        if saved is None or saved.url != self.url:
            return
        if saved.body is not None:
            try:
                parsed = parse_feed(saved.body, saved.content_type)
            except FetchError:  # kept by another version: fetch unconditionally, start over
                parsed = None
            if parsed is not None:
                self._take(parsed, (saved.etag, saved.last_modified))
                self._problems = ()
        # A backoff in progress holds through the restart; a healthy source is fetched at
        # the first reload (conditionally: a 304 costs the upstream little).
        self._failures = saved.failures
        if saved.failures:
            self._next_fetch = time.monotonic() + max(0.0, saved.next_attempt - time.time())

    def _remember(self, fetched: Fetched | None) -> None:
        """Keep this fetch's outcome (a good body, or only the schedule) in the memory."""
        if self.memory is None:
            return
        next_attempt = time.time() + max(0.0, self._next_fetch - time.monotonic())
        name = self.config.name
        if fetched is not None and fetched.status != 304:
            etag, last_modified = fetched.etag, fetched.last_modified
            kept = SavedFetch(
                self.url, etag, last_modified, fetched.content_type, fetched.body, 0, next_attempt
            )
            self.memory.save_fetch(name, kept)
        else:
            self.memory.save_schedule(name, self.url, self._failures, next_attempt)

    def read(self) -> SourceResult:
        """The last good articles and the current problems; never touches the network."""
        with self._lock:
            return SourceResult(self._articles, self._problems)

    def is_due(self) -> bool:
        """Whether the interval, a backoff or a Retry-After has passed."""
        return time.monotonic() >= self._next_fetch

    def fetch(self) -> bool:
        """Fetch now; True when the items changed."""
        etag, last_modified = self._validators
        try:
            fetched = fetch(
                self._session,
                self.url,
                headers=self.config.headers,
                etag=etag,
                last_modified=last_modified,
                read_timeout=float(self.config.timeout_seconds),
                max_bytes=self.config.byte_limit,
            )
            parsed = (
                None if fetched.status == 304 else parse_feed(fetched.body, fetched.content_type)
            )
        except FetchError as exc:
            self._failed(exc.reason, exc.retry_after)
            if self.on_failure is not None:
                self.on_failure(self.config.name, exc.kind)
            self._remember(None)
            return False
        self._succeeded(fetched, parsed)
        self._remember(fetched)
        return parsed is not None

    def _succeeded(self, fetched: Fetched, parsed: tuple[Channel, list[Item]] | None) -> None:
        problems = []
        if fetched.moved_to:
            message = (
                f"source {self.config.name}: moved permanently to {fetched.moved_to}; update url"
            )
            problems.append(Problem(self.url, None, message, "warning"))
        with self._lock:
            if parsed is not None:
                self._take(parsed, (fetched.etag, fetched.last_modified))
            self._problems = tuple(problems)
            self._failures = 0
            self._next_fetch = time.monotonic() + self.interval
        logger.info(
            "source %s: %s",
            self.config.name,
            "not modified" if parsed is None else f"{len(parsed[1])} items",
        )

    def _failed(self, reason: str, retry_after: float | None) -> None:
        with self._lock:
            self._failures += 1
            # Exponential backoff with jitter, capped; a Retry-After is honoured when longer.
            backoff = min(self.interval * 2 ** (self._failures - 1), MAX_BACKOFF)
            delay = max(backoff * random.uniform(0.8, 1.2), retry_after or 0.0)  # noqa: S311
            self._next_fetch = time.monotonic() + delay
            kept = "keeping its last good items" if self._articles else "it has never succeeded"
            message = f"source {self.config.name}: {reason}; {kept}; next try in {delay:.0f} s"
            self._problems = (Problem(self.url, None, message),)
        logger.warning("%s: %s", self.url, message)

    def _take(
        self, parsed: tuple[Channel, list[Item]], validators: tuple[str | None, str | None]
    ) -> None:
        """Make a good response's items the articles, with its validators for the next
        conditional fetch (the caller holds the lock, or is the constructor)."""
        origin = self._origin(*parsed)
        self._articles = tuple(self._article(item, origin) for item in parsed[1])
        self._validators = validators

    def _origin(self, channel: Channel, items: list[Item]) -> Origin:
        """Where this source's items come from: the feed at the configured URL, named
        as it names itself (its Atom id or JSON feed_url, else that URL), updated when
        its newest item was."""
        dates = [d for i in items for d in (i.updated, i.published) if d is not None]
        return Origin(
            feed_url=self.url,
            title=channel.title,
            id=channel.id or self.url,
            home=channel.home or None,
            updated=max(dates, default=None),
        )

    def _article(self, item: Item, origin: Origin) -> Article:
        seen = self._first_seen.setdefault(item.guid, self.now().replace(microsecond=0))
        published = item.published or item.updated or seen
        categories: list[tuple[str, ...]] = [
            (self.config.category_map.get(c) or c,) for c in item.categories
        ]
        if self.config.categories:
            categories.insert(0, tuple(self.config.categories))
        return Article(
            id=entry_id(self.site.base_url, self.config.name, f"guid:{item.guid}"),
            source=self.config.name,
            path=item.guid,
            title=item.title or truncate(item.summary, 80) or item.link,
            link=item.link or self.url,
            published=published,
            updated=max(item.updated or published, published),
            identity=_DATED if item.published or item.updated else _UNDATED,
            content=deflate_html(item.html),
            authors=item.authors or (Author(self.site.default_author),),
            categories=tuple(dict.fromkeys(categories)),
            tags=tuple(dict.fromkeys(self.config.tags)),
            summary=truncate(item.summary or html_to_text(item.html), SUMMARY_LIMIT),
            image=item.image,
            origin=origin,
        )

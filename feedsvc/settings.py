"""The settings config.yaml may hold: one frozen dataclass per section, each field with
its default, its check and a line of documentation (feedsvc.config reads the file)."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from feedsvc.dates import load_timezone
from feedsvc.urls import slugize

Check = Callable[[Any], str | None]


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return "must be an absolute http(s) URL"


def _timezone(value: str) -> str | None:
    try:
        load_timezone(value)
    except ValueError as exc:
        return str(exc)
    return None


def _one_of(*allowed: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in allowed else f"must be one of {', '.join(allowed)}"

    return check


def _formats(value: tuple[str, ...]) -> str | None:
    unknown = [f for f in value if f not in FORMATS]
    if unknown:
        return f"unknown format {unknown[0]!r} (known: {', '.join(FORMATS)})"
    return None if value else "must name at least one format"


def _slug_map(value: Mapping[str, str]) -> str | None:
    for name, slug in value.items():
        if slugize(slug) != slug:
            return f"{name!r} maps to {slug!r}, which is not one URL path segment"
    return None


def s3_url_problem(value: str) -> str | None:
    """What is wrong with a `publish.url` (None: nothing)."""
    parts = urlsplit(value)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        return "must be s3://bucket/prefix"
    if not parts.path:
        # The prefix belongs to feedsvc (what is not built there is deleted): the whole
        # bucket only when asked for in so many words.
        return "names no prefix: write s3://bucket/prefix, or s3://bucket/ for the whole bucket"
    return None


FORMATS = ("rss", "atom", "json")
ARCHIVE_KINDS = ("site", "categories", "tags", "authors")


def _archive_kinds(value: tuple[str, ...]) -> str | None:
    unknown = [k for k in value if k not in ARCHIVE_KINDS]
    if unknown:
        return f"unknown feed kind {unknown[0]!r} (known: {', '.join(ARCHIVE_KINDS)})"
    return None


def _feed_pattern(value: str) -> str | None:
    segments = value.split("/")
    if any(not s for s in segments):
        return "must be a feed path like site, categories/金融/**, tags/*, authors/<seg>"
    if segments[0] not in ARCHIVE_KINDS and segments[0] not in ("*", "**"):
        return f"must start with one of {', '.join(ARCHIVE_KINDS)}, * or ** (got {value!r})"
    if segments[0] == "site" and len(segments) > 1:
        return "site has no feeds below it"
    return None


def _port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be a TCP port (1-65535)"


def _checked(default: Any, check: Check, doc: str) -> Any:
    """A setting `check` vets; never given null, which leaves an optional setting unset."""
    return field(default=default, metadata={"check": check, "doc": doc})


def _doc(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


def _mapping(doc: str, check: Check | None = None) -> Any:
    """An empty mapping by default: a read-only view made for each instance, as dataclasses
    refuse one shared default of an unhashable type."""
    return field(
        default_factory=lambda: types.MappingProxyType({}), metadata={"doc": doc, "check": check}
    )


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """The `site` section: what the feeds say about the publisher."""

    base_url: str = field(metadata={"check": _http_url, "doc": "public URL of this service"})
    title: str = _doc("feedsvc", "feed title")
    description: str = _doc("Latest articles", "feed description")
    link: str | None = _checked(None, _http_url, "website of the articles")
    permalink: str = _doc(":year/:month/:day/:slug/", "item link pattern under link")
    language: str = _doc("en", "feed language (BCP 47)")
    author: str | None = _doc(None, "default author; default title")
    icon: str | None = _checked(None, _http_url, "feed icon URL")
    timezone: str = _checked("UTC", _timezone, "IANA zone for dates without offset")

    @property
    def home(self) -> str:
        """The website the articles live on: `link`, else `base_url`."""
        return self.link or self.base_url

    @property
    def default_author(self) -> str:
        """The author of articles that name none."""
        return self.author or self.title

    @property
    def for_articles(self) -> tuple[str, ...]:
        """What of the site articles are made of (ids, links, the default author, dates):
        a source keeps what it parsed, in memory and in the parse cache, while these and
        its own settings stay; an edit of the description, icon or language parses
        nothing again (at 50,000 posts, a minute of every core)."""
        return (self.base_url, self.home, self.permalink, self.default_author, self.timezone)


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One entry of `sources`: a folder of front-matter articles, or a remote feed."""

    name: str
    type: str = _checked("directory", _one_of("directory", "feed"), "source kind")
    path: str | None = _doc(None, "directory: the folder")
    include: tuple[str, ...] = _doc(("**/*.md", "**/*.markdown", "**/*.txt"), "globs to read")
    exclude: tuple[str, ...] = _doc((), "globs to skip")
    max_bytes: int | None = _checked(None, _positive, "cap")
    url: str | None = _checked(None, _http_url, "feed: the upstream feed URL")
    categories: tuple[str, ...] = _doc((), "feed: categories added to every item")
    category_map: Mapping[str, str] = _mapping("feed: upstream category -> local")
    tags: tuple[str, ...] = _doc((), "feed: tags added to every item")
    headers: Mapping[str, str] = _mapping("feed: extra request headers")
    timeout_seconds: int = _checked(20, _positive, "feed: read timeout")
    interval_seconds: int | None = _checked(None, _positive, "feed: seconds between fetches")

    @property
    def byte_limit(self) -> int:
        """`max_bytes`, or the default for the source's type."""
        if self.max_bytes is not None:
            return self.max_bytes
        return 5_000_000 if self.type == "directory" else 10_000_000


@dataclass(frozen=True, slots=True)
class FeedOverride:
    """One entry of `feeds.overrides`: settings for the feeds whose path matches."""

    match: str = field(metadata={"check": _feed_pattern, "doc": "feed path pattern"})
    limit: int | None = _checked(None, _positive, "entries per feed")
    content: str | None = _checked(None, _one_of("full", "summary"), "full or summary")
    formats: tuple[str, ...] | None = _checked(None, _formats, "formats built")
    max_bytes: int | None = _checked(None, _positive, "byte budget of one document")
    # Where the entry is in config.yaml, for the warning when it matches no feed.
    line: int = field(default=0, metadata={"internal": True})


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    """The `feeds` section: which documents are built and how."""

    formats: tuple[str, ...] = _checked(FORMATS, _formats, "formats built for every feed")
    limit: int = _checked(50, _positive, "entries per feed")
    content: str = _checked("full", _one_of("full", "summary"), "full content or summary only")
    category_hierarchy: bool = _doc(True, "a post is in every ancestor category")
    category_map: Mapping[str, str] = _mapping("name -> slug", _slug_map)
    tag_map: Mapping[str, str] = _mapping("tag -> slug", _slug_map)
    author_map: Mapping[str, str] = _mapping("author name -> slug", _slug_map)
    websub_hub: str | None = _checked(None, _http_url, "WebSub hub advertised in feeds")
    max_bytes: int = _checked(1_048_576, _positive, "byte budget of one feed document")
    archive: tuple[str, ...] = _checked((), _archive_kinds, "kinds with RFC 5005 archives")
    overrides: tuple[FeedOverride, ...] = _doc((), "per-feed settings, first match wins")


@dataclass(frozen=True, slots=True)
class ReloadConfig:
    """The `reload` section: how often sources are read again."""

    interval_seconds: int = _checked(60, _positive, "seconds between reloads")
    watch: bool = _doc(True, "serve: reload as soon as a file in a directory source changes")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The `server` section: how `feedsvc serve` listens."""

    host: str = _doc("127.0.0.1", "listen address")
    port: int = _checked(8080, _port, "listen port")
    cache_max_age: int = _doc(300, "Cache-Control max-age of feeds, seconds")
    workers: int | None = _checked(None, _positive, "processes")
    threads: int | None = _checked(None, _positive, "threads")
    access_log: bool = _doc(False, "log every request at INFO (costs about half the throughput)")
    reload_token: str | None = _doc(None, "enables POST /-/reload with this bearer token")


@dataclass(frozen=True, slots=True)
class StateConfig:
    """The `state` section: what outlives a process."""

    path: str = _doc(".feedsvc", "the state directory (snapshots, parse cache, id ledger)")


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """The `publish` section: a copy of every document in S3-compatible object storage."""

    url: str | None = _checked(None, s3_url_problem, "s3://bucket/prefix to publish to")
    endpoint_url: str | None = _checked(None, _http_url, "S3 endpoint (not AWS)")
    encoding: str = _checked("identity", _one_of("identity", "gzip"), "bytes stored")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration; paths are absolute."""

    site: SiteConfig
    sources: tuple[SourceConfig, ...]
    feeds: FeedsConfig = FeedsConfig()
    reload: ReloadConfig = ReloadConfig()
    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()
    publish: PublishConfig = PublishConfig()
    path: str = ""


# The sections of config.yaml that are mappings: every field of Config but `sources` and `path`.
SECTIONS: dict[str, type] = {
    name: hint for name, hint in get_type_hints(Config).items() if name not in ("sources", "path")
}

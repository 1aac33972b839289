"""config.yaml -> a frozen, validated Config; every problem names its YAML key path."""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from feedsvc.dates import load_timezone
from feedsvc.errors import ConfigError
from feedsvc.model import Problem, read_only
from feedsvc.urls import slugize

Check = Callable[[Any], str | None]


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    return "must be an absolute http(s) URL"


def _optional(check: Check) -> Check:
    """`check`, for a setting whose value may also be null."""
    return lambda value: None if value is None else check(value)


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
    return field(default=default, metadata={"check": check, "doc": doc})


def _doc(default: Any, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """The `site` section: what the feeds say about the publisher."""

    base_url: str = field(metadata={"check": _http_url, "doc": "public URL of this service"})
    title: str = _doc("feedsvc", "feed title")
    description: str = _doc("Latest articles", "feed description")
    link: str | None = _checked(None, _optional(_http_url), "website of the articles")
    permalink: str = _doc(":year/:month/:day/:slug/", "item link pattern under link")
    language: str = _doc("en", "feed language (BCP 47)")
    author: str | None = _doc(None, "default author; default title")
    icon: str | None = _checked(None, _optional(_http_url), "feed icon URL")
    timezone: str = _checked("UTC", _timezone, "IANA zone for dates without offset")

    @property
    def home(self) -> str:
        """The website the articles live on: `link`, else `base_url`."""
        return self.link or self.base_url

    @property
    def default_author(self) -> str:
        """The author of articles that name none."""
        return self.author or self.title


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One entry of `sources`: a folder of front-matter articles, or a remote feed."""

    name: str
    type: str = _checked("directory", _one_of("directory", "feed"), "source kind")
    path: str | None = _doc(None, "directory: the folder")
    include: tuple[str, ...] = _doc(("**/*.md", "**/*.markdown", "**/*.txt"), "globs to read")
    exclude: tuple[str, ...] = _doc((), "globs to skip")
    max_bytes: int | None = _checked(None, _optional(_positive), "cap")
    url: str | None = _checked(None, _optional(_http_url), "feed: the upstream feed URL")
    categories: tuple[str, ...] = _doc((), "feed: categories added to every item")
    category_map: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"doc": "feed: upstream category -> local"},
    )
    tags: tuple[str, ...] = _doc((), "feed: tags added to every item")
    headers: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"doc": "feed: extra request headers"},
    )
    timeout_seconds: int = _checked(20, _positive, "feed: read timeout")
    interval_seconds: int | None = _checked(
        None, _optional(_positive), "feed: seconds between fetches"
    )

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
    limit: int | None = _checked(None, _optional(_positive), "entries per feed")
    content: str | None = _checked(None, _optional(_one_of("full", "summary")), "full or summary")
    formats: tuple[str, ...] | None = _checked(None, _optional(_formats), "formats built")
    max_bytes: int | None = _checked(None, _optional(_positive), "byte budget of one document")
    # Where the entry is in config.yaml, for the warning when it matches no feed.
    line: int = field(default=0, metadata={"internal": True})


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    """The `feeds` section: which documents are built and how."""

    formats: tuple[str, ...] = _checked(
        ("rss", "atom", "json"), _formats, "formats built for every feed"
    )
    limit: int = _checked(50, _positive, "entries per feed")
    content: str = _checked("full", _one_of("full", "summary"), "full content or summary only")
    category_hierarchy: bool = _doc(True, "a post is in every ancestor category")
    category_map: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"doc": "name -> slug", "check": _slug_map},
    )
    tag_map: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"doc": "tag -> slug", "check": _slug_map},
    )
    author_map: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"doc": "author name -> slug", "check": _slug_map},
    )
    websub_hub: str | None = _checked(None, _optional(_http_url), "WebSub hub advertised in feeds")
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
    workers: int | None = _checked(None, _optional(_positive), "processes")
    threads: int | None = _checked(None, _optional(_positive), "threads")
    access_log: bool = _doc(False, "log every request at INFO (costs about half the throughput)")
    reload_token: str | None = _doc(None, "enables POST /-/reload with this bearer token")


@dataclass(frozen=True, slots=True)
class StateConfig:
    """The `state` section: what outlives a process."""

    path: str = _doc(".feedsvc", "the state directory (snapshots, parse cache, id ledger)")


@dataclass(frozen=True, slots=True)
class PublishConfig:
    """The `publish` section: a copy of every document in S3-compatible object storage."""

    url: str | None = _checked(None, _optional(s3_url_problem), "s3://bucket/prefix to publish to")
    endpoint_url: str | None = _checked(None, _optional(_http_url), "S3 endpoint (not AWS)")
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


SECTIONS: dict[str, type] = {
    "site": SiteConfig,
    "feeds": FeedsConfig,
    "reload": ReloadConfig,
    "server": ServerConfig,
    "state": StateConfig,
    "publish": PublishConfig,
}
FORMATS = ("rss", "atom", "json")


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; ConfigError lists every problem as `file:line: key: why`."""
    config_path = Path(path).resolve()
    try:
        text = config_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read: {exc}")]) from exc
    return parse_config(text, config_path)


def parse_config(text: str, config_path: Path) -> Config:
    """Validate YAML `text` as the config at `config_path` (relative paths resolve against it)."""
    try:
        node = yaml.compose(text, Loader=yaml.CSafeLoader)
        data = yaml.load(text, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = Problem(str(config_path), line, f"invalid YAML: {_yaml_reason(exc)}")
        raise ConfigError([problem]) from exc
    lines = _key_lines(node, "") if node is not None else {}
    builder = _Builder(config_path, lines)
    config = builder.config(data)
    if builder.problems:
        raise ConfigError(builder.problems)
    assert config is not None
    return config


def _yaml_reason(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]


def _key_lines(node: yaml.Node, prefix: str) -> dict[str, int]:
    """Map every key path (`feeds.limit`, `sources[0].path`) to its 1-based line."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = f"{prefix}.{key.value}" if prefix else str(key.value)
            lines[name] = key.start_mark.line + 1
            lines.update(_key_lines(value, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            name = f"{prefix}[{index}]"
            lines[name] = item.start_mark.line + 1
            lines.update(_key_lines(item, name))
    return lines


class _Builder:
    """Walks the loaded YAML beside the dataclasses, collecting every problem."""

    def __init__(self, config_path: Path, lines: dict[str, int]) -> None:
        self.config_path = config_path
        self.lines = lines
        self.problems: list[Problem] = []

    def fail(self, key: str, message: str) -> None:
        line = self.lines.get(key) or self.lines.get(key.rsplit(".", 1)[0], 1)
        self.problems.append(Problem(str(self.config_path), line, f"{key}: {message}"))

    def config(self, data: object) -> Config | None:
        if not isinstance(data, dict):
            self.fail("(top level)", "must be a mapping of sections")
            return None
        for key in data:
            if key not in SECTIONS and key != "sources":
                self.fail(str(key), "unknown key")
        sections = {name: self.section(cls, data.get(name), name) for name, cls in SECTIONS.items()}
        sources = self.sources(data.get("sources"))
        if self.problems:
            return None
        state = sections["state"]
        sections["state"] = replace(
            state, path=str((self.config_path.parent / state.path).resolve())
        )
        return Config(sources=sources, path=str(self.config_path), **sections)

    def section(self, cls: type, data: object, where: str) -> Any:
        if data is None and where != "site":
            data = {}
        if not isinstance(data, dict):
            self.fail(where, "must be a mapping" if data is not None else "is required")
            return None
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known or known[key].metadata.get("internal"):
                self.fail(f"{where}.{key}", "unknown key")
        hints = typing.get_type_hints(cls)
        for name, spec in known.items():
            key = f"{where}.{name}"
            if spec.metadata.get("internal"):
                continue
            if name not in data:
                if spec.default is MISSING and spec.default_factory is MISSING:
                    self.fail(key, "is required")
                continue
            value = self.convert(data[name], hints[name], key)
            check = spec.metadata.get("check")
            message = check(value) if check and value is not _INVALID else None
            if message:
                self.fail(key, message)
            values[name] = value
        if any(v is _INVALID for v in values.values()) or self.problems:
            return None
        return cls(**values)

    def sources(self, data: object) -> tuple[SourceConfig, ...]:
        if not isinstance(data, list) or not data:
            self.fail("sources", "must be a non-empty list of sources")
            return ()
        built: list[SourceConfig] = []
        for index, item in enumerate(data):
            source = self.section(SourceConfig, item, f"sources[{index}]")
            if source is not None and self.source_fits_type(source, item, f"sources[{index}]"):
                if source.path is not None:
                    root = (self.config_path.parent / source.path).resolve()
                    source = replace(source, path=str(root))
                built.append(source)
        names = [s.name for s in built]
        for index, name in enumerate(names):
            if names.index(name) != index:
                self.fail(f"sources[{index}].name", f"duplicate source name {name!r}")
        return tuple(built)

    def source_fits_type(self, source: SourceConfig, data: Any, where: str) -> bool:
        """A directory needs `path`, a feed needs `url`; keys of the other type are errors."""
        own = _DIRECTORY_KEYS if source.type == "directory" else _FEED_KEYS
        other = _FEED_KEYS if source.type == "directory" else _DIRECTORY_KEYS
        fits = True
        for key in other - own:
            if key in data:
                self.fail(f"{where}.{key}", f"not a setting of a {source.type} source")
                fits = False
        required = "path" if source.type == "directory" else "url"
        if required not in data:
            self.fail(f"{where}.{required}", f"is required for a {source.type} source")
            fits = False
        return fits

    def convert(self, value: object, hint: Any, key: str) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (types.UnionType, typing.Union):
            if value is None:
                return None
            hint = next(a for a in args if a is not type(None))
            return self.convert(value, hint, key)
        if origin is tuple and isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
            return self.convert_records(value, args[0], key)
        if origin is tuple:
            return self.convert_list(value, key)
        if origin in (Mapping, dict) or hint is Mapping:
            return self.convert_mapping(value, key)
        return self.convert_scalar(value, hint, key)

    def convert_scalar(self, value: object, hint: type, key: str) -> Any:
        # bool is an int in Python; a YAML `yes` must not become a limit of 1.
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        if hint is str and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.fail(key, f"expected {_TYPE_NAMES[hint]}, got {value!r}")
        return _INVALID

    def convert_list(self, value: object, key: str) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        self.fail(key, f"expected a list of strings, got {value!r}")
        return _INVALID

    def convert_records(self, value: object, cls: type, key: str) -> Any:
        """A list of mappings, each checked as `cls` (`feeds.overrides`)."""
        if not isinstance(value, list):
            self.fail(key, f"expected a list of mappings, got {value!r}")
            return _INVALID
        before = len(self.problems)
        records = [self.section(cls, item, f"{key}[{n}]") for n, item in enumerate(value)]
        for n, record in enumerate(records):
            if record is not None and not _sets_anything(record):
                self.fail(f"{key}[{n}]", "sets nothing (limit, content, formats or max_bytes)")
        if len(self.problems) > before or any(r is None for r in records):
            return _INVALID
        return tuple(
            replace(record, line=self.lines.get(f"{key}[{n}]", 0))
            for n, record in enumerate(records)
        )

    def convert_mapping(self, value: object, key: str) -> Any:
        if isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return read_only(dict(value))
        self.fail(key, f"expected a mapping of strings to strings, got {value!r}")
        return _INVALID


def _sets_anything(record: Any) -> bool:
    return any(
        getattr(record, f.name) is not None
        for f in fields(record)
        if f.name != "match" and not f.metadata.get("internal")
    )


_INVALID = object()
_DIRECTORY_KEYS = frozenset({"path", "include", "exclude"})
_FEED_KEYS = frozenset(
    {"url", "categories", "category_map", "tags", "headers", "timeout_seconds", "interval_seconds"}
)
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}

"""config.yaml -> a frozen, validated Config; every problem names its YAML key path.

The settings themselves (the dataclasses, their defaults and checks) are feedsvc.settings.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Any

import yaml

from feedsvc.errors import ConfigError
from feedsvc.model import Problem, read_only
from feedsvc.settings import SECTIONS, Config, SourceConfig


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
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problem = Problem(str(config_path), line, f"invalid YAML: {reason}")
        raise ConfigError([problem]) from exc
    lines = _key_lines(node, "") if node is not None else {}
    builder = _Builder(config_path, lines)
    config = builder.config(data)
    if builder.problems:
        raise ConfigError(builder.problems)
    assert config is not None
    return config


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
        known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
        for key in data:
            if key not in known:
                self.fail(f"{where}.{key}", "unknown key")
        hints = typing.get_type_hints(cls)
        for name, spec in known.items():
            key = f"{where}.{name}"
            if name not in data:
                if spec.default is MISSING and spec.default_factory is MISSING:
                    self.fail(key, "is required")
                continue
            value = self.convert(data[name], hints[name], key)
            check = spec.metadata.get("check")
            # null leaves an optional setting unset: there is nothing to check.
            message = check(value) if check and value not in (None, _INVALID) else None
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
        other = _FEED_KEYS if source.type == "directory" else _DIRECTORY_KEYS
        fits = True
        for key in other:
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

"""The feedsvc exception tree: every error the service raises on purpose."""

from __future__ import annotations

from feedsvc.model import Problem


class FeedsvcError(Exception):
    """Base of every error feedsvc raises on purpose."""


class ConfigError(FeedsvcError):
    """The configuration is invalid; `problems` holds one located Problem per defect."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class ArticleError(FeedsvcError):
    """One article file cannot be published; carries the file and the line at fault."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class SourceError(FeedsvcError):
    """A whole source cannot be read (folder missing, permission denied)."""


class PublishError(FeedsvcError):
    """Object storage refused or failed a publication; `config` when a setting is at fault
    (a missing bucket, refused credentials), not the store's health."""

    def __init__(self, message: str, *, config: bool = False) -> None:
        super().__init__(message)
        self.config = config

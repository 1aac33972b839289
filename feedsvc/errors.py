"""The feedsvc exception tree: every error the service raises on purpose."""

from __future__ import annotations

import sys

from feedsvc.model import Problem

# The commands' exit statuses: done; done, with problems in the sources; not run (a bad
# config or command line, or a state directory another server holds).
EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2


def fail(message: str, status: int = EXIT_CONFIG) -> int:
    """Print `feedsvc: message` on standard error; returns `status`, the exit status."""
    print(f"feedsvc: {message}", file=sys.stderr)
    return status


class FeedsvcError(Exception):
    """Base of every error feedsvc raises on purpose."""


class ConfigError(FeedsvcError):
    """The configuration is invalid; `problems` holds one located Problem per defect."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class ArticleError(FeedsvcError):
    """One article file cannot be published; `problem` locates the file and the line at fault."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        self.problem = Problem(path, line, reason)
        super().__init__(str(self.problem))


class SourceError(FeedsvcError):
    """A whole source cannot be read (folder missing, permission denied)."""


class PublishError(FeedsvcError):
    """Object storage refused or failed a publication; `config` when a setting is at fault
    (a missing bucket, refused credentials), not the store's health."""

    def __init__(self, message: str, *, config: bool = False) -> None:
        super().__init__(message)
        self.config = config


class FetchError(FeedsvcError):
    """A remote feed fetched, or a kept body read again, that gave no feed.

    `kind` is a short, fixed name for metrics (timeout, connection, dns, http_4xx,
    http_5xx, rate_limited, too_large, redirects, not_a_feed, encoding, request);
    `reason` says it in words; `retry_after` is the server's wish, in seconds.
    """

    def __init__(self, kind: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after = retry_after


class MarkdownError(FeedsvcError):
    """The Markdown renderer could not render a body (the post is published as plain text)."""

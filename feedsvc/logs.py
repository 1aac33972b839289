"""Log formats: one line per record, as text or as JSON (`--log-format json`)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, RFC 3339), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        """Render `record` as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _formatter_spec(log_format: str) -> dict[str, Any]:
    if log_format == "json":
        return {"()": "feedsvc.logs.JsonFormatter"}
    return {"()": "logging.Formatter", "fmt": TEXT_FORMAT}


def configure_logging(level: str, log_format: str) -> None:
    """Configure the root logger once, for the CLI process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # APScheduler narrates every job run at INFO; our own reload line says what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def server_logging(level: str, log_format: str) -> dict[str, Any]:
    """granian's dictConfig for its worker processes: our format for every logger."""
    formatter = _formatter_spec(log_format)
    return {
        "formatters": {"generic": formatter, "access": formatter},
        "root": {"handlers": ["console"], "level": level.upper()},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": level.upper(), "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "apscheduler": {"level": "WARNING"},
        },
    }

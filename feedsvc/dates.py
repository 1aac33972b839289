"""The only place that parses dates: front matter, HTTP headers, remote feeds and the
service's own state files each become aware UTC datetimes here."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


Clock = Callable[[], datetime]  # what is injected where the time is needed: utc_now or a fixed one


def utc_now() -> datetime:
    """The real clock, aware UTC; the one default that tests replace with a fixed clock."""
    return datetime.now(tz=UTC)


def load_timezone(name: str) -> ZoneInfo:
    """Return the IANA zone `name`; ValueError when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def to_utc(value: object, default_tz: tzinfo) -> datetime:
    """Turn a YAML/str/epoch date into aware UTC; naive values are in `default_tz`.

    Accepts what blog front matter holds: YAML timestamps and dates, RFC 2822
    strings (`Sun, 24 Oct 2021 11:30:58 GMT`), ISO 8601 with or without an
    offset, `YYYY-MM-DD`, and epoch seconds. Anything else is a ValueError.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, datetime):
        return _aware(value, default_tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=default_tz).astimezone(UTC)
    if isinstance(value, int | float):
        return _from_epoch(value)
    if isinstance(value, str):
        return _parse_string(value.strip(), default_tz)
    raise ValueError(f"not a date: {value!r}")


def parse_http_date(value: str) -> datetime | None:
    """An HTTP-date header (RFC 9110 §5.6.7) as aware UTC; None when it is not one."""
    # §5.6.7: HTTP dates are GMT, so one without a zone ("-0000") is read as UTC too.
    try:
        return _parse_rfc2822(value, UTC)
    except ValueError:
        return None


def parse_feed_date(value: object) -> datetime | None:
    """A remote feed's RFC 3339 date (JSON Feed) as aware UTC; None when it holds none."""
    if not isinstance(value, str):
        return None
    try:
        # The replace keeps a date-only value with a "Z" ("2021-10-24Z") readable.
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")), UTC)
    except ValueError:
        return None


def from_utc_tuple(parsed: Any) -> datetime | None:
    """feedparser's parsed date (a UTC time tuple) as aware UTC; None when it holds none."""
    try:
        year, month, day, hour, minute, second = parsed[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def parse_stored_date(text: str) -> datetime:
    """A date the service wrote with isoformat() as aware UTC; ValueError if it is not one."""
    return _aware(datetime.fromisoformat(text), UTC)


def _aware(value: datetime, default_tz: tzinfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=default_tz)
    return value.astimezone(UTC)


def _from_epoch(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"epoch seconds out of range: {seconds!r}") from exc


def _parse_string(text: str, default_tz: tzinfo) -> datetime:
    if not text:
        raise ValueError("empty date")
    if text.lstrip("-").isdigit():
        return _from_epoch(int(text))
    if text[0].isalpha() or "," in text:
        return _parse_rfc2822(text, default_tz)
    try:
        return _aware(datetime.fromisoformat(text), default_tz)
    except ValueError:
        raise ValueError(f"not a date: {text!r}") from None


def _parse_rfc2822(text: str, default_tz: tzinfo) -> datetime:
    # RFC 5322 §3.3: "-0000" means no zone information, which
    # parsedate_to_datetime reports as a naive datetime.
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        raise ValueError(f"not a date: {text!r}") from None
    return _aware(parsed, default_tz)

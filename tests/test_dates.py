import time
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from feedsvc.dates import (
    from_utc_tuple,
    load_timezone,
    parse_feed_date,
    parse_http_date,
    parse_stored_date,
    to_utc,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 24 Oct 2021 11:30:58 GMT", datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
        ("Sun, 24 Oct 2021 19:30:58 +0800", datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
        ("2022-03-14T09:30:00+08:00", datetime(2022, 3, 14, 1, 30, tzinfo=UTC)),
        ("2022-03-14T09:30:00Z", datetime(2022, 3, 14, 9, 30, tzinfo=UTC)),
        ("2022-03-14 09:30:00", datetime(2022, 3, 14, 1, 30, tzinfo=UTC)),
        ("2022-03-14", datetime(2022, 3, 13, 16, 0, tzinfo=UTC)),
        (date(2022, 3, 14), datetime(2022, 3, 13, 16, 0, tzinfo=UTC)),
        (datetime(2022, 3, 14, 9, 30), datetime(2022, 3, 14, 1, 30, tzinfo=UTC)),
        (
            datetime(2022, 3, 14, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2022, 3, 14, 14, 30, tzinfo=UTC),
        ),
        (1635075058, datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
        ("1635075058", datetime(2021, 10, 24, 11, 30, 58, tzinfo=UTC)),
    ],
)
def test_to_utc_gives_aware_utc_for_every_spelling(value: object, expected: datetime) -> None:
    result = to_utc(value, SHANGHAI)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_rfc2822_without_zone_takes_the_default_zone() -> None:
    assert to_utc("Sun, 24 Oct 2021 19:30:58 -0000", SHANGHAI) == datetime(
        2021, 10, 24, 11, 30, 58, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value", ["2021-13-45", "not a date", "", True, None, [2021], "Sun, 99 Foo"]
)
def test_to_utc_rejects_what_is_not_a_date(value: object) -> None:
    with pytest.raises(ValueError):
        to_utc(value, SHANGHAI)


def test_load_timezone_rejects_unknown_zone() -> None:
    assert load_timezone("Asia/Shanghai").key == "Asia/Shanghai"
    with pytest.raises(ValueError, match="Mars/Olympus"):
        load_timezone("Mars/Olympus")


@pytest.mark.parametrize(
    "value",
    [
        "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        "Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        "Sun Nov  6 08:49:37 1994",  # obsolete asctime
        "Sun, 06 Nov 1994 08:49:37 -0000",  # no zone: HTTP dates are GMT
        "Sun, 06 Nov 1994 16:49:37 +0800",
    ],
)
def test_parse_http_date_reads_every_http_date_form_as_utc(value: str) -> None:
    result = parse_http_date(value)
    assert result == datetime(1994, 11, 6, 8, 49, 37, tzinfo=UTC)
    assert result is not None and result.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", ["", "yesterday", "Sun, 99 Foo", "120"])
def test_parse_http_date_gives_none_for_what_is_not_a_date(value: str) -> None:
    assert parse_http_date(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-03-01T10:00:00+08:00", datetime(2022, 3, 1, 2, 0, tzinfo=UTC)),
        ("2020-01-01T00:00:00Z", datetime(2020, 1, 1, tzinfo=UTC)),
        ("2020-01-01T00:00:00", datetime(2020, 1, 1, tzinfo=UTC)),
        ("2020-01-01", datetime(2020, 1, 1, tzinfo=UTC)),
        ("2020-01-01Z", datetime(2020, 1, 1, tzinfo=UTC)),
        ("Sun, 06 Nov 1994 08:49:37 GMT", None),
        ("1635075058", None),
        ("", None),
        (1635075058, None),
        (None, None),
    ],
)
def test_parse_feed_date_reads_rfc3339_and_nothing_else(
    value: object, expected: datetime | None
) -> None:
    assert parse_feed_date(value) == expected


def test_parse_stored_date_reads_back_isoformat_as_utc() -> None:
    written = datetime(2021, 10, 24, 19, 30, 58, tzinfo=SHANGHAI)
    read = parse_stored_date(written.isoformat())
    assert read == written
    assert read.tzinfo is UTC
    with pytest.raises(ValueError):
        parse_stored_date("not a date")


def test_feedparser_time_tuples_become_aware_utc_and_nonsense_none() -> None:
    assert from_utc_tuple(time.strptime("2024-03-01 08:30:05", "%Y-%m-%d %H:%M:%S")) == datetime(
        2024, 3, 1, 8, 30, 5, tzinfo=UTC
    )
    assert from_utc_tuple(None) is None
    assert from_utc_tuple((2024, 13, 40, 0, 0, 0)) is None
